package api

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

const keyAccess = "kj.access"

// accessNote is one pass through the enforcement point, kept for the log.
type accessNote struct {
	patient, typ string
	decision     access.Decision
}

func noteAccess(c *gin.Context, patient, typ string, d access.Decision) {
	notes, _ := c.Get(keyAccess)
	ns, _ := notes.([]accessNote)
	c.Set(keyAccess, append(ns, accessNote{patient, typ, d}))
}

// heldResponse keeps the handler's answer in memory until the usage log
// has recorded the access: no byte of health data leaves before its
// AuditEvent is durable (fail closed).
type heldResponse struct {
	gin.ResponseWriter
	status int
	body   bytes.Buffer
}

func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *heldResponse) WriteHeaderNow() {
	if h.status == 0 {
		h.status = http.StatusOK
	}
}
func (h *heldResponse) Write(b []byte) (int, error) {
	h.WriteHeaderNow()
	return h.body.Write(b)
}
func (h *heldResponse) WriteString(s string) (int, error) {
	h.WriteHeaderNow()
	return h.body.WriteString(s)
}
func (h *heldResponse) Status() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}
func (h *heldResponse) Size() int {
	if h.status == 0 {
		return -1
	}
	return h.body.Len()
}
func (h *heldResponse) Written() bool { return h.status != 0 }
func (h *heldResponse) Flush()        {}

// audited records every request to a data route in the usage log, allowed
// or refused, before its answer is sent. One request writes one AuditEvent
// per patient it touched (one without a patient when it touched none). If
// the log cannot be written, the answer is replaced by 503.
func (s *Server) audited(c *gin.Context) {
	if s.cfg.Audit == nil {
		c.Next()
		return
	}
	if c.FullPath() == "/documents/:token" {
		// A document is streamed, not held: its handler writes the log
		// (auditNow) before the first byte; refusals are logged here.
		c.Next()
		if !c.GetBool(keyAudited) {
			if _, err := s.cfg.Audit.AppendAudit(c, audit.Link, s.auditEntries(c, c.Writer.Status())); err != nil {
				s.log.Error("usage log not written for a refused document request", "request_id", c.GetString(keyRequestID), "error", err)
			}
		}
		return
	}
	real := c.Writer
	held := &heldResponse{ResponseWriter: real}
	c.Writer = held
	c.Next()
	c.Writer = real

	entries := s.auditEntries(c, held.Status())
	if _, err := s.cfg.Audit.AppendAudit(c, audit.Link, entries); err != nil {
		id := c.GetString(keyRequestID)
		s.log.Error("usage log not written: request refused", "request_id", id, "error", err)
		h := real.Header()
		for _, k := range []string{"ETag", "Last-Modified", "Location", "Content-Length", "Content-Type"} {
			h.Del(k)
		}
		c.Data(http.StatusServiceUnavailable, ctFHIRJSON+"; charset=utf-8", fhir.Outcome(fhir.Issue{
			Severity: "fatal", Code: "transient",
			Diagnostics: "the usage log could not record this access, so nothing is answered; retry later (request id " + id + ")"}))
		return
	}
	real.WriteHeader(held.Status())
	if held.body.Len() > 0 || held.status != 0 {
		real.Write(held.body.Bytes())
	}
}

// auditNow writes the usage log of a streamed answer before its first
// byte; on failure it answers 503 and returns false.
func (s *Server) auditNow(c *gin.Context, status int) bool {
	if s.cfg.Audit == nil {
		return true
	}
	c.Set(keyAudited, true)
	if _, err := s.cfg.Audit.AppendAudit(c, audit.Link, s.auditEntries(c, status)); err != nil {
		s.log.Error("usage log not written: document not sent", "request_id", c.GetString(keyRequestID), "error", err)
		s.fail(c, http.StatusServiceUnavailable, fhir.Issue{Severity: "fatal", Code: "transient",
			Diagnostics: "the usage log could not record this access, so nothing is sent; retry later"})
		return false
	}
	return true
}

// auditEntries builds the usage-log entries of one request.
func (s *Server) auditEntries(c *gin.Context, status int) []store.AuditEntry {
	p := principal(c)
	now := s.cfg.Now().UTC()
	basis, _ := access.ParseBasis(c.GetHeader(basisHeader))
	rec := audit.Record{
		ID:           rand.Text(),
		Time:         now,
		RequestID:    c.GetString(keyRequestID),
		Interaction:  auditInteraction(c.GetString(keyInteraction), c.GetString(keyType)),
		ResourceType: c.GetString(keyType),
		Query:        c.Request.URL.RawQuery,
		Basis:        basis,
		Server:       s.cfg.BaseURL,
	}
	if id := c.Param("id"); id != "" && validID(id) {
		rec.ResourceID = id
	}
	if rec.Interaction == audit.Operation {
		rec.Operation = c.Param("sub")
	}
	role := access.Role("")
	if p != nil {
		role = roleOf(p)
	}
	rec.SetPrincipal(p, role)
	if docs, ok := c.Get(keyAuditDocuments); ok {
		rec.Documents, _ = docs.([]audit.Document)
	}

	notes, _ := c.Get(keyAccess)
	ns, _ := notes.([]accessNote)
	// One record per patient: the first decision for a patient is the
	// request's own access; later ones (includes) add nothing new.
	var out []store.AuditEntry
	seen := map[string]bool{}
	add := func(patient string, d *access.Decision) {
		r := rec
		r.ID = rand.Text()
		if patient != "" {
			r.Patients = []string{patient}
		}
		if d != nil {
			r.SetDecision(*d, status)
			if d.Allowed() && status >= 400 {
				r.Outcome.Refused = false
			}
		} else {
			r.Outcome = audit.Outcome{Refused: status == http.StatusUnauthorized || status == http.StatusForbidden, HTTPStatus: status,
				Message: http.StatusText(status)}
		}
		for _, ev := range audit.Events(r) {
			out = append(out, store.AuditEntry{
				Patient: patient, AgentHPR: r.User.HPR, Org: r.Org.LegalEntity, Recorded: now,
				Outcome: outcomeCode(r.Outcome), Body: ev,
			})
		}
	}
	anyPatient := false
	for _, n := range ns {
		anyPatient = anyPatient || n.patient != ""
	}
	for _, n := range ns {
		// A request that touched patients is logged per patient; its
		// patient-less pass (an auditor's search) adds nothing.
		if seen[n.patient] || anyPatient && n.patient == "" {
			continue
		}
		seen[n.patient] = true
		d := n.decision
		add(n.patient, &d)
	}
	if len(out) == 0 {
		add("", nil)
	}
	return out
}

func outcomeCode(o audit.Outcome) string {
	switch {
	case o.HTTPStatus >= 500:
		return "8"
	case o.Refused || o.HTTPStatus >= 400:
		return "4"
	}
	return "0"
}

func auditInteraction(interaction, typ string) audit.Interaction {
	switch interaction {
	case "read":
		return audit.Read
	case "vread":
		return audit.VRead
	case "search-type", "search-compartment", "search":
		return audit.Search
	case "history-instance":
		return audit.History
	case "create", "update", "delete":
		if typ == "Consent" {
			return audit.PrivacyChange
		}
		return audit.Interaction(interaction)
	case "document-search":
		return audit.DocumentSearch
	case "document-read":
		return audit.DocumentRead
	case "transaction":
		return audit.Transaction
	case "batch":
		return audit.Batch
	}
	return audit.Operation
}

// auditSearch serves GET /AuditEvent: the citizen's own usage log ("Logg
// over bruk") and the auditor's supervision searches.
func (s *Server) auditSearch(c *gin.Context) {
	c.Set(keyInteraction, "search-type")
	c.Set(keyType, "AuditEvent")
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	if s.cfg.Audit == nil {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: "the usage log is not enabled on this server"})
		return
	}
	var q store.AuditQuery
	params := c.Request.URL.Query()
	for name, vals := range params {
		if len(vals) != 1 {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: name + " may be given once", Expression: []string{name}})
			return
		}
		v := vals[0]
		var err error
		switch name {
		case "patient":
			q.Patient = strings.TrimPrefix(v, "Patient/")
			if !validID(q.Patient) {
				err = errBadRequest
			}
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
			if v != "0" && v != "4" && v != "8" && v != "12" {
				err = errBadRequest
			}
			q.Outcome = v
		case "date":
			err = auditDate(&q, v)
		case "date-from", "date-to":
			err = errBadRequest
		case "_count":
			q.Count, err = strconv.Atoi(v)
			if err == nil && (q.Count < 1 || q.Count > 1000) {
				err = errBadRequest
			}
		case "_before":
			q.Before, err = strconv.ParseInt(v, 10, 64)
		case "_format", "_pretty":
		default:
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "AuditEvent search supports patient, agent, organization, date, outcome and _count; not " + strconv.Quote(name), Expression: []string{name}})
			return
		}
		if err != nil {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: "invalid value for " + name, Expression: []string{name}})
			return
		}
	}
	if q.Count == 0 {
		q.Count = 100
	}
	g, ok := s.allow(c, auth.Search, "AuditEvent", q.Patient)
	if !ok {
		return
	}
	citizen := false
	if p := principal(c); p != nil && p.Kind() == auth.KindCitizen {
		citizen = true
		if q.Patient == "" {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "required", Diagnostics: "name your own record: patient=<id>", Expression: []string{"patient"}})
			return
		}
	}
	recs, err := s.cfg.Audit.SearchAudit(c, q)
	if err != nil {
		s.failErr(c, err)
		return
	}
	events := make([][]byte, len(recs))
	for i, r := range recs {
		events[i] = r.Body
		// A search that returns several patients' data (the auditor's)
		// is logged once per patient whose log was read.
		if q.Patient == "" && r.Patient != "" {
			noteAccess(c, r.Patient, "AuditEvent", g.decision)
		}
	}
	if citizen {
		if events, err = audit.CitizenView(events, s.cfg.Now()); err != nil {
			s.failErr(c, err)
			return
		}
	}
	base := s.baseURL(c)
	entries := make([]fhir.BundleEntry, len(events))
	for i, ev := range events {
		// Every searchset entry of a resource with an id carries its
		// absolute URL as fullUrl, even though AuditEvents are not read
		// one by one: clients key entries by it.
		e := fhir.BundleEntry{Resource: ev, SearchMode: "match"}
		if id := audit.EventID(ev); id != "" {
			e.FullURL = base + "/AuditEvent/" + id
		}
		entries[i] = e
	}
	links := []fhir.Link{{Relation: "self", URL: base + c.Request.URL.RequestURI()}}
	if len(recs) == q.Count && len(recs) > 0 {
		next := c.Request.URL.Query()
		next.Set("_before", strconv.FormatInt(recs[len(recs)-1].Seq, 10))
		links = append(links, fhir.Link{Relation: "next", URL: base + "/AuditEvent?" + next.Encode()})
	}
	s.write(c, http.StatusOK, out, fhir.Bundle(fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text()}, entries))
}

func auditDate(q *store.AuditQuery, v string) error {
	prefix, t, timed, err := datePrefix(v)
	if err != nil {
		return err
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
		return errBadRequest
	}
	return nil
}

// auditImmutable answers attempts to write the usage log through the API.
func (s *Server) auditImmutable(c *gin.Context) {
	c.Set(keyInteraction, "operation")
	c.Set(keyType, "AuditEvent")
	allow := "GET" // the search
	if c.Param("id") != "" {
		allow = ""
	}
	s.notAllowed(c, allow, "the usage log is written by the server only: AuditEvents cannot be created, read one by one, updated or deleted through the API; search them")
}
