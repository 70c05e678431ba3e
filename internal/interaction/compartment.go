package interaction

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The compartment search across types: GET /Patient/{id}/*, narrowed to
// some types with _type=Condition,AllergyIntolerance. The path binds the
// patient, so it is a search of one record like /Patient/{id}/{type}, and
// each type passes the same steps as that search: its parameters are
// parsed for it (a parameter not every named type has is refused, naming
// the type), the decision point is passed per type (a refusal of any
// named type is the answer, as it would be for that type alone), and the
// granular constraints, restricted sections and critical-information
// Consents apply as they do there. The matches of all types are one list,
// ordered by lastUpdated then Type/id and paged with a cursor of that
// position; _sort is refused, since the types share no other order.

// compartmentAll is the type segment of the compartment search.
const compartmentAll = "*"

func (s *Service) searchCompartment(ctx context.Context, req *Request, c *Call) (*Result, error) {
	params, err := searchParams(c)
	if err != nil {
		return nil, err
	}
	types, e := s.compartmentTypes(params["_type"])
	if e != nil {
		return nil, e
	}
	var after *compartmentCursor
	if vs := params["_cursor"]; len(vs) > 0 {
		cur, ok := parseCompartmentCursor(vs[0])
		if len(vs) > 1 || !ok {
			return nil, invalid("_cursor", "_cursor is not a cursor this search produced")
		}
		after = cur
	}
	rest := url.Values{}
	for k, vs := range params {
		if k != "_type" && k != "_cursor" {
			rest[k] = vs
		}
	}
	if _, ok := rest["_sort"]; ok {
		return nil, fail(http.StatusBadRequest, "not-supported",
			"_sort is not supported on GET /Patient/{id}/*: the types share no order but lastUpdated; search one type to sort")
	}
	sh, e := shapeOf(rest)
	if e != nil {
		return nil, e
	}
	queries := make([]*search.Query, len(types))
	var warnings []fhir.Issue
	for i, t := range types {
		q, w, err := s.reg.ParseQuery(t, translateCriticalInfoType(t, rest), c.Lenient)
		if err != nil {
			return nil, err
		}
		if _, err := s.resolveChains(ctx, q); err != nil {
			return nil, err
		}
		queries[i] = q
		if i == 0 {
			warnings = append(warnings, w...)
		}
	}
	patient := c.Compartment
	for _, q := range queries {
		// Parameters can only narrow the path's patient (to nobody).
		if ids, bound := q.PatientBinding(); bound && !slices.Contains(ids, patient) {
			patient = ""
		}
	}

	g := s.gate(ctx, req, patient)
	var hits []recordHit
	var hidden []access.Decision
	for i, t := range types {
		q := queries[i]
		critical := t == "Consent" && criticalConsentSearch(req, params)
		d, _, err := s.require(ctx, req, ask{in: access.Search, typ: t, patient: patient, critical: critical}, absent{})
		if err != nil {
			return nil, err
		}
		if len(d.Hidden) > 0 {
			hidden = append(hidden, d)
		}
		if patient == "" || d.Hides(t) || critical && slices.Contains(d.Hidden, access.Critical) {
			continue
		}
		more, err := s.matchRecord(g, d, q, t, critical)
		if err != nil {
			return nil, err
		}
		hits = append(hits, more...)
	}
	slices.SortFunc(hits, func(a, b recordHit) int { return compartmentPos(a).compare(compartmentPos(b)) })
	total := len(hits)
	count := queries[0].Count
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(hits, *after, func(h recordHit, c compartmentCursor) int {
			if r := compartmentPos(h).compare(c); r != 0 {
				return r
			}
			return -1 // the cursor's own entry was served
		})
	}
	end := min(len(hits), start+count)
	page := hits[start:end]

	self := url.Values{}
	for k, vs := range queries[0].Values() {
		self[k] = vs
	}
	if vs := params["_type"]; len(vs) > 0 {
		self["_type"] = vs
	}
	link := func(rel string, cur *compartmentCursor) fhir.Link {
		v := url.Values{}
		for k, vs := range self {
			v[k] = vs
		}
		if cur != nil {
			v.Set("_cursor", cur.String())
		}
		u := req.Base + "/Patient/" + c.Compartment + "/" + compartmentAll
		if enc := v.Encode(); enc != "" {
			u += "?" + enc
		}
		return fhir.Link{Relation: rel, URL: u}
	}
	links := []fhir.Link{link("self", after)}
	if end < len(hits) && len(page) > 0 && sh.Summary != "count" {
		last := compartmentPos(page[len(page)-1])
		links = append(links, link("next", &last))
	}

	var entries []fhir.BundleEntry
	if sh.Summary != "count" && count > 0 {
		add := func(v store.Version, mode string) error {
			b, err := sh.apply(v.Body)
			if err != nil {
				return err
			}
			entries = append(entries, fhir.BundleEntry{FullURL: req.Base + "/" + v.Type + "/" + v.ID, Resource: b, SearchMode: mode})
			return nil
		}
		seen := map[string]bool{}
		for _, h := range page {
			seen[h.v.Type+"/"+h.v.ID] = true
			if err := add(h.v, "match"); err != nil {
				return nil, err
			}
		}
		for i, t := range types {
			var ofType []search.Candidate
			for _, h := range page {
				if h.v.Type == t {
					ofType = append(ofType, search.Candidate{Index: &h.idx, Body: h.v.Body})
				}
			}
			incl, capped, err := s.included(g, queries[i], ofType, seen)
			if err != nil {
				return nil, err
			}
			if capped != nil {
				warnings = append(warnings, *capped)
			}
			for _, v := range incl {
				if err := add(v, "include"); err != nil {
					return nil, err
				}
			}
		}
	}
	notes := warnings
	for _, d := range hidden {
		notes = append(notes, fhir.Issue{Severity: "warning", Code: "suppressed", Diagnostics: d.Message,
			Details: fhir.Coding{System: domain.SystemAccessReason, Code: string(d.Reason)}})
	}
	if len(notes) > 0 {
		entries = append(entries, fhir.BundleEntry{SearchMode: "outcome", Resource: fhir.Outcome(notes...)})
	}
	opts := fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text()}
	if len(hidden) > 0 {
		opts.Security = []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "REDACTED",
			Display: "restricted parts of the record are left out"}}
	}
	if queries[0].Total != "none" || sh.Summary == "count" {
		opts.Total = &total
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(opts, entries)}, nil
}

// compartmentTypes reads _type: the record types to search, all of them
// (in the order the server lists them) when it is absent.
func (s *Service) compartmentTypes(given []string) ([]string, *Error) {
	if len(given) == 0 {
		return s.codec.Types(), nil
	}
	if len(given) > 1 {
		return nil, invalid("_type", "_type may be given only once; list the types comma-separated")
	}
	var types []string
	for _, t := range strings.Split(given[0], ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			return nil, invalid("_type", "_type holds an empty type")
		case t == "DocumentReference" || t == "AuditEvent":
			return nil, invalid("_type", "%s is not stored in the record: search it on its own (GET /%s?patient=)", t, t)
		case !s.recordType(t):
			if !validType(t) {
				return nil, invalid("_type", "%q is not a resource type", t)
			}
			return nil, fail(http.StatusBadRequest, "not-supported", "_type: %s is not a type of the record; the record's types are %s",
				t, strings.Join(s.codec.Types(), ", "))
		case !slices.Contains(types, t):
			types = append(types, t)
		}
	}
	return types, nil
}

// compartmentCursor is a position in the compartment search's order.
type compartmentCursor struct {
	updated int64 // lastUpdated, nanoseconds since the epoch
	typ, id string
}

func compartmentPos(h recordHit) compartmentCursor {
	return compartmentCursor{h.v.LastUpdated.UnixNano(), h.v.Type, h.v.ID}
}

func (c compartmentCursor) compare(o compartmentCursor) int {
	switch {
	case c.updated < o.updated:
		return -1
	case c.updated > o.updated:
		return 1
	}
	if r := strings.Compare(c.typ, o.typ); r != 0 {
		return r
	}
	return strings.Compare(c.id, o.id)
}

func (c compartmentCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.updated, 10) + "/" + c.typ + "/" + c.id))
}

func parseCompartmentCursor(s string) (*compartmentCursor, bool) {
	if len(s) > 256 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(raw), "/")
	if len(parts) != 3 {
		return nil, false
	}
	n, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || !validType(parts[1]) || !ValidID(parts[2]) {
		return nil, false
	}
	return &compartmentCursor{n, parts[1], parts[2]}, true
}
