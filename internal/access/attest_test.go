package access

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kjernejournal/kjernejournal/internal/auth"
)

// TestAttestPatients: the trust-framework attest's patients[] names the
// patients the HP declared to be treating; a request about anyone else is
// refused, even when the token's SMART launch context names that other
// patient (before, patients[] = A and patient = B read B). Principals come
// from real signed tokens.
func TestAttestPatients(t *testing.T) {
	tk := newTokens(t)
	pol := &Policy{Orgs: Organisations{Hospitals: []string{hospital}}}
	const otherPID = "17837054321"
	patient := func(nin string) map[string]any {
		return map[string]any{"identifier": map[string]any{"id": nin, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}}
	}
	hp := func(launch string, patients []any, attest bool) *auth.Principal {
		c := map[string]any{"scope": "launch patient/Flag.cruds patient/Patient.rs user/Flag.cruds", "fhirUser": "Practitioner/" + docHPR,
			"helseid://claims/hpr/hpr_number": docHPR, "helseid://claims/client/claims/orgnr_parent": hospital}
		if launch != "" {
			c["patient"] = launch
		}
		if attest {
			c["authorization_details"] = []any{map[string]any{"type": auth.AttestType,
				"practitioner":      map[string]any{"authorization": map[string]any{"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"}},
				"care_relationship": map[string]any{"purpose_of_use": map[string]any{"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"}},
				"patients":          patients,
			}}
		}
		return tk.principal(t, c)
	}
	// B is otherPat, whose person number is otherPID; A is pid.
	stateB := func(f ...func(*PatientState)) PatientState {
		return state(append([]func(*PatientState){func(st *PatientState) { st.PersonNumber = otherPID }}, f...)...)
	}
	onB := func(i Interaction, typ string) Request {
		return Request{Interaction: i, ResourceType: typ, Patient: otherPat, Basis: Samtykke, BasisHeader: "SAMTYKKE"}
	}
	cases := []struct {
		name   string
		p      *auth.Principal
		r      Request
		st     PatientState
		reason Reason
	}{
		{"launch B, attest names A: reading B refused", hp(otherPat, []any{patient(pid)}, true), onB(Read, "Flag"), stateB(), AttestPatientMismatch},
		{"launch B, attest names A: searching B refused", hp(otherPat, []any{patient(pid)}, true), onB(Search, "Flag"), stateB(), AttestPatientMismatch},
		{"launch B, attest names A: writing to B refused", hp(otherPat, []any{patient(pid)}, true), onB(Create, "Flag"), stateB(), AttestPatientMismatch},
		{"launch B, attest names A: $kj-status of B refused", hp(otherPat, []any{patient(pid)}, true), onB(Status, "Patient"), stateB(), AttestPatientMismatch},
		{"launch B, attest names A: a reserved B answers as none", hp(otherPat, []any{patient(pid)}, true), onB(Read, "Flag"),
			stateB(func(st *PatientState) { st.Reserved = true }), NoRecord},
		{"launch B, attest names B", hp(otherPat, []any{patient(otherPID)}, true), onB(Read, "Flag"), stateB(), OK},
		{"launch B, attest names A and B", hp(otherPat, []any{patient(pid), patient(otherPID)}, true), onB(Read, "Flag"), stateB(), OK},
		{"launch B, attest names nobody: the launch context binds", hp(otherPat, []any{}, true), onB(Read, "Flag"), stateB(), OK},
		{"launch B, no attest: the launch context binds", hp(otherPat, nil, false), onB(Read, "Flag"), stateB(), OK},
		{"no launch, attest names A: B is not in context", hp("", []any{patient(pid)}, true), onB(Read, "Flag"), stateB(), PatientNotInContext},
		{"no launch, attest names B", hp("", []any{patient(otherPID)}, true), onB(Read, "Flag"), stateB(), OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := pol.Authorize(tc.p, tc.r, tc.st)
			assert.Equal(t, tc.reason, d.Reason, "%+v", d)
			assert.Equal(t, tc.reason == OK, d.Allowed(), "%+v", d)
			if tc.reason == AttestPatientMismatch {
				assert.Contains(t, d.Message, "patients[]")
				assert.False(t, d.AsNotFound)
			}
		})
	}
}

// TestDecideAttestPatients is the same rule on the Subject alone.
func TestDecideAttestPatients(t *testing.T) {
	p := &Policy{Orgs: Organisations{Hospitals: []string{hospital}}}
	withAttest := func(nins ...string) Subject {
		return with(hospitalDoctor(), func(s *Subject) { s.AttestPatients = nins })
	}
	cases := []struct {
		name   string
		s      Subject
		st     PatientState
		reason Reason
	}{
		{"attest names the patient", withAttest(pid), state(), OK},
		{"attest names someone else", withAttest("17837054321"), state(), AttestPatientMismatch},
		{"no attest patients", withAttest(), state(), OK},
		{"someone else, record unknown: as none", withAttest("17837054321"), PatientState{}, NoRecord},
		{"someone else and blocked: the mismatch is said first", withAttest("17837054321"), state(func(st *PatientState) { st.BlockedHPR = []string{docHPR} }), AttestPatientMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.s, req(Read, "Flag", Samtykke), tc.st)
			assert.Equal(t, tc.reason, d.Reason, "%+v", d)
		})
	}
}
