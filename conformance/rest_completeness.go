package conformance

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What generic FHIR clients and test suites expect of an R4 server beyond
// the basics (issue 17): a summary of every served type, mandatory
// elements kept under _elements, paged instance history, If-Modified-Since
// and fhirVersion in content negotiation.

func init() {
	register(
		Check{GroupREST, "rest/summary-every-type", "_summary=true on a read and a search of every served type answers 200 with the resource tagged SUBSETTED", checkSummaryEveryType},
		Check{GroupREST, "rest/elements-mandatory", "_elements keeps the mandatory (min ≥ 1) elements of every served type", checkElementsMandatory},
		Check{GroupREST, "rest/history-paging", "an instance history with _count=1 pages through every version with next links", checkHistoryPaging},
		Check{GroupREST, "rest/if-modified-since", "a read with If-Modified-Since answers 304 when the resource is not newer, 200 when it is", checkIfModifiedSince},
		Check{GroupREST, "rest/format-fhir-version", "Accept with fhirVersion=3.0 is 406, 4.0 is 200; _format=application/fhir+json with an unencoded + is accepted", checkFormatFHIRVersion},
	)
}

// restServedTypes are the types every check of this file makes a fixture
// of (the record types of the CapabilityStatement).
var restServedTypes = []string{"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent", "Condition", "Procedure", "Subscription"}

// restMandatory are the top-level elements of min ≥ 1 in R4 (4.0.1).
var restMandatory = map[string][]string{
	"AllergyIntolerance":  {"patient"},
	"Flag":                {"status", "code", "subject"},
	"MedicationStatement": {"status", "medication", "subject"},
	"Encounter":           {"status", "class"},
	"Consent":             {"status", "scope", "category"},
	"Condition":           {"subject"},
	"Procedure":           {"status", "subject"},
	"Subscription":        {"status", "reason", "criteria", "channel"},
}

// restFixture creates a resource of typ on a fresh patient; it returns the
// patient and the stored resource.
func restFixture(t *T, typ string) (string, map[string]any) {
	patient, _ := t.NewPatient(PatientSpec{})
	if typ == "Patient" {
		res := restRead(t, "Patient", patient, Request{Path: "Patient/" + patient})
		if res.Status != http.StatusOK {
			t.Fatalf("GET Patient/%s: status %d: %s", patient, res.Status, Outcome(res))
		}
		return patient, res.JSON()
	}
	return patient, restCreate(t, patient, restNewResource(t, typ, patient))
}

func checkSummaryEveryType(t *T) {
	for _, typ := range restServedTypes {
		patient, m := restFixture(t, typ)
		id, _ := m["id"].(string)
		paths := []struct {
			path   string
			search bool
		}{{typ + "/" + id + "?_summary=true", false}}
		if typ != "Subscription" {
			paths = append(paths, struct {
				path   string
				search bool
			}{typ + "?" + restBinding(typ, patient) + "&_summary=true", true})
		}
		for _, c := range paths {
			res := restRead(t, typ, patient, Request{Path: c.path})
			if res.Status != http.StatusOK {
				t.Errorf("GET %s: status %d, want 200: %s", c.path, res.Status, Outcome(res))
				continue
			}
			var got map[string]any
			if c.search {
				b, err := restBundleOf(res, "searchset")
				if err != nil {
					t.Errorf("GET %s: %v", c.path, err)
					continue
				}
				for _, e := range b.Entries {
					if e.Mode == "match" {
						got = e.Resource
					}
				}
			} else {
				got = res.JSON()
			}
			if got == nil || got["id"] != id {
				t.Errorf("GET %s: the %s/%s is not in the answer", c.path, typ, id)
				continue
			}
			if !restSubsetted(got) {
				t.Errorf("GET %s: the summary is not tagged SUBSETTED", c.path)
			}
		}
	}
}

func checkElementsMandatory(t *T) {
	for _, typ := range restServedTypes {
		patient, m := restFixture(t, typ)
		id, _ := m["id"].(string)
		path := typ + "/" + id + "?_elements=identifier"
		res := restRead(t, typ, patient, Request{Path: path})
		if res.Status != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200: %s", path, res.Status, Outcome(res))
			continue
		}
		got := res.JSON()
		for _, el := range restMandatory[typ] {
			if !restHasElement(m, el) {
				continue
			}
			if !restHasElement(got, el) {
				t.Errorf("GET %s: the mandatory element %s.%s is left out", path, typ, el)
			}
		}
		if !restSubsetted(got) {
			t.Errorf("GET %s: not tagged SUBSETTED", path)
		}
	}
}

// restHasElement reports whether m has el, a choice element named by its
// stem (medication for medicationCodeableConcept).
func restHasElement(m map[string]any, el string) bool {
	for k := range m {
		if k == el || (strings.HasPrefix(k, el) && len(k) > len(el) && k[len(el)] >= 'A' && k[len(el)] <= 'Z') {
			return true
		}
	}
	return false
}

func checkHistoryPaging(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	for i := 2; i <= 4; i++ {
		m := restChange("Flag", flag)
		code, _ := m["code"].(map[string]any)
		code["text"] = "Pacemaker, versjon " + strconv.Itoa(i)
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: m})
		if res.Status != http.StatusOK {
			t.Fatalf("PUT Flag/%s (version %d): status %d: %s", fid, i, res.Status, Outcome(res))
		}
		flag = res.JSON()
	}
	seen := map[string]bool{}
	next := "Flag/" + fid + "/_history?_count=1"
	for page := 1; next != ""; page++ {
		if page > 6 {
			t.Fatalf("GET Flag/%s/_history?_count=1: still a next link after %d pages", fid, page-1)
		}
		b := restParseBundle(t, "GET "+next, restRead(t, "Flag", patient, Request{Path: next}), "history")
		if len(b.Entries) != 1 {
			t.Fatalf("GET %s (page %d): %d entries, want 1", next, page, len(b.Entries))
		}
		vid, _ := restMeta(b.Entries[0].Resource)
		if seen[vid] {
			t.Fatalf("GET %s (page %d): version %s again", next, page, vid)
		}
		seen[vid] = true
		next = b.Links["next"]
		if page == 4 && next != "" {
			t.Errorf("the last page of 4 versions has a next link %s", next)
			break
		}
	}
	for v := 1; v <= 4; v++ {
		if !seen[strconv.Itoa(v)] {
			t.Errorf("paging Flag/%s/_history?_count=1 never gave version %d (got %v)", fid, v, seen)
		}
	}
}

func checkIfModifiedSince(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	_, lu := restMeta(flag)
	last, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Fatalf("the created Flag's meta.lastUpdated %q: %v", lu, err)
	}
	path := "Flag/" + fid
	for _, c := range []struct {
		what string
		at   time.Time
		want int
	}{
		{"lastUpdated itself", last, http.StatusNotModified},
		{"an hour later", last.Add(time.Hour), http.StatusNotModified},
		{"an hour earlier", last.Add(-time.Hour), http.StatusOK},
	} {
		h := c.at.UTC().Format(http.TimeFormat)
		res := restRead(t, "Flag", patient, Request{Path: path, Header: http.Header{"If-Modified-Since": {h}}})
		if res.Status != c.want {
			t.Errorf("GET %s with If-Modified-Since: %s (%s): status %d, want %d", path, h, c.what, res.Status, c.want)
		}
		if c.want == http.StatusNotModified && len(res.Body) != 0 {
			t.Errorf("GET %s with If-Modified-Since (%s): a 304 with a body", path, c.what)
		}
	}
	// If-None-Match still decides when both are sent.
	res := restRead(t, "Flag", patient, Request{Path: path, Header: http.Header{"If-None-Match": {`W/"1"`}}})
	if res.Status != http.StatusNotModified {
		t.Errorf("GET %s with If-None-Match: W/\"1\": status %d, want 304", path, res.Status)
	}
	res = restRead(t, "Flag", patient, Request{Path: path, Header: http.Header{
		"If-None-Match": {`W/"7"`}, "If-Modified-Since": {last.Add(time.Hour).UTC().Format(http.TimeFormat)}}})
	if res.Status != http.StatusOK {
		t.Errorf("GET %s with a stale If-None-Match and a later If-Modified-Since: status %d, want 200 (If-None-Match decides)", path, res.Status)
	}
}

func checkFormatFHIRVersion(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	path := "Patient/" + patient
	for _, c := range []struct {
		accept string
		want   int
	}{
		{"application/fhir+json; fhirVersion=3.0", http.StatusNotAcceptable},
		{"application/fhir+json; fhirVersion=4.0", http.StatusOK},
		{"application/fhir+json", http.StatusOK},
	} {
		res := restRead(t, "Patient", patient, Request{Path: path, Header: http.Header{"Accept": {c.accept}}})
		what := "GET " + path + " with Accept: " + c.accept
		if c.want == http.StatusOK {
			if res.Status != http.StatusOK || res.ResourceType() != "Patient" {
				t.Errorf("%s: status %d, want 200 and the Patient: %s", what, res.Status, Outcome(res))
			}
			continue
		}
		restExpectError(t, what, res, c.want)
	}
	for _, q := range []string{"_format=application/fhir+json", "_format=" + url.QueryEscape("application/fhir+json")} {
		p := path + "?" + q
		res := restRead(t, "Patient", patient, Request{Path: p, Header: http.Header{"Accept": {"*/*"}}})
		if mt, _ := restMediaType(res.Header.Get("Content-Type")); res.Status != http.StatusOK || mt != "application/fhir+json" {
			t.Errorf("GET %s: status %d, Content-Type %q, want 200 application/fhir+json: %s", p, res.Status, res.Header.Get("Content-Type"), Outcome(res))
		}
	}
}
