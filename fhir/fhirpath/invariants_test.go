package fhirpath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

func keys(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Key+"@"+v.Path)
	}
	slices.Sort(out)
	return out
}

// errorsOnly drops warnings (dom-6 wants a narrative on every resource).
func errorsOnly(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Severity == "error" {
			out = append(out, v)
		}
	}
	return out
}

func TestInvariants(t *testing.T) {
	cases := []struct {
		name, typ, body string
		want            []string
	}{
		{"period start after end", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"start":"2024-05-02","end":"2024-05-01"}}`,
			[]string{"per-1@Encounter.period"}},
		{"period in order", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"start":"2024-05-01T10:00:00Z","end":"2024-05-01T11:00:00Z"}}`,
			nil},
		{"period at different precisions on the same day is undecided, not violated", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"start":"2024-05-01","end":"2024-05-01T11:00:00Z"}}`,
			nil},
		{"period of a backbone element, second of a list", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"participant":[{"period":{"start":"2020"}},{"period":{"start":"2021-03","end":"2021-02"}}]}`,
			[]string{"per-1@Encounter.participant[1].period"}},
		{"choice type: onsetPeriod", "Condition",
			`{"resourceType":"Condition","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"subject":{"reference":"Patient/1"},"onsetPeriod":{"start":"2024","end":"2023"}}`,
			[]string{"per-1@Condition.onset.ofType(Period)"}},
		{"resource rule: abatement needs an inactive status", "Condition",
			`{"resourceType":"Condition","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"subject":{"reference":"Patient/1"},"abatementDateTime":"2024-01-01"}`,
			[]string{"con-4@Condition"}},
		{"backbone rule pat-1 and an empty element (ele-1)", "Patient",
			`{"resourceType":"Patient","contact":[{"gender":"male"}],"address":[{}]}`,
			[]string{"ele-1@Patient.address[0]", "pat-1@Patient.contact[0]"}},
		{"extension with both value and extensions (ext-1)", "Patient",
			`{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","extension":[{"url":"y","valueBoolean":true}]}]}`,
			[]string{"ext-1@Patient.extension[0]"}},
		{"extension of a primitive", "Patient",
			`{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://x"}]}}`,
			[]string{"ext-1@Patient.birthDate.extension[0]"}},
		{"contained resource: rules of its type, dom-3 and ref-1", "MedicationStatement",
			`{"resourceType":"MedicationStatement","status":"active","subject":{"reference":"Patient/1"},"contained":[{"resourceType":"Medication","id":"m1"}],"medicationReference":{"reference":"#m2"}}`,
			[]string{"dom-3@MedicationStatement", "ref-1@MedicationStatement.medication.ofType(Reference)"}},
		{"contained resource referred to", "MedicationStatement",
			`{"resourceType":"MedicationStatement","status":"active","subject":{"reference":"Patient/1"},"contained":[{"resourceType":"Medication","id":"m1"}],"medicationReference":{"reference":"#m1"}}`,
			nil},
		{"contained in contained (dom-2)", "Flag",
			`{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/1"},"contained":[{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Patient","id":"q"}]}],"author":{"reference":"#p"}}`,
			[]string{"dom-2@Flag", "dom-3@Flag.contained[0]"}},
		{"quantity code without system, range low above high", "Procedure",
			`{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/1"},"performedRange":{"low":{"value":5,"code":"a"},"high":{"value":3,"system":"http://unitsofmeasure.org","code":"a"}}}`,
			[]string{"qty-3@Procedure.performed.ofType(Range).low", "rng-2@Procedure.performed.ofType(Range)"}},
		{"allergy in error with a clinical status (ait-2)", "AllergyIntolerance",
			`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"entered-in-error"}]}}`,
			[]string{"ait-2@AllergyIntolerance"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := keys(errorsOnly(Invariants(c.typ, decode(t, c.body))))
			if !slices.Equal(got, c.want) {
				t.Errorf("violations %v, want %v", got, c.want)
			}
		})
	}
}

func TestWarningsAreWarnings(t *testing.T) {
	vs := Invariants("Flag", decode(t, `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/1"}}`))
	if len(vs) != 1 || vs[0].Key != "dom-6" || vs[0].Severity != "warning" || vs[0].Path != "Flag" {
		t.Fatalf("want the dom-6 warning (no narrative), got %+v", vs)
	}
}

// TestEle1Native: the native ele-1 answers as its FHIRPath expression does,
// on every element of every test input and of some hand-made edge cases.
func TestEle1Native(t *testing.T) {
	e, err := Parse(ele1Expression)
	if err != nil {
		t.Fatal(err)
	}
	inputs, _ := os.ReadDir("testdata")
	var roots []map[string]any
	for _, f := range inputs {
		if strings.HasSuffix(f.Name(), ".json") {
			b, _ := os.ReadFile("testdata/" + f.Name())
			roots = append(roots, decode(t, string(b)))
		}
	}
	roots = append(roots, decode(t, `{"resourceType":"Patient","address":[{}],"name":[{"id":"a"}],"birthDate":"1970","_gender":{"id":"x"},"_active":{"extension":[{"url":"u","valueBoolean":true}]},"telecom":[{"id":"t","extension":[{"url":"u","valueString":"s"}]}]}`))
	checked, violations := 0, 0
	for _, root := range roots {
		r := Typed(root, "")
		all, err := fDescendants(nil, []Item{r}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range all {
			if m, ok := it.V.(map[string]any); ok && m["resourceType"] != nil {
				continue // ele-1 is on elements, not resources
			}
			ok, known, err := e.EvalBool(&Env{Resource: r, RootResource: r, Context: it}, []Item{it})
			if err != nil || !known {
				t.Fatalf("ele-1 on %v: %v (known %v)", it.V, err, known)
			}
			var native bool
			if m, isMap := it.V.(map[string]any); isMap {
				native = ele1Object(m)
			} else {
				native = ele1Primitive(it.V, it.Ext)
			}
			if native != ok {
				t.Errorf("ele-1 on %v (ext %v): native %v, FHIRPath %v", it.V, it.Ext, native, ok)
			}
			checked++
			if !ok {
				violations++
			}
		}
	}
	if violations < 3 {
		t.Errorf("the edge cases should violate ele-1 three times, %d did", violations)
	}
	t.Logf("ele-1 native = FHIRPath on %d elements (%d violations)", checked, violations)
}

// TestConstraintCounts reports, per served type, how many invariants can
// apply to its elements (its own, its backbone elements', the datatypes
// it can contain), and that every generated expression parsed.
func TestConstraintCounts(t *testing.T) {
	served := []string{"Patient", "AllergyIntolerance", "Flag", "Condition", "Procedure", "Consent", "MedicationStatement", "Encounter", "Subscription"}
	var lines []string
	for _, typ := range served {
		keys := map[string]bool{"ele-1": true}
		reach(typ, keys, map[string]bool{})
		lines = append(lines, fmt.Sprintf("%s %d", typ, len(keys)))
		if !keys["dom-2"] {
			t.Errorf("%s: dom-2 does not apply", typ)
		}
	}
	t.Logf("invariants that can apply per served type: %s; skipped: %v", strings.Join(lines, ", "), Skipped)
}

func reach(typ string, keys, seen map[string]bool) {
	if seen[typ] {
		return
	}
	seen[typ] = true
	for _, c := range Constraints(typ) {
		keys[c.Key] = true
	}
	for t := typ; t != ""; {
		ti := typeTable[t]
		if ti == nil {
			break
		}
		for _, e := range ti.elems {
			for _, et := range e.types {
				if primitiveSystem[et] == "" && et != "Resource" {
					reach(et, keys, seen)
				}
			}
		}
		t = ti.base
	}
}

var _ = bytes.MinRead

// TestDom3Native: the native dom-3 answers as its R4 FHIRPath expression.
func TestDom3Native(t *testing.T) {
	var expr *Expression
	for _, c := range Constraints("DomainResource") {
		if c.Key == "dom-3" {
			expr = c.expr
		}
	}
	if expr == nil {
		t.Fatal("dom-3 is not in the table")
	}
	bodies := []string{
		`{"resourceType":"Condition","subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"PractitionerRole","id":"r"}],"recorder":{"reference":"#r"},"subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"PractitionerRole","id":"r"}],"recorder":{"reference":"#x"},"subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"PractitionerRole","id":"r"},{"resourceType":"Practitioner","id":"p"}],"recorder":{"reference":"#r"}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"PractitionerRole","id":"r","practitioner":{"reference":"#p"}},{"resourceType":"Practitioner","id":"p"}],"recorder":{"reference":"#r"}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"Provenance","id":"v","target":[{"reference":"#"}]}]}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"Patient","id":"q"}],"meta":{"profile":["#q"]}}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"Patient"}]}`,
		`{"resourceType":"Consent","contained":[{"resourceType":"Organization","id":"o"}],"policy":[{"uri":"#o"}]}`,
		`{"resourceType":"Consent","contained":[{"resourceType":"Organization","id":"o"}],"policy":[{"uri":"#p"}]}`,
		`{"resourceType":"Flag","contained":[{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Patient","id":"q"}]}],"subject":{"reference":"#p"}}`,
	}
	for _, b := range bodies {
		m := decode(t, b)
		r := Typed(m, "")
		ok, known, err := expr.EvalBool(&Env{Resource: r, RootResource: r, Context: r}, []Item{r})
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		fhirpathSays := !known || ok
		native := true
		for _, v := range Invariants(r.T, m) {
			if v.Key == "dom-3" && v.Path == r.T {
				native = false
			}
		}
		if native != fhirpathSays {
			t.Errorf("%s: native dom-3 %v, FHIRPath %v", b, native, fhirpathSays)
		}
	}
}

// TestDecodeJSONAsEncodingJSON: DecodeJSON gives what encoding/json gives
// (with UseNumber) on every vendored input and on edge cases, and refuses
// what it refuses.
func TestDecodeJSONAsEncodingJSON(t *testing.T) {
	var docs [][]byte
	inputs, _ := os.ReadDir("testdata")
	for _, f := range inputs {
		if strings.HasSuffix(f.Name(), ".json") {
			b, _ := os.ReadFile("testdata/" + f.Name())
			docs = append(docs, b)
		}
	}
	for _, s := range []string{
		`{}`, ` {"a" : [ ] , "b":{ }} `, `{"a":"\u00e9\ud83d\ude00\n\t\"\\\/","b":-0.5e+3,"c":[true,false,null,0,1.25E-2]}`,
		`{"a":"\ud800x","b":"\udc00","c":"` + "\xff\xfe" + `ok"}`, `{"a":1,"a":2}`, `{"gender":"male","_gender":{"id":"x"}}`,
		`{"a":"æøå ÆØÅ"}`,
	} {
		docs = append(docs, []byte(s))
	}
	bad := []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":tru}`,
		`{"a":"x` + "\x01" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{} x`, `{"a":[1 2]}`, `{"a":1e}`, `{'a':1}`}
	for _, b := range docs {
		var want map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %s: %v", b, err)
		}
		got, err := DecodeJSON(b)
		if err != nil {
			t.Errorf("DecodeJSON(%s): %v", b, err)
			continue
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Errorf("DecodeJSON(%.80s) differs from encoding/json:\n got %#v\nwant %#v", b, got, want)
		}
	}
	for _, s := range bad {
		if m, err := DecodeJSON([]byte(s)); err == nil {
			t.Errorf("DecodeJSON(%q) = %v, want an error", s, m)
		}
	}
}

// FuzzInvariants: no body the decoder accepts makes the invariant pass
// panic (go test -fuzz FuzzInvariants to search further).
func FuzzInvariants(f *testing.F) {
	inputs, _ := os.ReadDir("testdata")
	for _, e := range inputs {
		if strings.HasSuffix(e.Name(), ".json") {
			b, _ := os.ReadFile("testdata/" + e.Name())
			f.Add(b)
		}
	}
	f.Add([]byte(`{"resourceType":"MedicationStatement","contained":[{"resourceType":"Medication","id":"m"},{"id":3}],"medicationReference":{"reference":"#m"},"effectivePeriod":{"start":"2020","end":7}}`))
	f.Add([]byte(`{"resourceType":"Encounter","period":{"start":["x"],"end":{"a":1}},"participant":[null,{"period":{"_start":{"id":"q"}}}],"_status":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeJSON(b)
		if err != nil {
			return
		}
		rt, _ := m["resourceType"].(string)
		if rt == "" {
			rt = "Encounter"
		}
		Invariants(rt, m)
	})
}

// TestNativeShortcuts: where a constraint's native shortcut decides, it
// decides as the FHIRPath expression does, on every element of every
// test input, seed-like edge cases included.
func TestNativeShortcuts(t *testing.T) {
	inputs, _ := os.ReadDir("testdata")
	var roots []map[string]any
	for _, f := range inputs {
		if strings.HasSuffix(f.Name(), ".json") {
			b, _ := os.ReadFile("testdata/" + f.Name())
			roots = append(roots, decode(t, string(b)))
		}
	}
	for _, s := range []string{
		`{"resourceType":"Procedure","contained":[],"extension":[{"url":"a"},{"url":"b","valueString":"x"},{"url":"c","extension":[{"url":"d","valueBoolean":true}]},{"url":"e","_valueCode":{"extension":[{"url":"f","valueCode":"g"}]}},{"url":"h","valueString":"x","extension":[{"url":"i","valueInteger":1}]},{"url":"j","extension":[null]}],"recorder":{"reference":"#r"},"subject":{"display":"x"},"performer":[{"actor":{"reference":"Practitioner/1"}}]}`,
		`{"resourceType":"Procedure","contained":[{"resourceType":"Patient","id":"r","meta":{"versionId":"1","security":[{"code":"x"}]},"contained":[{"resourceType":"Patient","id":"q"}]}],"recorder":{"reference":"#r"}}`,
	} {
		roots = append(roots, decode(t, s))
	}
	decided := map[string]int{}
	for _, root := range roots {
		r := Typed(root, "")
		all, _ := fDescendants(nil, []Item{r}, nil)
		for _, it := range append(all, r) {
			m, ok := it.V.(map[string]any)
			if !ok {
				continue
			}
			for _, c := range Constraints(it.T) {
				if c.native == nil {
					continue
				}
				holds, ok := c.native(m)
				if !ok {
					continue
				}
				res := r
				if _, isRes := m["resourceType"]; isRes {
					res = it
				}
				b, known, err := c.expr.EvalBool(&Env{Resource: res, RootResource: r, Context: it}, []Item{it})
				want := err == nil && (!known || b)
				if holds != want {
					t.Errorf("%s on %v: native %v, FHIRPath %v (err %v)", c.Key, m, holds, want, err)
				}
				decided[c.Key]++
			}
		}
	}
	for _, k := range []string{"dom-2", "dom-4", "dom-5", "ref-1", "ext-1"} {
		if decided[k] == 0 {
			t.Errorf("%s was never decided natively: the test proves nothing for it", k)
		}
	}
	t.Logf("natively decided and checked against FHIRPath: %v", decided)
}
