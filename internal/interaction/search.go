package interaction

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// FHIR search, always bound to one patient.
//
// A search runs as: merge the parameters (URL query, and for POST _search
// the form body); parse them with the registry (fhir/search); resolve
// chains (patient.identifier=...); bind the search to exactly one patient
// (access.BindSearch: searching across patients is not allowed by law);
// pass the decision point for that patient; read the patient's
// compartment for the type and match, sort and page in Go. Nothing from
// the query string reaches the store except the patient id and the type,
// and both are checked first.
//
// Results: Bundle.total is given unless _total=none (every match is
// counted anyway, so it costs nothing). _summary=count gives only the
// total. _include and _revinclude (also :iterate) and _has stay inside
// the bound patient's record, and every resource they use passes the
// decision point on its own (recordGate, include.go): one that the scopes
// or the rules refuse is left out, the search itself still answers.

// search serves GET /{type}, POST /{type}/_search and the compartment
// search GET /Patient/{id}/{type}.
func (s *Service) search(ctx context.Context, req *Request, c *Call) (*Result, error) {
	params, err := searchParams(c)
	if err != nil {
		return nil, err
	}
	q, warnings, err := s.reg.ParseQuery(c.Type, translateCriticalInfoType(c.Type, params), c.Lenient)
	if err != nil {
		return nil, err
	}
	sh, e := shapeOf(q.Values())
	if e != nil {
		return nil, e
	}
	unknown, err := s.resolveChains(ctx, q)
	if err != nil {
		return nil, err
	}
	ids, bound := q.PatientBinding()
	b := access.Binding{Patients: ids, Bound: bound, Unknown: unknown}
	if c.Compartment != "" {
		// The path binds the patient; parameters can only narrow it.
		b.Unknown = nil
		if bound {
			b.Patients = slices.DeleteFunc(ids, func(id string) bool { return id != c.Compartment })
		} else {
			b.Patients, b.Bound = []string{c.Compartment}, true
		}
	}
	if !b.Bound && req.named != "" {
		// No parameter names the patient: nhn-patient-nin does.
		b.Patients, b.Bound = []string{req.named}, true
	}
	patient, bd := access.BindSearch(c.Type, b)
	if !bd.Allowed() {
		req.Facts.note("", c.Type, bd)
		return nil, refusal(bd, absent{})
	}
	// A search bound to no patient at all (an identifier nobody has, or
	// contradicting patient parameters) still passes the decision point,
	// for no patient, and then finds nothing.
	critical := c.Type == "Consent" && criticalConsentSearch(req, params)
	d, _, err := s.require(ctx, req, ask{in: access.Search, typ: c.Type, patient: patient, critical: critical}, absent{})
	if err != nil {
		return nil, err
	}
	hidden := d.Hides(c.Type) || critical && slices.Contains(d.Hidden, access.Critical)
	var matches []search.Candidate
	g := s.gate(ctx, req, patient)
	if patient != "" && !hidden {
		hits, err := s.matchRecord(g, d, q, c.Type, critical)
		if err != nil {
			return nil, err
		}
		matches = make([]search.Candidate, len(hits))
		for i := range hits {
			matches[i] = search.Candidate{Index: &hits[i].idx, Body: hits[i].v.Body}
		}
	}
	total := len(matches)
	page, next, prev := q.Page(matches)

	path := "/" + c.Type
	if c.Compartment != "" {
		path = "/Patient/" + c.Compartment + "/" + c.Type
	}
	link := func(rel, cursor string) fhir.Link {
		v := q.Values()
		if cursor != "" {
			v.Set("_cursor", cursor)
		}
		u := req.Base + path
		if enc := v.Encode(); enc != "" {
			u += "?" + enc
		}
		return fhir.Link{Relation: rel, URL: u}
	}
	links := []fhir.Link{link("self", q.Cursor)}
	if next != "" && sh.Summary != "count" {
		links = append(links, link("next", next))
	}
	if prev != "" && sh.Summary != "count" {
		links = append(links, link("previous", prev))
	}

	var entries []fhir.BundleEntry
	if sh.Summary != "count" {
		add := func(typ, id string, body []byte, mode string) error {
			b, err := sh.apply(body)
			if err != nil {
				return err
			}
			entries = append(entries, fhir.BundleEntry{FullURL: req.Base + "/" + typ + "/" + id, Resource: b, SearchMode: mode})
			return nil
		}
		seen := map[string]bool{}
		for _, m := range page {
			seen[c.Type+"/"+m.Index.ID] = true
			if err := add(c.Type, m.Index.ID, m.Body, "match"); err != nil {
				return nil, err
			}
		}
		incl, capped, err := s.included(g, q, page, seen)
		if err != nil {
			return nil, err
		}
		if capped != nil {
			warnings = append(warnings, *capped)
		}
		for _, v := range incl {
			if err := add(v.Type, v.ID, v.Body, "include"); err != nil {
				return nil, err
			}
		}
	}
	notes := append([]fhir.Issue(nil), warnings...)
	note, label, hidden := hiddenNote(d)
	if hidden {
		notes = append(notes, note)
	}
	if len(notes) > 0 {
		entries = append(entries, fhir.BundleEntry{SearchMode: "outcome", Resource: fhir.Outcome(notes...)})
	}
	opts := fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text(), Security: label}
	if q.Total != "none" || sh.Summary == "count" {
		opts.Total = &total
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(opts, entries)}, nil
}

// hiddenNote is what a searchset says when the decision left restricted
// sections out: an issue that restricted information exists, without
// showing it, and the v3 "REDACTED" label saying the Bundle is not the
// whole record. hidden is false (and the rest empty) when nothing was.
func hiddenNote(d access.Decision) (note fhir.Issue, label []fhir.Coding, hidden bool) {
	if len(d.Hidden) == 0 {
		return fhir.Issue{}, nil, false
	}
	return fhir.Issue{Severity: "warning", Code: "suppressed", Diagnostics: d.Message,
			Details: fhir.Coding{System: domain.SystemAccessReason, Code: string(d.Reason)}},
		[]fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "REDACTED",
			Display: "restricted parts of the record are left out"}}, true
}

// searchParams merges the URL query and, for POST _search, the
// form-encoded body: as the spec says, parameters in the URL and in the
// body are one search, and repeated names add up (AND).
func searchParams(c *Call) (url.Values, error) {
	if len(c.Form) == 0 {
		return c.Query, nil
	}
	params := url.Values{}
	for k, vs := range c.Query {
		params[k] = slices.Clone(vs)
	}
	form, err := url.ParseQuery(string(c.Form))
	if err != nil {
		return nil, invalid("", "the form body cannot be read: %v", err)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// indexOf is the search index of a stored version: the one written with
// it (package ingest), completed with the version's lastUpdated, which is
// decided in the commit after the index was extracted; or, for a version
// stored without one or with one that does not decode, the index
// extracted from the stored JSON.
func (s *Service) indexOf(v store.Version) (search.Index, error) {
	if len(v.Index) > 0 {
		var idx search.Index
		if err := idx.UnmarshalBinary(v.Index); err == nil && idx.Type == v.Type && idx.ID == v.ID {
			idx.SetLastUpdated(v.LastUpdated)
			return idx, nil
		}
	}
	return s.reg.Extract(v.Type, v.Body)
}

// resolveChains resolves patient.identifier=system|value (and
// Patient?identifier=system|value) to the ids of the current resources
// carrying the identifier (store.FindByIdentifier). A chain is resolved
// only when every value names an exact identifier (system|value, or
// |value for one without a system) of a type this server stores; any other
// chain is left to match logical references (Reference.identifier) and
// binds no patient. unknown lists the values of patient/subject chains
// that found no patient.
func (s *Service) resolveChains(ctx context.Context, q *search.Query) (unknown []string, err error) {
	for _, ch := range q.Chains() {
		if !s.recordType(ch.TargetType) {
			continue
		}
		exact := len(ch.Identifiers) > 0
		for _, tok := range ch.Identifiers {
			exact = exact && tok.HasSystem && tok.Code != ""
		}
		if !exact {
			continue
		}
		var ids []string
		for _, tok := range ch.Identifiers {
			found, err := s.store.FindByIdentifier(ctx, ch.TargetType, ingest.IdentifierKey(tok.System, tok.Code))
			if err != nil {
				return nil, err
			}
			ids = append(ids, found...)
		}
		slices.Sort(ids)
		ch.Resolve(slices.Compact(ids))
		if len(ids) == 0 && !ch.Self && ch.TargetType == "Patient" && (ch.Param == "patient" || ch.Param == "subject") {
			for _, tok := range ch.Identifiers {
				unknown = append(unknown, ingest.IdentifierKey(tok.System, tok.Code))
			}
		}
	}
	return unknown, nil
}

// recordHit is a resource of the record that a search matched, with its
// index.
type recordHit struct {
	v   store.Version
	idx search.Index
}

// matchRecord is the one filter of the type search and the compartment
// search: typ's resources in the gate's record that the decision d admits
// and q matches (critical: the Consents asked for are critical
// information, not privacy settings). q's _has is resolved through the
// gate first.
func (s *Service) matchRecord(g *recordGate, d access.Decision, q *search.Query, typ string, critical bool) ([]recordHit, error) {
	if err := s.resolveHas(g, q); err != nil {
		return nil, err
	}
	all, err := g.compartment(typ)
	if err != nil {
		return nil, err
	}
	var hits []recordHit
	for _, v := range all {
		if v.Patient != g.patient || !s.admits(d, v) || v.Type == "Consent" && criticalVersion(v) != critical {
			continue
		}
		idx, err := s.indexFor(q, v)
		if err != nil {
			return nil, fmt.Errorf("search %s/%s: %w", v.Type, v.ID, err)
		}
		if q.Match(idx) {
			hits = append(hits, recordHit{v, idx})
		}
	}
	return hits, nil
}
