package fhirpath

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// fn is a function: its input collection and its arguments unevaluated,
// since some (where, select, all, exists, repeat, iif) evaluate them per
// item of the input.
type fn func(ev *evaluator, in []Item, args []*node) ([]Item, error)

type fnDef struct {
	f             fn
	minArgs, maxA int
}

var functions map[string]fnDef

func init() {
	functions = map[string]fnDef{
		"empty":              {fEmpty, 0, 0},
		"exists":             {fExists, 0, 1},
		"all":                {fAll, 1, 1},
		"allTrue":            {boolAgg(true, true), 0, 0},
		"anyTrue":            {boolAgg(false, true), 0, 0},
		"allFalse":           {boolAgg(true, false), 0, 0},
		"anyFalse":           {boolAgg(false, false), 0, 0},
		"count":              {fCount, 0, 0},
		"distinct":           {fDistinct, 0, 0},
		"isDistinct":         {fIsDistinct, 0, 0},
		"where":              {fWhere, 1, 1},
		"select":             {fSelect, 1, 1},
		"repeat":             {fRepeat, 1, 1},
		"aggregate":          {fAggregate, 1, 2},
		"ofType":             {fOfType, 1, 1},
		"is":                 {fIs, 1, 1},
		"as":                 {fAs, 1, 1},
		"first":              {fFirst, 0, 0},
		"last":               {fLast, 0, 0},
		"tail":               {fTail, 0, 0},
		"skip":               {fSkip, 1, 1},
		"take":               {fTake, 1, 1},
		"single":             {fSingle, 0, 0},
		"iif":                {fIif, 2, 3},
		"not":                {fNot, 0, 0},
		"hasValue":           {fHasValue, 0, 0},
		"children":           {fChildren, 0, 0},
		"descendants":        {fDescendants, 0, 0},
		"trace":              {fTrace, 1, 2},
		"matches":            {strFn(fMatches), 1, 1},
		"replaceMatches":     {strFn(fReplaceMatches), 2, 2},
		"startsWith":         {strFn(func(s string, a []string) []Item { return boolItems(strings.HasPrefix(s, a[0])) }), 1, 1},
		"endsWith":           {strFn(func(s string, a []string) []Item { return boolItems(strings.HasSuffix(s, a[0])) }), 1, 1},
		"contains":           {strFn(func(s string, a []string) []Item { return boolItems(strings.Contains(s, a[0])) }), 1, 1},
		"length":             {strFn(func(s string, _ []string) []Item { return []Item{{V: int64(utf8.RuneCountInString(s))}} }), 0, 0},
		"indexOf":            {strFn(fIndexOf), 1, 1},
		"replace":            {strFn(func(s string, a []string) []Item { return []Item{{V: strings.ReplaceAll(s, a[0], a[1])}} }), 2, 2},
		"lower":              {strFn(func(s string, _ []string) []Item { return []Item{{V: strings.ToLower(s)}} }), 0, 0},
		"upper":              {strFn(func(s string, _ []string) []Item { return []Item{{V: strings.ToUpper(s)}} }), 0, 0},
		"trim":               {strFn(func(s string, _ []string) []Item { return []Item{{V: strings.TrimSpace(s)}} }), 0, 0},
		"toChars":            {strFn(fToChars), 0, 0},
		"split":              {strFn(fSplit), 1, 1},
		"substring":          {fSubstring, 1, 2},
		"join":               {fJoin, 0, 1},
		"toString":           {conv(toStringConv), 0, 0},
		"toInteger":          {conv(toIntegerConv), 0, 0},
		"toDecimal":          {conv(toDecimalConv), 0, 0},
		"toBoolean":          {conv(toBooleanConv), 0, 0},
		"toQuantity":         {conv(toQuantityConv), 0, 1},
		"toDate":             {conv(dtConv('D')), 0, 0},
		"toDateTime":         {conv(dtConv('T')), 0, 0},
		"toTime":             {conv(dtConv('t')), 0, 0},
		"convertsToString":   {convertsTo(toStringConv), 0, 0},
		"convertsToInteger":  {convertsTo(toIntegerConv), 0, 0},
		"convertsToDecimal":  {convertsTo(toDecimalConv), 0, 0},
		"convertsToBoolean":  {convertsTo(toBooleanConv), 0, 0},
		"convertsToQuantity": {convertsTo(toQuantityConv), 0, 1},
		"convertsToDate":     {convertsTo(dtConv('D')), 0, 0},
		"convertsToDateTime": {convertsTo(dtConv('T')), 0, 0},
		"convertsToTime":     {convertsTo(dtConv('t')), 0, 0},
		"abs":                {mathFn(math.Abs, true), 0, 0},
		"ceiling":            {mathFn(math.Ceil, false), 0, 0},
		"floor":              {mathFn(math.Floor, false), 0, 0},
		"truncate":           {mathFn(math.Trunc, false), 0, 0},
		"sqrt":               {mathFn(math.Sqrt, true), 0, 0},
		"exp":                {mathFn(math.Exp, true), 0, 0},
		"ln":                 {mathFn(math.Log, true), 0, 0},
		"round":              {fRound, 0, 1},
		"log":                {fLog, 1, 1},
		"power":              {fPower, 1, 1},
		"today":              {fToday, 0, 0},
		"now":                {fNow, 0, 0},
		"timeOfDay":          {fTimeOfDay, 0, 0},
		"extension":          {fExtension, 1, 1},
		"subsetOf":           {fSubsetOf, 1, 1},
		"supersetOf":         {fSupersetOf, 1, 1},
		"combine":            {fCombine, 1, 1},
		"union":              {fUnion, 1, 1},
		"intersect":          {fIntersect, 1, 1},
		"exclude":            {fExclude, 1, 1},
		"resolve":            {fResolve, 0, 0},
		"type":               {fType, 0, 0},
	}
}

func (ev *evaluator) call(n *node, in []Item) ([]Item, error) {
	d := functions[n.name]
	if len(n.args) < d.minArgs || len(n.args) > d.maxA {
		return nil, fmt.Errorf("%s() takes %d to %d arguments, got %d", n.name, d.minArgs, d.maxA, len(n.args))
	}
	return d.f(ev, in, n.args)
}

// arg evaluates a plain argument, against the $this of the call.
func (ev *evaluator) arg(a *node) ([]Item, error) {
	return ev.eval(a, ev.this)
}

// lambda evaluates an argument with $this, $index set to one input item.
func (ev *evaluator) lambda(a *node, it Item, i int) ([]Item, error) {
	sub := evaluator{env: ev.env, this: []Item{it}, index: i, total: ev.total}
	return sub.eval(a, sub.this)
}

func fEmpty(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	return boolItems(len(in) == 0), nil
}

func fExists(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(args) == 0 {
		return boolItems(len(in) > 0), nil
	}
	for i, it := range in {
		r, err := ev.lambda(args[0], it, i)
		if err != nil {
			return nil, err
		}
		if b, ok, _ := singletonBool(r); ok && b {
			return boolItems(true), nil
		}
	}
	return boolItems(false), nil
}

func fAll(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	for i, it := range in {
		r, err := ev.lambda(args[0], it, i)
		if err != nil {
			return nil, err
		}
		if b, ok, _ := singletonBool(r); !ok || !b {
			return boolItems(false), nil
		}
	}
	return boolItems(true), nil
}

func boolAgg(all, want bool) fn {
	return func(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
		for _, it := range in {
			b, ok := system(it).(bool)
			if !ok {
				return nil, fmt.Errorf("expected Booleans, found a %s", typeName(it))
			}
			if all && b != want {
				return boolItems(false), nil
			}
			if !all && b == want {
				return boolItems(true), nil
			}
		}
		return boolItems(all), nil
	}
}

func fCount(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	return []Item{{V: int64(len(in))}}, nil
}

func fDistinct(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	return union(in, nil), nil
}

func fIsDistinct(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	return boolItems(len(union(in, nil)) == len(in)), nil
}

func fWhere(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	var out []Item
	for i, it := range in {
		r, err := ev.lambda(args[0], it, i)
		if err != nil {
			return nil, err
		}
		if b, ok, err := singletonBool(r); err != nil {
			return nil, err
		} else if ok && b {
			out = append(out, it)
		}
	}
	return out, nil
}

func fSelect(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	var out []Item
	for i, it := range in {
		r, err := ev.lambda(args[0], it, i)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

func fRepeat(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	var out []Item
	queue := in
	for n := 0; len(queue) > 0 && n < 10000; n++ {
		var next []Item
		for i, it := range queue {
			r, err := ev.lambda(args[0], it, i)
			if err != nil {
				return nil, err
			}
			for _, x := range r {
				if !containsItem(out, x) {
					out = append(out, x)
					next = append(next, x)
				}
			}
		}
		queue = next
	}
	return out, nil
}

func fAggregate(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	var total []Item
	if len(args) > 1 {
		var err error
		if total, err = ev.arg(args[1]); err != nil {
			return nil, err
		}
	}
	for i, it := range in {
		sub := evaluator{env: ev.env, this: []Item{it}, index: i, total: total}
		r, err := sub.eval(args[0], sub.this)
		if err != nil {
			return nil, err
		}
		total = r
	}
	return total, nil
}

// typeArg reads a type name argument: is(string), as(FHIR.Quantity).
func typeArg(a *node) (string, error) {
	switch a.kind {
	case nMember:
		return a.name, nil
	case nDot:
		if a.left.kind == nMember && a.right.kind == nMember {
			return a.left.name + "." + a.right.name, nil
		}
	}
	return "", fmt.Errorf("a type name was expected")
}

func fOfType(_ *evaluator, in []Item, args []*node) ([]Item, error) {
	t, err := typeArg(args[0])
	if err != nil {
		return nil, err
	}
	if err := checkTypeName(t); err != nil {
		return nil, err
	}
	var out []Item
	for _, it := range in {
		if typeIs(it, t, true) {
			out = append(out, it)
		}
	}
	return out, nil
}

func fIs(_ *evaluator, in []Item, args []*node) ([]Item, error) {
	t, err := typeArg(args[0])
	if err != nil {
		return nil, err
	}
	return typeOp("is", in, t)
}

func fAs(_ *evaluator, in []Item, args []*node) ([]Item, error) {
	t, err := typeArg(args[0])
	if err != nil {
		return nil, err
	}
	return typeOp("as", in, t)
}

func fFirst(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	return in[:1], nil
}

func fLast(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	return in[len(in)-1:], nil
}

func fTail(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	if len(in) <= 1 {
		return nil, nil
	}
	return in[1:], nil
}

func (ev *evaluator) intArg(a *node) (int64, bool, error) {
	r, err := ev.arg(a)
	if err != nil || len(r) == 0 {
		return 0, false, err
	}
	n, ok := system(r[0]).(int64)
	if !ok || len(r) > 1 {
		return 0, false, fmt.Errorf("an Integer argument was expected, found %s", typeName(r[0]))
	}
	return n, true, nil
}

func fSkip(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	n, ok, err := ev.intArg(args[0])
	if err != nil || !ok {
		return nil, err
	}
	if n <= 0 {
		return in, nil
	}
	if int(n) >= len(in) {
		return nil, nil
	}
	return in[n:], nil
}

func fTake(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	n, ok, err := ev.intArg(args[0])
	if err != nil || !ok || n <= 0 {
		return nil, err
	}
	if int(n) >= len(in) {
		return in, nil
	}
	return in[:n], nil
}

func fSingle(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	if len(in) > 1 {
		return nil, fmt.Errorf("single() on a collection of %d items", len(in))
	}
	return in, nil
}

func fIif(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(in) > 1 {
		return nil, fmt.Errorf("iif() on a collection of %d items", len(in))
	}
	sub := *ev
	if len(in) == 1 {
		sub.this = in
	}
	c, err := sub.eval(args[0], sub.this)
	if err != nil {
		return nil, err
	}
	if len(c) > 1 {
		return nil, fmt.Errorf("iif() criterion is a collection of %d items", len(c))
	}
	b, ok := false, len(c) == 1
	if ok {
		if b, ok = system(c[0]).(bool); !ok {
			return nil, fmt.Errorf("iif() criterion is a %s, not a Boolean", typeName(c[0]))
		}
	}
	if ok && b {
		return sub.eval(args[1], sub.this)
	}
	if len(args) > 2 {
		return sub.eval(args[2], sub.this)
	}
	return nil, nil
}

func fNot(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	b, ok, err := singletonBool(in)
	if err != nil || !ok {
		return nil, err
	}
	return boolItems(!b), nil
}

func fHasValue(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	if len(in) != 1 {
		return boolItems(false), nil
	}
	switch in[0].V.(type) {
	case nil, map[string]any, []any:
		return boolItems(false), nil
	}
	return boolItems(true), nil
}

func fChildren(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	var out []Item
	for _, it := range in {
		out = children(it, out)
	}
	return out, nil
}

// children lists an item's child elements, typed where the table knows.
func children(it Item, out []Item) []Item {
	m, ok := it.V.(map[string]any)
	if !ok {
		if it.Ext != nil {
			out = appendValue(out, it.Ext["extension"], nil, "Extension")
		}
		return out
	}
	for k, v := range m {
		if k == "resourceType" || k == "fhir_comments" || k == "" {
			continue
		}
		if k[0] == '_' {
			if _, ok := m[k[1:]]; ok {
				continue
			}
			k = k[1:]
			v = nil
		}
		t := childType(it.T, k)
		out = appendValue(out, v, m["_"+k], t)
	}
	return out
}

// childType is the FHIR type of the member k (choice keys included).
func childType(owner, k string) string {
	if ki, ok := keyOf(owner, k); ok {
		return ki.typ
	}
	return ""
}

func fDescendants(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	var out []Item
	level := in
	for len(level) > 0 {
		start := len(out)
		for _, it := range level {
			out = children(it, out)
		}
		level = out[start:]
	}
	return out, nil
}

func fTrace(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if ev.env.Trace != nil {
		name, _ := ev.arg(args[0])
		s, _ := singleString(name)
		shown := in
		if len(args) > 1 {
			var err error
			if shown, err = fSelect(ev, in, args[1:]); err != nil {
				return nil, err
			}
		}
		ev.env.Trace(s, shown)
	}
	return in, nil
}

// strFn is a function on a single String input with String arguments.
func strFn(f func(s string, args []string) []Item) fn {
	return func(ev *evaluator, in []Item, args []*node) ([]Item, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, fmt.Errorf("a string function on a collection of %d items", len(in))
		}
		s, ok := system(in[0]).(string)
		if !ok {
			return nil, fmt.Errorf("a string function on a %s", typeName(in[0]))
		}
		a := make([]string, len(args))
		for i, x := range args {
			r, err := ev.arg(x)
			if err != nil {
				return nil, err
			}
			if len(r) == 0 {
				return nil, nil
			}
			v, ok := singleString(r)
			if !ok {
				return nil, fmt.Errorf("a String argument was expected")
			}
			a[i] = v
		}
		return f(s, a), nil
	}
}

var regexps sync.Map

func compileRegexp(p string) *regexp.Regexp {
	if r, ok := regexps.Load(p); ok {
		return r.(*regexp.Regexp)
	}
	r, err := regexp.Compile("(?s)" + p)
	if err != nil {
		return nil
	}
	regexps.Store(p, r)
	return r
}

func fMatches(s string, a []string) []Item {
	r := compileRegexp(a[0])
	if r == nil {
		return nil
	}
	return boolItems(r.MatchString(s))
}

func fReplaceMatches(s string, a []string) []Item {
	if a[0] == "" {
		return []Item{{V: s}}
	}
	r := compileRegexp(a[0])
	if r == nil {
		return nil
	}
	return []Item{{V: r.ReplaceAllString(s, a[1])}}
}

func fIndexOf(s string, a []string) []Item {
	i := strings.Index(s, a[0])
	if i > 0 {
		i = utf8.RuneCountInString(s[:i])
	}
	return []Item{{V: int64(i)}}
}

func fToChars(s string, _ []string) []Item {
	var out []Item
	for _, r := range s {
		out = append(out, Item{V: string(r)})
	}
	return out
}

func fSplit(s string, a []string) []Item {
	var out []Item
	for _, p := range strings.Split(s, a[0]) {
		out = append(out, Item{V: p})
	}
	return out
}

func fSubstring(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	s, ok := singleString(in)
	if !ok {
		return nil, fmt.Errorf("substring() needs one String")
	}
	start, ok, err := ev.intArg(args[0])
	if err != nil || !ok {
		return nil, err
	}
	r := []rune(s)
	if start < 0 || int(start) >= len(r) {
		return nil, nil
	}
	end := int64(len(r))
	if len(args) > 1 {
		n, ok, err := ev.intArg(args[1])
		if err != nil {
			return nil, err
		}
		if ok {
			end = min(start+max(n, 0), end)
		}
	}
	return []Item{{V: string(r[start:end])}}, nil
}

func fJoin(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	sep := ""
	if len(args) > 0 {
		r, err := ev.arg(args[0])
		if err != nil {
			return nil, err
		}
		sep, _ = singleString(r)
	}
	parts := make([]string, 0, len(in))
	for _, it := range in {
		s, _ := toStringValue(it)
		parts = append(parts, s)
	}
	return []Item{{V: strings.Join(parts, sep)}}, nil
}

// conv is a conversion function on a single item; ok false is empty.
func conv(f func(it Item) (any, bool)) fn {
	return func(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, fmt.Errorf("a conversion on a collection of %d items", len(in))
		}
		v, ok := f(in[0])
		if !ok {
			return nil, nil
		}
		return []Item{{V: v}}, nil
	}
}

func convertsTo(f func(it Item) (any, bool)) fn {
	return func(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, fmt.Errorf("a conversion test on a collection of %d items", len(in))
		}
		_, ok := f(in[0])
		return boolItems(ok), nil
	}
}

func toStringConv(it Item) (any, bool) { return toStringValue(it) }

func toIntegerConv(it Item) (any, bool) {
	switch v := system(it).(type) {
	case int64:
		return v, true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case bool:
		if v {
			return int64(1), true
		}
		return int64(0), true
	}
	return nil, false
}

var decimalRE = regexp.MustCompile(`^[+-]?\d+(\.\d+)?$`)

func toDecimalConv(it Item) (any, bool) {
	switch v := system(it).(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case string:
		if !decimalRE.MatchString(v) {
			return nil, false
		}
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case bool:
		if v {
			return 1.0, true
		}
		return 0.0, true
	}
	return nil, false
}

func toBooleanConv(it Item) (any, bool) {
	switch v := system(it).(type) {
	case bool:
		return v, true
	case int64:
		if v == 0 || v == 1 {
			return v == 1, true
		}
	case float64:
		if v == 0 || v == 1 {
			return v == 1, true
		}
	case string:
		switch strings.ToLower(v) {
		case "true", "t", "yes", "y", "1", "1.0":
			return true, true
		case "false", "f", "no", "n", "0", "0.0":
			return false, true
		}
	}
	return nil, false
}

var quantityRE = regexp.MustCompile(`^([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|([a-zA-Z]+))?$`)

func toQuantityConv(it Item) (any, bool) {
	switch v := system(it).(type) {
	case Quantity:
		return v, true
	case int64:
		return Quantity{Value: float64(v), Unit: "1"}, true
	case float64:
		return Quantity{Value: v, Unit: "1"}, true
	case string:
		m := quantityRE.FindStringSubmatch(v)
		if m == nil {
			return nil, false
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		u := "1"
		switch {
		case m[2] != "":
			u = m[2]
		case m[3] != "":
			if !calendarWords[m[3]] {
				return nil, false
			}
			u = m[3]
		}
		return Quantity{Value: f, Unit: u}, true
	case bool:
		if v {
			return Quantity{Value: 1, Unit: "1"}, true
		}
		return Quantity{Value: 0, Unit: "1"}, true
	}
	return nil, false
}

func dtConv(kind byte) func(it Item) (any, bool) {
	return func(it Item) (any, bool) {
		switch v := system(it).(type) {
		case DT:
			switch {
			case v.Kind == kind:
				return v, true
			case kind == 'T' && v.Kind == 'D':
				v.Kind = 'T'
				return v, true
			case kind == 'D' && v.Kind == 'T':
				v.Kind = 'D'
				v.Prec = min(v.Prec, 3)
				v.HasTZ = false
				return v, true
			}
		case string:
			s := v
			k := kind
			if kind == 't' {
				s = strings.TrimPrefix(s, "T")
			}
			d, ok := parseDT(s, k)
			if !ok || kind == 'D' && d.Kind != 'D' {
				return nil, false
			}
			if kind == 'T' {
				d.Kind = 'T'
			}
			return d, true
		}
		return nil, false
	}
}

func mathFn(f func(float64) float64, keepDecimal bool) fn {
	return func(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, fmt.Errorf("a math function on a collection of %d items", len(in))
		}
		switch v := system(in[0]).(type) {
		case int64:
			r := f(float64(v))
			if math.IsNaN(r) {
				return nil, nil
			}
			if keepDecimal && r != math.Trunc(r) || keepDecimal && f(4) != 4 && f(-1) != 1 {
				return []Item{{V: r}}, nil
			}
			return []Item{{V: int64(r)}}, nil
		case float64:
			r := f(v)
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return nil, nil
			}
			if keepDecimal {
				return []Item{{V: r}}, nil
			}
			return []Item{{V: int64(r)}}, nil
		case Quantity:
			v.Value = f(v.Value)
			return []Item{{V: v}}, nil
		}
		return nil, fmt.Errorf("a math function on a %s", typeName(in[0]))
	}
}

func fRound(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	f, ok := toFloat(system(in[0]))
	if !ok || len(in) > 1 {
		return nil, fmt.Errorf("round() needs one number")
	}
	p := int64(0)
	if len(args) > 0 {
		n, ok, err := ev.intArg(args[0])
		if err != nil {
			return nil, err
		}
		if ok {
			p = n
		}
	}
	s := math.Pow(10, float64(p))
	return []Item{{V: math.Round(f*s) / s}}, nil
}

func fLog(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	f, ok := toFloat(system(in[0]))
	b, err := ev.arg(args[0])
	if err != nil || len(b) == 0 || !ok {
		return nil, err
	}
	base, _ := toFloat(system(b[0]))
	return []Item{{V: math.Log(f) / math.Log(base)}}, nil
}

func fPower(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	if len(in) == 0 {
		return nil, nil
	}
	e, err := ev.arg(args[0])
	if err != nil || len(e) == 0 {
		return nil, err
	}
	x, y := system(in[0]), system(e[0])
	xi, xInt := x.(int64)
	yi, yInt := y.(int64)
	if xInt && yInt && yi >= 0 {
		r := int64(1)
		for range yi {
			r *= xi
		}
		return []Item{{V: r}}, nil
	}
	fx, ok1 := toFloat(x)
	fy, ok2 := toFloat(y)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("power() needs numbers")
	}
	r := math.Pow(fx, fy)
	if math.IsNaN(r) {
		return nil, nil
	}
	return []Item{{V: r}}, nil
}

func fToday(_ *evaluator, _ []Item, _ []*node) ([]Item, error) {
	t := time.Now()
	return []Item{{V: DT{Kind: 'D', Prec: 3, Y: t.Year(), M: int8(t.Month()), D: int8(t.Day())}}}, nil
}

func fNow(_ *evaluator, _ []Item, _ []*node) ([]Item, error) {
	t := time.Now().UTC()
	d := DT{Kind: 'T', Prec: 7, HasTZ: true}
	return []Item{{V: d.fromTime(t)}}, nil
}

func fTimeOfDay(_ *evaluator, _ []Item, _ []*node) ([]Item, error) {
	t := time.Now()
	return []Item{{V: DT{Kind: 't', Prec: 7, H: int8(t.Hour()), Mi: int8(t.Minute()), S: int8(t.Second()), Ms: int16(t.Nanosecond() / 1e6)}}}, nil
}

func fExtension(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	u, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	url, ok := singleString(u)
	if !ok {
		return nil, nil
	}
	var out []Item
	for _, e := range members(in, "extension") {
		if m, ok := e.V.(map[string]any); ok && m["url"] == url {
			out = append(out, e)
		}
	}
	return out, nil
}

func fSubsetOf(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	for _, it := range in {
		if !containsItem(other, it) {
			return boolItems(false), nil
		}
	}
	return boolItems(true), nil
}

func fSupersetOf(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	for _, it := range other {
		if !containsItem(in, it) {
			return boolItems(false), nil
		}
	}
	return boolItems(true), nil
}

func fCombine(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	return append(append([]Item(nil), in...), other...), nil
}

func fUnion(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	return union(in, other), nil
}

func fIntersect(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, it := range in {
		if containsItem(other, it) && !containsItem(out, it) {
			out = append(out, it)
		}
	}
	return out, nil
}

func fExclude(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	other, err := ev.arg(args[0])
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, it := range in {
		if !containsItem(other, it) {
			out = append(out, it)
		}
	}
	return out, nil
}

// fResolve finds what a reference names among the resources at hand: a
// contained resource ('#id') of %rootResource, or the root itself. Other
// references would need the server, which an invariant must not ask.
func fResolve(ev *evaluator, in []Item, _ []*node) ([]Item, error) {
	var out []Item
	root, _ := ev.env.RootResource.V.(map[string]any)
	for _, it := range in {
		ref, ok := it.V.(string)
		if !ok {
			m, isMap := it.V.(map[string]any)
			if !isMap {
				continue
			}
			ref, _ = m["reference"].(string)
		}
		if root == nil || ref == "" {
			continue
		}
		if id, ok := strings.CutPrefix(ref, "#"); ok {
			cs, _ := root["contained"].([]any)
			for _, c := range cs {
				if m, ok := c.(map[string]any); ok && m["id"] == id {
					out = append(out, Typed(m, ""))
				}
			}
			continue
		}
		rt, _ := root["resourceType"].(string)
		if id, _ := root["id"].(string); id != "" && ref == rt+"/"+id {
			out = append(out, ev.env.RootResource)
		}
	}
	return out, nil
}

func fType(_ *evaluator, in []Item, _ []*node) ([]Item, error) {
	var out []Item
	for _, it := range in {
		ns, name := "FHIR", it.T
		if it.T == "" {
			ns, name = "System", typeName(it)
		}
		out = append(out, Item{V: map[string]any{"namespace": ns, "name": name}, T: "TypeInfo"})
	}
	return out, nil
}
