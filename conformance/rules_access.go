package conformance

import (
	"net/http"
	"slices"
	"strings"
)

// Rules 1–3: need to know, consent and its exemptions, critical
// information.

func checkNoHPROrLowLevel(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	issued := t.Token(PersonaGP, p)
	mintedTokenAccepted(t, issued, p)

	noHPR := mintToken(t, "practitioner-without-hpr", issued, func(c map[string]any) {
		delete(c, "helseid://claims/hpr/hpr_number")
	})
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, Token: noHPR, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: p, Refused: alBool(true), Also: func(ev AuditEvent) {
			if hpr := ev.AgentHPR(); hpr != "" {
				t.Errorf("the refusal of a token without an HPR number is logged with HPR number %q", hpr)
			}
		}}, "no-hpr-number")

	low := mintToken(t, "practitioner-security-level-3", issued, func(c map[string]any) {
		c["helseid://claims/identity/security_level"] = "3"
	})
	accessChecked(t, Request{Path: "Patient/" + p, Token: low, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "security-level-too-low")
}

func checkPatientNotInContext(t *T) {
	inContext, _ := t.NewPatient(PatientSpec{})
	other, _ := t.NewPatient(PatientSpec{})
	// The same token reads its own patient...
	accessChecked(t, Request{Path: "Patient/" + inContext, As: PersonaGP, Patient: inContext, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: inContext, AgentHPR: GPHPR, Reason: "ok"})
	// ...and nobody else's, whichever way it asks.
	for _, path := range []string{"Patient/" + other, "AllergyIntolerance?patient=" + other, "Patient/" + other + "/Flag"} {
		accessChecked(t, Request{Path: path, As: PersonaGP, Patient: inContext, Basis: "UNNTAK"},
			http.StatusForbidden, WantAudit{Patient: other, AgentHPR: GPHPR, Refused: alBool(true)}, "patient-not-in-context")
	}
}

func checkCrossPatientSearch(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	q, _ := t.NewPatient(PatientSpec{})
	for _, path := range []string{
		"AllergyIntolerance?criticality=high",
		"Flag",
		"AllergyIntolerance?patient=" + p + "," + q,
		"MedicationStatement?status=active",
		"DocumentReference?type=A00",
	} {
		req := Request{Path: path, As: PersonaGP, Patient: p, Basis: "UNNTAK"}
		what := describeRequest(req)
		res, rid := t.DoAudited(req)
		// The search issue answers 400 (a query the law does not allow),
		// the access-rules issue 403; both are a refusal that names the
		// legal reason.
		if res.Status != http.StatusBadRequest && res.Status != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 400 or 403: %s", what, res.Status, Outcome(res))
		}
		wantRefusal(t, what, res, res.Status, "no-patient-bound")
		// The refusal binds no patient, so the log has it by the agent.
		t.ExpectAuditLater(what, rid, WantAudit{AgentHPR: GPHPR, Outcome: "4", Reason: "no-patient-bound", Refused: alBool(true),
			Also: func(ev AuditEvent) {
				if got := ev.Patient(); got != "" {
					t.Errorf("%s: the refused cross-patient search is logged for Patient/%s", what, got)
				}
			}})
	}
}

func checkSystemCannotRead(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	t.Feed(rulesMedication(p, "Metoprolol 50 mg x 1"))
	for _, path := range []string{"MedicationStatement?patient=" + p, "Patient/" + p, "Patient/" + p + "/MedicationStatement"} {
		res := accessChecked(t, Request{Path: path, As: PersonaFeeder}, http.StatusForbidden,
			WantAudit{Patient: p, Refused: alBool(true), Also: func(ev AuditEvent) {
				if ev.AgentHPR() != "" {
					t.Errorf("GET %s as the feeder: logged with an HPR number", path)
				}
			}}, "system-no-clinical-read", "insufficient-scope")
		if strings.Contains(string(res.Body), "Metoprolol") {
			t.Errorf("GET %s as the feeder: the refusal carries the medication", path)
		}
	}
	// No bulk extraction: neither the feeder nor an HP gets an export.
	for _, req := range []Request{
		{Path: "$export", As: PersonaFeeder},
		{Path: "Patient/$export", As: PersonaFeeder},
		{Path: "Patient/$export", As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		{Path: "Group/1/$export", As: PersonaFeeder},
	} {
		res := t.Do(req)
		if res.Status < 400 || res.Status >= 500 {
			t.Errorf("%s: status %d, want a 4xx refusal (no bulk export of health data): %s", describeRequest(req), res.Status, Outcome(res))
		}
	}
}

func checkSamtykkeOK(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	reportCritical(t, PersonaGP, p, "UNNTAK", rulesAllergy(p, "Penicillin"))
	// The legevakt doctor is neither GP nor hospital staff: consent is
	// the main rule.
	res := accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaEmergency, Patient: p, Basis: "SAMTYKKE"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprEmergency, Reason: "ok", Refused: alBool(false), Emerg: alBool(false)})
	if n := len(matchRefs(res)); n != 1 {
		t.Errorf("AllergyIntolerance?patient= with SAMTYKKE: %d matches, want 1", n)
	}
	// A GP who is not this patient's GP may use SAMTYKKE too.
	q, _ := t.NewPatient(PatientSpec{GPHPR: "990099991"})
	accessChecked(t, Request{Path: "Patient/" + q, As: PersonaGP, Patient: q, Basis: "SAMTYKKE"},
		http.StatusOK, WantAudit{Patient: q, AgentHPR: GPHPR, Reason: "ok"})
}

func checkUnntakGP(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Pacemaker"))
	res := accessChecked(t, Request{Path: "Flag?patient=" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: GPHPR, Reason: "ok", Refused: alBool(false)})
	if n := len(matchRefs(res)); n != 1 {
		t.Errorf("Flag?patient= as the GP with UNNTAK: %d matches, want 1", n)
	}
}

func checkUnntakHospitalStaff(t *T) {
	p, _ := t.NewPatient(PatientSpec{GPHPR: "990099992"})
	accessChecked(t, Request{Path: "Patient/" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprHospitalDoctor, Reason: "ok"})
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaNurse, Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprNurse, Reason: "ok"})
}

func checkUnntakContractSpecialist(t *T) {
	p, _ := t.NewPatient(PatientSpec{GPHPR: "990099993"})
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: "contract-specialist", Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprContractSpecialist, Reason: "ok"})
}

func checkUnntakRefused(t *T) {
	// The gp persona is some other patient's GP, not this one's.
	p, _ := t.NewPatient(PatientSpec{GPHPR: "990099994"})
	res := accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "unntak-not-supported")
	if !strings.Contains(Outcome(res), "SAMTYKKE") {
		t.Errorf("the refusal of UNNTAK does not tell the HP to declare SAMTYKKE: %s", Outcome(res))
	}
	// The legevakt is no hospital: its doctor declares AKUTT or SAMTYKKE.
	accessChecked(t, Request{Path: "Patient/" + p, As: PersonaEmergency, Patient: p, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: hprEmergency, Refused: alBool(true)}, "unntak-not-supported")
}

func checkAkuttNeedsETREAT(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	reportCritical(t, PersonaGP, p, "UNNTAK", rulesAllergy(p, "Penicillin"))
	res := accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaEmergency, Patient: p, Basis: "AKUTT"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprEmergency, Reason: "ok", Emerg: alBool(true)})
	if n := len(matchRefs(res)); n != 1 {
		t.Errorf("AllergyIntolerance?patient= with AKUTT: %d matches, want 1", n)
	}
	// The GP's token has purpose of use TREAT: no emergency.
	res = accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaGP, Patient: p, Basis: "AKUTT"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "akutt-not-supported")
	if !strings.Contains(Outcome(res), "ETREAT") {
		t.Errorf("the refusal of AKUTT does not name the purpose of use it needs (ETREAT): %s", Outcome(res))
	}
	accessChecked(t, Request{Path: "Patient/" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "FORHOYET_AKUTT"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: hprHospitalDoctor, Refused: alBool(true)}, "akutt-not-supported")
}

func checkBasisMissing(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaGP, Patient: p},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "access-basis-missing")
	res := accessChecked(t, Request{Path: "Patient/" + p, As: PersonaGP, Patient: p, Basis: "KANSKJE"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "access-basis-unknown")
	if !strings.Contains(Outcome(res), "KANSKJE") {
		t.Errorf("the refusal of an unknown basis does not name it: %s", Outcome(res))
	}
}

// criticalOf returns the ids of the critical information a search found.
func criticalOf(res *Response) []string {
	ids := matchRefs(res)
	slices.Sort(ids)
	return ids
}

func checkCriticalVisible(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	a := "AllergyIntolerance/" + reportCritical(t, PersonaGP, p, "UNNTAK", rulesAllergy(p, "Penicillin"))
	f := "Flag/" + reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Pacemaker"))
	for _, c := range []struct{ persona, hpr, basis string }{
		{PersonaGP, GPHPR, "UNNTAK"},
		{PersonaHospitalDoctor, hprHospitalDoctor, "UNNTAK"},
		{PersonaNurse, hprNurse, "UNNTAK"},
		{PersonaEmergency, hprEmergency, "AKUTT"},
		{"contract-specialist", hprContractSpecialist, "SAMTYKKE"},
	} {
		for _, want := range []string{a, f} {
			typ, _, _ := strings.Cut(want, "/")
			res := accessChecked(t, Request{Path: typ + "?patient=" + p, As: c.persona, Patient: p, Basis: c.basis},
				http.StatusOK, WantAudit{Patient: p, AgentHPR: c.hpr, Reason: "ok"})
			if got := criticalOf(res); !slices.Equal(got, []string{want}) {
				t.Errorf("%s?patient= as %s with %s: matches %v, want %s", typ, c.persona, c.basis, got, want)
			}
		}
	}
}

func checkCriticalVisibleWhenRestricted(t *T) {
	cit, _ := t.CitizenPatient()
	f := reportCritical(t, PersonaHospitalDoctor, cit, "UNNTAK", rulesFlag(cit, "Anafylaksi ved lateks"))
	t.Cleanup(func() {
		t.Do(Request{Method: http.MethodDelete, Path: "Flag/" + f, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"})
	})
	setPrivacy(t, PersonaCitizen, cit, privacyRestriction, []string{"medications", "visits", "documents"}, nil)
	res := accessChecked(t, Request{Path: "Flag?patient=" + cit, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Reason: "ok", Opened: alBool(false)})
	if !slices.Contains(matchRefs(res), "Flag/"+f) {
		t.Errorf("Flag?patient= with medications, visits and documents restricted: Flag/%s is not among the matches %v", f, matchRefs(res))
	}
	if redacted(res) {
		t.Errorf("Flag?patient=: the Bundle is labelled REDACTED although critical information is not restricted")
	}
}
