package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Rules 4–8: reservation, restriction, blocking named HP, documents, the
// citizen. Reservation, restriction and portal access are the citizen's
// own settings, so those scenarios run on the citizen persona's patient
// and lift every setting again (setPrivacy registers the lifting).

// notFoundLike checks that res answers as for a patient the server never
// had (none): the same status and issue code, and a message that differs
// only by the id, so a reserved record cannot be told from no record.
func notFoundLike(t *T, what string, res, none *Response, id, noneID string) {
	if res.Status != http.StatusNotFound {
		t.Fatalf("%s: status %d, want 404 as if there were no record: %s", what, res.Status, Outcome(res))
	}
	if none.Status != http.StatusNotFound {
		t.Fatalf("the same request for a patient the server never had: status %d, want 404: %s", none.Status, Outcome(none))
	}
	got := strings.ReplaceAll(Outcome(res), id, "<id>")
	want := strings.ReplaceAll(Outcome(none), noneID, "<id>")
	if got != want {
		t.Errorf("%s: answered %q, but for a patient the server never had %q: a reservation must not show", what, got, want)
	}
	low := strings.ToLower(string(res.Body))
	for _, leak := range []string{"reserv", "opted out", "opt-out", "secret", "hemmelig"} {
		if strings.Contains(low, leak) {
			t.Errorf("%s: the 404 says %q: a reservation must not show", what, leak)
		}
	}
}

// hiddenAccess reads path as persona for patient (a reserved one) and for
// a patient the server never had, and checks the answers are alike and the
// log keeps the real reason.
func hiddenAccess(t *T, persona, hpr, path, patient, basis string) {
	none := unknownPatientID()
	noneRes := t.Do(Request{Path: strings.ReplaceAll(path, patient, none), As: persona, Patient: none, Basis: basis})
	req := Request{Path: path, As: persona, Patient: patient, Basis: basis}
	res, rid := t.DoAudited(req)
	notFoundLike(t, describeRequest(req), res, noneRes, patient, none)
	// The answer hides the reservation; the usage log keeps the reason.
	t.ExpectAuditLater(describeRequest(req), rid, WantAudit{Patient: patient, AgentHPR: hpr, Outcome: "4", Reason: "no-record", Refused: alBool(true), Basis: basis})
}

func checkReservation(t *T) {
	cit, _ := t.CitizenPatient()
	m := feedRemoved(t, rulesMedication(cit, "Metoprolol 50 mg x 1"))
	doc := PersonaHospitalDoctor
	accessChecked(t, Request{Path: "MedicationStatement/" + m, As: doc, Patient: cit, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Reason: "ok"})

	r := setPrivacy(t, PersonaCitizen, cit, privacyReservation, nil, nil)
	for _, path := range []string{"Patient/" + cit, "MedicationStatement?patient=" + cit, "Patient/" + cit + "/AllergyIntolerance"} {
		hiddenAccess(t, doc, hprHospitalDoctor, path, cit, "UNNTAK")
	}
	res := t.Do(Request{Path: "MedicationStatement/" + m, As: doc, Patient: cit, Basis: "UNNTAK"})
	if res.Status != http.StatusNotFound {
		t.Errorf("GET MedicationStatement/%s of the reserved patient: status %d, want 404: %s", m, res.Status, Outcome(res))
	}
	// No new data: neither from the feeder nor from an HP.
	accessChecked(t, Request{Method: http.MethodPost, Path: "MedicationStatement", As: PersonaFeeder, Body: rulesMedication(cit, "Atorvastatin")},
		http.StatusForbidden, WantAudit{Patient: cit, Refused: alBool(true)}, "reserved-no-new-data")
	res = t.Do(Request{Method: http.MethodPost, Path: "Flag", As: doc, Patient: cit, Basis: "UNNTAK", Body: rulesFlag(cit, "Pacemaker")})
	if res.Status/100 == 2 {
		t.Errorf("an HP reports a Flag for the reserved patient: status %d, want a refusal (no new data)", res.Status)
	}

	// Undo within 30 days: everything is back.
	r.lift(t)
	accessChecked(t, Request{Path: "MedicationStatement/" + m, As: doc, Patient: cit, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Reason: "ok"})
	res = t.Do(Request{Path: "Patient/" + cit, As: doc, Patient: cit, Basis: "UNNTAK"})
	if res.Status != http.StatusOK {
		t.Errorf("GET Patient/%s after the citizen undid the reservation: status %d, want 200: %s", cit, res.Status, Outcome(res))
	}
}

func checkSecretAddress(t *T) {
	p, _ := t.NewPatient(PatientSpec{SecretAddress: true})
	for _, path := range []string{"Patient/" + p, "AllergyIntolerance?patient=" + p} {
		hiddenAccess(t, PersonaGP, GPHPR, path, p, "UNNTAK")
	}
	accessChecked(t, Request{Method: http.MethodPost, Path: "MedicationStatement", As: PersonaFeeder, Body: rulesMedication(p, "Metoprolol")},
		http.StatusForbidden, WantAudit{Patient: p, Refused: alBool(true)}, "reserved-no-new-data")
}

func checkRestriction(t *T) {
	cit, _ := t.CitizenPatient()
	m := feedRemoved(t, rulesMedication(cit, "Sertralin 50 mg"))
	e := feedRemoved(t, rulesEncounter(cit, "Innleggelse"))
	doc := PersonaHospitalDoctor
	setPrivacy(t, PersonaCitizen, cit, privacyRestriction, []string{"medications"}, nil)

	// Left out of a search, saying that something is restricted.
	res := accessChecked(t, Request{Path: "MedicationStatement?patient=" + cit, As: doc, Patient: cit, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Reason: "ok-restricted-hidden", Opened: alBool(false)})
	if refs := matchRefs(res); len(refs) != 0 {
		t.Errorf("MedicationStatement?patient= with medications restricted: matches %v, want none", refs)
	}
	if strings.Contains(string(res.Body), "Sertralin") {
		t.Errorf("MedicationStatement?patient= with medications restricted: the Bundle carries the medication")
	}
	said := false
	for _, oo := range entriesOf(res, "outcome") {
		said = said || slices.ContainsFunc(accessReasons(&Response{parsed: oo}), func(c string) bool {
			return c == "ok-restricted-hidden" || c == "section-restricted"
		})
	}
	if !said {
		t.Errorf("MedicationStatement?patient= with medications restricted: no OperationOutcome entry says restricted information exists")
	}
	if !redacted(res) {
		t.Errorf("MedicationStatement?patient= with medications restricted: the Bundle has no REDACTED security label")
	}
	// A read of the restricted resource is refused with the reason.
	accessChecked(t, Request{Path: "MedicationStatement/" + m, As: doc, Patient: cit, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Refused: alBool(true)}, "section-restricted")
	// What is not restricted stays visible.
	res = t.Do(Request{Path: "Encounter?patient=" + cit, As: doc, Patient: cit, Basis: "UNNTAK"})
	if !slices.Contains(matchRefs(res), "Encounter/"+e) {
		t.Errorf("Encounter?patient= with only medications restricted: Encounter/%s is not among the matches %v (status %d)", e, matchRefs(res), res.Status)
	}
	// $kj-status tells that parts are restricted, without health data.
	st := t.Do(Request{Path: "Patient/" + cit + "/$kj-status", As: doc, Patient: cit})
	if st.Status != http.StatusOK || !strings.Contains(string(st.Body), `"restricted"`) || !strings.Contains(string(st.Body), "medications") {
		t.Errorf("Patient/%s/$kj-status with medications restricted: status %d, want 200 naming the restricted section: %s", cit, st.Status, Outcome(st))
	}

	// FORHOYET_SAMTYKKE opens it; the opening is logged as such.
	var opened string
	for _, basis := range []string{"FORHOYET_SAMTYKKE", "FORHOYET_AKUTT"} {
		persona, hpr := doc, hprHospitalDoctor
		if basis == "FORHOYET_AKUTT" {
			persona, hpr = PersonaEmergency, hprEmergency
		}
		req := Request{Path: "MedicationStatement?patient=" + cit, As: persona, Patient: cit, Basis: basis}
		res, rid := t.DoAudited(req)
		wantStatus(t, describeRequest(req), res, http.StatusOK)
		if !slices.Contains(matchRefs(res), "MedicationStatement/"+m) {
			t.Errorf("%s: MedicationStatement/%s is not among the matches %v", describeRequest(req), m, matchRefs(res))
		}
		t.ExpectAuditLater(describeRequest(req), rid, WantAudit{Patient: cit, AgentHPR: hpr, Outcome: "0", Basis: basis,
			Reason: "ok-restricted-opened", Opened: alBool(true), Emerg: alBool(basis == "FORHOYET_AKUTT")})
		if opened == "" {
			opened = rid
		}
	}

	// The citizen's log shows the opening, marked.
	for _, ev := range t.SearchAuditEvents(PersonaCitizen, url.Values{"patient": {cit}, "_count": {"100"}}) {
		if ev.RequestID() != opened {
			continue
		}
		if !slices.Contains(ev.Tags(), "restricted-opened") {
			t.Errorf("the citizen's log shows the opening of restricted medications without the restricted-opened marker (tags %v)", ev.Tags())
		}
		return
	}
	t.Errorf("the citizen's log (GET /AuditEvent?patient=%s as the citizen) does not show the opening of restricted medications (request id %s)", cit, opened)
}

func checkBlockedHP(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	reportCritical(t, PersonaGP, p, "UNNTAK", rulesAllergy(p, "Penicillin"))
	block := setPrivacy(t, PersonaSupport, p, privacyBlock, nil, []string{hprEmergency})

	for _, basis := range []string{"AKUTT", "FORHOYET_AKUTT", "SAMTYKKE"} {
		res := accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaEmergency, Patient: p, Basis: basis},
			http.StatusForbidden, WantAudit{Patient: p, AgentHPR: hprEmergency, Refused: alBool(true), Emerg: alBool(basis != "SAMTYKKE")}, "hp-blocked")
		if strings.Contains(string(res.Body), "Penicillin") {
			t.Errorf("the blocked HP's refusal carries the allergy")
		}
	}
	// Only the named HP is blocked.
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: GPHPR, Reason: "ok"})
	// $kj-status tells the HP that they are blocked.
	st := t.Do(Request{Path: "Patient/" + p + "/$kj-status", As: PersonaEmergency, Patient: p})
	if st.Status != http.StatusOK || !strings.Contains(strings.ReplaceAll(string(st.Body), " ", ""), `"name":"blocked","valueBoolean":true`) {
		t.Errorf("Patient/%s/$kj-status as the blocked HP: status %d, want 200 with blocked true: %s", p, st.Status, Outcome(st))
	}

	// Lifted on the citizen's request: the HP gets in again.
	block.lift(t)
	accessChecked(t, Request{Path: "AllergyIntolerance?patient=" + p, As: PersonaEmergency, Patient: p, Basis: "AKUTT"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: hprEmergency, Reason: "ok", Emerg: alBool(true)})
}

func checkBlocksBySupportOnly(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	body := privacyConsent(p, privacyBlock, true, time.Now(), nil, []string{hprEmergency})
	// An HP: the scopes already stop it, or the rules do.
	accessChecked(t, Request{Method: http.MethodPost, Path: "Consent", As: PersonaGP, Patient: p, Basis: "UNNTAK", Body: body},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)},
		"privacy-by-citizen-only", "blocks-by-support-only", "insufficient-scope")
	// The citizen asks citizen-support; they cannot block on their own.
	cit, _ := t.CitizenPatient()
	body = privacyConsent(cit, privacyBlock, true, time.Now(), nil, []string{hprEmergency})
	req := Request{Method: http.MethodPost, Path: "Consent", As: PersonaCitizen, Body: body}
	res, rid := t.DoAudited(req)
	if res.Status == http.StatusCreated {
		// Undo the wrongly accepted block before failing.
		id, _ := res.JSON()["id"].(string)
		s := &privacySetting{persona: PersonaSupport, patient: cit, kind: privacyBlock, id: id, hprs: []string{hprEmergency}, at: time.Now()}
		t.Cleanup(func() { s.lift(t) })
	}
	wantRefusal(t, describeRequest(req), res, http.StatusForbidden, "blocks-by-support-only")
	t.ExpectAuditLater(describeRequest(req), rid, WantAudit{Patient: cit, Outcome: "4", Reason: "blocks-by-support-only", Refused: alBool(true)})
}

func checkDocumentsUnavailable(t *T, sections []string) {
	cit, _ := t.CitizenPatient()
	r := setPrivacy(t, PersonaCitizen, cit, privacyRestriction, sections, nil)
	res := accessChecked(t, Request{Path: "DocumentReference?patient=" + cit, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: cit, AgentHPR: hprHospitalDoctor, Refused: alBool(true)}, "documents-unavailable")
	if strings.Contains(string(res.Body), "DocumentReference\"") {
		t.Errorf("the refusal carries DocumentReferences")
	}
	// The documents group checks the search itself; here only that the
	// refusal goes with the setting.
	r.lift(t)
	res = t.Do(Request{Path: "DocumentReference?patient=" + cit, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"})
	if res.Status != http.StatusOK {
		t.Errorf("DocumentReference?patient= after the citizen lifted the restriction: status %d, want 200: %s", res.Status, Outcome(res))
	}
}

func checkDocumentsVisitsRestricted(t *T) { checkDocumentsUnavailable(t, []string{"visits"}) }

func checkDocumentsSharingBlocked(t *T) { checkDocumentsUnavailable(t, []string{"documents"}) }

func checkCitizenOwnOnly(t *T) {
	cit, pid := t.CitizenPatient()
	accessChecked(t, Request{Path: "Patient/" + cit, As: PersonaCitizen}, http.StatusOK, WantAudit{Patient: cit, Reason: "ok"})
	other, _ := t.NewPatient(PatientSpec{})
	for _, path := range []string{"Patient/" + other, "AllergyIntolerance?patient=" + other, "AuditEvent?patient=" + other} {
		accessChecked(t, Request{Path: path, As: PersonaCitizen}, http.StatusForbidden,
			WantAudit{Patient: other, Refused: alBool(true), Also: func(ev AuditEvent) {
				who := alObj(alObj(ev.Requestor()["who"])["identifier"])
				if alStr(who, "value") != pid {
					t.Errorf("GET %s as the citizen: the refusal is logged with requestor %v, want the citizen's person number", path, who)
				}
			}}, "not-own-record", "patient-not-in-context")
	}
}

func checkPortalAccessRemoved(t *T) {
	cit, _ := t.CitizenPatient()
	s := setPrivacy(t, PersonaCitizen, cit, privacyPortalAccess, nil, nil)
	accessChecked(t, Request{Path: "Patient/" + cit, As: PersonaCitizen}, http.StatusForbidden,
		WantAudit{Patient: cit, Refused: alBool(true)}, "portal-access-removed")
	// The citizen still manages their settings, but cannot restore access
	// online: citizen support does, on request.
	res := t.Do(s.liftRequest(PersonaCitizen))
	wantRefusal(t, "the citizen restores their own portal access (PUT Consent status inactive)", res, http.StatusForbidden, "portal-restored-by-support")
	s.lift(t)
	accessChecked(t, Request{Path: "Patient/" + cit, As: PersonaCitizen}, http.StatusOK, WantAudit{Patient: cit, Reason: "ok"})
}

func checkCitizenReadsOwnLog(t *T) {
	cit, _ := t.CitizenPatient()
	_, rid := t.DoAudited(Request{Path: "Patient/" + cit, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"})
	evs := t.SearchAuditEvents(PersonaCitizen, url.Values{"patient": {cit}, "_count": {"100"}})
	found := false
	for _, ev := range evs {
		found = found || ev.RequestID() == rid
		if ev.Patient() != cit {
			t.Errorf("the citizen's log holds %s about Patient/%s", ev, ev.Patient())
		}
	}
	if !found {
		t.Errorf("the citizen's log does not show the hospital doctor's read of their record (request id %s)", rid)
	}
	// Only their own.
	other, _ := t.NewPatient(PatientSpec{})
	res := t.Do(Request{Path: "AuditEvent?patient=" + other, As: PersonaCitizen})
	wantRefusal(t, "GET /AuditEvent?patient=<another person> as the citizen", res, http.StatusForbidden, "not-own-record", "patient-not-in-context")
	res = t.Do(Request{Path: "AuditEvent", As: PersonaCitizen})
	if res.Status/100 == 2 {
		t.Errorf("GET /AuditEvent without a patient as the citizen: status %d, want a refusal", res.Status)
	}
}
