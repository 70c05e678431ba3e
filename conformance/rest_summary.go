package conformance

import (
	"net/http"
	"slices"
	"strings"
)

// _summary and _elements hand out part of a resource; a part must say so
// (SUBSETTED), so that no client writes it back over the whole.

func init() {
	register(
		Check{GroupREST, "rest/summary-true", "_summary=true on a read and a search gives the summary elements only, tagged SUBSETTED", checkSummaryTrue},
		Check{GroupREST, "rest/summary-count", "_summary=count gives a searchset with the total and no resources", checkSummaryCount},
		Check{GroupREST, "rest/summary-data", "_summary=data leaves out the narrative and keeps the data; _summary=false gives the whole resource", checkSummaryData},
		Check{GroupREST, "rest/elements", "_elements on a read and a search gives the asked elements (with id, meta and mandatory or modifier elements) only, tagged SUBSETTED", checkElements},
	)
}

// restAllergyNotSummary are elements of the fixture allergy that R4 does
// not mark as summary elements.
var restAllergyNotSummary = []string{"text", "note", "reaction", "recordedDate", "recorder"}

// restAllergy makes a fresh patient with the fixture allergy.
func restAllergy(t *T) (patient, id string) {
	patient, _ = t.NewPatient(PatientSpec{})
	a := restCreate(t, patient, restAllergyBody(patient, restToken()))
	id, _ = a["id"].(string)
	return patient, id
}

// restShaped returns the resource of a read, or of the one match of a
// search.
func restShaped(t *T, what string, res *Response, search bool) map[string]any {
	if !search {
		if res.Status != http.StatusOK {
			t.Fatalf("%s: status %d, want 200: %s", what, res.Status, Outcome(res))
		}
		return res.JSON()
	}
	b := restParseBundle(t, what, res, "searchset")
	for _, e := range b.Entries {
		if e.Mode == "match" {
			return e.Resource
		}
	}
	t.Fatalf("%s: no match", what)
	return nil
}

func checkSummaryTrue(t *T) {
	patient, id := restAllergy(t)
	for _, c := range []struct {
		path   string
		search bool
	}{
		{"AllergyIntolerance/" + id + "?_summary=true", false},
		{"AllergyIntolerance?patient=" + patient + "&_summary=true", true},
	} {
		m := restShaped(t, "GET "+c.path, restRead(t, "AllergyIntolerance", patient, Request{Path: c.path}), c.search)
		for _, el := range []string{"id", "meta", "code", "criticality", "patient"} {
			if _, ok := m[el]; !ok {
				t.Errorf("GET %s: the summary element %s is missing", c.path, el)
			}
		}
		for _, el := range restAllergyNotSummary {
			if _, ok := m[el]; ok {
				t.Errorf("GET %s: %s is not a summary element of AllergyIntolerance, but is there", c.path, el)
			}
		}
		if !restSubsetted(m) {
			t.Errorf("GET %s: the summary is not tagged SUBSETTED", c.path)
		}
	}
}

func checkSummaryCount(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	path := "Flag?patient=" + patient + "&_summary=count"
	b := restParseBundle(t, "GET "+path, restRead(t, "Flag", patient, Request{Path: path}), "searchset")
	if b.Total == nil || *b.Total != 2 {
		t.Errorf("GET %s: Bundle.total %v, want 2", path, b.Total)
	}
	if n := len(b.refs("match")) + len(b.refs("include")); n > 0 {
		t.Errorf("GET %s: %d resources; _summary=count asks for the count only", path, n)
	}
}

func checkSummaryData(t *T) {
	patient, id := restAllergy(t)
	for _, c := range []struct {
		path   string
		search bool
	}{
		{"AllergyIntolerance/" + id + "?_summary=data", false},
		{"AllergyIntolerance?patient=" + patient + "&_summary=data", true},
	} {
		m := restShaped(t, "GET "+c.path, restRead(t, "AllergyIntolerance", patient, Request{Path: c.path}), c.search)
		if _, ok := m["text"]; ok {
			t.Errorf("GET %s: the narrative (text) is there", c.path)
		}
		for _, el := range []string{"code", "criticality", "note", "reaction"} {
			if _, ok := m[el]; !ok {
				t.Errorf("GET %s: the data element %s is missing", c.path, el)
			}
		}
	}
	path := "AllergyIntolerance/" + id + "?_summary=false"
	m := restShaped(t, "GET "+path, restRead(t, "AllergyIntolerance", patient, Request{Path: path}), false)
	for _, el := range []string{"text", "code", "note", "reaction"} {
		if _, ok := m[el]; !ok {
			t.Errorf("GET %s: %s is missing from the whole resource", path, el)
		}
	}
	if restSubsetted(m) {
		t.Errorf("GET %s: the whole resource is tagged SUBSETTED", path)
	}
}

func checkElements(t *T) {
	patient, id := restAllergy(t)
	// What a server may add to what was asked: the resource's identity
	// and, as R4 recommends, mandatory (patient) and modifier elements.
	allowed := []string{"resourceType", "id", "meta", "patient", "clinicalStatus", "verificationStatus", "modifierExtension", "implicitRules"}
	asked := []string{"criticality", "code"}
	for _, c := range []struct {
		path   string
		search bool
	}{
		{"AllergyIntolerance/" + id + "?_elements=" + strings.Join(asked, ","), false},
		{"AllergyIntolerance?patient=" + patient + "&_elements=" + strings.Join(asked, ","), true},
	} {
		m := restShaped(t, "GET "+c.path, restRead(t, "AllergyIntolerance", patient, Request{Path: c.path}), c.search)
		for _, el := range asked {
			if _, ok := m[el]; !ok {
				t.Errorf("GET %s: the asked element %s is missing", c.path, el)
			}
		}
		for el := range m {
			if !slices.Contains(asked, el) && !slices.Contains(allowed, el) {
				t.Errorf("GET %s: %s is there, though not asked for", c.path, el)
			}
		}
		if !restSubsetted(m) {
			t.Errorf("GET %s: the resource is not tagged SUBSETTED", c.path)
		}
		if m["id"] != id {
			t.Errorf("GET %s: id %v, want %s", c.path, m["id"], id)
		}
	}
}
