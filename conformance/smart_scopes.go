package conformance

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Scope enforcement: the SMART scopes in a token bound what it reaches,
// by resource type, interaction, patient and granular constraint, on every
// route including _include/_revinclude and batch entries. Each check
// holds a control with a full token, so a refusal is the scope's and not
// a fixture's fault.

func init() {
	register(
		Check{GroupSMART, "smart/scope-type", "a token with only patient/Flag.rs (or v1 patient/Flag.read) reads Flags but gets 403 with an OperationOutcome and insufficient_scope for AllergyIntolerance and Patient", checkScopeType},
		Check{GroupSMART, "smart/scope-include", "_include and _revinclude leave out resources of types the token's scopes do not cover", checkScopeInclude},
		Check{GroupSMART, "smart/scope-write", "a read-only (patient/*.rs) token cannot create, update or delete: 403, and nothing changes", checkScopeWrite},
		Check{GroupSMART, "smart/scope-patient", "a practitioner token launched for patient A gets 403 for patient B: read, search, compartment, write and inside a batch", checkScopePatient},
		Check{GroupSMART, "smart/scope-granular", "a granular scope (patient/Flag.rs?category=implantat) reads and finds only Flags of that category", checkScopeGranular},
	)
}

// scopeFixture writes critical information for the patient as their GP
// with the GP's full token and returns its id: a Flag of the given
// kritisk-info-type category, or an AllergyIntolerance (category "").
func (t *T) scopeFixture(typ, patient, category string) string {
	var body map[string]any
	switch typ {
	case "Flag":
		body = map[string]any{
			"resourceType": "Flag", "status": "active",
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type", "code": category}}}},
			"code":    map[string]any{"text": "Konformanse: " + category},
			"period":  map[string]any{"start": "2024-01-10T08:00:00Z"},
			"subject": map[string]any{"reference": "Patient/" + patient},
		}
	case "AllergyIntolerance":
		body = map[string]any{
			"resourceType":       "AllergyIntolerance",
			"clinicalStatus":     map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}}},
			"verificationStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}}},
			"criticality":        "high",
			"code":               map[string]any{"coding": []any{map[string]any{"system": "http://www.whocc.no/atc", "code": "J01CE02", "display": "Fenoksymetylpenicillin"}}},
			"patient":            map[string]any{"reference": "Patient/" + patient},
		}
	default:
		t.Fatalf("no scope fixture for %s", typ)
	}
	res := t.Do(Request{Method: http.MethodPost, Path: typ, As: PersonaGP, Patient: patient, Basis: "UNNTAK", Body: body})
	if res.Status != http.StatusCreated {
		t.Fatalf("fixture: the GP writing a %s for Patient/%s: status %d: %s", typ, patient, res.Status, Outcome(res))
	}
	id, _ := res.JSON()["id"].(string)
	if id == "" {
		t.Fatalf("fixture: the created %s has no id", typ)
	}
	return id
}

// expectScopeRefusal checks a refusal for insufficient scope: 403, an
// OperationOutcome, and (RFC 6750 3 and 3.1) a Bearer challenge with
// error="insufficient_scope".
func (t *T) expectScopeRefusal(what string, res *Response) {
	if res.Status != http.StatusForbidden {
		t.Errorf("%s: status %d, want 403: %s", what, res.Status, Outcome(res))
		return
	}
	if res.ResourceType() != "OperationOutcome" {
		t.Errorf("%s: the refusal is not an OperationOutcome: %.200s", what, res.Body)
	}
	for _, c := range res.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(strings.ToLower(c), "bearer") && strings.Contains(c, `error="insufficient_scope"`) {
			return
		}
	}
	t.Errorf("%s: WWW-Authenticate %q lacks a Bearer challenge with error=\"insufficient_scope\" (RFC 6750 3.1)", what, res.Header.Values("WWW-Authenticate"))
}

// entriesByMode lists a Bundle's entries as "Type/id" by search mode.
func entriesByMode(res *Response) map[string][]string {
	out := map[string][]string{}
	es, _ := res.JSON()["entry"].([]any)
	for _, e := range es {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		s, _ := em["search"].(map[string]any)
		mode, _ := s["mode"].(string)
		out[mode] = append(out[mode], fmt.Sprintf("%v/%v", r["resourceType"], r["id"]))
	}
	return out
}

// scopeSearch runs a search with token and checks it answered a Bundle.
func (t *T) scopeSearch(what, path, token string) map[string][]string {
	res := t.Do(Request{Path: path, Token: token, Basis: "UNNTAK"})
	if res.Status != http.StatusOK || res.ResourceType() != "Bundle" {
		t.Fatalf("%s: GET %s: status %d: %s", what, path, res.Status, Outcome(res))
	}
	return entriesByMode(res)
}

func checkScopeType(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	flag := t.scopeFixture("Flag", id, "implantat")
	ai := t.scopeFixture("AllergyIntolerance", id, "")
	if res := t.Do(Request{Path: "AllergyIntolerance/" + ai, As: PersonaGP, Patient: id, Basis: "UNNTAK"}); res.Status != http.StatusOK {
		t.Fatalf("control: the GP's full token reading AllergyIntolerance/%s: status %d: %s", ai, res.Status, Outcome(res))
	}
	for _, scope := range []string{"launch patient/Flag.rs", "launch patient/Flag.read"} {
		tok := t.TokenWithScope(PersonaGP, id, scope)
		if res := t.Do(Request{Path: "Flag/" + flag, Token: tok, Basis: "UNNTAK"}); res.Status != http.StatusOK {
			t.Errorf("[%s] GET Flag/%s: status %d: %s", scope, flag, res.Status, Outcome(res))
		}
		if got := t.scopeSearch("["+scope+"]", "Flag?patient="+id, tok); !slices.Contains(got["match"], "Flag/"+flag) {
			t.Errorf("[%s] Flag?patient=%s does not find Flag/%s: %v", scope, id, flag, got)
		}
		for _, path := range []string{"AllergyIntolerance/" + ai, "AllergyIntolerance?patient=" + id, "Patient/" + id} {
			t.expectScopeRefusal(fmt.Sprintf("[%s] GET %s", scope, path), t.Do(Request{Path: path, Token: tok, Basis: "UNNTAK"}))
		}
	}
}

func checkScopeInclude(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	flag := t.scopeFixture("Flag", id, "implantat")
	ai := t.scopeFixture("AllergyIntolerance", id, "")
	full := t.Token(PersonaGP, id)

	// _include: Flag → its Patient, with a token for Flags only.
	q := "Flag?patient=" + id + "&_include=Flag:patient"
	if got := t.scopeSearch("control, full token", q, full); !slices.Contains(got["include"], "Patient/"+id) {
		t.Fatalf("control: %s with the full token does not include Patient/%s: %v", q, id, got)
	}
	got := t.scopeSearch("token patient/Flag.rs", q, t.TokenWithScope(PersonaGP, id, "launch patient/Flag.rs"))
	if !slices.Contains(got["match"], "Flag/"+flag) {
		t.Errorf("%s with patient/Flag.rs does not find Flag/%s: %v", q, flag, got)
	}
	if slices.Contains(got["include"], "Patient/"+id) {
		t.Errorf("%s with patient/Flag.rs only included Patient/%s, which the scopes do not cover", q, id)
	}

	// _revinclude: Patient ← Flag and AllergyIntolerance, with a token
	// that covers Patient and Flag only.
	q = "Patient?_id=" + id + "&_revinclude=Flag:patient&_revinclude=AllergyIntolerance:patient"
	if got := t.scopeSearch("control, full token", q, full); !slices.Contains(got["include"], "AllergyIntolerance/"+ai) || !slices.Contains(got["include"], "Flag/"+flag) {
		t.Fatalf("control: %s with the full token does not include both AllergyIntolerance/%s and Flag/%s: %v", q, ai, flag, got)
	}
	got = t.scopeSearch("token patient/Patient.rs patient/Flag.rs", q, t.TokenWithScope(PersonaGP, id, "launch patient/Patient.rs patient/Flag.rs"))
	if !slices.Contains(got["match"], "Patient/"+id) || !slices.Contains(got["include"], "Flag/"+flag) {
		t.Errorf("%s with patient/Patient.rs patient/Flag.rs lacks Patient/%s or the in-scope Flag/%s: %v", q, id, flag, got)
	}
	if slices.Contains(got["include"], "AllergyIntolerance/"+ai) {
		t.Errorf("%s with patient/Patient.rs patient/Flag.rs included AllergyIntolerance/%s, which the scopes do not cover", q, ai)
	}
}

func checkScopeWrite(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	flag := t.scopeFixture("Flag", id, "implantat")
	before := t.Do(Request{Path: "Flag/" + flag, As: PersonaGP, Patient: id, Basis: "UNNTAK"})
	if before.Status != http.StatusOK {
		t.Fatalf("control: reading Flag/%s: status %d", flag, before.Status)
	}
	body := before.JSON()
	ro := t.TokenWithScope(PersonaGP, id, "launch patient/*.rs")
	create := map[string]any{}
	for k, v := range body {
		if k != "id" && k != "meta" {
			create[k] = v
		}
	}
	t.expectScopeRefusal("POST Flag with patient/*.rs", t.Do(Request{Method: http.MethodPost, Path: "Flag", Token: ro, Basis: "UNNTAK", Body: create}))
	t.expectScopeRefusal("PUT Flag/"+flag+" with patient/*.rs", t.Do(Request{Method: http.MethodPut, Path: "Flag/" + flag, Token: ro, Basis: "UNNTAK", Body: body}))
	t.expectScopeRefusal("DELETE Flag/"+flag+" with patient/*.rs", t.Do(Request{Method: http.MethodDelete, Path: "Flag/" + flag, Token: ro, Basis: "UNNTAK"}))
	after := t.Do(Request{Path: "Flag/" + flag, As: PersonaGP, Patient: id, Basis: "UNNTAK"})
	if after.Status != http.StatusOK || after.Header.Get("ETag") != before.Header.Get("ETag") {
		t.Errorf("Flag/%s changed after refused writes: status %d, ETag %q, was %q", flag, after.Status, after.Header.Get("ETag"), before.Header.Get("ETag"))
	}
	// The control: the same create with the write scope succeeds, so the
	// refusal above was the scope's and not the body's.
	if res := t.Do(Request{Method: http.MethodPost, Path: "Flag", As: PersonaGP, Patient: id, Basis: "UNNTAK", Body: create}); res.Status != http.StatusCreated {
		t.Errorf("control: POST Flag with patient/Flag.cud: status %d: %s", res.Status, Outcome(res))
	}
}

func checkScopePatient(t *T) {
	a, _ := t.NewPatient(PatientSpec{})
	b, _ := t.NewPatient(PatientSpec{})
	fb := t.scopeFixture("Flag", b, "implantat")
	if res := t.Do(Request{Path: "Patient/" + b, As: PersonaGP, Patient: b, Basis: "UNNTAK"}); res.Status != http.StatusOK {
		t.Fatalf("control: the GP launched for Patient/%s reading it: status %d: %s", b, res.Status, Outcome(res))
	}
	tokA := t.Token(PersonaGP, a)
	for _, path := range []string{"Patient/" + b, "Flag/" + fb, "Flag?patient=" + b, "Patient/" + b + "/Flag"} {
		t.expectScopeRefusal("GET "+path+" with a token for Patient/"+a, t.Do(Request{Path: path, Token: tokA, Basis: "UNNTAK"}))
	}
	flag := map[string]any{
		"resourceType": "Flag", "status": "active",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type", "code": "smitte"}}}},
		"code":    map[string]any{"text": "Konformanse: written for the wrong patient"},
		"period":  map[string]any{"start": "2024-01-10T08:00:00Z"},
		"subject": map[string]any{"reference": "Patient/" + b},
	}
	t.expectScopeRefusal("POST Flag for Patient/"+b+" with a token for Patient/"+a,
		t.Do(Request{Method: http.MethodPost, Path: "Flag", Token: tokA, Basis: "UNNTAK", Body: flag}))

	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + a}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + b}},
	}}
	res := t.Do(Request{Method: http.MethodPost, Path: "", Token: tokA, Basis: "UNNTAK", Body: batch})
	if res.Status != http.StatusOK || res.ResourceType() != "Bundle" {
		t.Fatalf("POST a batch with a token for Patient/%s: status %d: %s", a, res.Status, Outcome(res))
	}
	es, _ := res.JSON()["entry"].([]any)
	if len(es) != 2 {
		t.Fatalf("the batch-response has %d entries, want 2", len(es))
	}
	status := func(i int) string {
		e, _ := es[i].(map[string]any)
		r, _ := e["response"].(map[string]any)
		s, _ := r["status"].(string)
		return s
	}
	if !strings.HasPrefix(status(0), "200") {
		t.Errorf("batch entry GET Patient/%s (the patient in context): status %q, want 200", a, status(0))
	}
	if !strings.HasPrefix(status(1), "403") {
		t.Errorf("batch entry GET Patient/%s (another patient): status %q, want 403", b, status(1))
	}
	e1, _ := es[1].(map[string]any)
	if r, _ := e1["resource"].(map[string]any); r != nil && r["resourceType"] == "Patient" {
		t.Errorf("batch entry GET Patient/%s returned the other patient", b)
	}
}

func checkScopeGranular(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	in := t.scopeFixture("Flag", id, "implantat")
	out := t.scopeFixture("Flag", id, "smitte")
	scope := "launch patient/Flag.rs?category=implantat"
	tr := t.TokenResponse(PersonaGP, id, scope)
	if !strings.Contains(fmt.Sprint(tr["scope"]), "patient/Flag.rs?category=implantat") {
		t.Fatalf("the granular scope was not granted: %v", tr["scope"])
	}
	tok, _ := tr["access_token"].(string)
	got := t.scopeSearch("granular scope", "Flag?patient="+id, tok)
	if !slices.Contains(got["match"], "Flag/"+in) {
		t.Errorf("Flag?patient=%s with %s does not find the implantat Flag/%s: %v", id, scope, in, got)
	}
	if slices.Contains(got["match"], "Flag/"+out) {
		t.Errorf("Flag?patient=%s with %s found the smitte Flag/%s", id, scope, out)
	}
	if res := t.Do(Request{Path: "Flag/" + in, Token: tok, Basis: "UNNTAK"}); res.Status != http.StatusOK {
		t.Errorf("GET Flag/%s (implantat) with %s: status %d: %s", in, scope, res.Status, Outcome(res))
	}
	t.expectScopeRefusal("GET Flag/"+out+" (smitte) with "+scope, t.Do(Request{Path: "Flag/" + out, Token: tok, Basis: "UNNTAK"}))
}
