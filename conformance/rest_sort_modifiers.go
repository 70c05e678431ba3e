package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// _sort on every parameter type, the token modifiers :of-type, :in and
// :not-in, _summary=text and the summaries of every searched type, and
// the CapabilityStatement's account of the R4 base search parameters
// (issue 17, search).

func init() {
	register(
		Check{GroupREST, "rest/sort-every-type", "_sort on a token (Flag category), a reference (Flag encounter), a string (Condition onset-info) and a quantity (Encounter length) parameter, ascending and with -, orders one patient's matches, and paging them two at a time by next links serves the same order, each once", checkSortTypes},
		Check{GroupREST, "rest/search-quantity", "a quantity parameter (Encounter length) matches by the value's precision, with the prefixes and the unit system|code", checkSearchQuantity},
		Check{GroupREST, "rest/search-token-in", ":in and :not-in take the canonical URL of one of the server's ValueSets and match the codes it holds; an unknown ValueSet, or one the server cannot expand, is refused with 400 naming it", checkTokenIn},
		Check{GroupREST, "rest/search-identifier-of-type", "identifier:of-type=system|code|value finds a resource by the type and the value of one identifier, and not by another type or value", checkIdentifierOfType},
		Check{GroupREST, "rest/summary-text", "_summary=text on a read and a search gives the narrative, id, meta and the mandatory elements only, tagged SUBSETTED", checkSummaryText},
		Check{GroupREST, "rest/summary-searched-types", "every searchable type the CapabilityStatement lists (AuditEvent and DocumentReference too) answers _summary=true, text, data and count on a search bound to one patient: shaped entries tagged SUBSETTED, or the total alone", checkSummarySearchedTypes},
		Check{GroupREST, "rest/capability-r4-base-params", "for every searchable type, each R4 base search parameter is either listed in the CapabilityStatement (with R4's type when it names R4's definition) or named in the resource's documentation as not offered", checkCapabilityR4Params},
	)
}

// restMatches pages through a search by its next links with _count=2
// and returns the matches in the order served, failing on a repeat.
func restMatches(t *T, typ, patient, path string) []string {
	var got []string
	next := path + "&_count=2"
	for page := 1; next != ""; page++ {
		if page > 20 {
			t.Fatalf("GET %s: still a next link after 20 pages", path)
		}
		b := restParseBundle(t, "page "+strconv.Itoa(page)+" of GET "+path, restRead(t, typ, patient, Request{Path: next}), "searchset")
		m := b.refs("match")
		if len(m) > 2 {
			t.Errorf("GET %s: page %d has %d matches with _count=2", path, page, len(m))
		}
		for _, r := range m {
			if slices.Contains(got, r) {
				t.Errorf("GET %s: page %d serves %s again", path, page, r)
			}
			got = append(got, r)
		}
		next = b.Links["next"]
	}
	return got
}

// restCheckOrder compares the served order of a sort, in one page and in
// pages of two, with the order the fixture's values give.
func restCheckOrder(t *T, typ, patient, path string, want []string) {
	res := restRead(t, typ, patient, Request{Path: path})
	if res.Status != http.StatusOK {
		t.Errorf("GET %s: status %d, want 200: %s", path, res.Status, Outcome(res))
		return
	}
	b := restParseBundle(t, "GET "+path, res, "searchset")
	if got := b.refs("match"); !slices.Equal(got, want) {
		t.Errorf("GET %s: order %v, want %v", path, got, want)
	}
	if got := restMatches(t, typ, patient, path); !slices.Equal(got, want) {
		t.Errorf("GET %s in pages of 2: order %v, want %v", path, got, want)
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func checkSortTypes(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	// Three Encounters, and a Flag of another kind of critical
	// information referring to each; the codes and the references order
	// the Flags differently.
	var encs []string
	for _, days := range []float64{5, 1.5, 12} {
		enc := restEncounterBody(patient, restToken())
		enc["length"] = map[string]any{"value": days, "unit": "dager", "system": restUCUM, "code": "d"}
		e := t.Feed(enc)
		id, _ := e["id"].(string)
		encs = append(encs, "Encounter/"+id)
	}
	// A quantity: the lengths 5, 1.5 and 12 days.
	byLength := []string{encs[1], encs[0], encs[2]}
	restCheckOrder(t, "Encounter", patient, "Encounter?patient="+patient+"&_sort=length", byLength)
	restCheckOrder(t, "Encounter", patient, "Encounter?patient="+patient+"&_sort=-length", reversed(byLength))
	codes := []string{"smitte", "anestesikomplikasjon", "implantat"}
	byCode := map[string]string{}
	byRef := map[string]string{}
	for i, code := range codes {
		f := restFlagBody(patient, restToken(), "")
		f["category"] = []any{restConcept(restKIType, code, "")}
		f["encounter"] = map[string]any{"reference": encs[i]}
		m := restCreate(t, patient, f)
		id, _ := m["id"].(string)
		byCode[code] = "Flag/" + id
		byRef[encs[i]] = "Flag/" + id
	}
	var want []string
	for _, c := range slices.Sorted(mapKeys(byCode)) {
		want = append(want, byCode[c])
	}
	base := "Flag?patient=" + patient
	restCheckOrder(t, "Flag", patient, base+"&_sort=category", want)
	restCheckOrder(t, "Flag", patient, base+"&_sort=-category", reversed(want))
	want = nil
	for _, r := range slices.Sorted(mapKeys(byRef)) {
		want = append(want, byRef[r])
	}
	restCheckOrder(t, "Flag", patient, base+"&_sort=encounter", want)
	restCheckOrder(t, "Flag", patient, base+"&_sort=-encounter,_id", reversed(want))
	// Two keys: status first (all active), then the category descending.
	want = nil
	for _, c := range reversed(slices.Sorted(mapKeys(byCode))) {
		want = append(want, byCode[c])
	}
	restCheckOrder(t, "Flag", patient, base+"&_sort=status,-category", want)

	// A string: onset as text, folded (case and the Norwegian letters do
	// not decide the order: "Ørsta" folds to "orsta").
	onsets := []string{"Ørsta 2019", "barndom", "Etter operasjon"}
	byOnset := map[string]string{}
	for _, o := range onsets {
		c := restCriticalBody("Condition", patient, restToken())
		c["onsetString"] = o
		m := restCreate(t, patient, c)
		id, _ := m["id"].(string)
		byOnset[o] = "Condition/" + id
	}
	want = []string{byOnset["barndom"], byOnset["Etter operasjon"], byOnset["Ørsta 2019"]}
	base = "Condition?patient=" + patient
	restCheckOrder(t, "Condition", patient, base+"&_sort=onset-info", want)
	restCheckOrder(t, "Condition", patient, base+"&_sort=-onset-info", reversed(want))
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

const restUCUM = "http://unitsofmeasure.org"

func checkSearchQuantity(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	enc := restEncounterBody(patient, restToken())
	enc["length"] = map[string]any{"value": 2.5, "unit": "dager", "system": restUCUM, "code": "d"}
	e := t.Feed(enc)
	id, _ := e["id"].(string)
	ref := "Encounter/" + id
	for _, c := range []struct {
		value string
		found bool
	}{
		{"2.5", true},
		{"3", false}, // 3 covers [2.5, 3.5], which does not contain 2.5's [2.45, 2.55]
		{"2.5|" + restUCUM + "|d", true},
		{"2.5|" + restUCUM + "|h", false},
		{"gt2", true},
		{"lt2", false},
		{"ge2.5", true},
		{"ap2.6", true},
		{"le2.4", false},
	} {
		path := "Encounter?patient=" + patient + "&length=" + url.QueryEscape(c.value)
		b := restParseBundle(t, "GET "+path, restRead(t, "Encounter", patient, Request{Path: path}), "searchset")
		if got := slices.Contains(b.refs("match"), ref); got != c.found {
			t.Errorf("GET %s: finds the Encounter of 2.5 days: %v, want %v", path, got, c.found)
		}
	}
	path := "Encounter?patient=" + patient + "&length=about2"
	if res := restRead(t, "Encounter", patient, Request{Path: path}); res.Status != http.StatusBadRequest {
		t.Errorf("GET %s: status %d, want 400", path, res.Status)
	}
}

const (
	restVSKritisk = "https://kjernejournal.example.no/fhir/ValueSet/kritisk-info-type"
	restVSPrivacy = "https://kjernejournal.example.no/fhir/ValueSet/privacy-setting"
	restVSAllergy = "https://kjernejournal.example.no/fhir/ValueSet/allergy-substance"
)

func checkTokenIn(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	f := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	id, _ := f["id"].(string)
	ref := "Flag/" + id
	for _, c := range []struct {
		query string
		found bool
	}{
		{"category:in=" + restVSKritisk, true},
		{"category:in=" + restVSPrivacy, false},
		{"category:not-in=" + restVSKritisk, false},
		{"category:not-in=" + restVSPrivacy, true},
		{"category:in=" + restVSPrivacy + "," + restVSKritisk, true},
	} {
		path := "Flag?patient=" + patient + "&" + c.query
		b := restParseBundle(t, "GET "+path, restRead(t, "Flag", patient, Request{Path: path}), "searchset")
		if got := slices.Contains(b.refs("match"), ref); got != c.found {
			t.Errorf("GET %s: finds the Flag (category implantat): %v, want %v", path, got, c.found)
		}
	}
	for _, c := range []struct{ query, names string }{
		{"category:in=http://example.org/fhir/ValueSet/unknown", "http://example.org/fhir/ValueSet/unknown"},
		{"code:in=" + restVSAllergy, restVSAllergy},
	} {
		path := "Flag?patient=" + patient + "&" + c.query
		if strings.HasPrefix(c.query, "code:") {
			path = "AllergyIntolerance?patient=" + patient + "&" + c.query
		}
		typ, _, _ := strings.Cut(path, "?")
		res := restRead(t, typ, patient, Request{Path: path})
		if res.Status != http.StatusBadRequest || !strings.Contains(Outcome(res), c.names) {
			t.Errorf("GET %s: status %d (%s), want 400 naming %s", path, res.Status, Outcome(res), c.names)
		}
	}
}

func checkIdentifierOfType(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	value := restToken()
	al := restAllergyBody(patient, value)
	al["identifier"] = []any{map[string]any{
		"type":   restConcept("http://terminology.hl7.org/CodeSystem/v2-0203", "FILL", "Filler Identifier"),
		"system": restIDSystem, "value": value,
	}}
	m := restCreate(t, patient, al)
	id, _ := m["id"].(string)
	ref := "AllergyIntolerance/" + id
	for _, c := range []struct {
		value string
		found bool
	}{
		{"http://terminology.hl7.org/CodeSystem/v2-0203|FILL|" + value, true},
		{"|FILL|" + value, true},
		{"http://terminology.hl7.org/CodeSystem/v2-0203|PLAC|" + value, false},
		{"http://terminology.hl7.org/CodeSystem/v2-0203|FILL|" + restToken(), false},
	} {
		path := "AllergyIntolerance?patient=" + patient + "&identifier:of-type=" + url.QueryEscape(c.value)
		b := restParseBundle(t, "GET "+path, restRead(t, "AllergyIntolerance", patient, Request{Path: path}), "searchset")
		if got := slices.Contains(b.refs("match"), ref); got != c.found {
			t.Errorf("GET %s: finds the allergy: %v, want %v", path, got, c.found)
		}
	}
	path := "AllergyIntolerance?patient=" + patient + "&identifier:of-type=FILL"
	if res := restRead(t, "AllergyIntolerance", patient, Request{Path: path}); res.Status != http.StatusBadRequest {
		t.Errorf("GET %s (no system|code|value): status %d, want 400", path, res.Status)
	}
}

func checkSummaryText(t *T) {
	patient, id := restAllergy(t)
	for _, c := range []struct {
		path   string
		search bool
	}{
		{"AllergyIntolerance/" + id + "?_summary=text", false},
		{"AllergyIntolerance?patient=" + patient + "&_summary=text", true},
	} {
		m := restShaped(t, "GET "+c.path, restRead(t, "AllergyIntolerance", patient, Request{Path: c.path}), c.search)
		for _, el := range []string{"id", "meta", "text", "patient"} {
			if _, ok := m[el]; !ok {
				t.Errorf("GET %s: %s is missing", c.path, el)
			}
		}
		for _, el := range []string{"code", "criticality", "note", "reaction", "identifier"} {
			if _, ok := m[el]; ok {
				t.Errorf("GET %s: %s is there; _summary=text keeps the narrative and the mandatory elements only", c.path, el)
			}
		}
		if !restSubsetted(m) {
			t.Errorf("GET %s: not tagged SUBSETTED", c.path)
		}
	}
}

// checkSummarySearchedTypes searches every type as its reader (the usage
// log as the auditor), bound to a record that has one of each.
func checkSummarySearchedTypes(t *T) {
	cs := restCapabilities(t)
	rec := restNewRecord(t)
	for _, r := range cs.Resource {
		if !r.has("search-type") || slices.Contains(restConformanceTypes, r.Type) {
			continue
		}
		if _, known := restAccessOf[r.Type]; !known {
			continue // rest/capability-search-params names it
		}
		base := r.Type + "?" + restBinding(r.Type, rec.patient)
		for _, sm := range []string{"true", "text", "data", "count"} {
			path := base + "&_summary=" + sm
			res := restRead(t, r.Type, rec.patient, Request{Path: path})
			if res.Status != http.StatusOK {
				t.Errorf("GET %s: status %d, want 200: %s", path, res.Status, Outcome(res))
				continue
			}
			b, err := restBundleOf(res, "searchset")
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
				continue
			}
			matches := 0
			for _, e := range b.Entries {
				if e.Mode != "match" {
					continue
				}
				matches++
				_, hasText := e.Resource["text"]
				switch sm {
				case "count":
					t.Errorf("GET %s: an entry (%s); _summary=count gives the total alone", path, e.Ref)
				case "true", "text":
					if !restSubsetted(e.Resource) {
						t.Errorf("GET %s: %s is not tagged SUBSETTED", path, e.Ref)
					}
				case "data":
					if hasText {
						t.Errorf("GET %s: %s keeps the narrative", path, e.Ref)
					}
				}
			}
			if sm == "count" && b.Total == nil {
				t.Errorf("GET %s: no Bundle.total", path)
			}
			if sm == "count" || federated(r.Type) {
				continue // the fixture patient has nothing at the sources
			}
			if matches == 0 {
				t.Errorf("GET %s: no match; the record has a %s", path, r.Type)
			}
		}
	}
}

// restR4BaseParams are the codes of the R4 (4.0.1) base search
// parameters of the types kjernejournal serves, with their types
// (hl7.fhir.core 4.0.1, SearchParameter-*.json; extension parameters
// left out); "Resource" applies to every type.
var restR4BaseParams = map[string]string{
	"Resource":            "_content:string _filter:special _id:token _lastUpdated:date _profile:uri _query:token _security:token _source:uri _tag:token _text:string",
	"Patient":             "active:token address:string address-city:string address-country:string address-postalcode:string address-state:string address-use:token birthdate:date death-date:date deceased:token email:token family:string gender:token general-practitioner:reference given:string identifier:token language:token link:reference name:string organization:reference phone:token phonetic:string telecom:token",
	"AllergyIntolerance":  "asserter:reference category:token clinical-status:token code:token criticality:token date:date identifier:token last-date:date manifestation:token onset:date patient:reference recorder:reference route:token severity:token type:token verification-status:token",
	"Flag":                "author:reference date:date encounter:reference identifier:token patient:reference subject:reference",
	"Condition":           "abatement-age:quantity abatement-date:date abatement-string:string asserter:reference body-site:token category:token clinical-status:token code:token encounter:reference evidence:token evidence-detail:reference identifier:token onset-age:quantity onset-date:date onset-info:string patient:reference recorded-date:date severity:token stage:token subject:reference verification-status:token",
	"Procedure":           "based-on:reference category:token code:token date:date encounter:reference identifier:token instantiates-canonical:reference instantiates-uri:uri location:reference part-of:reference patient:reference performer:reference reason-code:token reason-reference:reference status:token subject:reference",
	"Consent":             "action:token actor:reference category:token consentor:reference data:reference date:date identifier:token organization:reference patient:reference period:date purpose:token scope:token security-label:token source-reference:reference status:token",
	"MedicationStatement": "category:token code:token context:reference effective:date identifier:token medication:reference part-of:reference patient:reference source:reference status:token subject:reference",
	"Encounter":           "account:reference appointment:reference based-on:reference class:token date:date diagnosis:reference episode-of-care:reference identifier:token length:quantity location:reference location-period:date part-of:reference participant:reference participant-type:token patient:reference practitioner:reference reason-code:token reason-reference:reference service-provider:reference special-arrangement:token status:token subject:reference type:token",
	"AuditEvent":          "action:token address:string agent:reference agent-name:string agent-role:token altid:token date:date entity:reference entity-name:string entity-role:token entity-type:token outcome:token patient:reference policy:uri site:token source:reference subtype:token type:token",
	"DocumentReference":   "authenticator:reference author:reference category:token contenttype:token custodian:reference date:date description:string encounter:reference event:token facility:token format:token identifier:token language:token location:uri patient:reference period:date related:reference relatesto:reference relation:token relationship:composite security-label:token setting:token status:token subject:reference type:token",
	"DiagnosticReport":    "based-on:reference category:token code:token conclusion:token date:date encounter:reference identifier:token issued:date media:reference patient:reference performer:reference result:reference results-interpreter:reference specimen:reference status:token subject:reference",
	"Observation":         "based-on:reference category:token code:token code-value-concept:composite code-value-date:composite code-value-quantity:composite code-value-string:composite combo-code:token combo-code-value-concept:composite combo-code-value-quantity:composite combo-data-absent-reason:token combo-value-concept:token combo-value-quantity:quantity component-code:token component-code-value-concept:composite component-code-value-quantity:composite component-data-absent-reason:token component-value-concept:token component-value-quantity:quantity data-absent-reason:token date:date derived-from:reference device:reference encounter:reference focus:reference has-member:reference identifier:token method:token part-of:reference patient:reference performer:reference specimen:reference status:token subject:reference value-concept:token value-date:date value-quantity:quantity value-string:string",
}

func checkCapabilityR4Params(t *T) {
	res := t.Do(Request{Path: "metadata"})
	var cs struct {
		Rest []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type          string     `json:"type"`
				Interaction   []restCode `json:"interaction"`
				Documentation string     `json:"documentation"`
				SearchParam   []struct {
					Name       string `json:"name"`
					Type       string `json:"type"`
					Definition string `json:"definition"`
				} `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &cs) != nil {
		t.Fatalf("GET /metadata: status %d: no CapabilityStatement", res.Status)
	}
	for _, rest := range cs.Rest {
		if rest.Mode != "server" {
			continue
		}
		for _, r := range rest.Resource {
			codes, served := restR4BaseParams[r.Type]
			if !served || !slices.Contains(r.Interaction, restCode{"search-type"}) {
				continue
			}
			all := strings.Fields(codes)
			if r.Type != "AuditEvent" && !federated(r.Type) {
				all = append(all, strings.Fields(restR4BaseParams["Resource"])...)
			}
			for _, ct := range all {
				code, typ, _ := strings.Cut(ct, ":")
				i := slices.IndexFunc(r.SearchParam, func(p struct {
					Name       string `json:"name"`
					Type       string `json:"type"`
					Definition string `json:"definition"`
				}) bool {
					return p.Name == code
				})
				if i < 0 {
					if !restDocumentsCode(r.Documentation, code) {
						t.Errorf("%s: the R4 base search parameter %s is neither listed nor named as not offered in the documentation (%q)", r.Type, code, r.Documentation)
					}
					continue
				}
				p := r.SearchParam[i]
				if strings.HasPrefix(p.Definition, "http://hl7.org/fhir/SearchParameter/") && p.Type != typ {
					t.Errorf("%s: %s is listed as %s with R4's definition %s, which is a %s parameter", r.Type, code, p.Type, p.Definition, typ)
				}
			}
		}
	}
}

// restDocumentsCode reports whether documentation names code as a word
// (so that "date" is not found inside "last-date").
func restDocumentsCode(doc, code string) bool {
	for _, w := range strings.FieldsFunc(doc, func(r rune) bool {
		return r == ' ' || r == ',' || r == ':' || r == ';' || r == '.' || r == '(' || r == ')'
	}) {
		if w == code {
			return true
		}
	}
	return false
}
