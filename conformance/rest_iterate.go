package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// _include:iterate, _revinclude:iterate, _has and the compartment search
// across types (_type). Each follows references, so each must stop at the
// edge of the bound patient's record (DOMAIN.md rule 1) and at what the
// caller may see: two patients whose records point at each other show
// both.

func init() {
	register(
		Check{GroupREST, "rest/include-iterate", "_include:iterate follows references from included resources, inside the patient's record only; without :iterate an include from another type is refused", checkIncludeIterate},
		Check{GroupREST, "rest/revinclude-iterate", "_revinclude:iterate brings in what refers to included resources, and never another patient's resource that refers into the record", checkRevIncludeIterate},
		Check{GroupREST, "rest/include-iterate-access", "an iterated include leaves out what the token may not see (a granular scope), and does not follow references through it", checkIncludeIterateAccess},
		Check{GroupREST, "rest/has", "_has (reverse chaining, nested too) finds the resources others of the record refer to, never through another patient's resources or ones the caller may not see; a _has alone does not bind a patient", checkHas},
		Check{GroupREST, "rest/compartment-type", "GET /Patient/{id}/*?_type=A,B searches the named types of that record only, pages, and refuses an unknown type or a type not in the record", checkCompartmentType},
		Check{GroupREST, "rest/capability-iterate", "the CapabilityStatement lists iterative include values on the root type (as R5 documents; rest/capability-includes sends each with :iterate), _has, and the patient compartment", checkCapabilityIterate},
	)
}

// restLinked is two patients' records that refer to each other: in A's,
// E0 ← E1 (partOf) ← Flag F (encounter) and E2 (partOf B's EB) ← Flag F2;
// in B's, EB and a Flag FB whose encounter is A's E1. Writes the server
// refuses (a reference into another record) leave the cross links out,
// which the checks note.
type restLinked struct {
	a, b                   string
	e0, e1, e2, eb         string
	f, f2, fb              string
	fIdent, fbIdent        string
	crossForward, crossRev bool // E2 → EB and FB → E1 were accepted
}

func restNewLinked(t *T, e0Status string) *restLinked {
	l := &restLinked{}
	l.a, _ = t.NewPatient(PatientSpec{})
	l.b, _ = t.NewPatient(PatientSpec{})
	enc := func(patient, status, partOf string) (string, bool) {
		body := restEncounterBody(patient, restToken())
		if status != "" {
			body["status"] = status
		}
		if partOf != "" {
			body["partOf"] = restRef("Encounter", partOf)
		}
		res := t.Do(Request{Method: http.MethodPost, Path: "Encounter", As: PersonaFeeder, Body: body})
		if res.Status != http.StatusCreated {
			return "", false
		}
		id, _ := res.JSON()["id"].(string)
		return id, id != ""
	}
	var ok bool
	if l.e0, ok = enc(l.a, e0Status, ""); !ok {
		t.Fatalf("fixture: feeding Encounter E0 of patient A was refused")
	}
	if l.e1, ok = enc(l.a, "", l.e0); !ok {
		t.Fatalf("fixture: feeding Encounter E1 (partOf E0, same patient) was refused")
	}
	if l.eb, ok = enc(l.b, "", ""); !ok {
		t.Fatalf("fixture: feeding Encounter EB of patient B was refused")
	}
	if l.e2, l.crossForward = enc(l.a, "", l.eb); !l.crossForward {
		l.e2, _ = enc(l.a, "", "")
		t.Notef("the server refuses an Encounter whose partOf is another patient's: the forward cross-patient case is not exercised")
	}
	l.fIdent, l.fbIdent = restToken(), restToken()
	f := restCreate(t, l.a, restFlagBody(l.a, l.fIdent, l.e1))
	l.f, _ = f["id"].(string)
	f2 := restCreate(t, l.a, restFlagBody(l.a, restToken(), l.e2))
	l.f2, _ = f2["id"].(string)
	res := restWrite(t, "Flag", l.b, Request{Method: http.MethodPost, Path: "Flag", Body: restFlagBody(l.b, l.fbIdent, l.e1)})
	if res.Status == http.StatusCreated {
		l.fb, _ = res.JSON()["id"].(string)
		l.crossRev = true
	} else {
		t.Notef("the server refuses a Flag whose encounter is another patient's (status %d): the reverse cross-patient case is not exercised", res.Status)
	}
	return l
}

// restSearchBundle runs a search as the reader of typ on patient's record
// and returns the Bundle; anything but 200 ends the check.
func restSearchBundle(t *T, typ, patient, path string) restBundle {
	return restParseBundle(t, "GET "+path, restRead(t, typ, patient, Request{Path: path}), "searchset")
}

// restAuditedSearch is restSearchBundle that also expects the request's
// AuditEvent: a successful search of patient's record.
func restAuditedSearch(t *T, typ, patient, path string) restBundle {
	res, id := t.DoAudited(restScoped(t, typ, restAs(Request{Path: path}, restAccessOf[typ].reader, patient)))
	b := restParseBundle(t, "GET "+path, res, "searchset")
	t.ExpectAuditLater("GET "+path, id, WantAudit{Patient: patient, Outcome: "0"})
	return b
}

func restWantRefs(t *T, what string, got []string, want, unwanted []string) {
	for _, r := range want {
		if !slices.Contains(got, r) {
			t.Errorf("%s: %s is missing (got %v)", what, r, got)
		}
	}
	for _, r := range unwanted {
		if r != "" && !strings.HasSuffix(r, "/") && slices.Contains(got, r) {
			t.Errorf("%s: %s is there, but must not be (got %v)", what, r, got)
		}
	}
}

func checkIncludeIterate(t *T) {
	l := restNewLinked(t, "")
	path := "Flag?patient=" + l.a + "&_include=Flag:encounter&_include:iterate=Encounter:part-of"
	b := restAuditedSearch(t, "Flag", l.a, path)
	restWantRefs(t, "GET "+path+" (included)", b.refs("include"),
		[]string{"Encounter/" + l.e1, "Encounter/" + l.e0, "Encounter/" + l.e2},
		[]string{"Encounter/" + l.eb, "Patient/" + l.b})
	restWantRefs(t, "GET "+path+" (matches)", b.refs("match"), []string{"Flag/" + l.f, "Flag/" + l.f2}, []string{"Flag/" + l.fb})

	// Without :iterate the round stops at the Flags' own references.
	path = "Flag?patient=" + l.a + "&_include=Flag:encounter"
	b = restSearchBundle(t, "Flag", l.a, path)
	restWantRefs(t, "GET "+path, b.refs("include"), []string{"Encounter/" + l.e1}, []string{"Encounter/" + l.e0})

	// A plain include of another type than the searched one is an error,
	// not an include that silently does nothing.
	path = "Flag?patient=" + l.a + "&_include=Encounter:part-of"
	restExpectError(t, "GET "+path, restRead(t, "Flag", l.a, Request{Path: path}), http.StatusBadRequest)
	path = "Flag?patient=" + l.a + "&_include:iterate=*"
	restExpectError(t, "GET "+path, restRead(t, "Flag", l.a, Request{Path: path}), http.StatusBadRequest)

	// The other patient's search, iterating the same way, stays in B's
	// record: A's Encounter that FB points at is not included.
	if l.crossRev {
		path = "Flag?patient=" + l.b + "&_include=Flag:encounter&_include:iterate=Encounter:part-of"
		b = restSearchBundle(t, "Flag", l.b, path)
		restWantRefs(t, "GET "+path, b.refs(""), []string{"Flag/" + l.fb},
			[]string{"Encounter/" + l.e1, "Encounter/" + l.e0, "Flag/" + l.f})
	}
}

func checkRevIncludeIterate(t *T) {
	l := restNewLinked(t, "")
	path := "Encounter?patient=" + l.a + "&_id=" + l.e0 + "&_revinclude=Encounter:part-of&_revinclude:iterate=Flag:encounter"
	b := restSearchBundle(t, "Encounter", l.a, path)
	restWantRefs(t, "GET "+path, b.refs("match"), []string{"Encounter/" + l.e0}, nil)
	restWantRefs(t, "GET "+path+" (included)", b.refs("include"),
		[]string{"Encounter/" + l.e1, "Flag/" + l.f},
		[]string{"Flag/" + l.fb, "Encounter/" + l.e2, "Flag/" + l.f2})

	// Mixed: the Flags that refer to the Encounters the Flag search
	// includes, i.e. the patient's own Flags and never FB.
	path = "Flag?patient=" + l.a + "&_id=" + l.f + "&_include=Flag:encounter&_revinclude:iterate=Flag:encounter"
	b = restSearchBundle(t, "Flag", l.a, path)
	restWantRefs(t, "GET "+path, b.refs(""), []string{"Flag/" + l.f, "Encounter/" + l.e1}, []string{"Flag/" + l.fb})

	// Patient B's record: FB refers to A's E1, which no iteration from B's
	// Encounters reaches, and A's resources never come in.
	path = "Encounter?patient=" + l.b + "&_revinclude:iterate=Encounter:part-of&_revinclude:iterate=Flag:encounter"
	b = restSearchBundle(t, "Encounter", l.b, path)
	restWantRefs(t, "GET "+path, b.refs(""), []string{"Encounter/" + l.eb},
		[]string{"Encounter/" + l.e2, "Encounter/" + l.e1, "Flag/" + l.f2, "Flag/" + l.f})
}

func checkIncludeIterateAccess(t *T) {
	// E0 is planned; a token that may read finished Encounters only must
	// get E1 and not E0.
	l := restNewLinked(t, "planned")
	token := t.TokenWithScope(PersonaGP, l.a, "launch openid fhirUser patient/Flag.rs patient/Encounter.rs?status=finished")
	path := "Flag?patient=" + l.a + "&_include=Flag:encounter&_include:iterate=Encounter:part-of"
	res := t.Do(Request{Path: path, Token: token, Basis: "UNNTAK", Patient: l.a})
	b := restParseBundle(t, "GET "+path+" (Encounter.rs?status=finished)", res, "searchset")
	restWantRefs(t, "GET "+path+" with patient/Encounter.rs?status=finished", b.refs("include"),
		[]string{"Encounter/" + l.e1}, []string{"Encounter/" + l.e0, "Encounter/" + l.eb})

	// A token without Encounter gets the Flags and nothing included.
	token = t.TokenWithScope(PersonaGP, l.a, "launch openid fhirUser patient/Flag.rs")
	res = t.Do(Request{Path: path, Token: token, Basis: "UNNTAK", Patient: l.a})
	b = restParseBundle(t, "GET "+path+" (Flag.rs only)", res, "searchset")
	if inc := b.refs("include"); len(inc) > 0 {
		t.Errorf("GET %s with patient/Flag.rs only: included %v, which the token may not read", path, inc)
	}
	restWantRefs(t, "GET "+path+" with patient/Flag.rs only", b.refs("match"), []string{"Flag/" + l.f}, nil)
}

func checkHas(t *T) {
	l := restNewLinked(t, "")
	ident := url.QueryEscape(restIDSystem + "|" + l.fIdent)
	path := "Encounter?patient=" + l.a + "&_has:Flag:encounter:identifier=" + ident
	b := restAuditedSearch(t, "Encounter", l.a, path)
	if got := b.refs("match"); !slices.Equal(got, []string{"Encounter/" + l.e1}) {
		t.Errorf("GET %s: matches %v, want only Encounter/%s (the one Flag F refers to)", path, got, l.e1)
	}
	// Reverse chain on the Patient, nested: the Patient that has an
	// Encounter that Flag F refers to.
	path = "Patient?_id=" + l.a + "&_has:Encounter:patient:_has:Flag:encounter:identifier=" + ident
	b = restSearchBundle(t, "Patient", l.a, path)
	if got := b.refs("match"); !slices.Equal(got, []string{"Patient/" + l.a}) {
		t.Errorf("GET %s: matches %v, want Patient/%s", path, got, l.a)
	}
	path = "Patient?_id=" + l.a + "&_has:Flag:patient:identifier=" + url.QueryEscape(restIDSystem+"|"+restToken())
	if got := restSearchBundle(t, "Patient", l.a, path).refs("match"); len(got) > 0 {
		t.Errorf("GET %s: matches %v, though no Flag has the identifier", path, got)
	}
	// Another patient's Flag (FB) refers to A's E1: a _has in A's record
	// does not see it, and B's record has no Encounter it refers to.
	if l.crossRev {
		fb := url.QueryEscape(restIDSystem + "|" + l.fbIdent)
		path = "Encounter?patient=" + l.a + "&_has:Flag:encounter:identifier=" + fb
		if got := restSearchBundle(t, "Encounter", l.a, path).refs("match"); len(got) > 0 {
			t.Errorf("GET %s: matches %v through another patient's Flag", path, got)
		}
		path = "Encounter?patient=" + l.b + "&_has:Flag:encounter:identifier=" + fb
		if got := restSearchBundle(t, "Encounter", l.b, path).refs("match"); len(got) > 0 {
			t.Errorf("GET %s: matches %v, an Encounter of another record", path, got)
		}
	}
	// A type the token may not read counts as absent.
	token := t.TokenWithScope(PersonaGP, l.a, "launch openid fhirUser patient/Encounter.rs")
	path = "Encounter?patient=" + l.a + "&_has:Flag:encounter:identifier=" + ident
	res := t.Do(Request{Path: path, Token: token, Basis: "UNNTAK", Patient: l.a})
	if got := restParseBundle(t, "GET "+path+" (Encounter.rs only)", res, "searchset").refs("match"); len(got) > 0 {
		t.Errorf("GET %s with patient/Encounter.rs only: matches %v through Flags the token may not read", path, got)
	}
	// _has does not bind a patient: alone it is a search across patients.
	path = "Patient?_has:Flag:patient:identifier=" + ident
	res = restRead(t, "Patient", l.a, Request{Path: path})
	restExpectError(t, "GET "+path+" (no patient bound)", res, http.StatusBadRequest, http.StatusForbidden)
	// Malformed: no search parameter at the end; one that does not refer
	// to the searched type.
	for _, p := range []string{
		"Encounter?patient=" + l.a + "&_has:Flag:encounter=x",
		"Encounter?patient=" + l.a + "&_has:AllergyIntolerance:patient:code=x",
		"Encounter?patient=" + l.a + "&_has:Flag:encounter:nosuchparam=x",
	} {
		restExpectError(t, "GET "+p, restRead(t, "Encounter", l.a, Request{Path: p}), http.StatusBadRequest)
	}
}

func checkCompartmentType(t *T) {
	l := restNewLinked(t, "")
	al := restCreate(t, l.a, restAllergyBody(l.a, restToken()))
	alID, _ := al["id"].(string)
	path := "Patient/" + l.a + "/*?_type=Flag,Encounter"
	b := restAuditedSearch(t, "Flag", l.a, path)
	restWantRefs(t, "GET "+path, b.refs("match"),
		[]string{"Flag/" + l.f, "Flag/" + l.f2, "Encounter/" + l.e0, "Encounter/" + l.e1, "Encounter/" + l.e2},
		[]string{"AllergyIntolerance/" + alID, "Encounter/" + l.eb, "Flag/" + l.fb, "Patient/" + l.a})
	if b.Total == nil || *b.Total != 5 {
		t.Errorf("GET %s: total %v, want 5", path, b.Total)
	}
	// Common parameters apply to every type.
	path = "Patient/" + l.a + "/*?_type=Flag,AllergyIntolerance&_id=" + alID
	b = restSearchBundle(t, "Flag", l.a, path)
	if got := b.refs("match"); !slices.Equal(got, []string{"AllergyIntolerance/" + alID}) {
		t.Errorf("GET %s: matches %v, want the allergy only", path, got)
	}
	// Paging walks every match once.
	path = "Patient/" + l.a + "/*?_type=Flag,Encounter&_count=2"
	var seen []string
	for page := 0; path != "" && page < 5; page++ {
		b = restSearchBundle(t, "Flag", l.a, path)
		seen = append(seen, b.refs("match")...)
		path = ""
		if next := b.Links["next"]; next != "" {
			path = strings.TrimPrefix(next, t.URL(""))
			path = strings.TrimPrefix(path, "/")
		}
	}
	slices.Sort(seen)
	if len(seen) != 5 || len(slices.Compact(slices.Clone(seen))) != 5 {
		t.Errorf("paging GET Patient/%s/*?_type=Flag,Encounter&_count=2: saw %v, want the 5 matches once each", l.a, seen)
	}
	// Another patient's compartment with the same types holds B's only.
	path = "Patient/" + l.b + "/*?_type=Flag,Encounter"
	b = restSearchBundle(t, "Flag", l.b, path)
	restWantRefs(t, "GET "+path, b.refs(""), []string{"Encounter/" + l.eb},
		[]string{"Flag/" + l.f, "Encounter/" + l.e1, "Encounter/" + l.e2})
	for _, p := range []string{
		"Patient/" + l.a + "/*?_type=Observation",
		"Patient/" + l.a + "/*?_type=NoSuchType",
		"Patient/" + l.a + "/*?_type=Flag,no-type",
		"Patient/" + l.a + "/*?_type=Flag,Encounter&code=x",
	} {
		restExpectError(t, "GET "+p, restRead(t, "Flag", l.a, Request{Path: p}), http.StatusBadRequest)
	}
}

func checkCapabilityIterate(t *T) {
	cs := restCapabilities(t)
	// GET /Patient/{id}/* is declared as the patient compartment.
	var raw struct {
		Rest []struct {
			Mode        string   `json:"mode"`
			Compartment []string `json:"compartment"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(t.Do(Request{Path: "metadata"}).Body, &raw); err != nil {
		t.Fatalf("GET /metadata: %v", err)
	}
	for _, r := range raw.Rest {
		if r.Mode == "server" && !slices.Contains(r.Compartment, "http://hl7.org/fhir/CompartmentDefinition/patient") {
			t.Errorf("rest.compartment %v does not declare the patient compartment, though GET /Patient/{id}/* is served", r.Compartment)
		}
	}
	var flag *restCapResource
	for i := range cs.Resource {
		if cs.Resource[i].Type == "Flag" {
			flag = &cs.Resource[i]
		}
	}
	if flag == nil {
		t.Skipf("Flag is not served")
	}
	if !slices.Contains(flag.SearchInclude, "Encounter:part-of") {
		t.Errorf("Flag.searchInclude %v lacks the iterative value Encounter:part-of", flag.SearchInclude)
	}
	var patient *restCapResource
	for i := range cs.Resource {
		if cs.Resource[i].Type == "Patient" {
			patient = &cs.Resource[i]
		}
	}
	if patient != nil && !slices.Contains(patient.SearchRevInclude, "Flag:encounter") {
		t.Errorf("Patient.searchRevInclude %v lacks the iterative value Flag:encounter", patient.SearchRevInclude)
	}
	if patient != nil && !slices.ContainsFunc(patient.SearchParam, func(p struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}) bool {
		return p.Name == "_has"
	}) {
		t.Errorf("Patient.searchParam lacks _has")
	}
}
