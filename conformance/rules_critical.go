package conformance

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The national critical-information model (issue 16): besides
// AllergyIntolerance and Flag, anaesthesia complications, critical
// medical conditions, implants and transplants and infection as Condition,
// ongoing treatment as Procedure, and limits of life-prolonging treatment
// and treatment clarifications as Consent of scope adr / treatment. For
// each type the suite checks that an HP can report it (and the server
// names the HP in the contained recorderRef), read it, find it by patient
// and criticalInfoType, that a report breaking the profile is answered 422
// naming the rule, that a Subscription hears of it, and that $kj-status
// counts it.

const (
	nationalInfoTypeSystem = "https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type"
	// criticalScopes lets the practitioner's token report every type.
	criticalScopes = " patient/Condition.cud patient/Procedure.cud patient/Consent.cud"
)

// criticalType is one type of critical information of the national model.
type criticalType struct {
	name     string // check id part
	code     string // criticalInfoType
	number   int    // the national model's number
	resource string
	// broken changes a valid report so that it breaks rule.
	broken func(r map[string]any)
	rule   string
}

var criticalTypes = []criticalType{
	{"intubation-problem", "IntubationProblem", 3, "Condition", func(r map[string]any) { delete(r, "code") }, "kj-condition-2"},
	{"other-anesthesia-problem", "OtherAnesthesiaProblem", 4, "Condition", func(r map[string]any) { delete(r, "clinicalStatus") }, "kj-condition-4"},
	{"critical-medical-condition", "CriticalMedicalCondition", 5, "Condition", func(r map[string]any) { r["category"] = []any{map[string]any{"text": "kritisk"}} }, "kj-condition-1"},
	{"ongoing-treatment", "OngoingTreatment", 6, "Procedure", func(r map[string]any) { r["status"] = "preparation" }, "kj-procedure-1"},
	{"transplants-and-foreign-bodies", "TransplantsAndOtherForeignBodies", 7, "Condition", func(r map[string]any) {
		r["extension"] = []any{map[string]any{"url": "https://kjernejournal.example.no/fhir/StructureDefinition/KjSourceOfInformation", "valueString": " "}}
	}, "kj-source-1"},
	{"limits-of-life-prolonging-treatment", "LimitsOfLifeProlongingTreatment", 8, "Consent", func(r map[string]any) { delete(r, "dateTime") }, "kj-consent-5"},
	{"infection", "Infection", 10, "Condition", func(r map[string]any) {
		r["verificationStatus"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}}}
	}, "kj-condition-4"},
	{"treatment-clarification", "TreatmentClarification", 11, "Consent", func(r map[string]any) { delete(r, "provision") }, "kj-consent-6"},
}

func init() {
	for _, ct := range criticalTypes {
		ct := ct
		what := ct.resource + " (" + ct.code + ", type " + strconv.Itoa(ct.number) + ")"
		register(
			Check{GroupRules, "rules/critical-" + ct.name + "-write-read", "critical information: an HP reports a " + what + ", the server names the HP in the contained recorderRef, and the HP reads it back", func(t *T) { checkCriticalWriteRead(t, ct) }},
			Check{GroupRules, "rules/critical-" + ct.name + "-search", "critical information: a " + what + " is found by patient and by criticalInfoType, and not by another type", func(t *T) { checkCriticalSearch(t, ct) }},
			Check{GroupRules, "rules/critical-" + ct.name + "-profile-422", "critical information: a " + what + " that breaks its profile is answered 422 with an OperationOutcome naming the rule (" + ct.rule + "), and nothing is stored", func(t *T) { checkCriticalProfile(t, ct) }},
			Check{GroupRules, "rules/critical-" + ct.name + "-notification", "critical information: a Subscription on " + ct.resource + " hears of a new " + what + ", by id only", func(t *T) { checkCriticalNotification(t, ct) }},
			Check{GroupRules, "rules/critical-" + ct.name + "-kj-status", "critical information: $kj-status says that the patient has critical information once a " + what + " is reported", func(t *T) { checkCriticalStatus(t, ct) }},
		)
	}
	register(Check{GroupRules, "rules/critical-consent-apart-from-privacy", "critical information kept as Consent (scope adr or treatment) is no privacy setting: an HP finds it and never a privacy setting, and the citizen's privacy settings do not include it", checkCriticalConsentApart})
}

// criticalReport is a valid report of ct for patient, with text.
func criticalReport(ct criticalType, patient, text string) map[string]any {
	category := map[string]any{"coding": []any{map[string]any{"system": nationalInfoTypeSystem, "code": ct.code}}}
	src := []any{map[string]any{"url": "https://kjernejournal.example.no/fhir/StructureDefinition/KjSourceOfInformation", "valueString": "Pasienten selv"}}
	switch ct.resource {
	case "Procedure":
		return map[string]any{
			"resourceType": "Procedure", "status": "in-progress", "category": category,
			"extension": append(src, map[string]any{"url": "https://kjernejournal.example.no/fhir/StructureDefinition/KjValidUntil", "valueDateTime": "2030-12-31"}),
			"code":      map[string]any{"text": text}, "subject": map[string]any{"reference": "Patient/" + patient},
			"performedDateTime": "2024-05-01",
		}
	case "Consent":
		scope := "adr"
		if ct.code == "TreatmentClarification" {
			scope = "treatment"
		}
		return map[string]any{
			"resourceType": "Consent", "status": "active", "extension": src,
			"scope":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope}}},
			"category": []any{category}, "patient": map[string]any{"reference": "Patient/" + patient},
			"dateTime":   "2025-01-02T10:00:00+01:00",
			"policyRule": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}}},
			"provision":  map[string]any{"type": "deny", "code": []any{map[string]any{"text": text}}},
		}
	}
	return map[string]any{
		"resourceType": "Condition", "extension": src,
		"clinicalStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}}},
		"category":       []any{category}, "code": map[string]any{"text": text},
		"subject": map[string]any{"reference": "Patient/" + patient},
	}
}

func criticalToken(t *T, patient string) string {
	return t.TokenWithScope(PersonaGP, patient, personaScopes["practitioner"]+criticalScopes)
}

// reportNational posts a valid report of ct as the patient's GP and
// returns its id.
func reportNational(t *T, ct criticalType, patient, text string) string {
	res := t.Do(Request{Method: http.MethodPost, Path: ct.resource, Token: criticalToken(t, patient), Basis: "UNNTAK", Body: criticalReport(ct, patient, text)})
	wantStatus(t, "POST "+ct.resource+" ("+ct.code+")", res, http.StatusCreated)
	id, _ := res.JSON()["id"].(string)
	if id == "" {
		t.Fatalf("POST %s: the created resource has no id", ct.resource)
	}
	return id
}

func checkCriticalWriteRead(t *T, ct criticalType) {
	p, _ := t.NewPatient(PatientSpec{})
	text := "Konformanse " + ct.code + " " + t.NewRequestID()
	id := reportNational(t, ct, p, text)
	res := t.Do(Request{Path: ct.resource + "/" + id, Token: criticalToken(t, p), Basis: "UNNTAK"})
	wantStatus(t, "GET "+ct.resource+"/"+id, res, http.StatusOK)
	if !strings.Contains(string(res.Body), text) {
		t.Errorf("GET %s/%s does not return the reported text", ct.resource, id)
	}
	r := res.JSON()
	var role map[string]any
	for _, c := range alList(r["contained"]) {
		if alStr(c, "id") == "recorderRef" {
			role = c
		}
	}
	if alStr(role, "resourceType") != "PractitionerRole" {
		t.Fatalf("GET %s/%s: no contained PractitionerRole recorderRef: %s", ct.resource, id, res.Body)
	}
	hpr := alObj(alObj(role["practitioner"])["identifier"])
	if alStr(hpr, "system") != "urn:oid:2.16.578.1.12.4.1.4.4" || alStr(hpr, "value") != GPHPR {
		t.Errorf("recorderRef names %v, want the HPR number of the token (%s)", hpr, GPHPR)
	}
	ref := alObj(r["recorder"])
	if ct.resource == "Consent" {
		ref = nil
		for _, p := range alList(r["performer"]) {
			if alStr(p, "reference") == "#recorderRef" {
				ref = p
			}
		}
	}
	if alStr(ref, "reference") != "#recorderRef" {
		t.Errorf("GET %s/%s: the recorder is not the contained #recorderRef: %s", ct.resource, id, res.Body)
	}
	meta := alObj(r["meta"])
	if alStr(meta, "versionId") == "" || !strings.Contains(string(res.Body), "StructureDefinition/Kj") {
		t.Errorf("GET %s/%s: no meta.versionId or no kjernejournal profile in meta.profile: %v", ct.resource, id, meta)
	}
	hist := t.Do(Request{Path: ct.resource + "/" + id + "/_history", Token: criticalToken(t, p), Basis: "UNNTAK"})
	wantStatus(t, "GET "+ct.resource+"/"+id+"/_history", hist, http.StatusOK)
}

func searchIDs(res *Response, typ string) []string {
	var ids []string
	for _, e := range alList(res.JSON()["entry"]) {
		if r := alObj(e["resource"]); alStr(r, "resourceType") == typ {
			ids = append(ids, alStr(r, "id"))
		}
	}
	return ids
}

func checkCriticalSearch(t *T, ct criticalType) {
	p, _ := t.NewPatient(PatientSpec{})
	id := reportNational(t, ct, p, "Konformanse søk "+ct.code)
	tok := criticalToken(t, p)
	for _, q := range []string{"patient=" + p, "patient=" + p + "&criticalInfoType=" + ct.code,
		"patient=" + p + "&criticalInfoType=" + url.QueryEscape(nationalInfoTypeSystem+"|"+ct.code)} {
		res := t.Do(Request{Path: ct.resource + "?" + q, Token: tok, Basis: "SAMTYKKE"})
		wantStatus(t, "GET "+ct.resource+"?"+q, res, http.StatusOK)
		if ids := searchIDs(res, ct.resource); len(ids) != 1 || ids[0] != id {
			t.Errorf("GET %s?%s finds %v, want [%s]", ct.resource, q, ids, id)
		}
	}
	other := "Infection"
	if ct.code == other {
		other = "CriticalMedicalCondition"
	}
	q := "patient=" + p + "&criticalInfoType=" + other
	res := t.Do(Request{Path: ct.resource + "?" + q, Token: tok, Basis: "SAMTYKKE"})
	wantStatus(t, "GET "+ct.resource+"?"+q, res, http.StatusOK)
	if ids := searchIDs(res, ct.resource); len(ids) != 0 {
		t.Errorf("GET %s?%s finds %v, want none", ct.resource, q, ids)
	}
	// Rule 1: bound to one patient, whatever the type (400 from the
	// search, or 403 from the access rules, both naming the reason).
	res = t.Do(Request{Path: ct.resource + "?criticalInfoType=" + ct.code, Token: tok, Basis: "SAMTYKKE"})
	if res.Status != http.StatusBadRequest && res.Status != http.StatusForbidden {
		t.Fatalf("GET %s?criticalInfoType=%s (no patient): status %d, want 400 or 403: %s", ct.resource, ct.code, res.Status, Outcome(res))
	}
	wantRefusal(t, "GET "+ct.resource+"?criticalInfoType="+ct.code+" (no patient)", res, res.Status, "no-patient-bound")
}

func checkCriticalProfile(t *T, ct criticalType) {
	p, _ := t.NewPatient(PatientSpec{})
	body := criticalReport(ct, p, "Konformanse brudd "+ct.code)
	ct.broken(body)
	res := t.Do(Request{Method: http.MethodPost, Path: ct.resource, Token: criticalToken(t, p), Basis: "UNNTAK", Body: body})
	if res.Status != http.StatusUnprocessableEntity || res.ResourceType() != "OperationOutcome" {
		t.Fatalf("POST %s breaking %s: status %d (%s), want 422 with an OperationOutcome: %s", ct.resource, ct.rule, res.Status, res.ResourceType(), Outcome(res))
	}
	named := false
	for _, is := range alList(res.JSON()["issue"]) {
		named = named || strings.Contains(alStr(is, "diagnostics"), ct.rule) && is["expression"] != nil
	}
	if !named {
		t.Errorf("POST %s breaking %s: no issue names the rule and the element: %s", ct.resource, ct.rule, res.Body)
	}
	s := t.Do(Request{Path: ct.resource + "?patient=" + p, Token: criticalToken(t, p), Basis: "UNNTAK"})
	wantStatus(t, "GET "+ct.resource+"?patient="+p, s, http.StatusOK)
	if ids := searchIDs(s, ct.resource); len(ids) != 0 {
		t.Errorf("the refused %s was stored: %v", ct.resource, ids)
	}
}

func checkCriticalNotification(t *T, ct criticalType) {
	p, _ := t.NewPatient(PatientSpec{})
	hook := startReceiver(t)
	tok := t.TokenWithScope(PersonaGP, p, personaScopes["practitioner"]+criticalScopes+" patient/Subscription.cr")
	sub := subscription(p, hook.url, "id-only")
	sub["criteria"] = ct.resource + "?patient=" + p
	res := t.Do(Request{Method: http.MethodPost, Path: "Subscription", Token: tok, Basis: "UNNTAK", Body: sub})
	if res.Status == http.StatusUnprocessableEntity && strings.Contains(Outcome(res), "endpoint") {
		t.Skipf("the server does not send notifications to %s (a receiver on the suite's loopback): %s", hook.url, Outcome(res))
	}
	wantStatus(t, "POST Subscription ("+ct.resource+"?patient=)", res, http.StatusCreated)
	secret := "Konformanse varsel " + t.NewRequestID()
	id := reportNational(t, ct, p, secret)
	note := string(hook.next(t))
	if strings.Contains(note, secret) {
		t.Errorf("the notification carries the %s's content (health data): %s", ct.resource, note)
	}
	if !strings.Contains(note, ct.resource+"/"+id) {
		t.Errorf("the notification does not name the new %s/%s: %s", ct.resource, id, note)
	}
}

func kjStatus(t *T, patient string) map[string]any {
	res := t.Do(Request{Path: "Patient/" + patient + "/$kj-status", Token: criticalToken(t, patient)})
	wantStatus(t, "GET Patient/"+patient+"/$kj-status", res, http.StatusOK)
	out := map[string]any{}
	for _, p := range alList(res.JSON()["parameter"]) {
		for k, v := range p {
			if strings.HasPrefix(k, "value") {
				out[alStr(p, "name")] = v
			}
		}
	}
	return out
}

func checkCriticalStatus(t *T, ct criticalType) {
	p, _ := t.NewPatient(PatientSpec{})
	if has, _ := kjStatus(t, p)["hasCriticalInformation"].(bool); has {
		t.Fatalf("$kj-status of a new patient says hasCriticalInformation")
	}
	reportNational(t, ct, p, "Konformanse status "+ct.code)
	st := kjStatus(t, p)
	if has, _ := st["hasCriticalInformation"].(bool); !has {
		t.Errorf("$kj-status after a %s (%s) says no critical information: %v", ct.resource, ct.code, st)
	}
	if st["criticalInformationLastChanged"] == nil {
		t.Errorf("$kj-status after a %s has no criticalInformationLastChanged: %v", ct.resource, st)
	}
}

func checkCriticalConsentApart(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	limits := criticalTypes[5]
	id := reportNational(t, limits, p, "Ikke HLR")
	tok := criticalToken(t, p)
	// The HP's plain Consent search is for critical information.
	res := t.Do(Request{Path: "Consent?patient=" + p, Token: tok, Basis: "UNNTAK"})
	wantStatus(t, "GET Consent?patient= (HP)", res, http.StatusOK)
	if ids := searchIDs(res, "Consent"); len(ids) != 1 || ids[0] != id {
		t.Errorf("GET Consent?patient=%s as HP finds %v, want the critical Consent %s only", p, ids, id)
	}
	// The record still answers: the privacy rules read the patient's
	// Consents on every request and do not take this one for a setting.
	res = t.Do(Request{Path: "Flag?patient=" + p, Token: tok, Basis: "UNNTAK"})
	wantStatus(t, "GET Flag?patient= with a critical Consent in the record", res, http.StatusOK)
	// A critical Consent cannot become a privacy setting.
	body := criticalReport(limits, p, "Ikke HLR")
	body["id"] = id
	body["scope"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}}
	res = t.Do(Request{Method: http.MethodPut, Path: "Consent/" + id, Token: tok, Basis: "UNNTAK", Body: body})
	if res.Status/100 == 2 {
		t.Errorf("PUT Consent/%s turning critical information into a privacy setting: status %d, want a refusal", id, res.Status)
	}
}

func init() {
	register(Check{GroupRules, "rules/critical-allergy-and-flag-criticalInfoType", "critical information: AllergyIntolerance?criticalInfoType=DrugReaction|OtherAllergen and Flag?criticalInfoType=ChangedTreatmentRoutines find the allergies and Flags of those types, as the national API offers", checkCriticalInfoTypeAllergyFlag})
}

func checkCriticalInfoTypeAllergyFlag(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	reaction := rulesAllergy(p, "Konformanse legemiddelreaksjon")
	reaction["category"] = []any{"medication"}
	drug := reportCritical(t, PersonaGP, p, "UNNTAK", reaction)
	food := rulesAllergy(p, "Konformanse peanøtt")
	food["category"] = []any{"food"}
	food["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "762952008", "display": "Peanøtt"}}}
	other := reportCritical(t, PersonaGP, p, "UNNTAK", food)
	routine := rulesFlag(p, "Konformanse endret behandlingsrutine")
	routine["category"] = []any{map[string]any{"coding": []any{map[string]any{
		"system": "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type", "code": "endret-behandlingsrutine"}}}}
	flag := reportCritical(t, PersonaGP, p, "UNNTAK", routine)
	reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Konformanse implantat"))
	for _, c := range []struct {
		typ, value string
		want       []string
	}{
		{"AllergyIntolerance", "DrugReaction", []string{drug}},
		{"AllergyIntolerance", "OtherAllergen", []string{other}},
		{"AllergyIntolerance", url.QueryEscape(nationalInfoTypeSystem + "|DrugReaction"), []string{drug}},
		{"Flag", "ChangedTreatmentRoutines", []string{flag}},
	} {
		q := c.typ + "?patient=" + p + "&criticalInfoType=" + c.value
		res := t.Do(Request{Path: q, As: PersonaGP, Patient: p, Basis: "UNNTAK"})
		wantStatus(t, "GET "+q, res, http.StatusOK)
		if ids := searchIDs(res, c.typ); len(ids) != len(c.want) || len(ids) > 0 && ids[0] != c.want[0] {
			t.Errorf("GET %s finds %v, want %v", q, ids, c.want)
		}
	}
}

// restCriticalBody is the REST group's Condition or Procedure: critical
// information of the national model with an identifier of the group's own.
func restCriticalBody(typ, patient, ident string) map[string]any {
	ct := criticalTypes[4] // an implant
	if typ == "Procedure" {
		ct = criticalTypes[3]
	}
	m := criticalReport(ct, patient, "Konformanse "+ct.code)
	m["identifier"] = restIdentifier(ident)
	return m
}

// addCritical adds a Condition and a Procedure of the national model to
// the REST group's record.
func (r *restRecord) addCritical(t *T) {
	for _, typ := range []string{"Condition", "Procedure"} {
		r.idents[typ] = restToken()
		m := restCreate(t, r.patient, restCriticalBody(typ, r.patient, r.idents[typ]))
		r.ids[typ], _ = m["id"].(string)
	}
}

// criticalCases are the REST group's search values for the Condition and
// Procedure of addCritical.
func (r *restRecord) criticalCases(cs map[string]restSearchCase) {
	for _, typ := range []string{"Condition", "Procedure"} {
		cs[typ+".patient"] = restSearchCase{r.patient, ""}
		cs[typ+".subject"] = restSearchCase{r.patient, ""}
		cs[typ+".identifier"] = restSearchCase{restIDSystem + "|" + r.idents[typ], restIDSystem + "|" + restToken()}
	}
	implant := restSearchCase{nationalInfoTypeSystem + "|TransplantsAndOtherForeignBodies", nationalInfoTypeSystem + "|Infection"}
	cs["Condition.category"] = implant
	cs["Condition.criticalInfoType"] = implant
	cs["Condition.clinical-status"] = restSearchCase{"active", "resolved"}
	treatment := restSearchCase{nationalInfoTypeSystem + "|OngoingTreatment", nationalInfoTypeSystem + "|Infection"}
	cs["Procedure.category"] = treatment
	cs["Procedure.criticalInfoType"] = treatment
	cs["Procedure.status"] = restSearchCase{"in-progress", "completed"}
}

func init() {
	register(Check{GroupRules, "rules/3-critical-model-visible-to-treating-hp", "rule 3: every treating HP sees the national model's critical information (Condition, Procedure, critical Consent) with the basis their role supports, and the access is logged", checkCriticalModelVisible})
}

func checkCriticalModelVisible(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	want := map[string]string{}
	for _, i := range []int{4, 3, 5} { // an implant, ongoing treatment, limits of life-prolonging treatment
		ct := criticalTypes[i]
		want[ct.resource] = reportNational(t, ct, p, "Konformanse regel 3 "+ct.code)
	}
	for _, c := range []struct{ persona, hpr, basis string }{
		{PersonaGP, GPHPR, "UNNTAK"},
		{PersonaHospitalDoctor, hprHospitalDoctor, "UNNTAK"},
		{PersonaNurse, hprNurse, "UNNTAK"},
		{PersonaEmergency, hprEmergency, "AKUTT"},
		{"contract-specialist", hprContractSpecialist, "SAMTYKKE"},
	} {
		for typ, id := range want {
			res := accessChecked(t, Request{Path: typ + "?patient=" + p, As: c.persona, Patient: p, Basis: c.basis},
				http.StatusOK, WantAudit{Patient: p, AgentHPR: c.hpr, Reason: "ok"})
			if ids := searchIDs(res, typ); len(ids) != 1 || ids[0] != id {
				t.Errorf("%s?patient= as %s with %s: matches %v, want [%s]", typ, c.persona, c.basis, ids, id)
			}
		}
	}
}
