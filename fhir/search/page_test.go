package search

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/profiles"
)

func flagAt(t testing.TB, r *Registry, id string, updated time.Time, period string) Index {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Flag","id":%q,"meta":{"lastUpdated":%q},"status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"}%s}`,
		id, updated.UTC().Format(time.RFC3339Nano), period)
	idx, err := r.Extract("Flag", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func ids(cs []Candidate) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Index.ID)
	}
	return strings.Join(out, ",")
}

func TestSort(t *testing.T) {
	r := testRegistry(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	idxs := []Index{
		flagAt(t, r, "c", base, `,"period":{"start":"2020-01-01"}`),                    // ongoing
		flagAt(t, r, "a", base, `,"period":{"start":"2021-01-01","end":"2021-02-01"}`), // same lastUpdated as c
		flagAt(t, r, "b", base.Add(time.Hour), ""),                                     // no date
		flagAt(t, r, "d", base.Add(-time.Hour), `,"period":{"start":"2019-06-01","end":"2019-07-01"}`),
	}
	cands := func() []Candidate {
		var cs []Candidate
		for i := range idxs {
			cs = append(cs, Candidate{Index: &idxs[i]})
		}
		return cs
	}
	cases := map[string]string{
		"":                    "d,a,c,b", // _lastUpdated, then id
		"_sort=-_lastUpdated": "b,a,c,d",
		"_sort=date":          "d,c,a,b", // earliest start first; no date last
		"_sort=-date":         "c,a,d,b", // latest end first: an ongoing period is the latest
		"_sort=_id":           "a,b,c,d",
		"_sort=-_id":          "d,c,b,a",
		"_sort=-date,_id":     "c,a,d,b",
	}
	for qs, want := range cases {
		q := mustParse(t, r, "Flag", qs)
		cs := cands()
		q.Sort(cs)
		if got := ids(cs); got != want {
			t.Errorf("%s: %s, want %s", qs, got, want)
		}
	}
}

// TestPagingWhileAdding pages through a patient's flags with a small
// _count while new flags arrive between pages, and checks that every flag
// that existed at the start is seen exactly once, in order.
func TestPagingWhileAdding(t *testing.T) {
	r := testRegistry(t)
	for _, sort := range []string{"", "_sort=-_lastUpdated", "_sort=date", "_sort=-date"} {
		t.Run(sort, func(t *testing.T) {
			clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			var store []Index
			add := func(n int) {
				for range n {
					clock = clock.Add(time.Minute)
					// Several share a lastUpdated and a date, so ties
					// are broken by id.
					id := fmt.Sprintf("f%03d", len(store))
					day := 1 + len(store)%5
					store = append(store, flagAt(t, r, id, clock.Truncate(3*time.Minute),
						fmt.Sprintf(`,"period":{"start":"2023-01-%02d"}`, day)))
				}
			}
			add(23)
			initial := map[string]bool{}
			for _, x := range store {
				initial[x.ID] = true
			}
			seen := map[string]int{}
			var order []Candidate
			cursor := ""
			for page := 0; ; page++ {
				vs, _ := url.ParseQuery(sort)
				vs.Set("_count", "4")
				if cursor != "" {
					vs.Set("_cursor", cursor)
				}
				q, _, err := r.ParseQuery("Flag", vs, false)
				if err != nil {
					t.Fatal(err)
				}
				var cs []Candidate
				for i := range store {
					cs = append(cs, Candidate{Index: &store[i]})
				}
				got, next, prev := q.Page(cs)
				if page > 0 && prev == "" {
					t.Errorf("page %d has no previous link", page)
				}
				for _, c := range got {
					seen[c.Index.ID]++
					order = append(order, c)
				}
				add(3) // while the client reads the page
				if next == "" {
					break
				}
				cursor = next
				if page > 50 {
					t.Fatal("paging does not end")
				}
			}
			for id := range initial {
				if seen[id] != 1 {
					t.Errorf("%s seen %d times", id, seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s seen %d times", id, n)
				}
			}
			// What was served is in the query's order.
			q := mustParse(t, r, "Flag", sort)
			sorted := slices.Clone(order)
			q.Sort(sorted)
			if ids(sorted) != ids(order) {
				t.Errorf("served out of order:\n%s\n%s", ids(order), ids(sorted))
			}
		})
	}
}

func TestPreviousPage(t *testing.T) {
	r := testRegistry(t)
	var store []Index
	for i := range 10 {
		store = append(store, flagAt(t, r, fmt.Sprintf("f%d", i), time.Date(2024, 1, 1, i, 0, 0, 0, time.UTC), ""))
	}
	var cs []Candidate
	for i := range store {
		cs = append(cs, Candidate{Index: &store[i]})
	}
	page := func(cur string) (string, string, string) {
		vs := url.Values{"_count": {"3"}}
		if cur != "" {
			vs.Set("_cursor", cur)
		}
		q, _, err := r.ParseQuery("Flag", vs, false)
		if err != nil {
			t.Fatal(err)
		}
		p, next, prev := q.Page(slices.Clone(cs))
		return ids(p), next, prev
	}
	p1, next, prev := page("")
	if p1 != "f0,f1,f2" || prev != "" || next == "" {
		t.Fatalf("page 1: %s %q %q", p1, next, prev)
	}
	p2, next2, prev2 := page(next)
	if p2 != "f3,f4,f5" {
		t.Fatalf("page 2: %s", p2)
	}
	if back, _, _ := page(prev2); back != p1 {
		t.Errorf("previous of page 2: %s", back)
	}
	p3, _, _ := page(next2)
	p4, next4, prev4 := page(func() string { _, n, _ := page(next2); return n }())
	if p3 != "f6,f7,f8" || p4 != "f9" || next4 != "" {
		t.Errorf("pages 3, 4: %s / %s %q", p3, p4, next4)
	}
	if back, _, _ := page(prev4); back != p3 {
		t.Errorf("previous of page 4: %s", back)
	}
	// After and CursorAfter agree with Page.
	q := mustParse(t, r, "Flag", "")
	rest, err := q.After(slices.Clone(cs), q.CursorAfter(&store[4]))
	if err != nil || ids(rest) != "f5,f6,f7,f8,f9" {
		t.Errorf("After: %s %v", ids(rest), err)
	}
	// _count=0 gives no entries (a count-only answer).
	q = mustParse(t, r, "Flag", "_count=0")
	if p, n, pr := q.Page(cs); len(p) != 0 || n != "" || pr != "" {
		t.Errorf("_count=0: %v %q %q", p, n, pr)
	}
}

func TestCursorTampering(t *testing.T) {
	r := testRegistry(t)
	store := flagAt(t, r, "f1", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "")
	q := mustParse(t, r, "Flag", "_sort=-date")
	good := q.CursorAfter(&store)
	// The cursor belongs to its sort order.
	if _, _, err := r.ParseQuery("Flag", url.Values{"_cursor": {good}}, false); err == nil {
		t.Error("a -date cursor was accepted for the default order")
	}
	if _, _, err := r.ParseQuery("Flag", url.Values{"_cursor": {good}, "_sort": {"-date"}}, false); err != nil {
		t.Errorf("own cursor refused: %v", err)
	}
	// A forged cursor with the right signature but a missing key is
	// refused, not compared out of range.
	forged := (&Query{Type: "Flag", SortBy: []SortKey{{"date", true}}}).encodeCursor(cursor{id: "f1"})
	for _, bad := range []string{forged, good[:len(good)-2], "!!", strings.Repeat("A", 600), good + "AAAA"} {
		if _, _, err := r.ParseQuery("Flag", url.Values{"_cursor": {bad}, "_sort": {"-date"}}, false); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestRegistry(t *testing.T) {
	r := testRegistry(t)
	required := map[string][]string{
		"AllergyIntolerance":  {"_id", "_lastUpdated", "patient", "identifier", "clinical-status", "verification-status", "category", "criticality", "code", "date", "type", "manifestation", "recorder"},
		"Flag":                {"_id", "_lastUpdated", "patient", "subject", "identifier", "status", "category", "code", "date", "author", "encounter"},
		"MedicationStatement": {"_id", "_lastUpdated", "patient", "subject", "identifier", "status", "code", "category", "effective", "medication", "source"},
		"Encounter":           {"_id", "_lastUpdated", "patient", "subject", "identifier", "status", "class", "type", "date", "service-provider", "reason-code"},
		"Patient":             {"_id", "_lastUpdated", "identifier", "name", "family", "given", "birthdate", "gender", "general-practitioner"},
	}
	for typ, names := range required {
		ps := r.Params(typ)
		if !slices.IsSortedFunc(ps, func(a, b Param) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("%s: params not sorted", typ)
		}
		for _, n := range names {
			p, ok := r.Param(typ, n)
			if !ok {
				t.Errorf("%s has no %s", typ, n)
				continue
			}
			if p.URL == "" || p.Documentation == "" || p.Type == "" || p.Expression == "" {
				t.Errorf("%s.%s incomplete: %+v", typ, n, p)
			}
			if p.Type == "reference" && len(p.Targets) == 0 {
				t.Errorf("%s.%s has no targets", typ, n)
			}
		}
	}
	if p, _ := r.Param("Flag", "status"); !strings.HasPrefix(p.URL, "https://kjernejournal.example.no/fhir/SearchParameter/") {
		t.Errorf("Flag.status url %s", p.URL)
	}
	if p, _ := r.Param("AllergyIntolerance", "patient"); p.URL != "http://hl7.org/fhir/SearchParameter/clinical-patient" {
		t.Errorf("AllergyIntolerance.patient url %s", p.URL)
	}
	defs, err := ParseDefinitions(profiles.SearchParameters)
	if err != nil {
		t.Fatal(err)
	}
	bad := []Definition{
		{URL: "u", Code: "x", Type: "number", Base: []string{"Flag"}, Expression: "Flag.code"},
		{URL: "u", Code: "x", Type: "token", Base: []string{"Observation"}, Expression: "Observation.code"},
		{URL: "u", Code: "x", Type: "token", Base: []string{"Flag"}, Expression: "Flag.code.first()"},
		{URL: "u", Code: "x", Type: "token", Base: []string{"Flag"}, Expression: "Encounter.class"},
		{URL: "u", Code: "x", Type: "token", Base: []string{"Flag"}, Expression: "Flag.code.exists() and Flag.status"},
		{URL: "u", Code: "status", Type: "token", Base: []string{"Flag"}, Expression: "Flag.status"}, // duplicate
	}
	for _, d := range bad {
		if _, err := NewRegistry(append(slices.Clone(defs), d), testTypes); err == nil {
			t.Errorf("definition accepted: %+v", d)
		}
	}
	if _, err := ParseDefinitions([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}`)); err == nil {
		t.Error("a Patient was read as a SearchParameter")
	}
}
