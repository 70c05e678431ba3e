package conformance

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

func init() {
	register(
		Check{GroupREST, "rest/paging", "a search with _count=1 over three matches pages through all three by next links, one per page, none twice, with total 3 when given", checkPaging},
		Check{GroupREST, "rest/paging-links", "the self, next and previous links of a searchset are absolute URLs under the server's base, and previous leads back", checkPagingLinks},
	)
}

// restThreeFlags gives a fresh patient three Flags and returns the patient
// and Flag/ids.
func restThreeFlags(t *T) (patient string, refs []string) {
	patient, _ = t.NewPatient(PatientSpec{})
	for range 3 {
		f := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
		id, _ := f["id"].(string)
		refs = append(refs, "Flag/"+id)
	}
	slices.Sort(refs)
	return patient, refs
}

func checkPaging(t *T) {
	patient, want := restThreeFlags(t)
	next := "Flag?patient=" + patient + "&_count=1"
	var got []string
	for page := 1; next != ""; page++ {
		if page > len(want)+2 {
			t.Fatalf("still a next link after %d pages of one match over %d matches: %s", page-1, len(want), next)
		}
		b := restParseBundle(t, "page "+strconv.Itoa(page)+": GET "+next, restRead(t, "Flag", patient, Request{Path: next}), "searchset")
		matches := b.refs("match")
		if len(matches) > 1 {
			t.Errorf("page %d has %d matches with _count=1", page, len(matches))
		}
		if b.Total != nil && int(*b.Total) != len(want) {
			t.Errorf("page %d: Bundle.total %v, want %d", page, *b.Total, len(want))
		}
		for _, m := range matches {
			if slices.Contains(got, m) {
				t.Errorf("page %d serves %s again", page, m)
			}
			got = append(got, m)
		}
		if page == 1 && b.Links["next"] == "" {
			t.Fatalf("the first page of one match over %d has no next link", len(want))
		}
		next = b.Links["next"]
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("paging served %v, want %v", got, want)
	}
}

func checkPagingLinks(t *T) {
	patient, _ := restThreeFlags(t)
	base := t.URL("")
	first := restParseBundle(t, "GET Flag?patient=…&_count=1", restRead(t, "Flag", patient, Request{Path: "Flag?patient=" + patient + "&_count=1"}), "searchset")
	check := func(page string, b restBundle) {
		for rel, link := range b.Links {
			u, err := url.Parse(link)
			switch {
			case err != nil || !u.IsAbs():
				t.Errorf("%s: link %s %q is not an absolute URL", page, rel, link)
			case !strings.HasPrefix(link, base):
				t.Errorf("%s: link %s %q is not under the base %s", page, rel, link, base)
			case !strings.Contains(u.Path, "Flag"):
				t.Errorf("%s: link %s %q does not search Flag", page, rel, link)
			}
		}
		if b.Links["self"] == "" {
			t.Errorf("%s: no self link", page)
		}
	}
	check("page 1", first)
	if first.Links["next"] == "" {
		t.Fatalf("page 1 of one match over three has no next link")
	}
	second := restParseBundle(t, "GET "+first.Links["next"], restRead(t, "Flag", patient, Request{Path: first.Links["next"]}), "searchset")
	check("page 2", second)
	// The self link of a page fetches that page again.
	again := restParseBundle(t, "GET "+second.Links["self"], restRead(t, "Flag", patient, Request{Path: second.Links["self"]}), "searchset")
	if !slices.Equal(again.refs("match"), second.refs("match")) {
		t.Errorf("page 2's self link serves %v, page 2 was %v", again.refs("match"), second.refs("match"))
	}
	if prev := second.Links["previous"]; prev != "" {
		back := restParseBundle(t, "GET "+prev, restRead(t, "Flag", patient, Request{Path: prev}), "searchset")
		if !slices.Equal(back.refs("match"), first.refs("match")) {
			t.Errorf("page 2's previous link serves %v, page 1 was %v", back.refs("match"), first.refs("match"))
		}
	}
}
