package fhirpath

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Env is what an evaluation may refer to besides its input: %resource,
// %rootResource and %context (set by the caller), and further %names.
type Env struct {
	Resource     Item
	RootResource Item
	Context      Item
	Vars         map[string][]Item
	// Trace, if set, receives trace(name) calls.
	Trace func(name string, items []Item)
}

// Typed wraps a decoded resource (or any element, given its FHIR type) as
// an Item; a resource's type is its resourceType.
func Typed(v any, fhirType string) Item {
	if m, ok := v.(map[string]any); ok && fhirType == "" {
		fhirType, _ = m["resourceType"].(string)
	}
	return Item{V: v, T: fhirType}
}

// Evaluate evaluates e on a resource (decoded from JSON with encoding/json)
// with %resource, %rootResource and %context set to it.
func (e *Expression) Evaluate(resource map[string]any) ([]Item, error) {
	r := Typed(resource, "")
	return e.Eval(&Env{Resource: r, RootResource: r, Context: r}, []Item{r})
}

// Eval evaluates e on the input collection.
func (e *Expression) Eval(env *Env, input []Item) ([]Item, error) {
	ev := evaluator{env: env, this: input, index: -1}
	return ev.eval(e.root, input)
}

// EvalBool evaluates e as an invariant: true, false, or ok false when the
// result is empty.
func (e *Expression) EvalBool(env *Env, input []Item) (value, ok bool, err error) {
	out, err := e.Eval(env, input)
	if err != nil {
		return false, false, err
	}
	b, known, err := singletonBool(out)
	return b, known, err
}

type evaluator struct {
	env   *Env
	this  []Item // $this: the input of the expression or of a lambda
	index int
	total []Item
}

func (ev *evaluator) eval(n *node, focus []Item) ([]Item, error) {
	switch n.kind {
	case nLiteral:
		return n.lit, nil
	case nEmpty:
		return nil, nil
	case nThis:
		return ev.this, nil
	case nIndex:
		if ev.index < 0 {
			return nil, nil
		}
		return []Item{{V: int64(ev.index)}}, nil
	case nTotal:
		return ev.total, nil
	case nVar:
		return ev.variable(n.name)
	case nMember:
		// At the start of a path a type name selects the input items of
		// that type: Patient.name on a Patient.
		if c := n.name[0]; c >= 'A' && c <= 'Z' {
			var out []Item
			matched := false
			for _, it := range focus {
				if it.T != "" && isType(it, n.name) {
					out = append(out, it)
					matched = true
				}
			}
			if matched {
				return out, nil
			}
		}
		return members(focus, n.name), nil
	case nDot:
		left, err := ev.eval(n.left, focus)
		if err != nil {
			return nil, err
		}
		switch n.right.kind {
		case nMember:
			return members(left, n.right.name), nil
		case nFunc:
			return ev.call(n.right, left)
		}
		return ev.eval(n.right, left)
	case nFunc:
		return ev.call(n, focus)
	case nIndexer:
		left, err := ev.eval(n.left, focus)
		if err != nil {
			return nil, err
		}
		idx, err := ev.eval(n.right, ev.this)
		if err != nil {
			return nil, err
		}
		if len(idx) == 0 {
			return nil, nil
		}
		i, ok := system(idx[0]).(int64)
		if !ok || len(idx) > 1 {
			return nil, fmt.Errorf("an index must be one integer")
		}
		if i < 0 || int(i) >= len(left) {
			return nil, nil
		}
		return left[i : i+1], nil
	case nUnary:
		v, err := ev.eval(n.left, focus)
		if err != nil || len(v) == 0 {
			return nil, err
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("unary minus on a collection of %d items", len(v))
		}
		switch x := system(v[0]).(type) {
		case int64:
			return []Item{{V: -x}}, nil
		case float64:
			return []Item{{V: -x}}, nil
		case Quantity:
			x.Value = -x.Value
			return []Item{{V: x}}, nil
		}
		return nil, fmt.Errorf("unary minus on a %s", typeName(v[0]))
	case nTypeOp:
		v, err := ev.eval(n.left, focus)
		if err != nil {
			return nil, err
		}
		return typeOp(n.name, v, n.lit[0].V.(string))
	case nBinary:
		return ev.binary(n, focus)
	}
	return nil, fmt.Errorf("cannot evaluate node %d", n.kind)
}

func (ev *evaluator) variable(name string) ([]Item, error) {
	switch name {
	case "resource":
		return one(ev.env.Resource), nil
	case "rootResource":
		return one(ev.env.RootResource), nil
	case "context":
		return one(ev.env.Context), nil
	case "ucum":
		return []Item{{V: "http://unitsofmeasure.org"}}, nil
	case "sct":
		return []Item{{V: "http://snomed.info/sct"}}, nil
	case "loinc":
		return []Item{{V: "http://loinc.org"}}, nil
	}
	if strings.HasPrefix(name, "vs-") {
		return []Item{{V: "http://hl7.org/fhir/ValueSet/" + name[3:]}}, nil
	}
	if strings.HasPrefix(name, "ext-") {
		return []Item{{V: "http://hl7.org/fhir/StructureDefinition/" + name[4:]}}, nil
	}
	if v, ok := ev.env.Vars[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("unknown variable %%%s", name)
}

func one(it Item) []Item {
	if it.V == nil && it.Ext == nil {
		return nil
	}
	return []Item{it}
}

// members navigates to the named child of every item.
func members(focus []Item, name string) []Item {
	var out []Item
	for _, it := range focus {
		out = member(it, name, out)
	}
	return out
}

func member(it Item, name string, out []Item) []Item {
	m, ok := it.V.(map[string]any)
	if !ok {
		// A primitive's id and extension are in its "_name" sibling.
		if it.Ext != nil {
			t := "string"
			if name == "extension" {
				t = "Extension"
			}
			return appendValue(out, it.Ext[name], nil, t)
		}
		return out
	}
	if e, ok := element(it.T, name); ok {
		if e.choice && len(m) < len(e.keys) {
			// Fewer members than choices (Extension.value has 50): look
			// the members up instead.
			for k, v := range m {
				if ki, ok := keyOf(it.T, k); ok && ki.choice && ki.name == name {
					return appendValue(out, v, m["_"+k], ki.typ)
				}
				if k != "" && k[0] == '_' {
					if ki, ok := keyOf(it.T, k[1:]); ok && ki.choice && ki.name == name {
						if _, hasValue := m[k[1:]]; !hasValue {
							return appendValue(out, nil, v, ki.typ)
						}
					}
				}
			}
			return out
		}
		if e.choice {
			for i, t := range e.types {
				k := e.keys[i]
				if v, ok := m[k]; ok {
					return appendValue(out, v, m["_"+k], t)
				}
				if x, ok := m["_"+k]; ok {
					return appendValue(out, nil, x, t)
				}
			}
			return out
		}
		return appendValue(out, m[name], m["_"+name], e.types[0])
	}
	v, ok := m[name]
	x, okx := m["_"+name]
	if !ok && !okx {
		if name == "resourceType" {
			return out
		}
		// An untyped object's choice element: valueString is value, when
		// what follows the name is a FHIR type.
		for k, v := range m {
			if len(k) > len(name) && strings.HasPrefix(k, name) && k[len(name)] >= 'A' && k[len(name)] <= 'Z' {
				t := k[len(name):]
				if lt := strings.ToLower(t[:1]) + t[1:]; primitiveSystem[lt] != "" {
					t = lt
				} else if !known(t) {
					continue
				}
				return appendValue(out, v, m["_"+k], t)
			}
		}
		return out
	}
	if known(it.T) {
		// Not an element of a known type: nothing there for FHIRPath.
		return out
	}
	return appendValue(out, v, x, "")
}

// appendValue adds a JSON member (and its "_" sibling) as items of type t.
func appendValue(out []Item, v, ext any, t string) []Item {
	switch a := v.(type) {
	case []any:
		xs, _ := ext.([]any)
		for i, e := range a {
			var x map[string]any
			if i < len(xs) {
				x, _ = xs[i].(map[string]any)
			}
			if e == nil && x == nil {
				continue
			}
			out = append(out, item(e, x, t))
		}
		return out
	case nil:
		switch xs := ext.(type) {
		case map[string]any:
			return append(out, Item{Ext: xs, T: t})
		case []any:
			for _, e := range xs {
				if x, ok := e.(map[string]any); ok {
					out = append(out, Item{Ext: x, T: t})
				}
			}
		}
		return out
	}
	x, _ := ext.(map[string]any)
	return append(out, item(v, x, t))
}

func item(v any, x map[string]any, t string) Item {
	if m, ok := v.(map[string]any); ok && (t == "Resource" || t == "" || t == "DomainResource") {
		if rt, ok := m["resourceType"].(string); ok {
			t = rt
		}
	}
	return Item{V: v, Ext: x, T: t}
}

// typeName is the FHIRPath type of an item, for messages and is/as.
func typeName(it Item) string {
	if it.T != "" {
		return it.T
	}
	switch it.V.(type) {
	case bool:
		return "Boolean"
	case int64:
		return "Integer"
	case float64:
		return "Decimal"
	case string:
		return "String"
	case DT:
		d := it.V.(DT)
		switch d.Kind {
		case 'D':
			return "Date"
		case 't':
			return "Time"
		}
		return "DateTime"
	case Quantity:
		return "Quantity"
	case json.Number:
		return "Decimal"
	}
	return "Any"
}

// isType says whether an item is of the named type (FHIR or System). A
// FHIR primitive is of its own type only, for as() and ofType(), and also
// of the type it specialises (a code is a string), for is: that is how
// HL7's test suite reads the spec.
func isType(it Item, name string) bool { return typeIs(it, name, false) }

func typeIs(it Item, name string, exact bool) bool {
	if n, ok := strings.CutPrefix(name, "System."); ok {
		return it.T == "" && typeName(it) == n
	}
	name = strings.TrimPrefix(name, "FHIR.")
	if it.T == "" {
		return typeName(it) == name
	}
	if it.T == name {
		return true
	}
	// FHIR's primitive types are not each other's subtypes for
	// FHIRPath: a code is not a string.
	if primitiveSystem[it.T] != "" && exact {
		return false
	}
	if derivesFrom(it.T, name) {
		return true
	}
	if name == "Resource" || name == "DomainResource" {
		m, ok := it.V.(map[string]any)
		return ok && m["resourceType"] != nil && !known(it.T)
	}
	// Backbone elements are of type BackboneElement.
	if strings.Contains(it.T, ".") {
		return derivesFrom(typeTable[it.T].base, name)
	}
	return false
}

// checkTypeName refuses a type name that cannot be a type: lower-case
// names are FHIR primitives, which are all known.
func checkTypeName(name string) error {
	n := strings.TrimPrefix(name, "FHIR.")
	if s, ok := strings.CutPrefix(name, "System."); ok {
		_ = s
		return nil
	}
	if n != "" && n[0] >= 'a' && n[0] <= 'z' && primitiveSystem[n] == "" {
		return fmt.Errorf("unknown type %s", name)
	}
	return nil
}

func typeOp(op string, in []Item, typ string) ([]Item, error) {
	if err := checkTypeName(typ); err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > 1 {
		if op == "is" {
			return nil, fmt.Errorf("'is' on a collection of %d items", len(in))
		}
		var out []Item
		for _, it := range in {
			if typeIs(it, typ, true) {
				out = append(out, it)
			}
		}
		return out, nil
	}
	ok := typeIs(in[0], typ, op == "as")
	if op == "is" {
		return []Item{{V: ok}}, nil
	}
	if ok {
		return in, nil
	}
	return nil, nil
}

// singletonBool converts a collection to a Boolean as FHIRPath's boolean
// operators do: empty is unknown, one Boolean is itself, any other single
// item is true.
func singletonBool(c []Item) (value, ok bool, err error) {
	switch len(c) {
	case 0:
		return false, false, nil
	case 1:
		if b, isBool := system(c[0]).(bool); isBool {
			return b, true, nil
		}
		return true, true, nil
	}
	return false, false, fmt.Errorf("a boolean was expected, found a collection of %d items", len(c))
}

// trueItems and falseItems are shared: results are never written to in
// place (every function that adds to a collection makes a new one).
var trueItems, falseItems = []Item{{V: true}}, []Item{{V: false}}

func boolItems(b bool) []Item {
	if b {
		return trueItems[:1:1]
	}
	return falseItems[:1:1]
}

func (ev *evaluator) binary(n *node, focus []Item) ([]Item, error) {
	l, err := ev.eval(n.left, focus)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "and", "or", "implies", "xor":
		lb, lok, err := singletonBool(l)
		if err != nil {
			return nil, err
		}
		// Short cuts that need not evaluate the right side.
		switch {
		case n.name == "and" && lok && !lb:
			return boolItems(false), nil
		case n.name == "or" && lok && lb:
			return boolItems(true), nil
		case n.name == "implies" && lok && !lb:
			return boolItems(true), nil
		}
		r, err := ev.eval(n.right, focus)
		if err != nil {
			return nil, err
		}
		rb, rok, err := singletonBool(r)
		if err != nil {
			return nil, err
		}
		switch n.name {
		case "and":
			if rok && !rb {
				return boolItems(false), nil
			}
			if lok && rok {
				return boolItems(true), nil
			}
		case "or":
			if rok && rb {
				return boolItems(true), nil
			}
			if lok && rok {
				return boolItems(false), nil
			}
		case "xor":
			if lok && rok {
				return boolItems(lb != rb), nil
			}
		case "implies":
			if rok && rb {
				return boolItems(true), nil
			}
			if lok && rok {
				return boolItems(false), nil
			}
		}
		return nil, nil
	}
	r, err := ev.eval(n.right, ev.this)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "|":
		return union(l, r), nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq, known := equalCollections(l, r)
		if !known {
			return nil, nil
		}
		return boolItems(eq == (n.name == "=")), nil
	case "~", "!~":
		eq := equivalentCollections(l, r)
		return boolItems(eq == (n.name == "~")), nil
	case "<", ">", "<=", ">=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, fmt.Errorf("%s compares single items, found %d and %d", n.name, len(l), len(r))
		}
		c, ok, err := compare(l[0], r[0])
		if err != nil || !ok {
			return nil, err
		}
		switch n.name {
		case "<":
			return boolItems(c < 0), nil
		case ">":
			return boolItems(c > 0), nil
		case "<=":
			return boolItems(c <= 0), nil
		}
		return boolItems(c >= 0), nil
	case "in", "contains":
		elem, coll := l, r
		if n.name == "contains" {
			elem, coll = r, l
		}
		if len(elem) == 0 {
			return nil, nil
		}
		if len(elem) > 1 {
			return nil, fmt.Errorf("%s needs one item on its element side, found %d", n.name, len(elem))
		}
		for _, c := range coll {
			if eq, ok := equalItems(elem[0], c); ok && eq {
				return boolItems(true), nil
			}
		}
		return boolItems(false), nil
	case "&":
		if len(l) > 1 || len(r) > 1 {
			return nil, fmt.Errorf("& on collections of %d and %d items", len(l), len(r))
		}
		ls, _ := singleString(l)
		rs, _ := singleString(r)
		return []Item{{V: ls + rs}}, nil
	}
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	if len(l) > 1 || len(r) > 1 {
		return nil, fmt.Errorf("%s on collections of %d and %d items", n.name, len(l), len(r))
	}
	return arith(n.name, system(l[0]), system(r[0]))
}

func singleString(c []Item) (string, bool) {
	if len(c) != 1 {
		return "", false
	}
	s, ok := system(c[0]).(string)
	return s, ok
}

func arith(op string, a, b any) ([]Item, error) {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			switch op {
			case "+":
				return []Item{{V: x + y}}, nil
			case "-":
				return []Item{{V: x - y}}, nil
			case "*":
				return []Item{{V: x * y}}, nil
			case "/":
				if y == 0 {
					return nil, nil
				}
				return []Item{{V: float64(x) / float64(y)}}, nil
			case "div":
				if y == 0 {
					return nil, nil
				}
				return []Item{{V: x / y}}, nil
			case "mod":
				if y == 0 {
					return nil, nil
				}
				return []Item{{V: x % y}}, nil
			}
		case float64:
			return arith(op, float64(x), y)
		case Quantity:
			return arith(op, Quantity{Value: float64(x), Unit: "1"}, y)
		}
	case float64:
		var y float64
		switch v := b.(type) {
		case int64:
			y = float64(v)
		case float64:
			y = v
		case Quantity:
			return arith(op, Quantity{Value: x, Unit: "1"}, v)
		default:
			return nil, fmt.Errorf("%s on a Decimal and a %s", op, typeName(Item{V: b}))
		}
		switch op {
		case "+":
			return []Item{{V: x + y}}, nil
		case "-":
			return []Item{{V: x - y}}, nil
		case "*":
			return []Item{{V: x * y}}, nil
		case "/":
			if y == 0 {
				return nil, nil
			}
			return []Item{{V: x / y}}, nil
		case "div":
			if y == 0 {
				return nil, nil
			}
			return []Item{{V: int64(math.Trunc(x / y))}}, nil
		case "mod":
			if y == 0 {
				return nil, nil
			}
			return []Item{{V: math.Mod(x, y)}}, nil
		}
	case string:
		if y, ok := b.(string); ok && op == "+" {
			return []Item{{V: x + y}}, nil
		}
	case DT:
		if q, ok := b.(Quantity); ok && (op == "+" || op == "-") {
			sign := 1.0
			if op == "-" {
				sign = -1
			}
			if d, ok := addQuantity(x, q, sign); ok {
				return []Item{{V: d}}, nil
			}
			return nil, fmt.Errorf("cannot add %s to a date", quantityString(q))
		}
	case Quantity:
		var y Quantity
		switch v := b.(type) {
		case Quantity:
			y = v
		case int64:
			y = Quantity{Value: float64(v), Unit: "1"}
		case float64:
			y = Quantity{Value: v, Unit: "1"}
		default:
			return nil, fmt.Errorf("%s on a Quantity and a %s", op, typeName(Item{V: b}))
		}
		switch op {
		case "+", "-":
			xv, yv, ok := sameUnit(x, y, false)
			if !ok {
				return nil, nil
			}
			if op == "-" {
				yv = -yv
			}
			u := x.Unit
			if x.Unit != y.Unit {
				if s, ok := unitScale[x.Unit]; ok {
					u = s.base
				}
			}
			return []Item{{V: Quantity{Value: xv + yv, Unit: u}}}, nil
		case "*":
			return []Item{{V: Quantity{Value: x.Value * y.Value, Unit: mulUnit(x.Unit, y.Unit, ".")}}}, nil
		case "/":
			if y.Value == 0 {
				return nil, nil
			}
			return []Item{{V: Quantity{Value: x.Value / y.Value, Unit: mulUnit(x.Unit, y.Unit, "/")}}}, nil
		}
	}
	return nil, fmt.Errorf("%s is not defined on %s and %s", op, typeName(Item{V: a}), typeName(Item{V: b}))
}

func mulUnit(a, b, op string) string {
	if b == "1" {
		return a
	}
	if a == b && op == "/" {
		return "1"
	}
	if a == "1" && op == "." {
		return b
	}
	if a == b {
		return a + "2"
	}
	return a + op + b
}

// compare orders two items: numbers, strings, dates and times, quantities.
// ok is false when the answer is unknown (different date precisions,
// incompatible units).
func compare(a, b Item) (int, bool, error) {
	x, y := system(a), system(b)
	// An untyped string compares with a date as the date it spells.
	if s, ok := x.(string); ok {
		if d, isDT := y.(DT); isDT {
			if p, ok := parseDT(s, d.Kind); ok {
				x = p
			}
		}
	}
	if s, ok := y.(string); ok {
		if d, isDT := x.(DT); isDT {
			if p, ok := parseDT(s, d.Kind); ok {
				y = p
			}
		}
	}
	switch xv := x.(type) {
	case int64:
		switch yv := y.(type) {
		case int64:
			return cmp(xv, yv), true, nil
		case float64:
			return cmp(float64(xv), yv), true, nil
		}
	case float64:
		switch yv := y.(type) {
		case int64:
			return cmp(xv, float64(yv)), true, nil
		case float64:
			return cmp(xv, yv), true, nil
		}
	case string:
		if yv, ok := y.(string); ok {
			return strings.Compare(xv, yv), true, nil
		}
	case DT:
		if yv, ok := y.(DT); ok {
			c, ok := compareDT(xv, yv)
			return c, ok, nil
		}
	case Quantity:
		if yv, ok := y.(Quantity); ok {
			a, b, ok := sameUnit(xv, yv, false)
			if !ok {
				return 0, false, nil
			}
			return cmp(a, b), true, nil
		}
	}
	return 0, false, fmt.Errorf("cannot compare %s with %s", typeName(a), typeName(b))
}

func cmp[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func equalCollections(l, r []Item) (eq, known bool) {
	if len(l) != len(r) {
		return false, true
	}
	for i := range l {
		e, ok := equalItems(l[i], r[i])
		if !ok {
			return false, false
		}
		if !e {
			return false, true
		}
	}
	return true, true
}

// equalItems is FHIRPath '=' on single items; ok false means unknown.
func equalItems(a, b Item) (eq, ok bool) {
	// Strings, the usual case (code = 'x'), without boxing them.
	if as, isStr := a.V.(string); isStr && stringType(a.T) {
		if bs, isStr := b.V.(string); isStr && stringType(b.T) {
			return as == bs, true
		}
	}
	x, y := system(a), system(b)
	switch xv := x.(type) {
	case DT:
		if s, isStr := y.(string); isStr {
			if p, ok := parseDT(s, xv.Kind); ok {
				y = p
			}
		}
		yv, isDT := y.(DT)
		if !isDT || (xv.Kind == 't') != (yv.Kind == 't') {
			return false, true
		}
		c, ok := compareDT(xv, yv)
		return c == 0, ok
	case string:
		if _, isDT := y.(DT); isDT {
			return equalItems(b, a)
		}
	case Quantity:
		yv, isQ := y.(Quantity)
		if !isQ {
			return false, true
		}
		p, q, ok := sameUnit(xv, yv, true)
		if !ok {
			// A calendar year or month is not UCUM's 'a' or 'mo', but
			// may be as long: unknown. Other units differ.
			return false, !(calendarUCUM[xv.Unit] == yv.Unit || calendarUCUM[yv.Unit] == xv.Unit)
		}
		return sameDecimal(p, q), true
	case int64:
		if yv, ok := y.(float64); ok {
			return sameDecimal(float64(xv), yv), true
		}
	case float64:
		switch yv := y.(type) {
		case int64:
			return sameDecimal(xv, float64(yv)), true
		case float64:
			return sameDecimal(xv, yv), true
		}
	case map[string]any:
		yv, ok := y.(map[string]any)
		return ok && jsonEqual(xv, yv), true
	}
	switch y.(type) {
	case map[string]any, []any:
		return false, true
	}
	return x == y, true
}

// sameDecimal compares decimals at 15 significant digits: they are
// float64 here, and 1.8 - 1.2 must equal 0.6 as FHIRPath's decimals do.
func sameDecimal(a, b float64) bool {
	if a == b {
		return true
	}
	return strconv.FormatFloat(a, 'g', 15, 64) == strconv.FormatFloat(b, 'g', 15, 64)
}

// stringType says whether a FHIR type (or a System value, "") is a
// String for FHIRPath.
func stringType(t string) bool {
	switch t {
	case "", "string", "code", "uri", "id", "url", "canonical", "markdown", "oid", "uuid":
		return true
	}
	return false
}

func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if ok {
			fx, _ := x.Float64()
			fy, _ := y.Float64()
			return fx == fy
		}
		return false
	}
	return a == b
}

func equivalentCollections(l, r []Item) bool {
	if len(l) != len(r) {
		return false
	}
	used := make([]bool, len(r))
outer:
	for _, a := range l {
		for j, b := range r {
			if !used[j] && equivalent(a, b) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

func equivalent(a, b Item) bool {
	x, y := system(a), system(b)
	switch xv := x.(type) {
	case string:
		yv, ok := y.(string)
		return ok && normalizeSpace(xv) == normalizeSpace(yv)
	case float64, int64:
		f1, ok1 := toFloat(x)
		f2, ok2 := toFloat(y)
		if !ok1 || !ok2 {
			return false
		}
		// Equivalent at the precision of the less precise operand.
		p := min(decimals(f1), decimals(f2))
		s := math.Pow(10, float64(p))
		return math.Round(f1*s) == math.Round(f2*s)
	case DT:
		yv, ok := y.(DT)
		if !ok {
			return false
		}
		c, known := compareDT(xv, yv)
		return known && c == 0
	case Quantity:
		yv, ok := y.(Quantity)
		if !ok {
			return false
		}
		p, q, ok := sameUnit(xv, yv, false)
		if !ok {
			return false
		}
		// Equivalent at the precision of the less precise value.
		d := math.Pow(10, float64(min(decimals(p), decimals(q))))
		return math.Round(p*d) == math.Round(q*d)
	case map[string]any:
		yv, ok := y.(map[string]any)
		return ok && jsonEqual(xv, yv)
	}
	return x == y
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func decimals(f float64) int {
	s := decimalString(f)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// union merges two collections without duplicates.
func union(l, r []Item) []Item {
	out := make([]Item, 0, len(l)+len(r))
	for _, c := range [][]Item{l, r} {
		for _, it := range c {
			if !containsItem(out, it) {
				out = append(out, it)
			}
		}
	}
	return out
}

func containsItem(c []Item, it Item) bool {
	for _, o := range c {
		if eq, ok := equalItems(o, it); ok && eq {
			return true
		}
	}
	return false
}
