package search

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kjernejournal/kjernejournal/fhir"
)

func TestParseErrors(t *testing.T) {
	r := testRegistry(t)
	cases := []struct{ typ, query, code, expr string }{
		{"AllergyIntolerance", "foo=bar", "not-supported", "foo"},
		{"AllergyIntolerance", "_text=x", "not-supported", "_text"},
		{"AllergyIntolerance", "_has:Flag:patient:status=active", "invalid", "_has:Flag:patient:status"},
		{"AllergyIntolerance", "clinical-status:exact=active", "not-supported", "clinical-status:exact"},
		{"AllergyIntolerance", "clinical-status:below=active", "not-supported", "clinical-status:below"},
		{"AllergyIntolerance", "date:not=2024", "not-supported", "date:not"},
		{"AllergyIntolerance", "patient:Practitioner=1", "not-supported", "patient:Practitioner"},
		{"AllergyIntolerance", "date=2024-13", "invalid", "date"},
		{"AllergyIntolerance", "date=2023-02-29", "invalid", "date"},
		{"AllergyIntolerance", "date=xx2024", "invalid", "date"},
		{"AllergyIntolerance", "date=2024-01-01T10", "invalid", "date"},
		{"AllergyIntolerance", "date=2024-01-01T24:00", "invalid", "date"},
		{"AllergyIntolerance", "date=2024-01-01Z", "invalid", "date"},
		{"AllergyIntolerance", "date=24", "invalid", "date"},
		{"AllergyIntolerance", "patient=Practitioner/1", "invalid", "patient"},
		{"AllergyIntolerance", "patient=Patient/1&patient=a b", "invalid", "patient"},
		{"AllergyIntolerance", "patient=%7B%22%24gt%22%3A%22%22%7D", "invalid", "patient"},
		{"AllergyIntolerance", "patient=.*", "invalid", "patient"},
		{"AllergyIntolerance", "_id=%24where", "invalid", "_id"},
		{"AllergyIntolerance", "code=a|b|c", "invalid", "code"},
		{"AllergyIntolerance", "code=|", "invalid", "code"},
		{"AllergyIntolerance", "code=", "invalid", "code"},
		{"AllergyIntolerance", "code=x,", "invalid", "code"},
		{"AllergyIntolerance", "code:missing=maybe", "invalid", "code:missing"},
		{"AllergyIntolerance", "patient.name=x", "not-supported", "patient.name"},
		{"AllergyIntolerance", "code.identifier=x", "invalid", "code.identifier"},
		{"AllergyIntolerance", "%24where=1", "invalid", "$where"},
		{"AllergyIntolerance", "%7B%22%24gt%22%3A%22%22%7D=1", "invalid", `{"$gt":""}`},
		{"AllergyIntolerance", "code=a%00b", "invalid", "code"},
		{"AllergyIntolerance", "code=%FF", "invalid", "code"},
		{"AllergyIntolerance", "_count=-1", "invalid", "_count"},
		{"AllergyIntolerance", "_count=abc", "invalid", "_count"},
		{"AllergyIntolerance", "_count=1&_count=2", "invalid", "_count"},
		{"AllergyIntolerance", "_sort=nosuch", "not-supported", "_sort"},
		{"AllergyIntolerance", "code:in=http://example.org/ValueSet/unknown", "invalid", "code:in"},
		{"AllergyIntolerance", "code:in=https://kjernejournal.example.no/fhir/ValueSet/allergy-substance", "invalid", "code:in"},
		{"AllergyIntolerance", "code:of-type=a|b|c", "not-supported", "code:of-type"},
		{"AllergyIntolerance", "identifier:of-type=a|b", "invalid", "identifier:of-type"},
		{"AllergyIntolerance", "identifier:of-type=a||c", "invalid", "identifier:of-type"},
		{"AllergyIntolerance", "_sort=date,date", "invalid", "_sort"},
		{"AllergyIntolerance", "_total=maybe", "invalid", "_total"},
		{"AllergyIntolerance", "_summary=maybe", "invalid", "_summary"},
		{"AllergyIntolerance", "_summary=yes", "invalid", "_summary"},
		{"AllergyIntolerance", "_elements=code,a%20b", "invalid", "_elements"},
		{"AllergyIntolerance", "_include=Flag:author", "invalid", "_include"},
		{"AllergyIntolerance", "_include=AllergyIntolerance:code", "invalid", "_include"},
		{"AllergyIntolerance", "_include=AllergyIntolerance:*", "invalid", "_include"},
		{"AllergyIntolerance", "_include=AllergyIntolerance:patient:Practitioner", "invalid", "_include"},
		{"AllergyIntolerance", "_include:recurse=AllergyIntolerance:patient", "not-supported", "_include:recurse"},
		{"AllergyIntolerance", "_revinclude=Flag:encounter", "invalid", "_revinclude"},
		{"AllergyIntolerance", "_pretty=yes", "invalid", "_pretty"},
		{"AllergyIntolerance", "_cursor=abc", "invalid", "_cursor"},
		{"Patient", "name:text=x", "not-supported", "name:text"},
		{"Patient", "name=%20", "invalid", "name"},
	}
	for _, c := range cases {
		vs, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := r.ParseQuery(c.typ, vs, false)
		var se *Error
		if !errors.As(err, &se) || q != nil {
			t.Errorf("%s?%s: err %v, want an *Error", c.typ, c.query, err)
			continue
		}
		if !slices.ContainsFunc(se.Issues, func(is fhir.Issue) bool {
			return is.Severity == "error" && is.Code == c.code && slices.Equal(is.Expression, []string{c.expr})
		}) {
			t.Errorf("%s?%s: issues %+v, want code %s on %q", c.typ, c.query, se.Issues, c.code, c.expr)
		}
		// Lenient handling drops the same parameters with a warning.
		q, issues, err := r.ParseQuery(c.typ, vs, true)
		if err != nil {
			t.Errorf("%s?%s lenient: %v", c.typ, c.query, err)
			continue
		}
		if len(issues) == 0 || issues[0].Severity != "warning" {
			t.Errorf("%s?%s lenient: issues %+v", c.typ, c.query, issues)
		}
		pairs, kept := 0, 0
		for _, v := range vs {
			pairs += len(v)
		}
		for _, v := range q.Values() {
			kept += len(v)
		}
		if kept >= pairs && c.expr != "_cursor" {
			t.Errorf("%s?%s lenient: the bad parameter was kept", c.typ, c.query)
		}
	}
	if _, _, err := r.ParseQuery("Observation", nil, false); err == nil {
		t.Error("Observation was searchable")
	}
}

func TestLenientKeepsGoodParameters(t *testing.T) {
	r := testRegistry(t)
	vs := url.Values{"patient": {"p1"}, "foo": {"bar"}, "date": {"2024-99"}, "clinical-status": {"active"}}
	q, issues, err := r.ParseQuery("AllergyIntolerance", vs, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(issues) != 2 {
		t.Fatalf("issues %+v", issues)
	}
	if got := matchIDs(q, fixtureIndexes(t, r, "AllergyIntolerance")); got != "a1" {
		t.Errorf("got %s", got)
	}
	if got := q.Values().Encode(); got != "clinical-status=active&patient=p1" {
		t.Errorf("Values %s", got)
	}
}

func TestResultParameters(t *testing.T) {
	r := testRegistry(t)
	q := mustParse(t, r, "AllergyIntolerance", "patient=p1&_count=10&_sort=-date,_id&_total=accurate&_summary=count"+
		"&_elements=code,patient&_include=AllergyIntolerance:patient&_include=AllergyIntolerance:recorder:Practitioner"+
		"&_format=json&_pretty=true")
	if q.Count != 10 || !slices.Equal(q.SortBy, []SortKey{{"date", true}, {"_id", false}}) || q.Total != "accurate" ||
		q.Summary != "count" || !slices.Equal(q.Elements, []string{"code", "patient"}) || q.Format != "json" || !q.Pretty {
		t.Errorf("query %+v", q)
	}
	if !slices.Equal(q.Include, []Include{{Source: "AllergyIntolerance", Param: "patient"}, {Source: "AllergyIntolerance", Param: "recorder", Target: "Practitioner"}}) {
		t.Errorf("include %+v", q.Include)
	}
	q, issues, err := r.ParseQuery("Flag", url.Values{"_count": {"5000"}}, false)
	if err != nil || q.Count != MaxCount || len(issues) != 1 || issues[0].Severity != "warning" {
		t.Errorf("_count cap: %v %d %+v", err, q.Count, issues)
	}
	if q := mustParse(t, r, "Flag", ""); q.Count != DefaultCount {
		t.Errorf("default count %d", q.Count)
	}
	if q := mustParse(t, r, "Patient", "_revinclude=AllergyIntolerance:patient&_revinclude=Flag:subject:Patient"); !slices.Equal(q.RevInclude, []Include{{Source: "AllergyIntolerance", Param: "patient"}, {Source: "Flag", Param: "subject", Target: "Patient"}}) {
		t.Errorf("revinclude %+v", q.RevInclude)
	}

	// IncludeRefs and RefersTo, for the REST layer's include passes.
	idxs := fixtureIndexes(t, r, "AllergyIntolerance")
	q = mustParse(t, r, "AllergyIntolerance", "_include=AllergyIntolerance:patient&_include=AllergyIntolerance:recorder")
	if got := q.IncludeRefs(idxs[0]); !slices.Equal(got, []string{"Patient/p1", "Practitioner/pr1"}) {
		t.Errorf("IncludeRefs %v", got)
	}
	if got := q.IncludeRefs(idxs[1]); !slices.Equal(got, []string{"Patient/p1"}) {
		t.Errorf("IncludeRefs of a logical recorder %v", got)
	}
	inc := Include{Source: "AllergyIntolerance", Param: "patient"}
	if !inc.RefersTo(idxs[0], "Patient/p1") || inc.RefersTo(idxs[3], "Patient/p1") {
		t.Error("RefersTo")
	}
}

func TestHostileInput(t *testing.T) {
	r := testRegistry(t)
	many := strings.Repeat("x,", 9999) + "x"
	cases := []struct {
		name string
		vs   url.Values
	}{
		{"10,000 comma values", url.Values{"code": {many}}},
		{"101 comma values", url.Values{"code": {strings.Repeat("x,", 100) + "x"}}},
		{"1 MB value", url.Values{"code": {strings.Repeat("a", 1<<20)}}},
		{"1 MB name", url.Values{strings.Repeat("a", 1<<20): {"x"}}},
		{"1 MB spread over values", func() url.Values {
			vs := url.Values{}
			for range 60 {
				vs.Add("code", strings.Repeat("b", 2000))
			}
			return vs
		}()},
		{"too many parameters", func() url.Values {
			vs := url.Values{}
			for range MaxParameters + 1 {
				vs.Add("code", "x")
			}
			return vs
		}()},
	}
	for _, c := range cases {
		for _, lenient := range []bool{false, true} {
			q, _, err := r.ParseQuery("AllergyIntolerance", c.vs, lenient)
			var se *Error
			if q != nil || !errors.As(err, &se) || !se.TooCostly() {
				t.Errorf("%s (lenient %v): %v", c.name, lenient, err)
			}
			if se != nil && len(se.Error()) > 500 {
				t.Errorf("%s: the error echoes the input (%d bytes)", c.name, len(se.Error()))
			}
		}
	}
	// At the limits, queries are accepted.
	if _, _, err := r.ParseQuery("AllergyIntolerance", url.Values{"code": {strings.Repeat("x,", 99) + "x"}}, false); err != nil {
		t.Errorf("100 values: %v", err)
	}
	// Escaped separators are data: \, and \| do not split.
	q := mustParse(t, r, "Patient", `family=hansen \(test\) .*&identifier=a\|b\,c`)
	if q.clauses[0].values[0].raw == "" || len(q.clauses[1].values) != 1 || q.clauses[1].values[0].code != "a|b,c" {
		t.Errorf("escapes: %+v", q.clauses)
	}
}

func TestFold(t *testing.T) {
	cases := map[string]string{
		"Ødegård":         "odegard",
		"ÆRLIG Åse":       "aerlig ase",
		"  Nils   Æge\t":  "nils aege",
		"Straße":          "strasse",
		"Čáslavská":       "caslavska",
		"Ŋ Ŧ Đ Ž Š":       "n t d z s",
		"a\u030Ase":       "ase",
		"Hansen (test).*": "hansen (test).*",
		"ΑΒΓ":             "αβγ",
		"":                "",
	}
	for in, want := range cases {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDateRange(t *testing.T) {
	cases := []struct{ in, lo, hi string }{
		{"2024", "2024-01-01T00:00:00Z", "2024-12-31T23:59:59.999999Z"},
		{"2024-02", "2024-02-01T00:00:00Z", "2024-02-29T23:59:59.999999Z"},
		{"2023-02", "2023-02-01T00:00:00Z", "2023-02-28T23:59:59.999999Z"},
		{"2024-03-05", "2024-03-05T00:00:00Z", "2024-03-05T23:59:59.999999Z"},
		{"2024-03-05T10:30", "2024-03-05T10:30:00Z", "2024-03-05T10:30:59.999999Z"},
		{"2024-03-05T10:30+01:00", "2024-03-05T09:30:00Z", "2024-03-05T09:30:59.999999Z"},
		{"2024-03-05T10:30:15Z", "2024-03-05T10:30:15Z", "2024-03-05T10:30:15.999999Z"},
		{"2024-03-05T10:30:15.25Z", "2024-03-05T10:30:15.25Z", "2024-03-05T10:30:15.259999Z"},
		{"2024-03-05T10:30:15.123456789-02:30", "2024-03-05T13:00:15.123456Z", "2024-03-05T13:00:15.123456Z"},
		{"2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z", "2025-01-01T00:30:00.999999Z"},
		{"0001", "0001-01-01T00:00:00Z", "0001-12-31T23:59:59.999999Z"},
		{"9999-12-31", "9999-12-31T00:00:00Z", "9999-12-31T23:59:59.999999Z"},
	}
	for _, c := range cases {
		lo, hi, err := parseDateRange(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if formatMicros(lo) != c.lo || formatMicros(hi) != c.hi {
			t.Errorf("%s: [%s, %s], want [%s, %s]", c.in, formatMicros(lo), formatMicros(hi), c.lo, c.hi)
		}
	}
	for _, bad := range []string{"", "0000", "202", "2024-1", "2024-00", "2024-02-30", "2024-03-05T", "2024-03-05T1:00",
		"2024-03-05T10:60", "2024-03-05T10:30:61Z", "2024-03-05T10:30:15.Z", "2024-03-05T10:30+1:00", "2024-03-05T10:30+15:00",
		"2024-03-05T10:30ZZ", "2024-03-05 10:30", "2024-03-05Z", "2024Z", "２０２４", "2024-03-05T10:30:15.1e3Z"} {
		if _, _, err := parseDateRange(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
