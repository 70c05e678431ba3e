package search

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestIterateIncludeParsing(t *testing.T) {
	r := testRegistry(t)
	q := mustParse(t, r, "Flag", "patient=p1&_include=Flag:encounter&_include:iterate=Encounter:part-of&_revinclude:iterate=MedicationStatement:context:Encounter")
	want := []Include{{Source: "Flag", Param: "encounter"}, {Source: "Encounter", Param: "part-of", Iterate: true}}
	if !slices.Equal(q.Include, want) {
		t.Errorf("include %+v, want %+v", q.Include, want)
	}
	if !slices.Equal(q.RevInclude, []Include{{Source: "MedicationStatement", Param: "context", Target: "Encounter", Iterate: true}}) {
		t.Errorf("revinclude %+v", q.RevInclude)
	}
	if !q.Iterates() {
		t.Error("Iterates false")
	}
	// The links repeat the modifier, or the next page would not iterate.
	if v := q.Values(); v.Get("_include:iterate") != "Encounter:part-of" {
		t.Errorf("Values %v lacks _include:iterate", v)
	}

	// An iterate include applies to resources of its source type only: an
	// Encounter's part-of, never a Flag value of the same name.
	enc, err := r.Extract("Encounter", []byte(`{"resourceType":"Encounter","id":"e2","status":"finished","class":{"code":"IMP"},"subject":{"reference":"Patient/p1"},"partOf":{"reference":"Encounter/e1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.IterateRefs(enc); !slices.Equal(got, []string{"Encounter/e1"}) {
		t.Errorf("IterateRefs %v", got)
	}
	if got := q.IncludeRefs(enc); !slices.Equal(got, []string{"Encounter/e1"}) {
		t.Errorf("IncludeRefs of an Encounter %v (the plain Flag:encounter must not apply)", got)
	}
	med, err := r.Extract("MedicationStatement", []byte(`{"resourceType":"MedicationStatement","id":"m1","status":"active","subject":{"reference":"Patient/p1"},"context":{"reference":"Encounter/e2"},"medicationCodeableConcept":{"text":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !q.RevIncluded(med, "Encounter/e2", true) || q.RevIncluded(med, "Encounter/e1", true) {
		t.Error("RevIncluded")
	}

	for _, bad := range []struct{ query, code, want string }{
		{"_include:iterate=Encounter:status", "invalid", "not a reference parameter"},
		{"_include:iterate=Observation:subject", "invalid", "not a resource type"},
		{"_include:iterate=Encounter:part-of:Patient", "invalid", "cannot refer to Patient"},
		{"_include:iterate=*", "invalid", "wildcard"},
		{"_include=Encounter:part-of", "invalid", "_include:iterate"},
		{"_include:recurse=Flag:encounter", "not-supported", "takes no modifier"},
	} {
		vs, _ := url.ParseQuery("patient=p1&" + bad.query)
		_, _, err := r.ParseQuery("Flag", vs, false)
		var se *Error
		if !errors.As(err, &se) || se.Issues[0].Code != bad.code || !strings.Contains(se.Issues[0].Diagnostics, bad.want) {
			t.Errorf("Flag?%s: %v, want %s mentioning %q", bad.query, err, bad.code, bad.want)
		}
	}
}

func TestHasParsingAndMatch(t *testing.T) {
	r := testRegistry(t)
	q := mustParse(t, r, "Encounter", "patient=p1&_has:Flag:encounter:status=active")
	if len(q.Has()) != 1 {
		t.Fatalf("Has %+v", q.Has())
	}
	h := q.Has()[0]
	if h.Source != "Flag" || h.Param != "encounter" || h.Query.Type != "Flag" {
		t.Errorf("has %+v", h)
	}
	flagIdx, err := r.Extract("Flag", []byte(`{"resourceType":"Flag","id":"f1","status":"active","subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"code":{"text":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !h.Query.Match(flagIdx) || !slices.Equal(h.Refs(flagIdx), []string{"Encounter/e1"}) {
		t.Errorf("the Flag does not meet the condition or has no reference: %v", h.Refs(flagIdx))
	}
	e1 := Index{Type: "Encounter", ID: "e1", Entries: []Entry{{Param: "patient", Values: []Value{{Ref: "Patient/p1"}}}}}
	e2 := Index{Type: "Encounter", ID: "e2", Entries: e1.Entries}
	if q.Match(e1) {
		t.Error("an unresolved _has matches")
	}
	h.Resolve(h.Refs(flagIdx))
	if !q.Match(e1) || q.Match(e2) {
		t.Error("a resolved _has matches the wrong Encounter")
	}
	if v := q.Values(); v.Get("_has:Flag:encounter:status") != "active" {
		t.Errorf("Values %v", v)
	}

	// Nested: Patients with an Encounter that a Flag refers to.
	q = mustParse(t, r, "Patient", "_id=p1&_has:Encounter:patient:_has:Flag:encounter:code=x")
	if len(q.Has()) != 1 || len(q.Has()[0].Query.Has()) != 1 || q.Has()[0].Query.Has()[0].Source != "Flag" {
		t.Errorf("nested _has %+v", q.Has())
	}
	// _has does not bind the patient: it is evaluated inside the binding.
	if _, ok := mustParse(t, r, "Patient", "_has:Condition:patient:code=x").PatientBinding(); ok {
		t.Error("a _has binds a patient")
	}

	deep := "_has:Encounter:patient:_has:Encounter:part-of:_has:Encounter:part-of:_has:Flag:encounter:status"
	for _, bad := range []struct{ typ, name, code, want string }{
		{"Patient", "_has:Flag", "invalid", "is not _has:Type"},
		{"Patient", "_has:Flag:patient", "invalid", "is not _has:Type"},
		{"Patient", "_has:Observation:subject:code", "not-supported", "not searched here"},
		{"Patient", "_has:Flag:status:code", "invalid", "not a reference parameter"},
		{"Encounter", "_has:AllergyIntolerance:patient:code", "invalid", "does not refer to Encounter"},
		{"Patient", "_has:Flag:patient:nosuch", "not-supported", "nosuch is not a search parameter of Flag"},
		{"Patient", "_has:Flag:patient:_count", "invalid", "result parameter"},
		{"Patient", "_has:Flag:patient:date", "invalid", "not a date"},
		{"Patient", deep, "not-supported", "at most 3 deep"},
	} {
		_, _, err := r.ParseQuery(bad.typ, url.Values{"_id": {"p1"}, bad.name: {"x"}}, false)
		var se *Error
		if !errors.As(err, &se) || se.Issues[0].Code != bad.code || !strings.Contains(se.Issues[0].Diagnostics, bad.want) ||
			se.Issues[0].Expression[0] != truncate(bad.name) {
			t.Errorf("%s?%s=x: %v, want %s mentioning %q", bad.typ, bad.name, err, bad.code, bad.want)
		}
	}
	// Lenient handling drops a bad condition and says so.
	q, issues, err := r.ParseQuery("Patient", url.Values{"_id": {"p1"}, "_has:Flag:patient:nosuch": {"x"}}, true)
	if err != nil || len(q.Has()) != 0 || len(issues) != 1 || issues[0].Severity != "warning" {
		t.Errorf("lenient: %v %+v", err, issues)
	}
}

func TestIterateCapabilities(t *testing.T) {
	r := testRegistry(t)
	inc, rev := r.IterateCapabilities("Flag", testTypes)
	if !slices.Contains(inc, "Encounter:part-of") || slices.Contains(inc, "Flag:encounter") {
		t.Errorf("Flag iterate includes %v", inc)
	}
	_, rev = r.IterateCapabilities("Patient", testTypes)
	if !slices.Contains(rev, "Flag:encounter") || slices.Contains(rev, "Flag:patient") {
		t.Errorf("Patient iterate revincludes %v", rev)
	}
	_ = rev
}
