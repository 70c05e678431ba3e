package interaction

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// usageLog serves GET /AuditEvent: the citizen's own usage log ("Logg over
// bruk") and the auditor's supervision searches. Who may search which log
// is the decision point's (a citizen their own record, the auditor any,
// nobody else).
func (s *Service) usageLog(ctx context.Context, req *Request, c *Call) (*Result, error) {
	if !s.cfg.Audit {
		return nil, fail(http.StatusNotFound, "not-supported", "the usage log is not enabled on this server")
	}
	var q store.AuditQuery
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	for name, vals := range c.Query {
		if len(vals) != 1 {
			return nil, invalid(name, "%s may be given once", name)
		}
		v := vals[0]
		ok := true
		var err error
		switch name {
		case "patient":
			q.Patient = strings.TrimPrefix(v, "Patient/")
			ok = ValidID(q.Patient)
		case "agent":
			_, q.AgentHPR, _ = strings.Cut(v, "|")
			if q.AgentHPR == "" {
				q.AgentHPR = v
			}
		case "organization":
			_, q.Org, _ = strings.Cut(v, "|")
			if q.Org == "" {
				q.Org = v
			}
		case "outcome":
			ok = v == "0" || v == "4" || v == "8" || v == "12"
			q.Outcome = v
		case "date":
			ok = auditDate(&q, v)
		case "_count":
			q.Count, err = strconv.Atoi(v)
			ok = err == nil && q.Count >= 1 && q.Count <= 1000
		case "_before":
			q.Before, err = strconv.ParseInt(v, 10, 64)
			ok = err == nil
		case "_format", "_pretty", "_summary", "_elements": // _summary and _elements: shapeOf
		default:
			e := fail(http.StatusBadRequest, "not-supported", "AuditEvent search supports patient, agent, organization, date, outcome, _count, _before (the next link's paging cursor), _summary and _elements; not %q", name)
			e.Issues[0].Expression = []string{name}
			return nil, e
		}
		if !ok {
			return nil, invalid(name, "invalid value for %s", name)
		}
	}
	if q.Count == 0 {
		q.Count = 100
	}
	if q.Patient == "" && req.named != "" {
		// nhn-patient-nin names the person whose log is searched; an
		// unknown person's placeholder finds no records.
		q.Patient = req.named
	}
	d, _, err := s.require(ctx, req, ask{in: access.Search, typ: "AuditEvent", patient: q.Patient}, absent{})
	if err != nil {
		return nil, err
	}
	if sh.Summary == "count" {
		return s.usageLogCount(ctx, req, c, q, d)
	}
	recs, err := s.store.SearchAudit(ctx, q)
	if err != nil {
		return nil, err
	}
	events := make([][]byte, len(recs))
	for i, r := range recs {
		if events[i], err = audit.Render(r.Body); err != nil {
			return nil, fmt.Errorf("usage log record %d: %w", r.Seq, err)
		}
		// A search that returns several patients' logs (the auditor's) is
		// logged once per patient whose log was read.
		if q.Patient == "" && r.Patient != "" {
			req.Facts.note(r.Patient, "AuditEvent", d)
		}
	}
	if d.CitizenView {
		if events, err = audit.CitizenView(events, s.cfg.Now()); err != nil {
			return nil, err
		}
	}
	entries := make([]fhir.BundleEntry, len(events))
	for i, ev := range events {
		// Every searchset entry of a resource with an id carries its
		// absolute URL as fullUrl, even though AuditEvents are not read
		// one by one: clients key entries by it.
		shaped, err := sh.apply(ev)
		if err != nil {
			return nil, fmt.Errorf("usage log event %d: %w", i, err)
		}
		e := fhir.BundleEntry{Resource: shaped, SearchMode: "match"}
		if id := audit.EventID(ev); id != "" {
			e.FullURL = req.Base + "/AuditEvent/" + id
		}
		entries[i] = e
	}
	links := []fhir.Link{{Relation: "self", URL: selfURL(req, c)}}
	if len(recs) == q.Count && len(recs) > 0 {
		next := url.Values{}
		for k, vs := range c.Query {
			next[k] = vs
		}
		next.Set("_before", strconv.FormatInt(recs[len(recs)-1].Seq, 10))
		links = append(links, fhir.Link{Relation: "next", URL: req.Base + "/AuditEvent?" + next.Encode()})
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text()}, entries)}, nil
}

func auditDate(q *store.AuditQuery, v string) bool {
	prefix, t, timed, err := datePrefix(v)
	if err != nil {
		return false
	}
	end := dayEnd(t)
	if timed {
		end = t
	}
	switch prefix {
	case "ge", "gt":
		q.From = t
	case "le", "lt":
		q.To = end
	case "eq":
		q.From, q.To = t, end
	default:
		return false
	}
	return true
}
