package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// FHIR search, always bound to one patient.
//
// A search runs as: merge the parameters (URL query, and for POST _search
// the form body); parse them with the registry (fhir/search); resolve
// chains (patient.identifier=...); require that exactly one patient is
// bound (by a patient/subject parameter, Patient?_id= or ?identifier=, or
// the compartment in the path), refusing anything else with 400 because
// searching across patients is not allowed by law; pass the enforcement
// point for that patient; read the patient's compartment for the type
// (store.Compartment) and match, sort and page in Go. Nothing from the
// query string reaches the store except the patient id and the type, and
// both are checked first.
//
// Results: Bundle.total is given by default and with _total=accurate or
// estimate (every match is counted anyway, so it costs nothing), and left
// out with _total=none. _summary=count gives only the total. _include and
// _revinclude stay inside the bound patient's record, and every included
// resource passes the enforcement point on its own: one that the scopes
// or the access rules refuse is left out, the search itself still answers.

// searchType serves GET /{type} and POST /{type}/_search.
func (s *Server) searchType(c *gin.Context) {
	c.Set(keyInteraction, "search-type")
	typ, ok := s.resourceType(c)
	if !ok {
		return
	}
	s.runSearch(c, typ, "", "/"+typ)
}

// searchCompartment serves GET /Patient/{id}/{type}: a search bound to the
// patient in the path.
func (s *Server) searchCompartment(c *gin.Context) {
	c.Set(keyInteraction, "search-compartment")
	if _, ok := s.resourceType(c); !ok {
		return
	}
	typ := c.Param("sub")
	c.Set(keyType, typ)
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	s.runSearch(c, typ, id, "/Patient/"+id+"/"+typ)
}

// searchParams merges the URL query and, for POST _search, the
// form-encoded body.
func (s *Server) searchParams(c *gin.Context) (url.Values, error) {
	params, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, invalid("", "the query string cannot be read: %v", err)
	}
	if c.Request.Method != http.MethodPost {
		return params, nil
	}
	ct := c.GetHeader("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); ct != "" && (err != nil || mt != "application/x-www-form-urlencoded") {
		return nil, &unsupportedMedia{ct}
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, invalid("", "could not read the request body: %v", err)
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, invalid("", "the form body cannot be read: %v", err)
	}
	// As the spec says, parameters in the URL and in the body are one
	// search: repeated names add up (AND).
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// lenient reports Prefer: handling=lenient.
func lenient(c *gin.Context) bool {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ",") {
			if strings.TrimSpace(part) == "handling=lenient" {
				return true
			}
		}
	}
	return false
}

// searchOutput negotiates the output from the accepted result parameters
// (they may have come in a form body, and lenient handling may have
// dropped some).
func (s *Server) searchOutput(c *gin.Context, q *search.Query) (output, bool) {
	vals := url.Values{}
	for k, vs := range q.Values() {
		switch k {
		case "_format", "_pretty", "_summary", "_elements":
			vals[k] = vs
		}
	}
	saved := c.Request.URL.RawQuery
	c.Request.URL.RawQuery = vals.Encode()
	defer func() { c.Request.URL.RawQuery = saved }()
	return s.negotiate(c)
}

// failNotBound answers with the legal rule every clinical search is held
// to; unknown lists identifiers of a patient chain that found no patient.
func (s *Server) failNotBound(c *gin.Context, typ string, ids []string, bound bool, unknown ...string) {
	msg := fmt.Sprintf("a search of %s must be bound to exactly one patient (patient=, subject=, "+
		"Patient?_id=, identifier=, or /Patient/{id}/%s): kjernejournal may not by law be searched across patients "+
		"(for example to find risk groups), so a search that could reach more than one patient's record is refused", typ, typ)
	switch {
	case len(unknown) > 0:
		msg += fmt.Sprintf("; no patient has the identifier %s", strings.Join(unknown, " or "))
	case bound:
		msg += fmt.Sprintf("; this search names %d patients", len(ids))
	}
	// The refusal is a decision of rule 1 like any other: the usage log
	// records it with its reason, not as a plain client error.
	noteAccess(c, "", typ, access.Decision{Effect: access.Deny, Reason: access.NoPatientBound, Message: msg})
	s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "business-rule", Diagnostics: msg,
		Details: fhir.Coding{System: reasonSystem, Code: string(access.NoPatientBound)}})
}

// runSearch answers a search of typ; compartment is the patient in the
// path of a compartment search ("" otherwise), path the request path the
// links repeat.
func (s *Server) runSearch(c *gin.Context, typ, compartment, path string) {
	params, err := s.searchParams(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	q, warnings, err := s.reg.ParseQuery(typ, params, lenient(c))
	if err != nil {
		var se *search.Error
		if errors.As(err, &se) {
			s.fail(c, http.StatusBadRequest, se.Issues...)
			return
		}
		s.failErr(c, err)
		return
	}
	out, ok := s.searchOutput(c, q)
	if !ok {
		return
	}
	unknown, ok := s.resolveChains(c, q)
	if !ok {
		return
	}
	if len(unknown) > 0 && typ != "Patient" && compartment == "" {
		// The patient chain names nobody: the search binds no patient.
		s.failNotBound(c, typ, nil, false, unknown...)
		return
	}
	ids, bound := q.PatientBinding()
	if compartment != "" {
		if bound {
			ids = slices.DeleteFunc(ids, func(id string) bool { return id != compartment })
		} else {
			ids, bound = []string{compartment}, true
		}
	}
	if !bound || len(ids) > 1 {
		s.failNotBound(c, typ, ids, bound)
		return
	}
	patient := ""
	if len(ids) == 1 {
		patient = ids[0]
	}
	// A search bound to no patient at all (an identifier nobody has, or
	// contradicting patient parameters) still passes the enforcement
	// point, for no patient, and then finds nothing.
	g, ok := s.allow(c, auth.Search, typ, patient)
	if !ok {
		return
	}
	var matches []search.Candidate
	if patient != "" && !hides(g.decision, typ) {
		all, err := s.store.Compartment(c, patient, typ)
		if err != nil {
			s.failErr(c, err)
			return
		}
		for _, v := range all {
			if v.Patient != patient || !s.admits(g, v) {
				continue
			}
			idx, err := s.indexOf(v)
			if err != nil {
				s.failErr(c, fmt.Errorf("search %s/%s: %w", v.Type, v.ID, err))
				return
			}
			if q.Match(idx) {
				matches = append(matches, search.Candidate{Index: &idx, Body: v.Body})
			}
		}
	}
	total := len(matches)
	page, next, prev := q.Page(matches)

	base := s.baseURL(c)
	link := func(rel, cursor string) fhir.Link {
		v := q.Values()
		if cursor != "" {
			v.Set("_cursor", cursor)
		}
		u := base + path
		if enc := v.Encode(); enc != "" {
			u += "?" + enc
		}
		return fhir.Link{Relation: rel, URL: u}
	}
	links := []fhir.Link{link("self", q.Cursor)}
	if next != "" && out.summary != "count" {
		links = append(links, link("next", next))
	}
	if prev != "" && out.summary != "count" {
		links = append(links, link("previous", prev))
	}

	var entries []fhir.BundleEntry
	if out.summary != "count" {
		add := func(typ, id string, body []byte, mode string) bool {
			b, err := out.shape(body)
			if err != nil {
				s.failErr(c, err)
				return false
			}
			entries = append(entries, fhir.BundleEntry{FullURL: base + "/" + typ + "/" + id, Resource: b, SearchMode: mode})
			return true
		}
		seen := map[string]bool{}
		for _, m := range page {
			seen[typ+"/"+m.Index.ID] = true
			if !add(typ, m.Index.ID, m.Body, "match") {
				return
			}
		}
		incl, err := s.included(c, q, patient, page, seen)
		if err != nil {
			s.failErr(c, err)
			return
		}
		for _, v := range incl {
			if !add(v.Type, v.ID, v.Body, "include") {
				return
			}
		}
	}
	var notes []fhir.Issue
	notes = append(notes, warnings...)
	if len(g.decision.Hidden) > 0 {
		// Say that restricted information exists, without showing it.
		notes = append(notes, fhir.Issue{Severity: "warning", Code: "suppressed", Diagnostics: g.decision.Message,
			Details: fhir.Coding{System: reasonSystem, Code: string(g.decision.Reason)}})
	}
	if len(notes) > 0 {
		entries = append(entries, fhir.BundleEntry{SearchMode: "outcome", Resource: fhir.Outcome(notes...)})
	}
	opts := fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text()}
	if len(g.decision.Hidden) > 0 {
		// The v3 obligation "REDACT"-style label says the Bundle is not the
		// whole record: restricted sections were left out.
		opts.Security = []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "REDACTED",
			Display: "restricted parts of the record are left out"}}
	}
	if q.Total != "none" || out.summary == "count" {
		opts.Total = &total
	}
	s.write(c, http.StatusOK, out, fhir.Bundle(opts, entries))
}

// included reads the resources _include and _revinclude ask for, inside
// the patient's record only. Each passes the enforcement point (scopes,
// access rules, granular constraints) for its own type; what is refused is
// left out without failing the search.
func (s *Server) included(c *gin.Context, q *search.Query, patient string, page []search.Candidate, seen map[string]bool) ([]store.Version, error) {
	if patient == "" || len(page) == 0 || len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil, nil
	}
	grants := map[string]*grant{} // per type; nil: refused
	permitted := func(typ string) *grant {
		g, done := grants[typ]
		if !done {
			if gg, ok := s.permits(c, auth.Read, typ, patient); ok && !hides(gg.decision, typ) {
				g = &gg
			}
			grants[typ] = g
		}
		return g
	}
	var out []store.Version
	keep := func(v store.Version) {
		key := v.Type + "/" + v.ID
		if seen[key] || v.Deleted || v.Patient != patient {
			return
		}
		if g := permitted(v.Type); g != nil && s.admits(*g, v) {
			seen[key] = true
			out = append(out, v)
		}
	}
	for _, m := range page {
		for _, ref := range q.IncludeRefs(*m.Index) {
			typ, id, _ := strings.Cut(ref, "/")
			if seen[ref] || !slices.Contains(fhir.ServedTypes, typ) || !validID(id) {
				continue
			}
			v, err := s.store.Read(c, typ, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			keep(v)
		}
	}
	for _, inc := range q.RevInclude {
		if !slices.Contains(fhir.ServedTypes, inc.Source) {
			continue
		}
		vs, err := s.store.Compartment(c, patient, inc.Source)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if seen[v.Type+"/"+v.ID] {
				continue
			}
			idx, err := s.indexOf(v)
			if err != nil {
				return nil, fmt.Errorf("revinclude %s/%s: %w", v.Type, v.ID, err)
			}
			for _, m := range page {
				if inc.RefersTo(idx, q.Type+"/"+m.Index.ID) {
					keep(v)
					break
				}
			}
		}
	}
	return out, nil
}

// permits asks the enforcement point without answering the request: the
// refusal it would send goes to a discarded recorder, so one refused
// included resource does not abort the search.
func (s *Server) permits(c *gin.Context, in auth.Interaction, typ, patient string) (grant, bool) {
	probe, _ := gin.CreateTestContext(httptest.NewRecorder())
	probe.Request = c.Request
	for k, v := range c.Keys {
		probe.Set(k, v)
	}
	return s.allow(probe, in, typ, patient)
}

// indexOf is the search index of a stored version: the one written with
// it (package ingest), completed with the version's lastUpdated, which is
// decided in the commit after the index was extracted; or, for a version
// stored without one (written before indexes were stored) or with one that
// does not decode, the index extracted from the stored JSON.
func (s *Server) indexOf(v store.Version) (search.Index, error) {
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
// that found no patient. It answers the request itself and returns false
// when the store fails.
func (s *Server) resolveChains(c *gin.Context, q *search.Query) (unknown []string, ok bool) {
	for _, ch := range q.Chains() {
		if !slices.Contains(fhir.ServedTypes, ch.TargetType) {
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
			found, err := s.store.FindByIdentifier(c, ch.TargetType, ingest.IdentifierKey(tok.System, tok.Code))
			if err != nil {
				s.failErr(c, err)
				return nil, false
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
	return unknown, true
}

// searchParam is CapabilityStatement.rest.resource.searchParam.
type searchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

// searchCapabilities lists, from the registry the parser uses, what a
// search of typ accepts: its parameters and the _include / _revinclude
// values.
func (s *Server) searchCapabilities(typ string) (include, revinclude []string, params []searchParam) {
	for _, p := range s.reg.Params(typ) {
		params = append(params, searchParam{Name: p.Name, Definition: p.URL, Type: p.Type, Documentation: p.Documentation})
		if p.Type == "reference" {
			include = append(include, typ+":"+p.Name)
		}
	}
	for _, src := range fhir.ServedTypes {
		for _, p := range s.reg.Params(src) {
			if p.Type == "reference" && slices.Contains(p.Targets, typ) {
				revinclude = append(revinclude, src+":"+p.Name)
			}
		}
	}
	return include, revinclude, params
}

// hides reports whether a decision leaves out the section typ belongs to
// (a Patient is always shown; its decision only says what is restricted).
func hides(d access.Decision, typ string) bool {
	return slices.Contains(d.Hidden, access.SectionOf(typ))
}
