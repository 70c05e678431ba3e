package interaction

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// labParams are the search parameters of DiagnosticReport and Observation
// (besides _include, _sort, _count, _offset and the result shaping ones),
// for the CapabilityStatement.
func labParams(typ string) []csSearchParam {
	const r4 = "http://hl7.org/fhir/SearchParameter/"
	return []csSearchParam{
		{Name: "patient", Type: "reference", Definition: r4 + "clinical-patient"},
		{Name: "subject", Type: "reference", Definition: r4 + typ + "-subject", Documentation: "the patient, as patient"},
		{Name: "date", Type: "date", Definition: r4 + "clinical-date", Documentation: "when the sample was taken (effective[x]); results older than the server's window are never shown"},
		{Name: "category", Type: "token", Definition: r4 + typ + "-category"},
		{Name: "code", Type: "token", Definition: r4 + "clinical-code", Documentation: "NLK (" + domain.SystemNLK + ") or LOINC"},
		{Name: "status", Type: "token", Definition: r4 + typ + "-status"},
	}
}

// admitsOf is the decision's granular scope as the federation applies it
// to each result; nil when the grant is not constrained.
func admitsOf(d access.Decision) documents.Admits {
	if !d.Scopes.Constrained() {
		return nil
	}
	return func(match func(param, value string) bool) bool {
		return d.Admits(func(c auth.Constraint) bool { return match(c.Param, c.Value) })
	}
}

// labSearch serves GET /DiagnosticReport and GET /Observation: a federated
// search of the lab sources that share with the requester (prøvesvar).
// Nothing is stored; the rules are those of every section (access.Decide
// with section LabResults) and the federation's (window, entered in
// error).
func (s *Service) labSearch(ctx context.Context, req *Request, c *Call) (*Result, error) {
	q := documents.LabQuery{Type: c.Type, Count: search.DefaultCount}
	patient := ""
	if c.Compartment != "" {
		patient = c.Compartment
	}
	// POST {type}/_search: the form body and the URL are one search.
	params, err := searchParams(c)
	if err != nil {
		return nil, err
	}
	sh, e := shapeOf(params)
	if e != nil {
		return nil, e
	}
	once := func(name string, vals []string) *Error {
		if len(vals) != 1 {
			return invalid(name, "give %s once (a comma separates alternatives)", name)
		}
		return nil
	}
	for name, vals := range params {
		ok := true
		switch name {
		case "patient", "subject":
			if e := once(name, vals); e != nil {
				return nil, e
			}
			id := strings.TrimPrefix(vals[0], "Patient/")
			if ok = ValidID(id) && (patient == "" || patient == id); ok {
				patient = id
			}
		case "date":
			for _, v := range vals {
				if ok = documentDate(&q.DateFrom, &q.DateTo, v); !ok {
					break
				}
			}
		case "category", "code", "status":
			if e := once(name, vals); e != nil {
				return nil, e
			}
			list := strings.Split(vals[0], ",")
			for _, v := range list {
				ok = ok && v != "" && len(v) <= search.MaxValueLength
			}
			switch name {
			case "category":
				q.Categories = list
			case "code":
				q.Codes = list
			default:
				q.Statuses = list
			}
		case "_include":
			if e := once(name, vals); e != nil {
				return nil, e
			}
			if c.Type != "DiagnosticReport" || vals[0] != "DiagnosticReport:result" {
				e := fail(http.StatusBadRequest, "not-supported", "%s search supports _include=DiagnosticReport:result on DiagnosticReport only, not %q", c.Type, vals[0])
				e.Issues[0].Expression = []string{name}
				return nil, e
			}
			q.IncludeResults = true
		case "_sort":
			if e := once(name, vals); e != nil {
				return nil, e
			}
			switch vals[0] {
			case "date":
				q.Ascending = true
			case "-date":
			default:
				e := fail(http.StatusBadRequest, "not-supported", "lab results sort by date only: _sort=-date (newest first, the default) or _sort=date, not %q", vals[0])
				e.Issues[0].Expression = []string{name}
				return nil, e
			}
		case "_count", "_offset":
			n, err := strconv.Atoi(vals[0])
			ok = len(vals) == 1 && err == nil && n >= 0
			if name == "_count" {
				q.Count = min(n, search.MaxCount)
			} else {
				q.Offset = n
			}
		case "_format", "_pretty", "_summary", "_elements", "_total": // _summary and _elements: shapeOf
		default:
			e := fail(http.StatusBadRequest, "not-supported", "%s search supports patient, date, category, code, status, _include, _sort, _count, _offset, _summary and _elements; not %q", c.Type, name)
			e.Issues[0].Expression = []string{name}
			return nil, e
		}
		if !ok {
			return nil, invalid(name, "invalid value for %s", name)
		}
	}
	if sh.Summary == "count" {
		q.Count = 0
	}
	a, err := s.federatedAccess(ctx, req, c.Type, patient, "lab results are searched with a token")
	if err != nil {
		return nil, err
	}
	p, d, st := a.principal, a.decision, a.state
	patient = a.patient
	q.Admits = admitsOf(d)
	var res documents.Result
	if !d.Hides(c.Type) {
		r := s.requester(req, p)
		if access.RoleOf(p) == access.Citizen {
			r = documents.Requester{Citizen: true, PID: p.PID}
		}
		if res, err = s.cfg.Documents.SearchLab(ctx, r, st.PersonNumber, patient, q); err != nil {
			return nil, err
		}
	}
	req.Facts.Documents = res.Documents
	entries, err := shapeDocuments(sh, res.BundleEntries())
	if err != nil {
		return nil, err
	}
	opts := fhir.BundleOptions{Type: "searchset", Total: &res.Total, ID: rand.Text()}
	// Paging re-asks the sources: nothing is kept between pages.
	link := func(rel string, offset int) fhir.Link {
		v := url.Values{}
		for k, vs := range params {
			v[k] = vs
		}
		v.Del("_offset")
		if offset > 0 {
			v.Set("_offset", strconv.Itoa(offset))
		}
		path := "/" + c.Type
		if c.Compartment != "" {
			path = "/Patient/" + c.Compartment + "/" + c.Type
		}
		return fhir.Link{Relation: rel, URL: req.Base + path + "?" + v.Encode()}
	}
	opts.Links = []fhir.Link{link("self", q.Offset)}
	// Written so that no _offset, however large, overflows into a link
	// back to the first page.
	if q.Count > 0 && q.Offset < res.Total-q.Count {
		opts.Links = append(opts.Links, link("next", q.Offset+q.Count))
	}
	if q.Count > 0 && q.Offset > 0 {
		opts.Links = append(opts.Links, link("previous", max(q.Offset-q.Count, 0)))
	}
	if note, label, hidden := hiddenNote(d); hidden {
		entries = append(entries, fhir.BundleEntry{SearchMode: "outcome", Resource: fhir.Outcome(note)})
		opts.Security = label
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(opts, entries)}, nil
}
