package search

import (
	"net/url"
	"strings"
	"testing"
)

func fixtureCandidates(t *testing.T, r *Registry, typ string, extra ...string) []Candidate {
	t.Helper()
	idxs := fixtureIndexes(t, r, typ)
	for _, body := range extra {
		idx, err := r.Extract(typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		idxs = append(idxs, idx)
	}
	var cs []Candidate
	for i := range idxs {
		// What the engines store and read back: the binary form.
		b, err := idxs[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Index
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, Candidate{Index: &back})
	}
	return cs
}

// TestSortByEveryType: _sort on string, token and reference parameters,
// ascending and descending, several keys; resources without the value
// last, ties by id.
func TestSortByEveryType(t *testing.T) {
	r := testRegistry(t)
	cases := []struct{ typ, qs, want string }{
		// Folded family names: Hansen, Odegaard, Ødegård (ø folds to o).
		{"Patient", "_sort=family", "p3,p2,p1"},
		{"Patient", "_sort=-family", "p1,p2,p3"},
		{"Patient", "_sort=name", "p3,p2,p1"},
		{"Patient", "_sort=gender,-birthdate", "p1,p3,p2"},
		// Tokens by code: high before low; a3 and a4 have no criticality.
		{"AllergyIntolerance", "_sort=criticality", "a1,a2,a3,a4"},
		{"AllergyIntolerance", "_sort=-criticality", "a2,a1,a3,a4"},
		{"AllergyIntolerance", "_sort=clinical-status,-date", "a4,a1,a2,a3"},
		// References as indexed: Organization/o1 before Practitioner/pr1.
		{"Flag", "_sort=author", "f2,f1,f3"},
		{"Flag", "_sort=-author", "f1,f2,f3"},
		{"Flag", "_sort=status", "f1,f3,f2"},
	}
	for _, c := range cases {
		q := mustParse(t, r, c.typ, c.qs)
		cs := fixtureCandidates(t, r, c.typ)
		q.Sort(cs)
		if got := ids(cs); got != c.want {
			t.Errorf("%s?%s: %s, want %s", c.typ, c.qs, got, c.want)
		}
	}
}

// TestSortPagesOfTwo: paging with _count=2 through a string, a token and a
// reference sort gives every match once, in the order of one sort.
func TestSortPagesOfTwo(t *testing.T) {
	r := testRegistry(t)
	extra := []string{
		`{"resourceType":"Flag","id":"f4","meta":{"lastUpdated":"2024-01-04T00:00:00Z"},"status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"author":{"reference":"Practitioner/pr1"}}`,
		`{"resourceType":"Flag","id":"f0","meta":{"lastUpdated":"2024-01-05T00:00:00Z"},"status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"author":{"reference":"Practitioner/pr1"}}`,
	}
	for _, qs := range []string{"_sort=author", "_sort=-author", "_sort=status,-author", "_sort=-status,_id"} {
		all := mustParse(t, r, "Flag", qs)
		cs := fixtureCandidates(t, r, "Flag", extra...)
		all.Sort(cs)
		want := ids(cs)
		var got []string
		cursor := ""
		for pages := 0; pages < 10; pages++ {
			raw := qs + "&_count=2"
			if cursor != "" {
				raw += "&_cursor=" + url.QueryEscape(cursor)
			}
			q := mustParse(t, r, "Flag", raw)
			page, next, _ := q.Page(fixtureCandidates(t, r, "Flag", extra...))
			if len(page) > 2 {
				t.Fatalf("%s: page of %d", qs, len(page))
			}
			for _, c := range page {
				got = append(got, c.Index.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: pages give %s, one sort %s", qs, strings.Join(got, ","), want)
		}
	}
}

// TestSortKeyBounded: a very long string sorts by its first 64 bytes, and
// a cursor through it stays short enough to be accepted.
func TestSortKeyBounded(t *testing.T) {
	r := testRegistry(t)
	long := strings.Repeat("ø", 200)
	body := `{"resourceType":"Patient","id":"px","meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"name":[{"family":"` + long + `"}]}`
	idx, err := r.Extract("Patient", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	q := mustParse(t, r, "Patient", "_sort=family,-given,name")
	c := q.CursorAfter(&idx)
	if _, err := q.decodeCursor(c); err != nil {
		t.Fatalf("cursor of %d bytes refused: %v", len(c), err)
	}
}

// TestTokenModifiers: :of-type matches an identifier by its type and
// value; :in and :not-in by the server's own ValueSets, :not-in also
// matching resources without the element.
func TestTokenModifiers(t *testing.T) {
	r := testRegistry(t)
	typed := `{"resourceType":"AllergyIntolerance","id":"a9","meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"patient":{"reference":"Patient/p1"},
	  "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"FILL"},{"system":"urn:kj:idtype","code":"EPJ"}]},"system":"urn:kj:allergy","value":"A-9"}]}`
	kritisk := `{"resourceType":"Flag","id":"f9","meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"},
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"anestesikomplikasjon"}]}]}`
	cases := []struct{ typ, extra, qs, want string }{
		{"AllergyIntolerance", typed, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|FILL|A-9", "a9"},
		{"AllergyIntolerance", typed, "identifier:of-type=|EPJ|A-9", "a9"},
		{"AllergyIntolerance", typed, "identifier:of-type=urn:kj:idtype|EPJ|A-9,urn:x|FILL|A-1", "a9"},
		{"AllergyIntolerance", typed, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|FILL|A-1", ""},
		{"AllergyIntolerance", typed, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|PLAC|A-9", ""},
		{"AllergyIntolerance", typed, "identifier=urn:kj:allergy|A-9", "a9"},
		{"Flag", kritisk, "category:in=https://kjernejournal.example.no/fhir/ValueSet/kritisk-info-type", "f9"},
		{"Flag", kritisk, "category:in=https://kjernejournal.example.no/fhir/ValueSet/kritisk-info-type|0.1.0", "f9"},
		{"Flag", kritisk, "category:not-in=https://kjernejournal.example.no/fhir/ValueSet/kritisk-info-type", "f1,f2,f3"},
		{"Flag", kritisk, "category:in=https://kjernejournal.example.no/fhir/ValueSet/privacy-setting", ""},
		{"Flag", kritisk, "status:text=active", ""},
	}
	for _, c := range cases {
		q := mustParse(t, r, c.typ, c.qs)
		var got []string
		for _, cand := range fixtureCandidates(t, r, c.typ, c.extra) {
			if q.Match(*cand.Index) {
				got = append(got, cand.Index.ID)
			}
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s?%s: %s, want %s", c.typ, c.qs, strings.Join(got, ","), c.want)
		}
	}
	if !mustParse(t, r, "AllergyIntolerance", "identifier:of-type=|EPJ|A-9").Reextract() {
		t.Error(":of-type reads stored indexes, which lack the identifier's type")
	}
}
