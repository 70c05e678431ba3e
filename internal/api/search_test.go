package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// searchset is a decoded searchset Bundle.
type searchset struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

func bundleOf(t *testing.T, r response) searchset {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var b searchset
	require.NoError(t, json.Unmarshal(r.body, &b), "body: %s", r.body)
	require.Equal(t, "Bundle", b.ResourceType)
	require.Equal(t, "searchset", b.Type)
	return b
}

// ids lists "Type/id" of the entries with the search mode.
func (b searchset) ids(mode string) []string {
	var out []string
	for _, e := range b.Entry {
		if e.Search.Mode != mode {
			continue
		}
		var r struct{ ResourceType, ID string }
		if json.Unmarshal(e.Resource, &r) == nil {
			out = append(out, r.ResourceType+"/"+r.ID)
		}
	}
	return out
}

func (b searchset) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// create posts a body and returns the new id.
func create(t *testing.T, c *client, typ string, body []byte) string {
	t.Helper()
	r := c.do("POST", "/"+typ, body)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(t)["id"].(string)
}

// searchFixture is one patient's record with variants to tell apart, and
// a second patient whose record must never show up.
type searchFixture struct {
	p1, p2                  string
	allergyHigh, allergyLow string
	medActive, medStopped   string
	encFeb, encJun, flag    string
	otherPatientsAllergy    string
}

func seedSearch(t *testing.T, c *client) searchFixture {
	t.Helper()
	var f searchFixture
	f.p1, f.p2 = createPatient(t, c, 1), createPatient(t, c, 2)
	f.allergyHigh = create(t, c, "AllergyIntolerance", clinical("AllergyIntolerance", f.p1, "", "penicillin"))
	f.allergyLow = create(t, c, "AllergyIntolerance", bytes.Replace(bytes.Replace(
		clinical("AllergyIntolerance", f.p1, "", "nøtter"), []byte(`"high"`), []byte(`"low"`), 1),
		[]byte(`"J01CE02"`), []byte(`"J01CA04"`), 1))
	f.otherPatientsAllergy = create(t, c, "AllergyIntolerance", clinical("AllergyIntolerance", f.p2, "", "penicillin"))
	f.medActive = create(t, c, "MedicationStatement", clinical("MedicationStatement", f.p1, "", "metoprolol"))
	f.medStopped = create(t, c, "MedicationStatement", bytes.Replace(bytes.Replace(
		clinical("MedicationStatement", f.p1, "", "gammel"), []byte(`"active"`), []byte(`"stopped"`), 1),
		[]byte(`{"start":"2024-01-10"}`), []byte(`{"start":"2019-05-01","end":"2019-12-31"}`), 1))
	f.encFeb = create(t, c, "Encounter", clinical("Encounter", f.p1, "", "brudd"))
	f.encJun = create(t, c, "Encounter", bytes.Replace(bytes.Replace(
		clinical("Encounter", f.p1, "", "kontroll"), []byte(`2024-02-01T10:00:00+01:00`), []byte(`2024-06-10T08:00:00Z`), 1),
		[]byte(`2024-02-03T12:00:00+01:00`), []byte(`2024-06-10T09:00:00Z`), 1))
	f.flag = create(t, c, "Flag", clinical("Flag", f.p1, "", "pacemaker implantert"))
	return f
}

func TestSearchParameters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		f := seedSearch(t, c)
		A, M, E, F := "AllergyIntolerance/", "MedicationStatement/", "Encounter/", "Flag/"
		cases := []struct {
			name, path string
			want       []string // in order for the sort cases
		}{
			{"reference id", "/AllergyIntolerance?patient=" + f.p1, []string{A + f.allergyHigh, A + f.allergyLow}},
			{"reference Type/id", "/AllergyIntolerance?patient=Patient/" + f.p1, []string{A + f.allergyHigh, A + f.allergyLow}},
			{"token code", "/AllergyIntolerance?patient=" + f.p1 + "&criticality=high", []string{A + f.allergyHigh}},
			{"token system|code", "/AllergyIntolerance?patient=" + f.p1 + "&code=http://www.whocc.no/atc|J01CA04", []string{A + f.allergyLow}},
			{"token system|", "/AllergyIntolerance?patient=" + f.p1 + "&code=http://www.whocc.no/atc|", []string{A + f.allergyHigh, A + f.allergyLow}},
			{"token |code (no system)", "/AllergyIntolerance?patient=" + f.p1 + "&code=|J01CE02", nil},
			{"token :not", "/AllergyIntolerance?patient=" + f.p1 + "&criticality:not=high", []string{A + f.allergyLow}},
			{"token :text", "/AllergyIntolerance?patient=" + f.p1 + "&code:text=notter", []string{A + f.allergyLow}},
			{"comma is OR", "/MedicationStatement?subject=" + f.p1 + "&status=active,stopped", []string{M + f.medActive, M + f.medStopped}},
			{"repeat is AND", "/MedicationStatement?subject=" + f.p1 + "&status=active&status=stopped", nil},
			{"date year", "/MedicationStatement?patient=" + f.p1 + "&effective=ge2024", []string{M + f.medActive}},
			{"date prefix lt", "/MedicationStatement?patient=" + f.p1 + "&effective=lt2020", []string{M + f.medStopped}},
			{"date month overlaps period", "/Encounter?patient=" + f.p1 + "&date=2024-02", []string{E + f.encFeb}},
			{"date range AND", "/Encounter?patient=" + f.p1 + "&date=ge2024-03-01&date=le2024-12-31", []string{E + f.encJun}},
			{"date with zone", "/Encounter?patient=" + f.p1 + "&date=sa2024-02-03T12:00:00%2B01:00", []string{E + f.encJun}},
			{"sort date descending", "/Encounter?patient=" + f.p1 + "&_sort=-date", []string{E + f.encJun, E + f.encFeb}},
			{"sort date ascending", "/Encounter?patient=" + f.p1 + "&_sort=date", []string{E + f.encFeb, E + f.encJun}},
			{"string starts-with, folded", "/Patient?_id=" + f.p1 + "&name=NORD", []string{"Patient/" + f.p1}},
			{"string :exact", "/Patient?_id=" + f.p1 + "&family:exact=nordmann", nil},
			{"string :contains", "/Patient?_id=" + f.p1 + "&family:contains=dman", []string{"Patient/" + f.p1}},
			{"token on code element", "/Flag?subject=" + f.p1 + "&status=active&category=implantat", []string{F + f.flag}},
			{"_id", "/Flag?patient=" + f.p1 + "&_id=" + f.flag, []string{F + f.flag}},
			{"compartment", "/Patient/" + f.p1 + "/AllergyIntolerance", []string{A + f.allergyHigh, A + f.allergyLow}},
			{"compartment with parameters", "/Patient/" + f.p1 + "/AllergyIntolerance?criticality=low", []string{A + f.allergyLow}},
			{"compartment and another patient: nothing", "/Patient/" + f.p1 + "/AllergyIntolerance?patient=" + f.p2, nil},
			{"other patient's record stays apart", "/AllergyIntolerance?patient=" + f.p2, []string{A + f.otherPatientsAllergy}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				b := bundleOf(t, c.do("GET", tc.path, nil))
				got, want := b.ids("match"), slices.Clone(tc.want)
				if !strings.HasPrefix(tc.name, "sort") {
					// Default order is _lastUpdated, then id: resources
					// created within the same instant come in id order.
					slices.Sort(got)
					slices.Sort(want)
				}
				assert.Equal(t, want, got)
				require.NotNil(t, b.Total)
				assert.Equal(t, len(tc.want), *b.Total)
				assert.NotEmpty(t, b.link("self"))
			})
		}

		t.Run("POST _search merges body and URL", func(t *testing.T) {
			r := c.do("POST", "/AllergyIntolerance/_search?criticality=high", nil)
			outcome(t, r, http.StatusBadRequest) // no patient
			body := url.Values{"patient": {f.p1}}.Encode()
			r = c.do("POST", "/AllergyIntolerance/_search?criticality=high", []byte(body), "Content-Type", "application/x-www-form-urlencoded")
			assert.Equal(t, []string{A + f.allergyHigh}, bundleOf(t, r).ids("match"))
			r = c.do("POST", "/AllergyIntolerance/_search", []byte(body), "Content-Type", "application/fhir+json")
			outcome(t, r, http.StatusUnsupportedMediaType)
			big := "patient=" + f.p1 + "&code:text=" + strings.Repeat("a", 2<<20)
			r = c.do("POST", "/AllergyIntolerance/_search", []byte(big), "Content-Type", "application/x-www-form-urlencoded")
			outcome(t, r, http.StatusRequestEntityTooLarge)
		})

		t.Run("routes coexist", func(t *testing.T) {
			id := create(t, c, "Flag", clinical("Flag", f.p1, "", "ny"))
			require.Equal(t, http.StatusOK, c.do("PUT", "/Flag/"+id, clinical("Flag", f.p1, id, "endret")).status)
			require.Equal(t, http.StatusOK, c.do("GET", "/Flag/"+id, nil).status)
			require.Equal(t, http.StatusOK, c.do("GET", "/metadata", nil).status)
			require.Equal(t, http.StatusOK, c.do("GET", "/healthz", nil).status)
			r := c.do("POST", "/Flag/_search", []byte("subject="+f.p1+"&_id="+id), "Content-Type", "application/x-www-form-urlencoded")
			assert.Equal(t, []string{F + id}, bundleOf(t, r).ids("match"))
			require.Equal(t, http.StatusNoContent, c.do("DELETE", "/Flag/"+id, nil).status)
			assert.Empty(t, bundleOf(t, c.do("GET", "/Flag?subject="+f.p1+"&_id="+id, nil)).ids("match"))
			outcome(t, c.do("GET", "/Observation?patient="+f.p1, nil), http.StatusNotFound)
		})
	})
}

func TestSearchResultParameters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		f := seedSearch(t, c)
		all := "/AllergyIntolerance?patient=" + f.p1

		t.Run("_total", func(t *testing.T) {
			b := bundleOf(t, c.do("GET", all+"&_total=none", nil))
			assert.Nil(t, b.Total)
			assert.Len(t, b.ids("match"), 2)
			b = bundleOf(t, c.do("GET", all+"&_total=accurate&_count=1", nil))
			require.NotNil(t, b.Total)
			assert.Equal(t, 2, *b.Total)
			assert.Len(t, b.ids("match"), 1)
		})
		t.Run("_summary=count", func(t *testing.T) {
			b := bundleOf(t, c.do("GET", all+"&_summary=count", nil))
			require.NotNil(t, b.Total)
			assert.Equal(t, 2, *b.Total)
			assert.Empty(t, b.Entry)
		})
		t.Run("_elements", func(t *testing.T) {
			b := bundleOf(t, c.do("GET", all+"&_elements=criticality", nil))
			require.Len(t, b.Entry, 2)
			for _, e := range b.Entry {
				var m map[string]any
				require.NoError(t, json.Unmarshal(e.Resource, &m))
				assert.Contains(t, m, "criticality")
				assert.NotContains(t, m, "code")
				assert.Contains(t, string(e.Resource), "SUBSETTED")
			}
			assert.Contains(t, b.link("self"), "_elements=criticality")
		})
		t.Run("_include", func(t *testing.T) {
			b := bundleOf(t, c.do("GET", all+"&_include=AllergyIntolerance:patient", nil))
			assert.Len(t, b.ids("match"), 2)
			assert.Equal(t, []string{"Patient/" + f.p1}, b.ids("include"))
		})
		t.Run("_revinclude", func(t *testing.T) {
			b := bundleOf(t, c.do("GET", "/Patient?_id="+f.p1+"&_revinclude=Flag:subject&_revinclude=AllergyIntolerance:patient", nil))
			assert.Equal(t, []string{"Patient/" + f.p1}, b.ids("match"))
			inc := b.ids("include")
			slices.Sort(inc)
			want := []string{"AllergyIntolerance/" + f.allergyHigh, "AllergyIntolerance/" + f.allergyLow, "Flag/" + f.flag}
			slices.Sort(want)
			assert.Equal(t, want, inc, "the other patient's allergy is never included")
		})
		t.Run("strict and lenient", func(t *testing.T) {
			is := outcome(t, c.do("GET", all+"&colour=blue", nil), http.StatusBadRequest)
			assert.Contains(t, is["diagnostics"], "colour")
			outcome(t, c.do("GET", all+"&criticality:exact=high", nil), http.StatusBadRequest)
			outcome(t, c.do("GET", all+"&_count=many", nil), http.StatusBadRequest)
			b := bundleOf(t, c.do("GET", all+"&colour=blue&criticality=high", nil, "Prefer", "handling=lenient"))
			assert.Equal(t, []string{"AllergyIntolerance/" + f.allergyHigh}, b.ids("match"))
			var oo []string
			for _, e := range b.Entry {
				if e.Search.Mode == "outcome" {
					oo = append(oo, string(e.Resource))
				}
			}
			require.Len(t, oo, 1)
			assert.Contains(t, oo[0], "colour")
			assert.NotContains(t, b.link("self"), "colour", "a dropped parameter is not in the self link")
		})
		t.Run("one patient per search, by law", func(t *testing.T) {
			for _, p := range []string{
				"/AllergyIntolerance",
				"/AllergyIntolerance?criticality=high",
				"/AllergyIntolerance?patient=" + f.p1 + "," + f.p2,
				"/MedicationStatement?status=active",
				"/Patient?name=nordmann",
				"/Encounter?subject:missing=false",
			} {
				is := outcome(t, c.do("GET", p, nil), http.StatusBadRequest)
				assert.Contains(t, is["diagnostics"], "may not by law be searched across patients", p)
				assert.Contains(t, fmt.Sprint(is["details"]), "no-patient-bound", p)
			}
		})
	})
}

// TestSearchByIdentifier: Patient?identifier= and the patient.identifier
// chain find the patient through the store's identifier lookup, follow
// updates and deletes, and bind the search to that one patient.
func TestSearchByIdentifier(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		f := seedSearch(t, c)
		q := url.QueryEscape
		fnr := func(n int) string { return "urn:oid:2.16.578.1.12.4.1.4.1|" + personNumber(t, n) }
		A := "AllergyIntolerance/"

		b := bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(1)), nil))
		assert.Equal(t, []string{"Patient/" + f.p1}, b.ids("match"))
		require.NotNil(t, b.Total)
		assert.Equal(t, 1, *b.Total)
		b = bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(2))+"&_revinclude=AllergyIntolerance:patient", nil))
		assert.Equal(t, []string{"Patient/" + f.p2}, b.ids("match"))
		assert.Equal(t, []string{A + f.otherPatientsAllergy}, b.ids("include"))

		b = bundleOf(t, c.do("GET", "/AllergyIntolerance?patient.identifier="+q(fnr(1)), nil))
		got := b.ids("match")
		slices.Sort(got)
		want := []string{A + f.allergyHigh, A + f.allergyLow}
		slices.Sort(want)
		assert.Equal(t, want, got)
		b = bundleOf(t, c.do("GET", "/AllergyIntolerance?patient.identifier="+q(fnr(1))+"&criticality=low", nil))
		assert.Equal(t, []string{A + f.allergyLow}, b.ids("match"))
		b = bundleOf(t, c.do("GET", "/Flag?subject.identifier="+q(fnr(1))+"&status=active", nil))
		assert.Equal(t, []string{"Flag/" + f.flag}, b.ids("match"))
		b = bundleOf(t, c.do("GET", "/AllergyIntolerance?patient:Patient.identifier="+q(fnr(2)), nil))
		assert.Equal(t, []string{A + f.otherPatientsAllergy}, b.ids("match"))
		// Either identifier (comma is OR) names two patients: refused.
		is := outcome(t, c.do("GET", "/AllergyIntolerance?patient.identifier="+q(fnr(1)+","+fnr(2)), nil), http.StatusBadRequest)
		assert.Contains(t, is["diagnostics"], "names 2 patients")
		// The chain and patient= intersect: contradicting ones find nothing.
		b = bundleOf(t, c.do("GET", "/AllergyIntolerance?patient="+f.p2+"&patient.identifier="+q(fnr(1)), nil))
		assert.Empty(t, b.ids("match"))

		// An identifier nobody has: an empty result for Patient, and for a
		// clinical type a search bound to no patient.
		unknown := fnr(77)
		b = bundleOf(t, c.do("GET", "/Patient?identifier="+q(unknown), nil))
		assert.Empty(t, b.ids("match"))
		require.NotNil(t, b.Total)
		assert.Equal(t, 0, *b.Total)
		is = outcome(t, c.do("GET", "/AllergyIntolerance?patient.identifier="+q(unknown), nil), http.StatusBadRequest)
		assert.Contains(t, is["diagnostics"], "no patient has the identifier")
		assert.Contains(t, fmt.Sprint(is["details"]), "no-patient-bound")
		// Without a system the identifier is no exact lookup: it binds nobody.
		for _, p := range []string{
			"/AllergyIntolerance?patient.identifier=" + personNumber(t, 1),
			"/AllergyIntolerance?patient.identifier=" + q("urn:oid:2.16.578.1.12.4.1.4.1|"),
			"/Patient?identifier=" + personNumber(t, 1),
		} {
			is = outcome(t, c.do("GET", p, nil), http.StatusBadRequest)
			assert.Contains(t, fmt.Sprint(is["details"]), "no-patient-bound", p)
		}

		// The lookup follows the current version: a changed person number
		// finds the patient by the new one only; a deleted patient by none.
		p5 := createPatient(t, c, 5)
		assert.Equal(t, []string{"Patient/" + p5}, bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(5)), nil)).ids("match"))
		require.Equal(t, http.StatusOK, c.do("PUT", "/Patient/"+p5, patientJSON(t, 6, p5)).status)
		assert.Empty(t, bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(5)), nil)).ids("match"))
		assert.Equal(t, []string{"Patient/" + p5}, bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(6)), nil)).ids("match"))
		require.Equal(t, http.StatusNoContent, c.do("DELETE", "/Patient/"+p5, nil).status)
		assert.Empty(t, bundleOf(t, c.do("GET", "/Patient?identifier="+q(fnr(6)), nil)).ids("match"))
	})
}

// TestSearchPagingWhileAdding follows next links while resources are being
// added: nothing that existed is skipped, nothing is served twice, and the
// added ones arrive at the end (default order _lastUpdated).
func TestSearchPagingWhileAdding(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		p := createPatient(t, c, 3)
		var before []string
		for i := range 7 {
			before = append(before, "Flag/"+create(t, c, "Flag", clinical("Flag", p, "", fmt.Sprint("flag ", i))))
		}
		next := "/Flag?subject=" + p + "&_count=3"
		var seen, added []string
		pages := 0
		for next != "" {
			b := bundleOf(t, c.do("GET", next, nil))
			seen = append(seen, b.ids("match")...)
			if pages > 0 {
				assert.NotEmpty(t, b.link("previous"), "page %d has a previous link", pages)
			}
			pages++
			require.Less(t, pages, 20)
			if pages <= 2 {
				added = append(added, "Flag/"+create(t, c, "Flag", clinical("Flag", p, "", fmt.Sprint("added ", pages))))
			}
			next = b.link("next")
			if next != "" {
				u, err := url.Parse(next)
				require.NoError(t, err)
				assert.NotEmpty(t, u.Query().Get("_cursor"))
				next = u.RequestURI()
			}
		}
		compact := slices.Clone(seen)
		slices.Sort(compact)
		assert.Len(t, slices.Compact(compact), len(seen), "no entry served twice: %v", seen)
		want := append(slices.Clone(before), added...)
		slices.Sort(want)
		assert.Equal(t, want, compact, "every entry that existed or was added is served")

		// The previous link of the last page leads back.
		b := bundleOf(t, c.do("GET", "/Flag?subject="+p+"&_count=4", nil))
		u, _ := url.Parse(b.link("next"))
		b2 := bundleOf(t, c.do("GET", u.RequestURI(), nil))
		u, _ = url.Parse(b2.link("previous"))
		b3 := bundleOf(t, c.do("GET", u.RequestURI(), nil))
		assert.Equal(t, b.ids("match"), b3.ids("match"))
		// A forged cursor is refused.
		outcome(t, c.do("GET", "/Flag?subject="+p+"&_cursor=AAAA", nil), http.StatusBadRequest)
	})
}

// TestSearchHostileParameters: operators, regex metacharacters and huge
// queries are refused or treated as plain data, and change nothing.
func TestSearchHostileParameters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		f := seedSearch(t, c)
		snapshot := func() string {
			var b strings.Builder
			for _, p := range []string{f.p1, f.p2} {
				for _, typ := range domain.RecordTypes() {
					vs, err := st.Compartment(t.Context(), p, typ)
					require.NoError(t, err)
					for _, v := range vs {
						fmt.Fprintf(&b, "%s/%s/%d\n", v.Type, v.ID, v.VersionID)
					}
				}
			}
			return b.String()
		}
		before := snapshot()
		q := url.QueryEscape
		refused := []string{
			"/AllergyIntolerance?patient=" + f.p1 + "&$where=" + q("sleep(1000)"),
			"/AllergyIntolerance?patient=" + q(`{"$gt":""}`),
			"/AllergyIntolerance?patient[$ne]=x",
			"/AllergyIntolerance?patient=" + q(".*"),
			"/AllergyIntolerance?patient=" + f.p1 + "&_id=" + q(`{"$gt":""}`),
			"/AllergyIntolerance?patient=" + f.p1 + "&_id=" + q("^.*$"),
			"/AllergyIntolerance?patient=" + f.p1 + "&date=" + q(`{"$gt":""}`),
			"/AllergyIntolerance?patient=" + f.p1 + "&_sort=" + q(`{"$natural":1}`),
			"/AllergyIntolerance?patient=" + f.p1 + "&code=" + strings.Repeat("x,", 10000) + "x",
			"/AllergyIntolerance?patient=" + f.p1 + "&" + strings.Repeat("criticality=high&", 100),
			"/Patient/" + q(`{"$gt":""}`) + "/Flag",
		}
		for _, p := range refused {
			r := c.do("GET", p, nil)
			assert.True(t, r.status >= 400 && r.status < 500, "%.80s: %d %s", p, r.status, r.body)
		}
		// One megabyte of query string: refused before or by the parser.
		r := c.do("GET", "/AllergyIntolerance?patient="+f.p1+"&code="+strings.Repeat("a", 1<<20), nil)
		assert.True(t, r.status >= 400 && r.status < 500, "1 MB query: %d", r.status)

		// In a value position, operator syntax and regex metacharacters are
		// plain data: they match no stored value literally holding them.
		for _, p := range []string{
			"/AllergyIntolerance?patient=" + f.p1 + "&code=" + q(`{"$gt":""}`),
			"/AllergyIntolerance?patient=" + f.p1 + "&code:text=" + q(".*"),
			"/Patient?_id=" + f.p1 + "&name=" + q(".*"),
			"/Patient?_id=" + f.p1 + "&name:contains=" + q("(a|b)*[^"),
			"/Patient?_id=" + f.p1 + "&family=" + q(`{"$regex":"^N"}`),
		} {
			b := bundleOf(t, c.do("GET", p, nil))
			assert.Empty(t, b.ids("match"), p)
		}
		assert.Equal(t, before, snapshot(), "the store is untouched")
		assert.Len(t, bundleOf(t, c.do("GET", "/AllergyIntolerance?patient="+f.p1, nil)).ids("match"), 2)
	})
}

// TestSearchCapabilityStatement: the CapabilityStatement lists exactly the
// registry's parameters, and the server accepts every one it advertises.
func TestSearchCapabilityStatement(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		reg, err := search.Load(domain.RecordTypes())
		require.NoError(t, err)
		p := createPatient(t, c, 4)
		var cs struct {
			Rest []struct {
				Resource []struct {
					Type        string `json:"type"`
					Interaction []struct {
						Code string `json:"code"`
					} `json:"interaction"`
					SearchInclude    []string `json:"searchInclude"`
					SearchRevInclude []string `json:"searchRevInclude"`
					SearchParam      []struct {
						Name, Definition, Type, Documentation string
					} `json:"searchParam"`
				} `json:"resource"`
			} `json:"rest"`
		}
		r := c.do("GET", "/metadata", nil)
		require.Equal(t, http.StatusOK, r.status)
		require.NoError(t, json.Unmarshal(r.body, &cs))
		require.Len(t, cs.Rest[0].Resource, len(domain.RecordTypes())+len(access.ConformanceTypes))
		sample := map[string]string{"token": "x", "date": "ge2020", "reference": "Practitioner/x", "string": "a", "uri": "http://example.org/x", "quantity": "ge1"}
		for _, res := range cs.Rest[0].Resource {
			if access.IsConformanceType(res.Type) {
				continue // not records: internal/interaction TestConformanceResources
			}
			var codes []string
			for _, in := range res.Interaction {
				codes = append(codes, in.Code)
			}
			assert.Equal(t, 1, strings.Count(strings.Join(codes, " "), "search-type"), res.Type)
			params := reg.Params(res.Type)
			// _has is no parameter of the registry (include.go lists it).
			res.SearchParam = slices.DeleteFunc(res.SearchParam, func(sp struct{ Name, Definition, Type, Documentation string }) bool {
				return sp.Name == "_has" && sp.Type == "special" && sp.Definition == ""
			})
			require.Len(t, res.SearchParam, len(params), res.Type)
			bind := "patient=" + p
			if res.Type == "Patient" {
				bind = "_id=" + p
			}
			for i, sp := range res.SearchParam {
				assert.Equal(t, params[i].Name, sp.Name)
				assert.Equal(t, params[i].URL, sp.Definition)
				assert.Equal(t, params[i].Type, sp.Type)
				v := sample[sp.Type]
				if sp.Type == "reference" {
					v = params[i].Targets[0] + "/x"
				}
				if sp.Name == "patient" || sp.Name == "subject" {
					v = p
				}
				path := "/" + res.Type + "?" + bind + "&" + sp.Name + "=" + url.QueryEscape(v)
				bundleOf(t, c.do("GET", path, nil))
			}
			// Values of another source type, or that do not refer to the
			// type, are listed for :iterate.
			for _, inc := range res.SearchInclude {
				name := "_include"
				if src, _, _ := strings.Cut(inc, ":"); src != res.Type {
					name = "_include:iterate"
				}
				bundleOf(t, c.do("GET", "/"+res.Type+"?"+bind+"&"+name+"="+inc, nil))
			}
			for _, inc := range res.SearchRevInclude {
				name := "_revinclude"
				src, param, _ := strings.Cut(inc, ":")
				if p, ok := reg.Param(src, param); !ok || !slices.Contains(p.Targets, res.Type) {
					name = "_revinclude:iterate"
				}
				bundleOf(t, c.do("GET", "/"+res.Type+"?"+bind+"&"+name+"="+inc, nil))
			}
		}
	})
}
