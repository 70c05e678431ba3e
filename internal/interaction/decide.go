package interaction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// ask is one access question for the decision point.
type ask struct {
	in      access.Interaction
	typ     string
	patient string
	id      string // the resource's id, where the rules ask for it
	// current is the patient's current Patient version when the caller
	// holds it already (a read of the Patient itself), to save a read;
	// its Type is "" otherwise.
	current store.Version
	change  *access.PrivacyChange
	// critical marks a Consent that is critical information, not a
	// privacy setting (criticalVersion, criticalConsentSearch).
	critical bool
	// state asks for the patient's state even with the access rules off
	// (the caller answers from it).
	state bool
}

// decide passes one access through the decision point (package access)
// and records the decision in the facts. With the access rules off every
// access is permitted (and recorded as such). The patient's state comes
// with the decision, for the interactions that answer from it.
func (s *Service) decide(ctx context.Context, req *Request, q ask) (access.Decision, access.PatientState, error) {
	var st access.PatientState
	switch {
	case q.patient == unknownPerson:
		// nhn-patient-nin named nobody: no record, with the number the
		// header gave (national.go).
		st.PersonNumber = req.PersonNumber
	case s.cfg.Policy != nil || q.state:
		var err error
		if st, err = s.patientState(ctx, q.patient, q.current); err != nil {
			return access.Decision{}, st, err
		}
	}
	var d access.Decision
	if s.cfg.Policy == nil {
		d = access.Decision{Effect: access.Permit, Reason: access.OK, Message: "access rules are off"}
	} else {
		ar := access.Request{
			Interaction: q.in, ResourceType: q.typ, Patient: q.patient, ID: q.id,
			Basis: basisOf(req.Basis), BasisHeader: req.Basis, Change: q.change, Critical: q.critical,
		}
		req.national(&ar)
		d = s.cfg.Policy.Authorize(req.Principal, ar, st)
		req.hideNamed(&d, q.patient)
	}
	req.Facts.note(loggedPatient(q.patient), q.typ, d)
	return d, st, nil
}

// require is decide for an access that must be permitted: a refusal is
// the answer (missing: what the call answers when the record does not
// exist, for the rules' as-if-no-record answer).
func (s *Service) require(ctx context.Context, req *Request, q ask, missing absent) (access.Decision, access.PatientState, error) {
	d, st, err := s.decide(ctx, req, q)
	if err != nil {
		return d, st, err
	}
	if !d.Allowed() {
		return d, st, refusal(d, missing)
	}
	return d, st, nil
}

func basisOf(h string) access.Basis {
	b, _ := access.ParseBasis(h)
	return b
}

// admits applies a permit's granular scope constraints (a constraint is a
// search parameter, evaluated by the search registry on the version's
// index; one that is no parameter of the type, or an unreadable index,
// does not hold, so an unknown constraint narrows instead of widening).
func (s *Service) admits(d access.Decision, v store.Version) bool {
	if !d.Scopes.Constrained() {
		return true
	}
	idx, err := s.indexOf(v)
	if err != nil {
		return false
	}
	return d.Admits(func(c auth.Constraint) bool {
		q, _, err := s.reg.ParseQuery(v.Type, url.Values{c.Param: {c.Value}}, false)
		if err == nil && q.Reextract() {
			idx, err := s.indexFor(q, v)
			return err == nil && q.Match(idx)
		}
		return err == nil && q.Match(idx)
	})
}

// patientState reads what the rules need to know about the patient: the
// Patient resource and the privacy settings (Consents).
func (s *Service) patientState(ctx context.Context, patient string, current store.Version) (access.PatientState, error) {
	var st access.PatientState
	if patient == "" {
		return st, nil
	}
	var v store.Version
	var err error
	if current.Type == "Patient" && current.ID == patient && !current.Deleted {
		v = current
	} else {
		v, err = s.store.Read(ctx, "Patient", patient)
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if cached, ok := s.states.get(patient, v.VersionID); ok && v.VersionID != 0 {
		st = cached
	} else {
		if st, err = parsePatientState(v); err != nil {
			return st, err
		}
		if v.VersionID != 0 { // 0: a Patient a transaction is writing
			s.states.put(patient, v.VersionID, st)
		}
	}
	return s.withPrivacy(ctx, patient, st)
}

// withPrivacy adds the patient's privacy settings (reservation,
// restrictions, blocks, portal access; stored as Consent) to st. An
// unreadable setting fails the request rather than being ignored: a
// block that is not understood must not let the blocked HP in.
func (s *Service) withPrivacy(ctx context.Context, patient string, st access.PatientState) (access.PatientState, error) {
	vs, err := s.store.Compartment(ctx, patient, "Consent")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return st, err
	}
	if len(vs) == 0 {
		return st, nil // a secret address alone still reserves: PatientState.ReservedNow
	}
	bodies := make([][]byte, len(vs))
	for i, v := range vs {
		bodies[i] = v.Body
	}
	settings, err := privacy.ParseAll(bodies)
	if err != nil {
		return st, fmt.Errorf("privacy settings of Patient/%s: %w", patient, err)
	}
	sum := privacy.State(settings, st.SecretAddress, s.cfg.Now())
	sum.Fill(&st)
	// Reserved is the citizen's reservation only; the secret address is
	// SecretAddress: the rules tell them apart (the population register
	// still updates its own Patient of a person with a secret address).
	st.Reserved = !sum.ReservedSince.IsZero()
	return st, nil
}

// parsePatientState reads the rules' view of a stored Patient.
func parsePatientState(v store.Version) (access.PatientState, error) {
	var st access.PatientState
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
		return st, fmt.Errorf("read Patient/%s: %w", v.ID, err)
	}
	st.Exists = true
	for _, id := range p.Identifier {
		if id.System == domain.SystemFNR || id.System == domain.SystemDNR {
			st.PersonNumber = id.Value
		}
	}
	for _, gp := range p.GeneralPractitioner {
		if gp.Identifier.System == domain.SystemHPR {
			st.GPHPR = gp.Identifier.Value
		}
	}
	for _, e := range p.Extension {
		if e.URL == domain.SecretAddressExtension && e.ValueBoolean {
			st.SecretAddress = true
		}
	}
	return st, nil
}

// stateCache keeps parsed patient states by patient and version, so that
// the rules do not parse the Patient's JSON on every request; a new
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
