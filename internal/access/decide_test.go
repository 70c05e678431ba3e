package access

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

const (
	pat       = "pas-1"
	otherPat  = "pas-2"
	gpHPR     = "991000001"
	docHPR    = "991000002"
	hospital  = "983971636"
	legevakt  = "974589095"
	specialty = "912345678"
	pid       = "17837012345"
)

func gp() Subject {
	return Subject{Role: Practitioner, HPR: gpHPR, SecurityLevel: 4, HPCategory: "LE", LegalEntity: "999888777", PurposeOfUse: "TREAT", Patients: []string{pat}}
}

func hospitalDoctor() Subject {
	s := gp()
	s.HPR, s.LegalEntity = docHPR, hospital
	return s
}

func with(s Subject, f func(*Subject)) Subject { f(&s); return s }

func state(f ...func(*PatientState)) PatientState {
	st := PatientState{Exists: true, PersonNumber: pid, GPHPR: gpHPR}
	for _, fn := range f {
		fn(&st)
	}
	return st
}

// named adds the national headers to r: the patient nhn-patient-nin
// resolved to, and the category nhn-user-role declares.
func named(r Request, patient, role string) Request {
	r.NamedPatient, r.UserRole = patient, role
	return r
}

func req(i Interaction, typ string, b Basis) Request {
	return Request{Interaction: i, ResourceType: typ, Patient: pat, Basis: b, BasisHeader: string(b)}
}

func TestDecide(t *testing.T) {
	p := &Policy{Orgs: Organisations{Hospitals: []string{hospital}, ContractSpecialists: []string{specialty}}}
	nurse := with(hospitalDoctor(), func(s *Subject) { s.HPCategory = "SP" })
	physio := with(hospitalDoctor(), func(s *Subject) { s.HPCategory = "FT" })
	emergency := with(gp(), func(s *Subject) { s.HPR, s.LegalEntity, s.PurposeOfUse = "991000003", legevakt, "ETREAT" })
	other := with(gp(), func(s *Subject) { s.HPR = "991000009" })
	cit := Subject{Role: Citizen, PID: pid, SecurityLevel: 4}
	feeder := Subject{Role: System}

	cases := []struct {
		name   string
		s      Subject
		r      Request
		st     PatientState
		effect Effect
		reason Reason
		check  func(t *testing.T, d Decision)
	}{
		// Rule 1: HPR number, security level 4, one patient in context.
		{"HP without HPR number", with(gp(), func(s *Subject) { s.HPR = "" }), req(Read, "Flag", Samtykke), state(), Deny, NoHPR, nil},
		{"HP at security level 3", with(gp(), func(s *Subject) { s.SecurityLevel = 3 }), req(Read, "Flag", Samtykke), state(), Deny, LowSecurityLevel, nil},
		{"cross-patient search", gp(), Request{Interaction: Search, ResourceType: "AllergyIntolerance", Basis: Samtykke, BasisHeader: "SAMTYKKE"}, state(), Deny, NoPatientBound, nil},
		{"patient not in context", gp(), Request{Interaction: Read, ResourceType: "Flag", Patient: otherPat, Basis: Samtykke, BasisHeader: "SAMTYKKE"}, state(), Deny, PatientNotInContext, nil},
		{"patient in attest patients[]", with(other, func(s *Subject) { s.Patients = []string{otherPat, pat} }), req(Read, "Flag", Samtykke), state(), Permit, OK, nil},
		{"HP reads usage log", gp(), req(Search, "AuditEvent", Samtykke), state(), Deny, RoleNotAllowed, nil},

		// Rule 2: consent is the main rule; exemptions must be supported.
		{"no basis", gp(), req(Read, "MedicationStatement", ""), state(), Deny, BasisMissing, nil},
		{"unknown basis", gp(), Request{Interaction: Read, ResourceType: "Flag", Patient: pat, BasisHeader: "MAYBE"}, state(), Deny, BasisUnknown, nil},
		{"own GP with UNNTAK", gp(), req(Read, "MedicationStatement", Unntak), state(), Permit, OK, nil},
		{"other GP with UNNTAK", other, req(Read, "MedicationStatement", Unntak), state(), Deny, UnntakNotSupported, nil},
		{"other GP with SAMTYKKE", other, req(Read, "MedicationStatement", Samtykke), state(), Permit, OK, nil},
		{"hospital doctor with UNNTAK", hospitalDoctor(), req(Search, "Encounter", Unntak), state(), Permit, OK, nil},
		{"hospital nurse with UNNTAK", nurse, req(Search, "Encounter", Unntak), state(), Permit, OK, nil},
		{"hospital physiotherapist with UNNTAK", physio, req(Search, "Encounter", Unntak), state(), Deny, UnntakNotSupported, nil},
		{"contract specialist with UNNTAK", with(other, func(s *Subject) { s.LegalEntity = specialty }), req(Read, "Encounter", Unntak), state(), Permit, OK, nil},
		{"emergency with AKUTT", emergency, req(Read, "MedicationStatement", Akutt), state(), Permit, OK, nil},
		{"break the glass with AKUTT", with(other, func(s *Subject) { s.PurposeOfUse = "BTG" }), req(Read, "MedicationStatement", Akutt), state(), Permit, OK, nil},
		{"AKUTT without emergency purpose", other, req(Read, "MedicationStatement", Akutt), state(), Deny, AkuttNotSupported, nil},

		// Rule 3: critical information with any valid basis.
		{"critical info with SAMTYKKE", other, req(Search, "AllergyIntolerance", Samtykke), state(), Permit, OK, nil},
		{"critical info still needs a valid basis", other, req(Search, "AllergyIntolerance", Unntak), state(), Deny, UnntakNotSupported, nil},

		// Rule 4: reservation.
		{"reserved: as if no record", gp(), req(Read, "Flag", Unntak), state(func(st *PatientState) { st.Reserved = true }), Deny, NoRecord,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"secret address: reserved automatically", emergency, req(Search, "Flag", Akutt), state(func(st *PatientState) { st.SecretAddress = true }), Deny, NoRecord, nil},
		{"reserved: no new data from HP", gp(), req(Create, "Flag", Unntak), state(func(st *PatientState) { st.Reserved = true }), Deny, ReservedNoNewData, nil},
		{"reserved: no new data from feeders", feeder, req(Create, "MedicationStatement", ""), state(func(st *PatientState) { st.Reserved = true }), Deny, ReservedNoNewData, nil},
		{"unknown patient", gp(), req(Read, "Flag", Unntak), PatientState{}, Deny, NoRecord,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"reserved: an HP's write answers as for an unknown patient", gp(), req(Create, "Flag", Unntak), state(func(st *PatientState) { st.Reserved = true }), Deny, ReservedNoNewData,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"reserved and blocked: as if no record, not hp-blocked", gp(), req(Read, "Flag", Unntak), state(func(st *PatientState) { st.Reserved = true; st.BlockedHPR = []string{gpHPR} }), Deny, NoRecord,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"reserved and blocked: a search too", emergency, req(Search, "Flag", Akutt), state(func(st *PatientState) { st.SecretAddress = true; st.BlockedHPR = []string{emergency.HPR} }), Deny, NoRecord, nil},
		{"reserved: no Patient update from feeders", feeder, req(Update, "Patient", ""), state(func(st *PatientState) { st.Reserved = true }), Deny, ReservedNoNewData, nil},
		{"secret address only: the register updates its Patient", feeder, req(Update, "Patient", ""), state(func(st *PatientState) { st.SecretAddress = true }), Permit, OK, nil},

		// Rule 5: restriction.
		{"restricted medications read", gp(), req(Read, "MedicationStatement", Unntak), state(func(st *PatientState) { st.Restricted = []Section{Medications} }), Deny, SectionRestricted, nil},
		{"restricted medications search hides", gp(), req(Search, "MedicationStatement", Unntak), state(func(st *PatientState) { st.Restricted = []Section{Medications} }), Permit, OKPartsHidden,
			func(t *testing.T, d Decision) { assert.Equal(t, []Section{Medications}, d.Hidden) }},
		{"restricted opened with FORHOYET_SAMTYKKE", other, req(Read, "MedicationStatement", ForhoyetSamtykke), state(func(st *PatientState) { st.Restricted = []Section{Medications} }), Permit, OKRestrictedOpened,
			func(t *testing.T, d Decision) { assert.True(t, d.OpenedRestricted) }},
		{"restricted opened with FORHOYET_AKUTT", emergency, req(Search, "Encounter", ForhoyetAkutt), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Permit, OKRestrictedOpened, nil},
		{"FORHOYET_AKUTT needs emergency purpose", other, req(Search, "Encounter", ForhoyetAkutt), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Deny, AkuttNotSupported, nil},
		{"other sections unaffected by restriction", gp(), req(Read, "Flag", Unntak), state(func(st *PatientState) { st.Restricted = []Section{Medications} }), Permit, OK, nil},
		{"patient read shows restriction", gp(), req(Read, "Patient", Unntak), state(func(st *PatientState) { st.Restricted = []Section{Medications, VisitHistory} }), Permit, OKPartsHidden,
			func(t *testing.T, d Decision) { assert.Equal(t, []Section{Medications, VisitHistory}, d.Hidden) }},

		// Rule 6: blocked HP, emergencies included.
		{"blocked HP", gp(), req(Read, "Flag", Unntak), state(func(st *PatientState) { st.BlockedHPR = []string{gpHPR} }), Deny, HPBlocked, nil},
		{"blocked HP in an emergency", emergency, req(Read, "Flag", ForhoyetAkutt), state(func(st *PatientState) { st.BlockedHPR = []string{emergency.HPR} }), Deny, HPBlocked, nil},
		{"HP cannot change privacy settings", gp(), req(Create, "Consent", Unntak), state(), Deny, PrivacyByCitizenOnly, nil},
		{"HP cannot read privacy settings", gp(), req(Search, "Consent", Unntak), state(), Deny, PrivacyByCitizenOnly, nil},
		{"support manages blocks", Subject{Role: CitizenSupport}, req(Create, "Consent", ""), state(), Permit, OK, nil},
		{"support reads no health data", Subject{Role: CitizenSupport}, req(Read, "Flag", ""), state(), Deny, RoleNotAllowed, nil},

		// Rule 7: documents.
		{"documents with blocked visit history", gp(), req(Search, "DocumentReference", Unntak), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Deny, DocumentsUnavailable, nil},
		{"documents with sharing blocked", gp(), req(Search, "DocumentReference", ForhoyetSamtykke), state(func(st *PatientState) { st.DocumentsBlocked = true }), Deny, DocumentsUnavailable, nil},
		{"documents with blocked visit history, FORHOYET_SAMTYKKE", other, req(Search, "DocumentReference", ForhoyetSamtykke), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Deny, DocumentsUnavailable, nil},
		{"document opened with blocked visit history, FORHOYET_AKUTT", emergency, req(Read, "DocumentReference", ForhoyetAkutt), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Deny, DocumentsUnavailable, nil},
		{"documents available", gp(), req(Search, "DocumentReference", Unntak), state(), Permit, OK, nil},

		// Rule 8: the citizen.
		{"citizen reads own record", cit, req(Search, "MedicationStatement", ""), state(), Permit, OK, nil},
		{"citizen reads own restricted parts", cit, req(Search, "MedicationStatement", ""), state(func(st *PatientState) { st.Restricted = []Section{Medications} }), Permit, OK, nil},
		{"citizen reads another's record", cit, req(Read, "Flag", ""), state(func(st *PatientState) { st.PersonNumber = "17837054321" }), Deny, NotOwnRecord, nil},
		{"citizen without security level 4", with(cit, func(s *Subject) { s.SecurityLevel = 3 }), req(Read, "Flag", ""), state(), Deny, LowSecurityLevel, nil},
		{"citizen removed portal access", cit, req(Read, "Flag", ""), state(func(st *PatientState) { st.PortalAccessRemoved = true }), Deny, PortalAccessRemoved, nil},
		{"citizen manages privacy after removing access", cit, req(Update, "Consent", ""), state(func(st *PatientState) { st.PortalAccessRemoved = true }), Permit, OK, nil},
		{"citizen reads own usage log, in the citizen's view", cit, req(Search, "AuditEvent", ""), state(), Permit, OK,
			func(t *testing.T, d Decision) { assert.True(t, d.CitizenView) }},
		{"citizen cannot report health data", cit, req(Create, "Flag", ""), state(), Deny, RoleNotAllowed, nil},
		{"citizen searches documents from other hospitals", cit, req(Search, "DocumentReference", ""), state(), Deny, DocumentsForHP, nil},
		{"citizen opens a document link", cit, req(Read, "DocumentReference", ""), state(), Deny, DocumentsForHP, nil},

		// Lab results: a section of their own, under every rule.
		{"lab results with SAMTYKKE", other, req(Search, "DiagnosticReport", Samtykke), state(), Permit, OK, nil},
		{"lab results need a basis", other, req(Search, "Observation", ""), state(), Deny, BasisMissing, nil},
		{"restricted lab results search hides", gp(), req(Search, "Observation", Unntak), state(func(st *PatientState) { st.Restricted = []Section{LabResults} }), Permit, OKPartsHidden,
			func(t *testing.T, d Decision) { assert.Equal(t, []Section{LabResults}, d.Hidden) }},
		{"restricted lab results opened with FORHOYET_SAMTYKKE", other, req(Search, "DiagnosticReport", ForhoyetSamtykke), state(func(st *PatientState) { st.Restricted = []Section{LabResults} }), Permit, OKRestrictedOpened,
			func(t *testing.T, d Decision) { assert.True(t, d.OpenedRestricted) }},
		{"lab results of a reserved patient: as if no record", emergency, req(Search, "DiagnosticReport", ForhoyetAkutt), state(func(st *PatientState) { st.Reserved = true }), Deny, NoRecord,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"lab results for a blocked HP, emergency included", emergency, req(Search, "Observation", ForhoyetAkutt), state(func(st *PatientState) { st.BlockedHPR = []string{emergency.HPR} }), Deny, HPBlocked, nil},
		{"lab results with blocked visit history, not configured to follow it", gp(), req(Search, "DiagnosticReport", Unntak), state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} }), Permit, OK, nil},
		{"citizen reads own lab results", cit, req(Search, "DiagnosticReport", ""), state(), Permit, OK, nil},
		{"citizen reads own restricted lab results", cit, req(Search, "Observation", ""), state(func(st *PatientState) { st.Restricted = []Section{LabResults} }), Permit, OK, nil},
		{"citizen reads no one else's lab results", cit, req(Search, "Observation", ""), state(func(st *PatientState) { st.PersonNumber = "01010112345" }), Deny, NotOwnRecord, nil},
		{"feeder reads no lab results", feeder, req(Search, "DiagnosticReport", ""), state(), Deny, SystemNoClinicalRead, nil},
		{"HP writes no lab results", gp(), req(Create, "Observation", Unntak), state(), Deny, HPWritesCriticalOnly, nil},
		{"support reads no lab results", Subject{Role: CitizenSupport}, req(Search, "Observation", ""), state(), Deny, RoleNotAllowed, nil},

		// $kj-status: no health data, so no basis; tells a blocked HP so.
		{"status without basis", other, req(Status, "Patient", ""), state(), Permit, OK, nil},
		{"status for a blocked HP", gp(), req(Status, "Patient", ""), state(func(st *PatientState) { st.BlockedHPR = []string{gpHPR} }), Permit, OK, nil},
		{"status of a reserved patient", gp(), req(Status, "Patient", ""), state(func(st *PatientState) { st.Reserved = true }), Deny, NoRecord, nil},
		{"status for a patient not in context", gp(), Request{Interaction: Status, ResourceType: "Patient", Patient: otherPat}, state(), Deny, PatientNotInContext, nil},
		{"status needs security level 4", with(gp(), func(s *Subject) { s.SecurityLevel = 3 }), req(Status, "Patient", ""), state(), Deny, LowSecurityLevel, nil},
		{"feeders get no status", feeder, req(Status, "Patient", ""), state(), Deny, SystemNoClinicalRead, nil},

		// Rule 9 and rule 1: no automatic extraction, feeders write only.
		{"feeder reads nothing", feeder, req(Search, "MedicationStatement", ""), state(), Deny, SystemNoClinicalRead, nil},
		{"feeder writes medications", feeder, req(Create, "MedicationStatement", ""), state(), Permit, OK, nil},
		{"feeder writes visits", feeder, req(Update, "Encounter", ""), state(), Permit, OK, nil},
		{"feeder cannot write critical info", feeder, req(Create, "Flag", ""), state(), Deny, FeederWritesOwnFields, nil},
		{"HP reports critical info", gp(), req(Create, "AllergyIntolerance", Unntak), state(), Permit, OK, nil},
		{"HP cannot write medications", gp(), req(Create, "MedicationStatement", Unntak), state(), Deny, HPWritesCriticalOnly, nil},
		{"auditor reads the usage log, names included", Subject{Role: Auditor}, req(Search, "AuditEvent", ""), state(), Permit, OK,
			func(t *testing.T, d Decision) { assert.False(t, d.CitizenView) }},
		{"HP subscribes", gp(), req(Create, "Subscription", Unntak), state(), Permit, OK, nil},
		{"citizen cannot subscribe", cit, req(Create, "Subscription", ""), state(), Deny, RoleNotAllowed, nil},
		{"feeder cannot subscribe", feeder, req(Create, "Subscription", ""), state(), Deny, RoleNotAllowed, nil},
		{"auditor reads no health data", Subject{Role: Auditor}, req(Search, "Flag", ""), state(), Deny, RoleNotAllowed, nil},
		{"unknown role", Subject{}, req(Read, "Flag", Samtykke), state(), Deny, RoleNotAllowed, nil},

		// The national headers: nhn-patient-nin names the request's patient,
		// nhn-user-role must agree with the token's attest.
		{"patient named by nhn-patient-nin", gp(), named(req(Search, "AllergyIntolerance", Samtykke), pat, ""), state(), Permit, OK, nil},
		{"another patient than nhn-patient-nin names", gp(), named(Request{Interaction: Search, ResourceType: "Flag", Patient: otherPat, Basis: Samtykke, BasisHeader: "SAMTYKKE"}, pat, ""), state(), Deny, PatientNotNamed,
			func(t *testing.T, d Decision) {
				assert.NotContains(t, d.Message, "Patient/"+pat, "the header's patient is not named")
			}},
		{"another patient than nhn-patient-nin names, before the reservation", gp(), named(req(Read, "Flag", Samtykke), otherPat, ""), state(func(st *PatientState) { st.Reserved = true }), Deny, PatientNotNamed, nil},
		{"nhn-patient-nin of nobody: as if no record", gp(), named(req(Read, "Flag", Samtykke), pat, ""), PatientState{PersonNumber: pid}, Deny, NoRecord,
			func(t *testing.T, d Decision) { assert.True(t, d.AsNotFound) }},
		{"nhn-user-role agrees with the attest", gp(), named(req(Read, "Flag", Samtykke), "", "LE"), state(), Permit, OK, nil},
		{"nhn-user-role disagrees with the attest", gp(), named(req(Read, "Flag", Samtykke), "", "SP"), state(), Deny, UserRoleMismatch,
			func(t *testing.T, d Decision) { assert.Contains(t, d.Message, "SP") }},
		{"nhn-user-role with a token without attest", with(gp(), func(s *Subject) { s.HPCategory = "" }), named(req(Read, "Flag", Samtykke), "", "LE"), state(), Deny, UserRoleMismatch, nil},
		{"nhn-user-role from a citizen", cit, named(req(Read, "Flag", ""), "", "LE"), state(), Deny, UserRoleMismatch, nil},
		{"nhn-user-role before the other rules", with(gp(), func(s *Subject) { s.HPR = "" }), named(req(Read, "Flag", Samtykke), "", "SP"), state(), Deny, UserRoleMismatch, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.s, tc.r, tc.st)
			assert.Equal(t, tc.effect, d.Effect, "decision: %+v", d)
			assert.Equal(t, tc.reason, d.Reason, "decision: %+v", d)
			assert.NotEmpty(t, d.Message)
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// With --lab-follows-visit-history, a restricted visit history closes the
// lab results as it closes the documents: no basis opens them.
func TestDecideLabFollowsVisitHistory(t *testing.T) {
	p := &Policy{Orgs: Organisations{Hospitals: []string{hospital}}, LabFollowsVisitHistory: true}
	visits := state(func(st *PatientState) { st.Restricted = []Section{VisitHistory} })
	emergency := with(gp(), func(s *Subject) { s.HPR, s.PurposeOfUse = "991000003", "ETREAT" })
	cit := Subject{Role: Citizen, PID: pid, SecurityLevel: 4}
	for _, tc := range []struct {
		name   string
		s      Subject
		r      Request
		st     PatientState
		effect Effect
		reason Reason
	}{
		{"search", gp(), req(Search, "DiagnosticReport", Unntak), visits, Deny, LabResultsUnavailable},
		{"FORHOYET_AKUTT opens nothing", emergency, req(Search, "Observation", ForhoyetAkutt), visits, Deny, LabResultsUnavailable},
		{"visit history not restricted", gp(), req(Search, "Observation", Unntak), state(), Permit, OK},
		{"lab results restricted, visit history not", gp(), req(Search, "Observation", ForhoyetSamtykke), state(func(st *PatientState) { st.Restricted = []Section{LabResults} }), Permit, OKRestrictedOpened},
		{"reserved: still as if no record", gp(), req(Search, "Observation", Unntak), state(func(st *PatientState) { st.Reserved = true; st.Restricted = []Section{VisitHistory} }), Deny, NoRecord},
		{"the citizen reads their own", cit, req(Search, "DiagnosticReport", ""), visits, Permit, OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.s, tc.r, tc.st)
			assert.Equal(t, tc.effect, d.Effect, "decision: %+v", d)
			assert.Equal(t, tc.reason, d.Reason, "decision: %+v", d)
		})
	}
}

func TestLabResultShown(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status string
		date   time.Time
		years  int
		want   bool
	}{
		{"recent", "final", now.AddDate(0, -2, 0), 1, true},
		{"at the window's edge", "final", now.AddDate(-1, 0, 0), 1, true},
		{"just outside the window", "final", now.AddDate(-1, 0, 0).Add(-time.Second), 1, false},
		{"no date with a window", "final", time.Time{}, 1, false},
		{"no window", "final", now.AddDate(-9, 0, 0), 0, true},
		{"entered in error", "entered-in-error", now, 1, false},
		{"five years", "amended", now.AddDate(-4, 0, 0), 5, true},
	} {
		assert.Equal(t, tc.want, LabResultShown(tc.status, tc.date, now, tc.years), tc.name)
	}
	assert.Equal(t, 1, DefaultLabWindowYears(), "the test results' period")
}

func TestParseBasis(t *testing.T) {
	for _, b := range []string{"UNNTAK", "SAMTYKKE", "AKUTT", "FORHOYET_SAMTYKKE", "FORHOYET_AKUTT"} {
		got, ok := ParseBasis(b)
		assert.True(t, ok, b)
		assert.Equal(t, Basis(b), got)
	}
	for _, b := range []string{"", "unntak", "FORHØYET_SAMTYKKE", "AKUTT "} {
		_, ok := ParseBasis(b)
		assert.False(t, ok, b)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := &Policy{Orgs: Organisations{Hospitals: []string{hospital}}}
	s, r, st := hospitalDoctor(), req(Search, "MedicationStatement", Unntak), state(func(st *PatientState) { st.BlockedHPR = []string{"1", "2"} })
	for b.Loop() {
		if !p.Decide(s, r, st).Allowed() {
			b.Fatal("denied")
		}
	}
}
