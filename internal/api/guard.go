package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Authenticator verifies the token of a request; *auth.Validator is one.
type Authenticator interface {
	Validate(ctx context.Context, r *http.Request) (*auth.Principal, error)
}

const (
	keyPrincipal = "kj.principal"
	// keyMissing holds the 404 message a handler gives for a resource that
	// does not exist, for the enforcement point's as-if-no-record answer.
	keyMissing = "kj.missing"
	// basisHeader carries the access basis per request, as the national
	// APIs send it.
	basisHeader = "nhn-access-basis"
	// reasonSystem names the code system of access-rule reason codes in
	// OperationOutcome.issue.details.
	reasonSystem = "https://kjernejournal.example.no/fhir/CodeSystem/access-reason"
	// SecretAddressExtension marks a Patient with a secret address; such a
	// patient is reserved automatically.
	SecretAddressExtension = "https://kjernejournal.example.no/fhir/StructureDefinition/secret-address"
)

// principalKey carries an already verified principal into the sub-requests
// of a batch: a DPoP proof is bound to the outer request and cannot be
// verified again for each entry.
type principalKey struct{}

// authenticate verifies the token of every data route. With no
// Authenticator configured (tests of REST behaviour, or a loopback server
// started with --insecure-no-auth) every request passes.
func (s *Server) authenticate(c *gin.Context) {
	if s.cfg.Auth == nil {
		return
	}
	if p, ok := c.Request.Context().Value(principalKey{}).(*auth.Principal); ok {
		c.Set(keyPrincipal, p)
		return
	}
	p, err := s.cfg.Auth.Validate(c, c.Request)
	if err != nil {
		var ae *auth.Error
		status := http.StatusUnauthorized
		msg := err.Error()
		if errors.As(err, &ae) {
			ae.SetHeader(c.Writer.Header())
			if ae.Status != 0 {
				status = ae.Status
			}
			if ae.Description != "" {
				msg = ae.Description
			} else if ae.Missing() {
				msg = "this endpoint needs an access token (Authorization: Bearer or DPoP)"
			}
		}
		s.fail(c, status, fhir.Issue{Severity: "error", Code: "login", Diagnostics: msg})
		return
	}
	c.Set(keyPrincipal, p)
}

func principal(c *gin.Context) *auth.Principal {
	p, _ := c.Get(keyPrincipal)
	pp, _ := p.(*auth.Principal)
	return pp
}

// grant is what the enforcement point allowed: the policy decision and the
// scope decision whose granular constraints results must meet.
type grant struct {
	decision access.Decision
	scopes   auth.Decision
	open     bool                // no authentication configured
	state    access.PatientState // what the policy knew about the patient
	hpr      string              // the HP's HPR number, if any
}

// admits applies granular scope constraints (e.g. patient/Flag.rs?category=x)
// to one stored version. A constraint is a search parameter, so it is
// evaluated by the search registry on the version's index; one that is no
// parameter of the type, or an unreadable index, does not hold, so an
// unknown constraint narrows instead of widening.
func (s *Server) admits(g grant, v store.Version) bool {
	if g.open || !g.scopes.Constrained() {
		return true
	}
	idx, err := s.indexOf(v)
	if err != nil {
		return false
	}
	return g.scopes.Admits(func(c auth.Constraint) bool {
		q, _, err := s.reg.ParseQuery(v.Type, url.Values{c.Param: {c.Value}}, false)
		return err == nil && q.Match(idx)
	})
}

// allow is the single enforcement point: every access to the store for a
// request passes here with the interaction, the resource type and the
// patient whose record it touches. It checks the SMART scopes, then the
// access rules, and answers the request itself (401/403/404) when refused.
func (s *Server) allow(c *gin.Context, in auth.Interaction, typ, patient string) (grant, bool) {
	return s.allowKnown(c, in, typ, patient, nil)
}

// allowKnown is allow for a caller that already holds the current Patient
// version (a read of the Patient itself), which saves a store read.
func (s *Server) allowKnown(c *gin.Context, in auth.Interaction, typ, patient string, pv *store.Version) (grant, bool) {
	return s.allowAs(c, in, accessInteraction(in), typ, patient, pv)
}

// allowAs is the enforcement point proper: the scopes are checked for the
// SMART interaction in, the policy for the access interaction ain (they
// differ for operations such as $kj-status).
func (s *Server) allowAs(c *gin.Context, in auth.Interaction, ain access.Interaction, typ, patient string, pv *store.Version) (grant, bool) {
	p := principal(c)
	if s.cfg.Auth == nil {
		return grant{open: true, decision: access.Decision{Effect: access.Permit, Reason: access.OK}}, true
	}
	if p == nil {
		s.fail(c, http.StatusUnauthorized, fhir.Issue{Severity: "error", Code: "login", Diagnostics: "this endpoint needs an access token"})
		return grant{}, false
	}
	sd, ok := scopeDecision(p, in, typ, patient)
	if !ok {
		d := access.Decision{Effect: access.Deny, Reason: "insufficient-scope",
			Message: fmt.Sprintf("the token's scopes do not allow %s on %s%s", in, typ, forPatient(patient))}
		if p.Patient != "" && patient != p.Patient && p.Scopes.Permits(auth.ContextPatient, typ, in).Allowed {
			d.Reason = access.PatientNotInContext
			d.Message = fmt.Sprintf("the token's patient/ scopes cover Patient/%s only, not%s", p.Patient, forPatient(patient))
		}
		noteAccess(c, patient, typ, d)
		s.refuseScope(c, string(d.Reason), d.Message)
		return grant{}, false
	}
	st, err := s.patientState(c, patient, pv)
	if err != nil {
		s.failErr(c, err)
		return grant{}, false
	}
	subject := subjectOf(p, patient, st)
	basisRaw := c.GetHeader(basisHeader)
	basis, _ := access.ParseBasis(basisRaw)
	d := s.cfg.Policy.Decide(subject, access.Request{
		Interaction: ain, ResourceType: typ, Patient: patient, Basis: basis, BasisHeader: basisRaw,
	}, st)
	noteAccess(c, patient, typ, d)
	if !d.Allowed() {
		if d.AsNotFound {
			// As if there were no record: a handler that names what it
			// would answer for a missing resource (keyMissing) gets exactly
			// that, so a reserved record cannot be told from none.
			msg := d.Message
			if m := c.GetString(keyMissing); m != "" {
				msg = m
			}
			s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: msg})
			return grant{}, false
		}
		s.refuse(c, http.StatusForbidden, string(d.Reason), d.Message)
		return grant{}, false
	}
	return grant{decision: d, scopes: sd, state: st, hpr: p.HPR}, true
}

func forPatient(patient string) string {
	if patient == "" {
		return " across patients"
	}
	return " for Patient/" + patient
}

// refuseScope answers a request the token's scopes do not allow: 403 with
// the OperationOutcome and, as RFC 6750 3 and 3.1 ask of a token that does
// not enable the access, a challenge naming insufficient_scope.
func (s *Server) refuseScope(c *gin.Context, reason, msg string) {
	scheme := auth.SchemeBearer
	if p := principal(c); p != nil {
		scheme = p.Scheme
	}
	auth.InsufficientScope(scheme, msg, "").SetHeader(c.Writer.Header())
	s.refuse(c, http.StatusForbidden, reason, msg)
}

func (s *Server) refuse(c *gin.Context, status int, reason, msg string) {
	s.fail(c, status, fhir.Issue{Severity: "error", Code: "forbidden", Diagnostics: msg,
		Details: fhir.Coding{System: reasonSystem, Code: reason}})
}

// scopeDecision applies the SMART scopes. patient/ scopes reach only the
// token's own patient; system/ scopes never read clinical data.
func scopeDecision(p *auth.Principal, in auth.Interaction, typ, patient string) (auth.Decision, bool) {
	if patient != "" && patient == p.Patient {
		if d := p.Scopes.Permits(auth.ContextPatient, typ, in); d.Allowed {
			return d, true
		}
	}
	if p.Kind() == auth.KindCitizen {
		// A citizen's own record: patient/ scopes bound by the pid check of
		// the policy rather than by a launch context.
		if d := p.Scopes.Permits(auth.ContextPatient, typ, in); d.Allowed && p.Patient == "" {
			return d, true
		}
	}
	if d := p.Scopes.Permits(auth.ContextUser, typ, in); d.Allowed {
		return d, true
	}
	if in == auth.Create || in == auth.Update || in == auth.Delete {
		if d := p.Scopes.Permits(auth.ContextSystem, typ, in); d.Allowed {
			return d, true
		}
	}
	return auth.Decision{}, false
}

func accessInteraction(in auth.Interaction) access.Interaction {
	switch in {
	case auth.Create:
		return access.Create
	case auth.Update:
		return access.Update
	case auth.Delete:
		return access.Delete
	case auth.Search:
		return access.Search
	}
	return access.Read
}

// subjectOf maps the verified token onto the policy's subject.
func subjectOf(p *auth.Principal, patient string, st access.PatientState) access.Subject {
	s := access.Subject{
		Role: roleOf(p), HPR: p.HPR, PID: p.PID, SecurityLevel: p.SecurityLevel, HPCategory: p.HPCategory,
		LegalEntity: p.OrgParent, PointOfCare: p.OrgChild, PurposeOfUse: p.PurposeOfUse,
	}
	if p.Patient != "" {
		s.Patients = append(s.Patients, p.Patient)
	}
	// The attest names patients by national identity number.
	if patient != "" && st.PersonNumber != "" && slices.Contains(p.Patients, st.PersonNumber) {
		s.Patients = append(s.Patients, patient)
	}
	return s
}

// roleOf maps the token's kind onto the policy's roles ("" for a token
// of no known kind, which the policy refuses).
func roleOf(p *auth.Principal) access.Role {
	switch p.Kind() {
	case auth.KindPractitioner:
		return access.Practitioner
	case auth.KindCitizen:
		return access.Citizen
	case auth.KindSystem:
		return access.System
	case auth.KindCitizenSupport:
		return access.CitizenSupport
	case auth.KindAuditor:
		return access.Auditor
	}
	return ""
}

// patientState reads what the policy needs to know about the patient.
func (s *Server) patientState(ctx context.Context, patient string, pv *store.Version) (access.PatientState, error) {
	var st access.PatientState
	if patient == "" {
		return st, nil
	}
	var v store.Version
	var err error
	if pv != nil && pv.Type == "Patient" && pv.ID == patient {
		v = *pv
	} else {
		v, err = s.store.Read(ctx, "Patient", patient)
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if cached, ok := s.states.get(patient, v.VersionID); ok {
		return s.withPrivacy(ctx, patient, cached)
	}
	st, err = parsePatientState(v)
	if err != nil {
		return st, err
	}
	s.states.put(patient, v.VersionID, st)
	return s.withPrivacy(ctx, patient, st)
}

// parsePatientState reads the policy's view of a stored Patient.
func parsePatientState(v store.Version) (access.PatientState, error) {
	var st access.PatientState
	patient := v.ID
	var p struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
		GeneralPractitioner []struct {
			Identifier struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
		} `json:"generalPractitioner"`
		Extension []struct {
			URL          string `json:"url"`
			ValueBoolean bool   `json:"valueBoolean"`
		} `json:"extension"`
	}
	if err := json.Unmarshal(v.Body, &p); err != nil {
		return st, fmt.Errorf("read Patient/%s: %w", patient, err)
	}
	st.Exists = true
	for _, id := range p.Identifier {
		if id.System == systemFNR || id.System == systemDNR {
			st.PersonNumber = id.Value
		}
	}
	for _, gp := range p.GeneralPractitioner {
		if gp.Identifier.System == systemHPR {
			st.GPHPR = gp.Identifier.Value
		}
	}
	for _, e := range p.Extension {
		if e.URL == SecretAddressExtension && e.ValueBoolean {
			st.SecretAddress = true
		}
	}
	return st, nil
}

// stateCache keeps parsed patient states by patient and version, so that
// the policy does not parse the Patient's JSON on every request; a new
// version of the Patient misses the cache by its version number.
type stateCache struct {
	mu sync.RWMutex
	m  map[string]cachedState
}

type cachedState struct {
	version int64
	state   access.PatientState
}

// maxStates bounds the cache; when full it starts over, which costs one
// parse per patient and needs no eviction bookkeeping on the hot path.
const maxStates = 100_000

func (c *stateCache) get(patient string, version int64) (access.PatientState, bool) {
	c.mu.RLock()
	e, ok := c.m[patient]
	c.mu.RUnlock()
	if !ok || e.version != version {
		return access.PatientState{}, false
	}
	return e.state, true
}

func (c *stateCache) put(patient string, version int64, st access.PatientState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxStates {
		c.m = make(map[string]cachedState)
	}
	c.m[patient] = cachedState{version, st}
}
