package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Helpers shared by the FHIR REST group (rest_*.go). Every name starts with
// rest so that the other groups' files in this package never collide.

const (
	// restIDSystem is the identifier system of the REST group's fixtures;
	// each fixture gets a fresh value, so a search by identifier finds the
	// check's own resource and nothing a parallel run left behind.
	restIDSystem = "https://kjernejournal.example.no/conformance/identifier"
	// restBlockedHPR is the HPR number the fixture privacy setting blocks:
	// no persona of the suite has it, so the block changes nobody's access.
	restBlockedHPR = "990099901"

	restSNOMED   = "http://snomed.info/sct"
	restATC      = "http://www.whocc.no/atc"
	restKIType   = "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type"
	restActCode  = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	restSubsetSy = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	restDocType  = "urn:oid:2.16.578.1.12.4.1.1.9602"
)

// restAccess is who reads and who writes a resource type. Practitioners
// act with the patient in their launch context and basis UNNTAK (fixture
// patients name the gp persona as their GP).
type restAccess struct {
	reader, writer string
	// refusal, when set, is why no persona of the suite may do the
	// interaction named by the key; the server must then refuse it with
	// 403 rather than not know it.
	refusal map[string]string
	// scope, when set, is asked for on top of the persona's usual scopes.
	scope string
}

var restAccessOf = map[string]restAccess{
	"Patient": {reader: PersonaGP, writer: PersonaFeeder, refusal: map[string]string{
		"delete": "no persona of the suite may delete a Patient (the feeder's client holds system/Patient.cu only)",
	}},
	"AllergyIntolerance":  {reader: PersonaGP, writer: PersonaGP},
	"Flag":                {reader: PersonaGP, writer: PersonaGP},
	"MedicationStatement": {reader: PersonaGP, writer: PersonaFeeder},
	"Encounter":           {reader: PersonaGP, writer: PersonaFeeder},
	"Consent":             {reader: PersonaSupport, writer: PersonaSupport},
	"AuditEvent":          {reader: PersonaAuditor},
	"DocumentReference":   {reader: PersonaGP},
	"DiagnosticReport":    {reader: PersonaGP},
	"Observation":         {reader: PersonaGP},
	"Subscription":        {reader: PersonaGP, writer: PersonaGP, scope: "patient/Subscription.cr"},
	"Condition":           {reader: PersonaGP, writer: PersonaGP, scope: "patient/Condition.cud"},
	"Procedure":           {reader: PersonaGP, writer: PersonaGP, scope: "patient/Procedure.cud"},
}

// federated reports whether typ is searched at the sources (documents,
// lab results) rather than stored: the suite's own fixture patient has
// nothing there.
func federated(typ string) bool {
	return typ == "DocumentReference" || typ == "DiagnosticReport" || typ == "Observation"
}

// restAs completes req for persona acting on patient's record: the patient
// in the launch context and the access basis for practitioners, nothing
// for the others (their tokens carry no patient).
func restAs(req Request, persona, patient string) Request {
	req.As = persona
	if slices.Contains(practitioners, persona) {
		req.Patient = patient
		if req.Basis == "" {
			req.Basis = "UNNTAK"
		}
	}
	return req
}

// restRead is req sent as the reader of typ.
func restRead(t *T, typ, patient string, req Request) *Response {
	return t.Do(restScoped(t, typ, restAs(req, restAccessOf[typ].reader, patient)))
}

// restWrite is req sent as the writer of typ.
func restWrite(t *T, typ, patient string, req Request) *Response {
	return t.Do(restScoped(t, typ, restAs(req, restAccessOf[typ].writer, patient)))
}

// restScoped gives req a token with the extra scope typ needs, if any.
func restScoped(t *T, typ string, req Request) Request {
	acc := restAccessOf[typ]
	if acc.scope == "" || req.Token != "" || req.As == "" {
		return req
	}
	base := personaScopes[req.As]
	if slices.Contains(practitioners, req.As) {
		base = personaScopes["practitioner"]
	}
	req.Token = t.TokenWithScope(req.As, req.Patient, base+" "+acc.scope)
	return req
}

// restCreate creates body as the writer of its type and returns the stored
// resource; anything but 201 ends the check.
func restCreate(t *T, patient string, body map[string]any) map[string]any {
	typ, _ := body["resourceType"].(string)
	res := restWrite(t, typ, patient, Request{Method: http.MethodPost, Path: typ, Body: body})
	if res.Status != http.StatusCreated {
		t.Fatalf("fixture: creating a %s as %s: status %d: %s", typ, restAccessOf[typ].writer, res.Status, Outcome(res))
	}
	m := res.JSON()
	if id, _ := m["id"].(string); id == "" {
		t.Fatalf("fixture: the created %s has no id", typ)
	}
	return m
}

// restToken returns a fresh identifier value.
func restToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "kjc-" + hex.EncodeToString(b)
}

func restRef(typ, id string) map[string]any { return map[string]any{"reference": typ + "/" + id} }

func restCoding(system, code, display string) map[string]any {
	m := map[string]any{"system": system, "code": code}
	if display != "" {
		m["display"] = display
	}
	return m
}

func restConcept(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{restCoding(system, code, display)}}
}

func restIdentifier(value string) []any {
	return []any{map[string]any{"system": restIDSystem, "value": value}}
}

// The fixture resources. Their values are what the search check asks for
// (rest_search.go): change one, change its row there.

// restFlagBody is a KjFlag: an implant, active since 2024-01-15.
func restFlagBody(patient, ident, encounter string) map[string]any {
	m := map[string]any{
		"resourceType": "Flag",
		"identifier":   restIdentifier(ident),
		"status":       "active",
		"category":     []any{restConcept(restKIType, "implantat", "Implantat")},
		"code": map[string]any{
			"coding": []any{restCoding(restSNOMED, "14106009", "Cardiac pacemaker")},
			"text":   "Pacemaker",
		},
		"subject": restRef("Patient", patient),
		"period":  map[string]any{"start": "2024-01-15"},
	}
	if encounter != "" {
		m["encounter"] = restRef("Encounter", encounter)
	}
	return m
}

// restAllergyBody is a KjAllergyIntolerance: a confirmed, highly critical
// allergy to amoxicillin with anaphylaxis, with a narrative (for
// _summary=data) and a note (not a summary element).
func restAllergyBody(patient, ident string) map[string]any {
	return map[string]any{
		"resourceType": "AllergyIntolerance",
		"text": map[string]any{
			"status": "generated",
			"div":    `<div xmlns="http://www.w3.org/1999/xhtml">Allergi mot amoksicillin (anafylaksi)</div>`,
		},
		"identifier":         restIdentifier(ident),
		"clinicalStatus":     restConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", ""),
		"verificationStatus": restConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", ""),
		"type":               "allergy",
		"category":           []any{"medication"},
		"criticality":        "high",
		"code":               restConcept(restATC, "J01CA04", "amoksicillin"),
		"patient":            restRef("Patient", patient),
		"reaction": []any{map[string]any{
			"manifestation": []any{restConcept(restSNOMED, "39579001", "Anaphylaxis")},
			"severity":      "severe",
		}},
		"note": []any{map[string]any{"text": "Registrert av konformansetesten"}},
	}
}

// restMedicationBody is a MedicationStatement as the prescription
// intermediary feeds it: metoprolol, taken since 2024-03-01.
func restMedicationBody(patient, ident string) map[string]any {
	return map[string]any{
		"resourceType":              "MedicationStatement",
		"identifier":                restIdentifier(ident),
		"status":                    "active",
		"category":                  restConcept("http://terminology.hl7.org/CodeSystem/medication-statement-category", "community", ""),
		"medicationCodeableConcept": restConcept(restATC, "C07AB02", "metoprolol"),
		"subject":                   restRef("Patient", patient),
		"effectiveDateTime":         "2024-03-01",
		"informationSource": map[string]any{
			"identifier": map[string]any{"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "300020186"},
			"display":    "Reseptformidleren",
		},
	}
}

// restEncounterBody is an Encounter as the patient register feeds it: an
// inpatient stay in February 2024.
func restEncounterBody(patient, ident string) map[string]any {
	return map[string]any{
		"resourceType": "Encounter",
		"identifier":   restIdentifier(ident),
		"status":       "finished",
		"class":        restCoding(restActCode, "IMP", "inpatient encounter"),
		"type":         []any{restConcept(restSNOMED, "183807002", "Inpatient stay")},
		"subject":      restRef("Patient", patient),
		"period":       map[string]any{"start": "2024-02-01T08:00:00+01:00", "end": "2024-02-05T12:00:00+01:00"},
		"reasonCode":   []any{restConcept(restSNOMED, "22298006", "Myocardial infarction")},
		"serviceProvider": map[string]any{
			"identifier": map[string]any{"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "300010008"},
			"display":    "Oslo universitetssykehus HF",
		},
	}
}

// restConsentBody is a KjPrivacyConsent blocking restBlockedHPR, the kind
// of setting the citizen-support role makes.
func restConsentBody(patient string) map[string]any {
	return map[string]any{
		"resourceType": "Consent",
		"status":       "active",
		"scope":        restConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", ""),
		"category":     []any{restConcept("https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting", "blokkering", "")},
		"patient":      restRef("Patient", patient),
		"dateTime":     "2024-04-01T10:00:00Z",
		"policyRule":   restConcept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTOUT", ""),
		"provision": map[string]any{
			"type": "deny",
			"actor": []any{map[string]any{
				"role":      restConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", ""),
				"reference": map[string]any{"identifier": map[string]any{"system": SystemHPR, "value": restBlockedHPR}},
			}},
		},
	}
}

// restSubscriptionBody asks for notifications of the patient's Flags. It
// is created off: nothing is ever sent to its endpoint.
func restSubscriptionBody(patient string) map[string]any {
	return map[string]any{
		"resourceType": "Subscription",
		"status":       "off",
		"reason":       "conformance suite: the Subscription interactions",
		"criteria":     "Flag?patient=" + patient,
		"channel":      map[string]any{"type": "rest-hook", "endpoint": "http://127.0.0.1:9/kj-conformance"},
	}
}

// restBundle is a Bundle the server answered, as the checks read it.
type restBundle struct {
	Type    string
	Total   *float64
	Links   map[string]string
	Entries []restEntry
	Raw     map[string]any
}

type restEntry struct {
	FullURL  string
	Mode     string // search.mode
	Ref      string // Type/id of the resource, "" without one
	Resource map[string]any
	Request  map[string]any
	Response map[string]any
}

// restParseBundle reads res as a 200 Bundle of type want; anything else
// ends the check, naming what was asked.
func restParseBundle(t *T, what string, res *Response, want string) restBundle {
	if res.Status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", what, res.Status, Outcome(res))
	}
	b, err := restBundleOf(res, want)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return b
}

func restBundleOf(res *Response, want string) (restBundle, error) {
	m := res.JSON()
	if rt := res.ResourceType(); rt != "Bundle" {
		return restBundle{}, fmt.Errorf("the answer is a %q, not a Bundle", rt)
	}
	b := restBundle{Links: map[string]string{}, Raw: m}
	b.Type, _ = m["type"].(string)
	if want != "" && b.Type != want {
		return b, fmt.Errorf("Bundle.type %q, want %s", b.Type, want)
	}
	if n, ok := m["total"].(float64); ok {
		b.Total = &n
	}
	links, _ := m["link"].([]any)
	for _, l := range links {
		lm, _ := l.(map[string]any)
		rel, _ := lm["relation"].(string)
		u, _ := lm["url"].(string)
		b.Links[rel] = u
	}
	entries, _ := m["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		var en restEntry
		en.FullURL, _ = em["fullUrl"].(string)
		if s, ok := em["search"].(map[string]any); ok {
			en.Mode, _ = s["mode"].(string)
		}
		en.Resource, _ = em["resource"].(map[string]any)
		en.Request, _ = em["request"].(map[string]any)
		en.Response, _ = em["response"].(map[string]any)
		if en.Resource != nil {
			rt, _ := en.Resource["resourceType"].(string)
			id, _ := en.Resource["id"].(string)
			if id != "" {
				en.Ref = rt + "/" + id
			}
		}
		b.Entries = append(b.Entries, en)
	}
	return b, nil
}

// refs lists Type/id of the entries in search mode mode ("" for all).
func (b restBundle) refs(mode string) []string {
	var out []string
	for _, e := range b.Entries {
		if e.Ref != "" && (mode == "" || e.Mode == mode) {
			out = append(out, e.Ref)
		}
	}
	return out
}

// restOutcomeProblem says what is wrong with an error answer for a FHIR
// client: it must be an OperationOutcome in FHIR JSON with at least one
// issue that has a severity and a code. "" when nothing is.
func restOutcomeProblem(res *Response) string {
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		return fmt.Sprintf("Content-Type %q, not FHIR JSON", ct)
	}
	if rt := res.ResourceType(); rt != "OperationOutcome" {
		body := string(res.Body)
		if len(body) > 120 {
			body = body[:120] + "…"
		}
		return fmt.Sprintf("the body is not an OperationOutcome (resourceType %q): %s", rt, body)
	}
	issues, _ := res.JSON()["issue"].([]any)
	if len(issues) == 0 {
		return "the OperationOutcome has no issue"
	}
	for _, i := range issues {
		m, _ := i.(map[string]any)
		sev, _ := m["severity"].(string)
		code, _ := m["code"].(string)
		if sev != "" && code != "" {
			return ""
		}
	}
	return "no issue of the OperationOutcome has both severity and code"
}

// restExpectError records a failure unless res has one of the statuses
// and is a proper OperationOutcome. It reports whether all was well.
func restExpectError(t *T, what string, res *Response, statuses ...int) bool {
	ok := true
	if !slices.Contains(statuses, res.Status) {
		t.Errorf("%s: status %d, want %s: %s", what, res.Status, restStatuses(statuses), Outcome(res))
		ok = false
	}
	if p := restOutcomeProblem(res); p != "" {
		t.Errorf("%s (status %d): %s", what, res.Status, p)
		ok = false
	}
	return ok
}

func restStatuses(ss []int) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, " or ")
}

// restMeta returns meta.versionId and meta.lastUpdated of a resource.
func restMeta(m map[string]any) (versionID, lastUpdated string) {
	meta, _ := m["meta"].(map[string]any)
	versionID, _ = meta["versionId"].(string)
	lastUpdated, _ = meta["lastUpdated"].(string)
	return
}

// restSubsetted reports whether a resource carries the SUBSETTED tag.
func restSubsetted(m map[string]any) bool {
	meta, _ := m["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, tg := range tags {
		tm, _ := tg.(map[string]any)
		if tm["system"] == restSubsetSy && tm["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

// restClone deep-copies a JSON object (to change a fixture for an update
// without touching the original).
func restClone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}
