package fhirpath

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// HL7's FHIRPath test suite for R4 (testdata/tests-fhir-r4.xml, from
// FHIR/fhir-test-cases). Its inputs are the spec's examples; the JSON
// forms are vendored under the XML names with .json (patient-example-period
// is patient-example with the identifier period of the XML).
type suite struct {
	Groups []struct {
		Name  string      `xml:"name,attr"`
		Tests []suiteCase `xml:"test"`
	} `xml:"group"`
}

type suiteCase struct {
	Name      string `xml:"name,attr"`
	Input     string `xml:"inputfile,attr"`
	Predicate string `xml:"predicate,attr"`
	Mode      string `xml:"mode,attr"`
	Expr      struct {
		Text    string `xml:",chardata"`
		Invalid string `xml:"invalid,attr"`
	} `xml:"expression"`
	Outputs []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"output"`
}

func loadSuite(t *testing.T) suite {
	b, err := os.ReadFile("testdata/tests-fhir-r4.xml")
	if err != nil {
		t.Fatal(err)
	}
	var s suite
	if err := xml.Unmarshal(b, &s); err != nil {
		t.Fatalf("tests-fhir-r4.xml: %v", err)
	}
	return s
}

func loadInput(t *testing.T, name string) map[string]any {
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".xml"), ".json") + ".json"
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func TestHL7Suite(t *testing.T) {
	s := loadSuite(t)
	inputs := map[string]map[string]any{}
	var pass, skipped, noInput, total int
	reasons := map[string]int{}
	for _, g := range s.Groups {
		for _, c := range g.Tests {
			total++
			if r, ok := skipReason(g.Name, c.Name); ok {
				skipped++
				reasons[r]++
				continue
			}
			var root map[string]any
			if c.Input != "" {
				if _, ok := inputs[c.Input]; !ok {
					inputs[c.Input] = loadInput(t, c.Input)
				}
				if root = inputs[c.Input]; root == nil {
					noInput++
					continue
				}
			}
			if err := runCase(c, root); err != nil {
				t.Errorf("%s/%s: %s: %v", g.Name, c.Name, strings.TrimSpace(c.Expr.Text), err)
				continue
			}
			pass++
		}
	}
	if pass < total*85/100 {
		t.Errorf("only %d of %d cases pass", pass, total)
	}
	t.Logf("HL7 FHIRPath suite (R4): %d cases, %d pass, %d skipped (listed), %d without input", total, pass, skipped, noInput)
	var rs []string
	for r, n := range reasons {
		rs = append(rs, fmt.Sprintf("%4d  %s", n, r))
	}
	sort.Strings(rs)
	t.Logf("skipped by reason:\n%s", strings.Join(rs, "\n"))
}

func runCase(c suiteCase, root map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	src := strings.TrimSpace(c.Expr.Text)
	e, perr := Parse(src)
	var out []Item
	if perr == nil {
		r := Typed(root, "")
		env := &Env{Resource: r, RootResource: r, Context: r}
		var in []Item
		if root != nil {
			in = []Item{r}
		}
		out, perr = e.Eval(env, in)
	}
	if c.Expr.Invalid != "" {
		if perr == nil {
			return fmt.Errorf("want an error (%s), got %s", c.Expr.Invalid, show(out))
		}
		return nil
	}
	if perr != nil {
		return perr
	}
	if c.Predicate == "true" {
		b, ok, err := singletonBool(out)
		if err != nil {
			return err
		}
		out = boolItems(ok && b)
	}
	if len(out) != len(c.Outputs) {
		return fmt.Errorf("got %d items %s, want %d", len(out), show(out), len(c.Outputs))
	}
	for i, want := range c.Outputs {
		if !matches(out[i], want.Type, strings.TrimSpace(want.Text)) {
			return fmt.Errorf("item %d: got %s, want %s %s", i, show(out[i:i+1]), want.Type, want.Text)
		}
	}
	return nil
}

func show(c []Item) string {
	parts := make([]string, len(c))
	for i, it := range c {
		s, ok := toStringValue(it)
		if !ok {
			s = fmt.Sprintf("%v", it.V)
		}
		parts[i] = typeName(it) + ":" + s
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func matches(it Item, typ, text string) bool {
	v := system(it)
	switch typ {
	case "boolean":
		b, ok := v.(bool)
		return ok && strconv.FormatBool(b) == text
	case "integer":
		n, ok := v.(int64)
		return ok && strconv.FormatInt(n, 10) == text
	case "decimal":
		f, ok := toFloat(v)
		w, err := strconv.ParseFloat(text, 64)
		return ok && err == nil && math.Abs(f-w) < 1e-9
	case "date", "dateTime", "time":
		d, ok := v.(DT)
		if !ok {
			return false
		}
		s := strings.TrimPrefix(text, "@")
		kind := map[string]byte{"date": 'D', "dateTime": 'T', "time": 't'}[typ]
		w, ok := parseDT(strings.TrimPrefix(s, "T"), kind)
		if !ok {
			return false
		}
		c, ok := compareDT(d, w)
		return ok && c == 0
	case "Quantity":
		q, ok := v.(Quantity)
		w, ok2 := toQuantityConv(Item{V: text})
		return ok && ok2 && q.Value == w.(Quantity).Value && q.Unit == w.(Quantity).Unit
	}
	s, ok := toStringValue(it)
	return ok && s == text
}

// skipReason lists the cases this package does not claim to support,
// grouped by why.
func skipReason(group, name string) (string, bool) {
	if r, ok := skips[name]; ok {
		return r, true
	}
	if r, ok := skips["group:"+group]; ok {
		return r, true
	}
	return "", false
}

const (
	skipSTU      = "not N1: FHIRPath 2.0 STU functions lowBoundary/highBoundary, precision, comparable, matchesFull"
	skipStrict   = "needs a static type checker (strict mode: an unknown element or a wrong type at parse time)"
	skipDecimal  = "decimals are float64: the scale of 1.0 is not kept"
	skipUCUM     = "needs UCUM unit algebra (cm * m = m2)"
	skipProfiles = "conformsTo() needs profile validation"
	skipAsMany   = "as() on a collection is allowed: R4's own invariant dom-3 uses descendants().as(canonical)"
)

var skips = map[string]string{
	"group:LowBoundary":          skipSTU,
	"group:HighBoundary":         skipSTU,
	"group:Comparable":           skipSTU,
	"group:Precision":            skipSTU,
	"testMatchesFullWithinUrl1":  skipSTU,
	"testMatchesFullWithinUrl1a": skipSTU,
	"testMatchesFullWithinUrl2":  skipSTU,
	"testMatchesFullWithinUrl3":  skipSTU,
	"testMatchesFullWithinUrl4":  skipSTU,
	"testPeriodInvariantNew":     skipSTU,
	"testSimpleFail":             skipStrict,
	"testSimpleWithWrongContext": skipStrict,
	"testPolymorphismB":          skipStrict,
	"testPolymorphismAsB":        skipStrict,
	"testDollarOrderNotAllowed":  skipStrict,
	"testPolymorphicsB":          skipStrict,
	"testDecimalLiteralToString": skipDecimal,
	"testToString4":              skipDecimal,
	"testQuantity9":              skipUCUM,
	"testConformsTo1":            skipProfiles,
	"testConformsTo2":            skipProfiles,
	"testFHIRPathAsFunction21":   skipAsMany,
}

// FuzzEvaluate: no expression makes the parser or the evaluator panic.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{"Patient.name.given.first()", "(1 | 2).sort(-$this)", "@2020-01-01 + 1 'day' < today()",
		"name.where(use = 'official').select(given & ' ' & family)", "iif(active, 1, 'x').toString().length() > 2",
		"descendants().ofType(FHIR.Period).all(start <= end)", "telecom[1].rank mod 0", "'a\\u00e9'.matches('^.$')"} {
		f.Add(s)
	}
	b, err := os.ReadFile("testdata/patient-example.json")
	if err != nil {
		f.Fatal(err)
	}
	root, err := DecodeJSON(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		e.Evaluate(root)
	})
}

// String literals and unescape('json') read the same escapes, one piece
// of code: \n, \t, \r, \f, \uXXXX and the escaped character itself.
func TestEscapesReadAlike(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`'a\tb\nc\rd\fe\u00e9\'\\'`, "a\tb\nc\rd\fe\u00e9'\\"},
		{`'a\\tb\\fc\\u00e9\\"'.unescape('json')`, "a\tb\fc\u00e9\""},
		{`'x\\uZZZZ'.unescape('json')`, "xuZZZZ"},
	} {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got, err := e.Evaluate(nil)
		if err != nil || len(got) != 1 || got[0].V != tc.want {
			t.Errorf("%s = %v (%v), want %q", tc.expr, got, err, tc.want)
		}
	}
	if _, err := Parse(`'\uZZZZ'`); err == nil {
		t.Errorf("a string literal with a bad \\u escape parses")
	}
}
