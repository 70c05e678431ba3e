package api

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/documents"
)

const (
	keyAuditDocuments = "kj.audit.documents"
	keyAudited        = "kj.audited"
)

// requester is what a source hospital is told about who asks.
func (s *Server) requester(c *gin.Context, p *auth.Principal) documents.Requester {
	r := documents.Requester{HPR: p.HPR, HPCategory: p.HPCategory, Org: p.OrgParent,
		PurposeOfUse: p.PurposeOfUse, AccessBasis: c.GetHeader(basisHeader)}
	if s.cfg.RegionOf != nil {
		r.Region = s.cfg.RegionOf(p.OrgParent)
	}
	return r
}

// documentSearch serves GET /DocumentReference: a federated search of the
// source hospitals that share with the requester. Nothing is stored.
func (s *Server) documentSearch(c *gin.Context) {
	c.Set(keyInteraction, "document-search")
	c.Set(keyType, "DocumentReference")
	if !s.documentsOn(c) {
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	var q documents.Query
	patient := ""
	for name, vals := range c.Request.URL.Query() {
		var err error
		switch name {
		case "patient":
			if len(vals) != 1 {
				err = errBadRequest
				break
			}
			patient = strings.TrimPrefix(vals[0], "Patient/")
			if !validID(patient) {
				err = errBadRequest
			}
		case "type":
			for _, v := range vals {
				q.Types = append(q.Types, strings.Split(v, ",")...)
			}
		case "category":
			// A token: the 9602 system (or none) and a document group. Any
			// other value is the client's error, not the federation's.
			v := vals[0]
			if sys, code, ok := strings.Cut(v, "|"); ok && (sys == "" || sys == documents.SystemDocumentType) {
				v = code
			}
			if len(vals) != 1 || documents.GroupOf(v) != v {
				s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "code-invalid",
					Diagnostics: "category must be one document group (A00, C00, ...) of " + documents.SystemDocumentType + ", not " + strconv.Quote(strings.Join(vals, ",")),
					Expression:  []string{"category"}})
				return
			}
			q.Category = v
		case "date":
			for _, v := range vals {
				if err = documentDate(&q, v); err != nil {
					break
				}
			}
		case "_count":
			q.Count, err = strconv.Atoi(vals[0])
			if err == nil && (q.Count < 0 || q.Count > 1000) {
				err = errBadRequest
			}
		case "_format", "_pretty":
		default:
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "DocumentReference search supports patient, type, category, date and _count; not " + strconv.Quote(name), Expression: []string{name}})
			return
		}
		if err != nil {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: "invalid value for " + name, Expression: []string{name}})
			return
		}
	}
	if patient == "" {
		// Logged as the rule-1 refusal it is, with its reason.
		noteAccess(c, "", "DocumentReference", access.Decision{Effect: access.Deny, Reason: access.NoPatientBound,
			Message: "a document search must name exactly one patient"})
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "business-rule",
			Diagnostics: "a document search must name exactly one patient (patient=<id>): searching across patients is not allowed",
			Details:     fhir.Coding{System: reasonSystem, Code: string(access.NoPatientBound)}, Expression: []string{"patient"}})
		return
	}
	p := principal(c)
	if p == nil {
		s.fail(c, http.StatusUnauthorized, fhir.Issue{Severity: "error", Code: "login", Diagnostics: "documents are searched with a health personnel's token"})
		return
	}
	g, ok := s.allow(c, auth.Search, "DocumentReference", patient)
	if !ok {
		return
	}
	res, err := s.cfg.Documents.Search(c, s.requester(c, p), g.state.PersonNumber, q)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Set(keyAuditDocuments, res.Documents)
	total := res.Total
	links := []fhir.Link{{Relation: "self", URL: s.baseURL(c) + c.Request.URL.RequestURI()}}
	s.write(c, http.StatusOK, out, fhir.Bundle(fhir.BundleOptions{Type: "searchset", Total: &total, Links: links, ID: rand.Text()}, res.BundleEntries()))
}

func documentDate(q *documents.Query, v string) error {
	prefix, t, _, err := datePrefix(v)
	if err != nil {
		return err
	}
	switch prefix {
	case "ge", "gt", "sa":
		q.DateFrom = t
	case "le", "lt", "eb":
		q.DateTo = t
	case "eq":
		q.DateFrom, q.DateTo = t, dayEnd(t)
	default:
		return errBadRequest
	}
	return nil
}

// documentRead serves GET /documents/{token}: the document streamed from
// its source with constant memory. The token is signed and bound to the
// patient; the access rules are asked again now, and the usage log is
// written before the first byte is sent.
func (s *Server) documentRead(c *gin.Context) {
	c.Set(keyInteraction, "document-read")
	c.Set(keyType, "DocumentReference")
	if !s.documentsOn(c) {
		return
	}
	p := principal(c)
	if p == nil || p.Patient == "" {
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "business-rule",
			Diagnostics: "documents are opened with a token that has the patient in context (SMART launch patient)"})
		return
	}
	g, ok := s.allow(c, auth.Read, "DocumentReference", p.Patient)
	if !ok {
		return
	}
	st, err := s.cfg.Documents.Open(c, s.requester(c, p), c.Param("token"), g.state.PersonNumber)
	if err != nil {
		s.fail(c, documents.HTTPStatus(err), documents.Issue(err))
		return
	}
	defer st.Close()
	c.Set(keyAuditDocuments, []audit.Document{st.Document()})
	if !s.auditNow(c, http.StatusOK) {
		return
	}
	if _, err := st.WriteTo(c.Writer); err != nil {
		var se *documents.SourceError
		if errors.As(err, &se) && se.HeaderWritten {
			// The transfer broke after the headers: cut the connection so
			// the client cannot mistake it for a short document.
			panic(http.ErrAbortHandler)
		}
		s.log.Warn("document stream ended early", "request_id", c.GetString(keyRequestID), "error", err)
	}
}

// jwks publishes the key the source hospitals verify this server's
// assertions with.
func (s *Server) jwks(c *gin.Context) {
	c.Set(keyInteraction, "jwks")
	if s.cfg.DocumentKeys == nil {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "no keys are published"})
		return
	}
	b, err := json.Marshal(map[string]any{"keys": []any{s.cfg.DocumentKeys}})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}

func (s *Server) documentsOn(c *gin.Context) bool {
	if s.cfg.Documents != nil {
		return true
	}
	s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-supported",
		Diagnostics: "journal documents are not configured on this server (--sources)"})
	return false
}
