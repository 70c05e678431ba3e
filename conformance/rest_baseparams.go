package conformance

import (
	"net/http"
	"time"
)

func init() {
	register(
		Check{GroupREST, "rest/base-search-params", "the R4 base search parameters added to the served types (issue 17) find the patient's resource by a value it has, and not by one it lacks: a sample on every type and _tag, _security, _profile, _source", checkBaseSearchParams},
	)
}

// baseParamsPatient feeds a patient with the elements Patient's added
// parameters index (active, address, telecom, communication).
func baseParamsPatient(t *T) string {
	for attempt := 0; ; attempt++ {
		pid := syntheticPID()
		body := newPatientBody(PatientSpec{GPHPR: GPHPR}, pid)
		body["active"] = true
		body["telecom"] = []any{
			map[string]any{"system": "phone", "value": "+4791234567", "use": "mobile"},
			map[string]any{"system": "email", "value": "kari.konformanse@example.no"},
		}
		body["address"] = []any{map[string]any{"use": "home", "line": []any{"Storgata 1"}, "city": "Tromsø", "postalCode": "9008", "country": "NO"}}
		body["communication"] = []any{map[string]any{"language": restConcept("urn:ietf:bcp:47", "nb", "norsk bokmål")}}
		res := t.Do(Request{Method: http.MethodPost, Path: "Patient", As: PersonaFeeder, Body: body})
		if res.Status == http.StatusConflict && attempt < 5 {
			continue
		}
		if res.Status != http.StatusCreated {
			t.Fatalf("fixture: feeding a patient: status %d: %s", res.Status, Outcome(res))
		}
		id, _ := res.JSON()["id"].(string)
		if id == "" {
			t.Fatalf("fixture: created Patient has no id")
		}
		return id
	}
}

func checkBaseSearchParams(t *T) {
	patient := baseParamsPatient(t)
	rec := &restRecord{patient: patient, ids: map[string]string{"Patient": patient}}

	enc := restEncounterBody(patient, restToken())
	enc["participant"] = []any{map[string]any{
		"type":       []any{restConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND", "attender")},
		"individual": map[string]any{"reference": "Practitioner/kjc-pr1"},
	}}
	enc["location"] = []any{map[string]any{"location": map[string]any{"reference": "Location/kjc-l1"}}}
	enc["episodeOfCare"] = []any{map[string]any{"reference": "EpisodeOfCare/kjc-eoc1"}}
	encID, _ := t.Feed(enc)["id"].(string)
	rec.ids["Encounter"] = encID

	med := restMedicationBody(patient, restToken())
	med["context"] = restRef("Encounter", encID)
	rec.ids["MedicationStatement"], _ = t.Feed(med)["id"].(string)

	al := restAllergyBody(patient, restToken())
	al["lastOccurrence"] = "2024-02-20"
	al["reaction"] = []any{map[string]any{
		"manifestation": []any{restConcept(restSNOMED, "39579001", "Anaphylaxis")},
		"severity":      "severe",
		"onset":         "2024-02-20",
		"exposureRoute": restConcept(restSNOMED, "26643006", "Oral route"),
	}}
	al["meta"] = map[string]any{
		"tag":      []any{map[string]any{"system": "urn:kjc:tag", "code": "konformanse"}},
		"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObligationPolicy", "code": "NOCOLLECT"}},
		"source":   "urn:kjc:source#base-params",
	}
	created := restCreate(t, patient, al)
	rec.ids["AllergyIntolerance"], _ = created["id"].(string)
	meta, _ := created["meta"].(map[string]any)
	profile := ""
	if ps, _ := meta["profile"].([]any); len(ps) > 0 {
		profile, _ = ps[0].(string)
	}

	cons := restCreate(t, patient, restConsentBody(patient))
	rec.ids["Consent"], _ = cons["id"].(string)

	cases := []struct {
		typ, param string
		c          restSearchCase
	}{
		{"Patient", "active", restSearchCase{"true", "false"}},
		{"Patient", "address-city", restSearchCase{"tromso", "Bergen"}},
		{"Patient", "address-postalcode", restSearchCase{"9008", "0150"}},
		{"Patient", "email", restSearchCase{"kari.konformanse@example.no", "ola@example.no"}},
		{"Patient", "phone", restSearchCase{"+4791234567", "+4790000000"}},
		{"Patient", "language", restSearchCase{"urn:ietf:bcp:47|nb", "urn:ietf:bcp:47|nn"}},
		{"Encounter", "participant", restSearchCase{"Practitioner/kjc-pr1", "Practitioner/kjc-pr2"}},
		{"Encounter", "practitioner", restSearchCase{"kjc-pr1", "kjc-pr2"}},
		{"Encounter", "participant-type", restSearchCase{"ATND", "ADM"}},
		{"Encounter", "location", restSearchCase{"Location/kjc-l1", "Location/kjc-l2"}},
		{"Encounter", "episode-of-care", restSearchCase{"kjc-eoc1", "kjc-eoc2"}},
		{"MedicationStatement", "context", restSearchCase{"Encounter/" + encID, "Encounter/" + restToken()}},
		{"AllergyIntolerance", "severity", restSearchCase{"severe", "mild"}},
		{"AllergyIntolerance", "onset", restSearchCase{"2024-02-20", "2023-02-20"}},
		{"AllergyIntolerance", "last-date", restSearchCase{"ge2024-02-01", "lt2024-01-01"}},
		{"AllergyIntolerance", "route", restSearchCase{restSNOMED + "|26643006", restSNOMED + "|47625008"}},
		{"AllergyIntolerance", "_tag", restSearchCase{"urn:kjc:tag|konformanse", "urn:kjc:tag|annen"}},
		{"AllergyIntolerance", "_security", restSearchCase{"NOCOLLECT", "NOINTEGRATE"}},
		{"AllergyIntolerance", "_source", restSearchCase{"urn:kjc:source#base-params", "urn:kjc:source#other"}},
		// The server sets a privacy setting's dateTime to its own time.
		{"Consent", "date", restSearchCase{"ge" + time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02"), "lt2000-01-01"}},
		{"Consent", "action", restSearchCase{"", ""}}, // accepted; the fixture has no action
		{"Consent", "purpose", restSearchCase{"", ""}},
	}
	if profile != "" {
		cases = append(cases, struct {
			typ, param string
			c          restSearchCase
		}{"AllergyIntolerance", "_profile", restSearchCase{profile, "http://example.org/fhir/StructureDefinition/none"}})
	} else {
		t.Errorf("AllergyIntolerance: the created resource has no meta.profile to search _profile by")
	}
	for _, c := range cases {
		if c.c.match == "" {
			restSearchOne(t, c.typ, rec, c.param, restSearchCase{match: "urn:kjc:none|none"}, false, rec.ids[c.typ])
			continue
		}
		restSearchOne(t, c.typ, rec, c.param, c.c, true, rec.ids[c.typ])
	}
}
