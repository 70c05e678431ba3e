package search

import (
	"fmt"
	"strings"
	"testing"
)

func encounterLength(t *testing.T, r *Registry, id, length string) Index {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"status":"finished",
	  "class":{"code":"IMP"},"subject":{"reference":"Patient/p1"}%s}`, id, length)
	idx, err := r.Extract("Encounter", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestQuantity: Encounter length by the precision its value implies, the
// prefixes as for dates, the unit when given, and _sort by the value.
func TestQuantity(t *testing.T) {
	r := testRegistry(t)
	idxs := []Index{
		encounterLength(t, r, "e1", `,"length":{"value":90,"unit":"min","system":"http://unitsofmeasure.org","code":"min"}`),
		encounterLength(t, r, "e2", `,"length":{"value":2.5,"unit":"d","system":"http://unitsofmeasure.org","code":"d"}`),
		encounterLength(t, r, "e3", `,"length":{"value":45.2,"unit":"minutter"}`),
		encounterLength(t, r, "e4", ``),
	}
	cases := []struct{ qs, want string }{
		{"length=90", "e1"},
		{"length=90.0", ""}, // the stored 90 covers [89.5, 90.5], which [89.95, 90.05] does not contain
		{"length=45", "e3"}, // 45.2 is within 45's precision
		{"length=gt45", "e1"},
		{"length=ge45", "e1,e3"},
		{"length=lt3", "e2"},
		{"length=ap50", "e3"},
		{"length=ne90", "e2,e3"},
		{"length=90|http://unitsofmeasure.org|min", "e1"},
		{"length=90|http://unitsofmeasure.org|h", ""},
		{"length=45.2||minutter", "e3"},
		{"length:missing=true", "e4"},
	}
	for _, c := range cases {
		q := mustParse(t, r, "Encounter", c.qs)
		var got []string
		for _, idx := range idxs {
			if q.Match(idx) {
				got = append(got, idx.ID)
			}
		}
		if g := strings.Join(got, ","); g != c.want {
			t.Errorf("Encounter?%s: %s, want %s", c.qs, g, c.want)
		}
	}
	for qs, want := range map[string]string{"_sort=length": "e2,e3,e1,e4", "_sort=-length": "e1,e3,e2,e4"} {
		var cs []Candidate
		for i := range idxs {
			cs = append(cs, Candidate{Index: &idxs[i]})
		}
		mustParse(t, r, "Encounter", qs).Sort(cs)
		if got := ids(cs); got != want {
			t.Errorf("Encounter?%s: %s, want %s", qs, got, want)
		}
	}
	for _, bad := range []string{"length=abc", "length=1e3", "length=5|http://unitsofmeasure.org|", "length=xx5", "length=5|a"} {
		if _, _, err := r.ParseQuery("Encounter", mustValues(t, bad), false); err == nil {
			t.Errorf("Encounter?%s accepted", bad)
		}
	}
}

func mustValues(t *testing.T, raw string) map[string][]string {
	t.Helper()
	k, v, _ := strings.Cut(raw, "=")
	return map[string][]string{k: {v}}
}
