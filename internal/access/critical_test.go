package access

import "testing"

// The national model of critical information beyond AllergyIntolerance and
// Flag: Condition, Procedure, and Consent of scope adr or treatment
// (marked Critical by the caller). They are Section Critical: rule 3, a
// treating HP sees them with any basis the token supports and reports
// them; restriction, reservation and blocks apply as to the rest of the
// critical information; a critical Consent is never a privacy setting.
func TestDecideCriticalModel(t *testing.T) {
	p := &Policy{Orgs: Organisations{Hospitals: []string{hospital}, ContractSpecialists: []string{specialty}}}
	other := with(gp(), func(s *Subject) { s.HPR = "991000009" })
	emergency := with(gp(), func(s *Subject) { s.HPR, s.LegalEntity, s.PurposeOfUse = "991000003", legevakt, "ETREAT" })
	cit := Subject{Role: Citizen, PID: pid, SecurityLevel: 4}
	support := Subject{Role: CitizenSupport}
	feeder := Subject{Role: System}
	critical := func(r Request) Request { r.Critical = true; return r }
	restricted := state(func(st *PatientState) { st.Restricted = []Section{Critical} })

	cases := []struct {
		name   string
		s      Subject
		r      Request
		st     PatientState
		effect Effect
		reason Reason
	}{
		{"Condition read by own GP with UNNTAK", gp(), req(Read, "Condition", Unntak), state(), Permit, OK},
		{"Condition search by other HP with SAMTYKKE", other, req(Search, "Condition", Samtykke), state(), Permit, OK},
		{"Condition read in an emergency", emergency, req(Read, "Condition", Akutt), state(), Permit, OK},
		{"Condition still needs a basis the token supports", other, req(Read, "Condition", Unntak), state(), Deny, UnntakNotSupported},
		{"Condition reported by HP", gp(), req(Create, "Condition", Unntak), state(), Permit, OK},
		{"Procedure read by hospital doctor", hospitalDoctor(), req(Read, "Procedure", Unntak), state(), Permit, OK},
		{"Procedure reported by HP", hospitalDoctor(), req(Update, "Procedure", Unntak), state(), Permit, OK},
		{"critical Consent read by HP", gp(), critical(req(Read, "Consent", Unntak)), state(), Permit, OK},
		{"critical Consent search by HP", other, critical(req(Search, "Consent", Samtykke)), state(), Permit, OK},
		{"critical Consent reported by HP", gp(), critical(req(Create, "Consent", Unntak)), state(), Permit, OK},
		{"privacy Consent still closed to HP", gp(), req(Read, "Consent", Unntak), state(), Deny, PrivacyByCitizenOnly},
		{"critical Consent is no privacy setting: support cannot write it", support, critical(req(Create, "Consent", "")), state(), Deny, RoleNotAllowed},
		{"critical Consent is no privacy setting: the citizen cannot write it", cit, critical(req(Create, "Consent", "")), state(), Deny, RoleNotAllowed},
		{"citizen reads own Condition", cit, req(Read, "Condition", ""), state(), Permit, OK},
		{"citizen reads own critical Consent", cit, critical(req(Search, "Consent", "")), state(), Permit, OK},
		{"feeder cannot write a Procedure", feeder, req(Create, "Procedure", ""), state(), Deny, FeederWritesOwnFields},
		{"feeder cannot write a critical Consent", feeder, critical(req(Create, "Consent", "")), state(), Deny, FeederWritesOwnFields},
		{"reserved: Condition as if no record", gp(), req(Read, "Condition", Unntak), state(func(st *PatientState) { st.Reserved = true }), Deny, NoRecord},
		{"reserved: no new Procedure", gp(), req(Create, "Procedure", Unntak), state(func(st *PatientState) { st.Reserved = true }), Deny, ReservedNoNewData},
		{"blocked HP: no critical Consent", gp(), critical(req(Read, "Consent", Akutt)), state(func(st *PatientState) { st.BlockedHPR = []string{gpHPR} }), Deny, HPBlocked},
		{"restricted critical information: Condition read refused", gp(), req(Read, "Condition", Unntak), restricted, Deny, SectionRestricted},
		{"restricted critical information: critical Consent search hides", gp(), critical(req(Search, "Consent", Unntak)), restricted, Permit, OKPartsHidden},
		{"restricted critical information: Procedure opened with FORHOYET_SAMTYKKE", other, req(Read, "Procedure", ForhoyetSamtykke), restricted, Permit, OKRestrictedOpened},
		{"restricted critical information leaves medications open", gp(), req(Read, "MedicationStatement", Unntak), restricted, Permit, OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(c.s, c.r, c.st)
			if d.Effect != c.effect || d.Reason != c.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", d.Effect, d.Reason, d.Message, c.effect, c.reason)
			}
		})
	}
	if SectionOf("Condition") != Critical || SectionOf("Procedure") != Critical {
		t.Errorf("Condition and Procedure are critical information")
	}
	if (Request{ResourceType: "Consent"}).Section() != Privacy || (Request{ResourceType: "Consent", Critical: true}).Section() != Critical {
		t.Errorf("a Consent is a privacy setting unless marked critical")
	}
}
