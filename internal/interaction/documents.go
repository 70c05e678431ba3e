package interaction

import (
	"context"
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// requester is what a source hospital is told about who asks.
func (s *Service) requester(req *Request, p *auth.Principal) documents.Requester {
	r := documents.Requester{HPR: p.HPR, HPCategory: p.HPCategory, Org: p.OrgParent,
		PurposeOfUse: p.PurposeOfUse, AccessBasis: req.Basis, Session: sessionOf(p)}
	if s.cfg.RegionOf != nil {
		r.Region = s.cfg.RegionOf(p.OrgParent)
	}
	return r
}

// sessionOf names the user and the access token behind p, for binding
// document URLs to them: the token's issuer, subject and jti, or, for a
// token without a jti, when it was issued and expires (a new token, after
// a refresh or a new login, is a new session).
func sessionOf(p *auth.Principal) string {
	id := p.TokenID
	if id == "" {
		id = strconv.FormatInt(p.IssuedAt.Unix(), 10) + "-" + strconv.FormatInt(p.ExpiresAt.Unix(), 10)
	}
	return strings.Join([]string{p.Issuer, p.Subject, p.HPR, p.PID, id}, "\x00")
}

// federatedAccess is what a federated search (documents, lab results)
// asks before it asks the sources: exactly one patient (the query's, else
// the request's context; rule 1, as for every search), a verified token
// (noToken says what kind), and the rules, with the patient's state, whose
// person number the sources are asked with.
type federatedAccess struct {
	patient   string // the FHIR id of the patient searched
	principal *auth.Principal
	decision  access.Decision
	state     access.PatientState
}

func (s *Service) federatedAccess(ctx context.Context, req *Request, typ, patient, noToken string) (federatedAccess, error) {
	patient = req.patientOr(patient)
	if patient == "" {
		_, d := access.BindSearch(typ, access.Binding{})
		req.Facts.note("", typ, d)
		e := refusal(d, absent{})
		e.Issues[0].Expression = []string{"patient"}
		return federatedAccess{}, e
	}
	if req.Principal == nil {
		return federatedAccess{}, fail(http.StatusUnauthorized, "login", "%s", noToken)
	}
	d, st, err := s.require(ctx, req, ask{in: access.Search, typ: typ, patient: patient, state: true}, absent{})
	if err != nil {
		return federatedAccess{}, err
	}
	return federatedAccess{patient: patient, principal: req.Principal, decision: d, state: st}, nil
}

// documentSearch serves GET /DocumentReference: a federated search of the
// source hospitals that share with the requester. Nothing is stored.
func (s *Service) documentSearch(ctx context.Context, req *Request, c *Call) (*Result, error) {
	var q documents.Query
	patient := ""
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	for name, vals := range c.Query {
		ok := true
		switch name {
		case "patient":
			if len(vals) == 1 {
				patient = strings.TrimPrefix(vals[0], "Patient/")
			}
			ok = len(vals) == 1 && ValidID(patient)
		case "type":
			for _, v := range vals {
				q.Types = append(q.Types, strings.Split(v, ",")...)
			}
		case "category":
			// A token: the 9602 system (or none) and a document group. Any
			// other value is the client's error, not the federation's.
			v := vals[0]
			if sys, code, found := strings.Cut(v, "|"); found && (sys == "" || sys == domain.SystemDocumentType) {
				v = code
			}
			if len(vals) != 1 || documents.GroupOf(v) != v {
				e := fail(http.StatusBadRequest, "code-invalid", "category must be one document group (A00, C00, ...) of %s, not %q",
					domain.SystemDocumentType, strings.Join(vals, ","))
				e.Issues[0].Expression = []string{"category"}
				return nil, e
			}
			q.Category = v
		case "date":
			for _, v := range vals {
				if ok = documentDate(&q.DateFrom, &q.DateTo, v); !ok {
					break
				}
			}
		case "_count":
			var err error
			q.Count, err = strconv.Atoi(vals[0])
			ok = err == nil && q.Count >= 0 && q.Count <= 1000
		case "_format", "_pretty", "_summary", "_elements": // _summary and _elements: shapeOf
		default:
			e := fail(http.StatusBadRequest, "not-supported", "DocumentReference search supports patient, type, category, date, _count, _summary and _elements; not %q", name)
			e.Issues[0].Expression = []string{name}
			return nil, e
		}
		if !ok {
			return nil, invalid(name, "invalid value for %s", name)
		}
	}
	a, err := s.federatedAccess(ctx, req, "DocumentReference", patient, "documents are searched with a health personnel's token")
	if err != nil {
		return nil, err
	}
	p, d, st := a.principal, a.decision, a.state
	q.Admits = admitsOf(d)
	res, err := s.cfg.Documents.Search(ctx, s.requester(req, p), st.PersonNumber, q)
	if err != nil {
		return nil, err
	}
	req.Facts.Documents = res.Documents
	total := res.Total
	links := []fhir.Link{{Relation: "self", URL: selfURL(req, c)}}
	entries, err := shapeDocuments(sh, res.BundleEntries())
	if err != nil {
		return nil, err
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{Type: "searchset", Total: &total, Links: links, ID: rand.Text()}, entries)}, nil
}

// documentDate reads one date parameter of a federated search (documents,
// lab results) into its inclusive bounds.
func documentDate(from, to *time.Time, v string) bool {
	prefix, t, _, err := datePrefix(v)
	if err != nil {
		return false
	}
	switch prefix {
	case "ge", "gt", "sa":
		*from = t
	case "le", "lt", "eb":
		*to = t
	case "eq":
		*from, *to = t, dayEnd(t)
	default:
		return false
	}
	return true
}

// documentRead serves GET /documents/{token}: the document opened at its
// source, for the caller to stream with constant memory after writing the
// usage log. The token is signed and bound to the patient; the rules are
// asked again now.
func (s *Service) documentRead(ctx context.Context, req *Request, c *Call) (*Result, error) {
	if c.Entry {
		return nil, fail(http.StatusBadRequest, "not-supported", "documents are streamed, not answered inside a Bundle; open the attachment URL")
	}
	p := req.Principal
	if p == nil {
		return nil, fail(http.StatusUnauthorized, "login", "documents are opened with a health personnel's token")
	}
	// The document belongs to the patient in the token's context (the
	// SMART launch patient, or for a token without one the patient
	// nhn-patient-nin names); a request with neither names no patient,
	// which the rules refuse like any request for health data without one.
	_, st, err := s.require(ctx, req, ask{in: access.Read, typ: "DocumentReference", patient: req.patientOr(p.Patient), state: true}, absent{})
	if err != nil {
		return nil, err
	}
	stream, err := s.cfg.Documents.Open(ctx, s.requester(req, p), c.Token, st.PersonNumber)
	if err != nil {
		return nil, &Error{Status: documents.HTTPStatus(err), Issues: []fhir.Issue{documents.Issue(err)}, cause: err}
	}
	req.Facts.Documents = []audit.Document{stream.Document()}
	return &Result{Status: http.StatusOK, Stream: stream}, nil
}
