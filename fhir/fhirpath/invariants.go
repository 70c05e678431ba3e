package fhirpath

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// constraints.txt holds the R4 invariants (generated, see types.go) of the
// served resource types, their backbone elements and every datatype:
// owner, key, severity, expression, human; tab-separated.
//
//go:embed constraints.txt
var constraintsTxt string

// Constraint is one R4 invariant as its StructureDefinition states it.
type Constraint struct {
	Owner      string // type or backbone element path: Period, Encounter.participant
	Key        string // per-1
	Severity   string // error or warning
	Human      string
	Expression string
	expr       *Expression
	// native, if set, decides the constraint on an element without
	// FHIRPath where it can (decided), identically (TestNativeShortcuts).
	native func(m map[string]any) (holds, decided bool)
}

// natives are the shortcuts for the constraints evaluated on most
// elements of most writes.
var natives = map[string]func(m map[string]any) (holds, decided bool){
	// Only contained resources can break these.
	"dom-2": noContained,
	"dom-4": noContained,
	"dom-5": noContained,
	// Only a local reference ('#id') can break ref-1.
	"ref-1": func(m map[string]any) (bool, bool) {
		ref, ok := m["reference"].(string)
		return true, !ok || !strings.HasPrefix(ref, "#")
	},
	// extension.exists() != value.exists()
	"ext-1": func(m map[string]any) (bool, bool) {
		es, _ := m["extension"].([]any)
		hasExt := slices.ContainsFunc(es, func(e any) bool { return e != nil })
		hasValue := false
		for k := range m {
			name := strings.TrimPrefix(k, "_")
			if ki, ok := keyOf("Extension", name); ok && ki.choice {
				hasValue = true
				break
			}
		}
		return hasExt != hasValue, true
	},
}

func noContained(m map[string]any) (bool, bool) {
	cs, ok := m["contained"].([]any)
	return true, !ok || len(cs) == 0
}

// Violation is a constraint an element does not meet.
type Violation struct {
	Key      string
	Severity string // "error" or "warning"
	Human    string
	// Path locates the element: Encounter.period,
	// Condition.stage[0].assessment[1].
	Path string
}

// Skipped are the R4 invariants of the served types that are not
// evaluated, with why. ele-1 is evaluated natively (see ele1).
var Skipped = map[string]string{
	"txt-1":  "Narrative.div XHTML rules (htmlChecks()) are the narrative check's, not FHIRPath's",
	"txt-2":  "Narrative.div must have non-whitespace content: checked with txt-1 by the narrative check",
	"sqty-1": "SimpleQuantity is a profile of Quantity; the type table does not say which Quantity elements are SimpleQuantity",
}

// constraintTable by owner: built on first use (after the function table
// of init), only read after.
var constraintTable = sync.OnceValue(func() map[string][]*Constraint { return loadConstraints(constraintsTxt) })

// checkTable has, for every type, the constraints of the type and its
// bases that the walker evaluates: one lookup per element.
var checkTable = sync.OnceValue(func() map[string][]*Constraint {
	m := map[string][]*Constraint{}
	for typ := range typeTable {
		for _, c := range Constraints(typ) {
			if c.Key != "dom-3" { // natively, once the resource is walked
				m[typ] = append(m[typ], c)
			}
		}
	}
	return m
})

func loadConstraints(txt string) map[string][]*Constraint {
	m := map[string][]*Constraint{}
	for _, l := range strings.Split(txt, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 5 {
			continue
		}
		c := &Constraint{Owner: f[0], Key: f[1], Severity: f[2], Expression: f[3], Human: f[4]}
		if _, skip := Skipped[c.Key]; skip {
			continue
		}
		e, err := Parse(c.Expression)
		if err != nil {
			// The table is generated and tested (TestConstraintsParse):
			// a constraint that does not parse is a build defect.
			panic(fmt.Sprintf("fhirpath: constraint %s: %v", c.Key, err))
		}
		c.expr = e
		c.native = natives[c.Key]
		m[c.Owner] = append(m[c.Owner], c)
	}
	return m
}

// Constraints lists the invariants checked on elements of a type (its own
// and its base types'), for documentation and tests.
func Constraints(typ string) []*Constraint {
	table := constraintTable()
	var out []*Constraint
	for i := 0; typ != "" && i < 8; i++ {
		out = append(out, table[typ]...)
		t := typeTable[typ]
		if t == nil {
			break
		}
		typ = t.base
	}
	return out
}

// Invariants checks a resource, decoded from JSON with encoding/json,
// against the R4 invariants of every element present: those of its type,
// backbone elements and datatypes, of contained resources, and ele-1 on
// every element. A constraint is violated when it evaluates to false or
// fails to evaluate; an empty result (a comparison FHIRPath cannot decide,
// such as a date against a dateTime on the same day) is not a violation.
func Invariants(resourceType string, root map[string]any) []Violation {
	w := walker{table: checkTable(), root: Item{V: root, T: resourceType}, path: make([]seg, 0, 16), frames: make([]*frame, 0, 4)}
	w.env.RootResource = w.root
	w.resource(root, resourceType)
	return w.out
}

// seg is one step of the path to the element being checked; the path is
// printed only for a violation, so walking costs no string building.
type seg struct {
	name string
	idx  int // -1: not in a list
}

// frame is what dom-3 needs to know of a resource being walked: the
// references and canonical/uri/url values in it (its descendants, its
// contained resources' included), and whether something in it refers to
// its container ('#').
type frame struct {
	refs    []string
	hashRef bool
}

type walker struct {
	table  map[string][]*Constraint
	root   Item
	out    []Violation
	env    Env
	path   []seg
	frames []*frame
	ev     evaluator
	this   [1]Item
}

func (w *walker) push(name string, idx int) { w.path = append(w.path, seg{name, idx}) }
func (w *walker) pop()                      { w.path = w.path[:len(w.path)-1] }

func (w *walker) pathString() string {
	var b strings.Builder
	for i, s := range w.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func (w *walker) violate(key, severity, human string) {
	w.out = append(w.out, Violation{Key: key, Severity: severity, Human: human, Path: w.pathString()})
}

func (w *walker) resource(m map[string]any, typ string) {
	if len(w.path) == 0 {
		w.push(typ, -1)
		defer w.pop()
	}
	saved := w.env.Resource
	w.env.Resource = Item{V: m, T: typ}
	f := &frame{}
	w.frames = append(w.frames, f)
	w.object(m, typ)
	w.frames = w.frames[:len(w.frames)-1]
	w.dom3(m, f)
	if n := len(w.frames); n > 0 {
		// What a contained resource holds is its container's too.
		p := w.frames[n-1]
		p.refs = append(p.refs, f.refs...)
		p.hashRef = p.hashRef || f.hashRef
	}
	w.env.Resource = saved
}

// dom-3 natively: every contained resource is referred to from elsewhere
// in the resource, or refers to it ('#'). Its FHIRPath expression would
// take all descendants of the resource four times per contained resource
// (TestDom3Native proves the two agree).
func (w *walker) dom3(m map[string]any, f *frame) {
	cs, _ := m["contained"].([]any)
	if len(cs) == 0 {
		return
	}
	for _, c := range cs {
		cm, _ := c.(map[string]any)
		id, ok := cm["id"].(string)
		if !ok {
			continue // '#'+id is empty: dom-3 cannot say, so it holds
		}
		if slices.Contains(f.refs, "#"+id) || containedRefersBack(cm) {
			continue
		}
		w.violate(dom3.Key, dom3.Severity, dom3.Human)
		return
	}
}

// containedRefersBack reports whether a contained resource holds a
// reference to its container ('#').
func containedRefersBack(m map[string]any) bool {
	found := false
	var walk func(v any, typ string)
	walk = func(v any, typ string) {
		switch x := v.(type) {
		case map[string]any:
			if rt, ok := x["resourceType"].(string); ok && (typ == "" || typ == "Resource") {
				typ = rt
			}
			for k, e := range x {
				ct := childType(typ, k)
				if e == "#" && (k == "reference" || ct == "canonical") {
					found = true
					return
				}
				walk(e, ct)
			}
		case []any:
			for _, e := range x {
				walk(e, typ)
			}
		}
	}
	rt, _ := m["resourceType"].(string)
	for k, e := range m {
		walk(e, childType(rt, k))
	}
	return found
}

var dom3 = Constraint{Key: "dom-3", Severity: "error", Human: "If the resource is contained in another resource, it SHALL be referred to from elsewhere in the resource or SHALL refer to the containing resource"}

// object checks an element (or resource) of a type and walks its members.
func (w *walker) object(m map[string]any, typ string) {
	w.check(Item{V: m, T: typ}, typ)
	for k, v := range m {
		if k == "resourceType" || k == "fhir_comments" || k == "" {
			continue
		}
		if k[0] == '_' {
			// A primitive's id and extensions; with its value or alone.
			w.push(k[1:], -1)
			x, _ := v.(map[string]any)
			if xs, ok := v.([]any); ok {
				for i, e := range xs {
					if xm, ok := e.(map[string]any); ok {
						w.path[len(w.path)-1].idx = i
						w.primitiveExt(xm)
					}
				}
				w.path[len(w.path)-1].idx = -1
			} else if x != nil {
				w.primitiveExt(x)
			}
			if _, hasValue := m[k[1:]]; !hasValue && x != nil && !ele1Primitive(nil, x) {
				w.ele1()
			}
			w.pop()
			continue
		}
		ki, ok := keyOf(typ, k)
		name, ct := k, ""
		if ok {
			name, ct = ki.label, ki.typ
		}
		w.push(name, -1)
		switch a := v.(type) {
		case []any:
			xs, _ := m["_"+k].([]any)
			for i, e := range a {
				var x map[string]any
				if i < len(xs) {
					x, _ = xs[i].(map[string]any)
				}
				w.path[len(w.path)-1].idx = i
				w.value(k, e, x, ct)
			}
		default:
			var x map[string]any
			if len(m) > 1 {
				x, _ = m["_"+k].(map[string]any)
			}
			w.value(k, v, x, ct)
		}
		w.pop()
	}
}

func (w *walker) value(key string, v any, x map[string]any, typ string) {
	m, ok := v.(map[string]any)
	if !ok {
		if !ele1Primitive(v, x) {
			w.ele1()
		}
		if s, ok := v.(string); ok {
			switch {
			case typ == "canonical" || typ == "uri" || typ == "url":
				f := w.frames[len(w.frames)-1]
				f.refs = append(f.refs, s)
				f.hashRef = f.hashRef || s == "#" && typ == "canonical"
			case key == "reference":
				// Reference.reference (see dom3).
				f := w.frames[len(w.frames)-1]
				f.refs = append(f.refs, s)
				f.hashRef = f.hashRef || s == "#"
			}
		}
		return
	}
	if rt, isRes := m["resourceType"].(string); isRes && (typ == "Resource" || typ == "") {
		w.resource(m, rt)
		return
	}
	if !ele1Object(m) {
		w.ele1()
	}
	w.object(m, typ)
}

// primitiveExt walks the extensions of a primitive's "_name" object.
func (w *walker) primitiveExt(x map[string]any) {
	if es, ok := x["extension"].([]any); ok {
		w.push("extension", -1)
		for i, e := range es {
			w.path[len(w.path)-1].idx = i
			w.value("extension", e, nil, "Extension")
		}
		w.pop()
	}
}

// ele1 is "All FHIR elements must have a @value or children", evaluated
// natively since it applies to every element (TestEle1Native proves the
// native check answers as the FHIRPath expression does).
const ele1Expression = "hasValue() or (children().count() > id.count())"

func (w *walker) ele1() {
	w.violate("ele-1", "error", "All FHIR elements must have a @value or children")
}

// ele1Object: a complex element needs a member besides its id.
func ele1Object(m map[string]any) bool {
	for k := range m {
		if k != "id" && k != "fhir_comments" {
			return true
		}
	}
	return false
}

// ele1Primitive: a primitive needs a value, or extensions in "_name".
func ele1Primitive(v any, x map[string]any) bool {
	switch v.(type) {
	case nil, []any, map[string]any:
	default:
		return true
	}
	if x == nil {
		return v != nil
	}
	es, _ := x["extension"].([]any)
	return len(es) > 0
}

// check evaluates the constraints of a type and its bases on one element.
func (w *walker) check(it Item, typ string) {
	{
		for _, c := range w.table[typ] {
			if c.native != nil {
				if m, ok := it.V.(map[string]any); ok {
					if holds, decided := c.native(m); decided {
						if !holds {
							w.violate(c.Key, c.Severity, c.Human)
						}
						continue
					}
				}
			}
			w.env.Context = it
			w.this[0] = it
			w.ev = evaluator{env: &w.env, this: w.this[:], index: -1}
			r, err := w.ev.eval(c.expr.root, w.ev.this)
			ok := err == nil
			if ok {
				var known, b bool
				b, known, err = singletonBool(r)
				ok = err == nil && (!known || b)
			}
			if !ok {
				w.violate(c.Key, c.Severity, c.Human)
			}
		}
	}
}
