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
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// encounterPartOf is an Encounter of patient whose partOf is Encounter/of.
func encounterPartOf(patient, of, note string) []byte {
	b := clinical("Encounter", patient, "", note)
	if of == "" {
		return b
	}
	return bytes.Replace(b, []byte(`"status":"finished",`), []byte(fmt.Sprintf(`"status":"finished","partOf":{"reference":"Encounter/%s"},`, of)), 1)
}

// outcomeIssues returns the issues of the searchset's outcome entry.
func (b searchset) outcomeIssues(t *testing.T) []map[string]any {
	t.Helper()
	for _, e := range b.Entry {
		if e.Search.Mode != "outcome" {
			continue
		}
		var oo struct {
			Issue []map[string]any `json:"issue"`
		}
		require.NoError(t, json.Unmarshal(e.Resource, &oo))
		return oo.Issue
	}
	return nil
}

// TestIncludeIterateRounds: a chain of partOf longer than the rounds
// allowed is followed as far as the bound and the Bundle says it stopped;
// a chain that ends within the bound carries no such warning. The chain's
// link into another patient's record is never followed.
func TestIncludeIterateRounds(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		p1, p2 := createPatient(t, c, 1), createPatient(t, c, 2)
		other := create(t, c, "Encounter", encounterPartOf(p2, "", "annen pasient"))
		chain := []string{create(t, c, "Encounter", encounterPartOf(p1, other, "0"))}
		for i := 1; i < search.MaxIncludeRounds+3; i++ {
			chain = append(chain, create(t, c, "Encounter", encounterPartOf(p1, chain[i-1], fmt.Sprint(i))))
		}
		last := len(chain) - 1
		// From the last: round 0 includes chain[last-1], each further round
		// one more; after MaxIncludeRounds rounds chain[0] is still out.
		q := url.Values{"patient": {p1}, "_id": {chain[last]}, "_include:iterate": {"Encounter:part-of"}}
		b := bundleOf(t, c.do("GET", "/Encounter?"+q.Encode(), nil))
		var want []string
		for i := last - 1; i >= last-1-search.MaxIncludeRounds; i-- {
			want = append(want, "Encounter/"+chain[i])
		}
		assert.ElementsMatch(t, want, b.ids("include"))
		issues := b.outcomeIssues(t)
		require.Len(t, issues, 1, "one warning that the iteration stopped")
		assert.Equal(t, "too-costly", issues[0]["code"])
		assert.Equal(t, "warning", issues[0]["severity"])
		assert.Contains(t, issues[0]["diagnostics"], "stopped after")

		// A shorter chain ends inside the bound, at the other patient's
		// Encounter, which is not included: no warning.
		q.Set("_id", chain[2])
		b = bundleOf(t, c.do("GET", "/Encounter?"+q.Encode(), nil))
		assert.ElementsMatch(t, []string{"Encounter/" + chain[1], "Encounter/" + chain[0]}, b.ids("include"))
		assert.Empty(t, b.outcomeIssues(t))
		assert.NotContains(t, b.ids("include"), "Encounter/"+other, "another patient's Encounter is included")

		// The next link keeps the modifier, so page 2 iterates too.
		q = url.Values{"patient": {p1}, "_count": {"1"}, "_include:iterate": {"Encounter:part-of"}}
		b = bundleOf(t, c.do("GET", "/Encounter?"+q.Encode(), nil))
		next := b.link("next")
		require.NotEmpty(t, next)
		assert.Contains(t, next, url.QueryEscape("_include:iterate")+"=")
	})
}

// TestHasAndCompartmentTypes: _has on a served type and the compartment
// search across types, through the HTTP API on both engines.
func TestHasAndCompartmentTypes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		p1, p2 := createPatient(t, c, 1), createPatient(t, c, 2)
		e1 := create(t, c, "Encounter", encounterPartOf(p1, "", "innleggelse"))
		e2 := create(t, c, "Encounter", encounterPartOf(p1, "", "kontroll"))
		flag := bytes.Replace(clinical("Flag", p1, "", "pacemaker"), []byte(`"status":"active",`),
			[]byte(fmt.Sprintf(`"status":"active","encounter":{"reference":"Encounter/%s"},`, e1)), 1)
		f1 := create(t, c, "Flag", flag)
		a1 := create(t, c, "AllergyIntolerance", clinical("AllergyIntolerance", p1, "", "penicillin"))
		create(t, c, "AllergyIntolerance", clinical("AllergyIntolerance", p2, "", "penicillin"))

		b := bundleOf(t, c.do("GET", "/Encounter?patient="+p1+"&_has:Flag:encounter:_id="+f1, nil))
		assert.Equal(t, []string{"Encounter/" + e1}, b.ids("match"))
		b = bundleOf(t, c.do("GET", "/Patient?_id="+p1+"&_has:Encounter:patient:_has:Flag:encounter:status=active", nil))
		assert.Equal(t, []string{"Patient/" + p1}, b.ids("match"))
		b = bundleOf(t, c.do("GET", "/Patient?_id="+p2+"&_has:AllergyIntolerance:patient:_id="+a1, nil))
		assert.Empty(t, b.ids("match"), "another patient's allergy makes no _has match")
		r := c.do("GET", "/Encounter?patient="+p1+"&_has:Flag:encounter:nosuch=1", nil)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, string(r.body), "nosuch is not a search parameter of Flag")

		b = bundleOf(t, c.do("GET", "/Patient/"+p1+"/*?_type=Encounter,AllergyIntolerance", nil))
		assert.ElementsMatch(t, []string{"Encounter/" + e1, "Encounter/" + e2, "AllergyIntolerance/" + a1}, b.ids("match"))
		require.NotNil(t, b.Total)
		assert.Equal(t, 3, *b.Total)
		// Without _type: every type of the record, the Patient itself too.
		b = bundleOf(t, c.do("GET", "/Patient/"+p1+"/*", nil))
		assert.ElementsMatch(t, []string{"Patient/" + p1, "Encounter/" + e1, "Encounter/" + e2, "Flag/" + f1, "AllergyIntolerance/" + a1}, b.ids("match"))
		// _summary=count across types.
		b = bundleOf(t, c.do("GET", "/Patient/"+p1+"/*?_type=Encounter,Flag&_summary=count", nil))
		require.NotNil(t, b.Total)
		assert.Equal(t, 3, *b.Total)
		assert.Empty(t, b.ids("match"))
		// Paging by cursor walks every match once; a forged cursor is a 400.
		seen := []string{}
		path := "/Patient/" + p1 + "/*?_type=Encounter,Flag,AllergyIntolerance&_count=2"
		for i := 0; path != "" && i < 4; i++ {
			b = bundleOf(t, c.do("GET", path, nil))
			seen = append(seen, b.ids("match")...)
			path = strings.TrimPrefix(b.link("next"), c.base)
		}
		slices.Sort(seen)
		assert.Equal(t, 4, len(slices.Compact(seen)))
		assert.Len(t, seen, 4)
		for _, bad := range []struct{ path, want string }{
			{"/Patient/" + p1 + "/*?_type=Observation", "not a type of the record"},
			{"/Patient/" + p1 + "/*?_type=DocumentReference", "search it on its own"},
			{"/Patient/" + p1 + "/*?_type=Flag&_type=Encounter", "only once"},
			{"/Patient/" + p1 + "/*?_type=Flag,Encounter&class=IMP", "class is not a search parameter of Flag"},
			{"/Patient/" + p1 + "/*?_type=Flag&_sort=-date", "_sort"},
			{"/Patient/" + p1 + "/*?_cursor=abc", "_cursor"},
		} {
			r := c.do("GET", bad.path, nil)
			assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", bad.path, r.body)
			assert.Contains(t, string(r.body), bad.want, bad.path)
		}
		// A whole-system search is no way around the binding.
		r = c.do("GET", "/?_type=AllergyIntolerance", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Contains(t, string(r.body), "bound to one patient")
		assert.NotContains(t, string(r.body), a1)
	})
}

// TestCapabilityIterate: the CapabilityStatement lists iterative include
// values on the root type and _has where something refers to the type.
func TestCapabilityIterate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		var cs struct {
			Rest []struct {
				Resource []struct {
					Type             string   `json:"type"`
					SearchInclude    []string `json:"searchInclude"`
					SearchRevInclude []string `json:"searchRevInclude"`
					SearchParam      []struct {
						Name       string `json:"name"`
						Definition *string
					} `json:"searchParam"`
				} `json:"resource"`
			} `json:"rest"`
		}
		require.NoError(t, json.Unmarshal(c.do("GET", "/metadata", nil).body, &cs))
		found := 0
		for _, r := range cs.Rest[0].Resource {
			switch r.Type {
			case "Flag":
				assert.Contains(t, r.SearchInclude, "Flag:encounter")
				assert.Contains(t, r.SearchInclude, "Encounter:part-of")
				found++
			case "Encounter":
				assert.Contains(t, r.SearchRevInclude, "Flag:encounter")
				assert.True(t, slices.ContainsFunc(r.SearchParam, func(p struct {
					Name       string `json:"name"`
					Definition *string
				}) bool {
					return p.Name == "_has" && p.Definition == nil
				}), "Encounter lists _has, without a definition")
				found++
			}
		}
		assert.Equal(t, 2, found)
	})
}
