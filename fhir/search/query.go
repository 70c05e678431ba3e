package search

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// Limits on a query. They are far above what a clinical client sends for
// one patient and low enough that the parser's work is bounded whatever
// arrives; exceeding one is refused even in lenient mode, because silently
// dropping part of a hostile query would still spend the work.
const (
	MaxQueryLength = 16 << 10 // bytes of all names and values together
	MaxParameters  = 64       // name=value pairs, repeats included
	MaxValues      = 100      // comma-separated values in one pair
	MaxValueLength = 2048     // bytes of one pair's value
	DefaultCount   = 50
	MaxCount       = 1000
)

// Query is a parsed search of one resource type.
type Query struct {
	Type string

	// Result parameters.
	Count      int       // _count, default DefaultCount, at most MaxCount
	SortBy     []SortKey // _sort; empty means _lastUpdated then id
	Total      string    // _total: "", none, estimate or accurate
	Summary    string    // _summary: "", true, false, text, data or count
	Elements   []string  // _elements
	Include    []Include // _include
	RevInclude []Include // _revinclude
	Format     string    // _format, as given
	Pretty     bool      // _pretty=true
	Cursor     string    // _cursor, as given (decoded into the query)

	reg      *Registry
	clauses  []clause
	chains   []*Chain
	has      []*Has // _has (has.go)
	accepted url.Values
	cursor   *cursor
	apNow    int64
}

// SortKey is one _sort key.
type SortKey struct {
	Param string
	Desc  bool
}

// Include is one _include or _revinclude: resources of type Source whose
// parameter Param refers to the other side (restricted to Target if set).
type Include struct {
	Source, Param, Target string
	// Iterate is _include:iterate / _revinclude:iterate: applied to the
	// included resources too, round after round (include.go).
	Iterate bool
}

// Chain is a chained reference search (patient.identifier=system|value), or
// for a Patient search the identifier itself, that the caller resolves to
// resource ids because the store, not this package, can look resources up
// by identifier. Until Resolve is called a chain matches only references
// that carry the identifier themselves (logical references).
type Chain struct {
	Param       string   // "patient", "subject", ...; "identifier" when Self
	TargetType  string   // the type whose identifier is searched, e.g. Patient
	Identifiers []Token  // any of them (comma = OR)
	Self        bool     // Patient?identifier=...: only used for PatientBinding
	ids         []string // resolved ids of TargetType
	resolved    bool
}

// Token is a parsed token value; an empty System with HasSystem false
// means any system.
type Token struct {
	System, Code string
	HasSystem    bool
}

// Resolve records the ids of TargetType resources whose identifier matched.
func (c *Chain) Resolve(ids []string) { c.ids, c.resolved = slices.Clone(ids), true }

// Resolved reports whether Resolve was called.
func (c *Chain) Resolved() bool { return c.resolved }

type clause struct {
	p        *Param
	modifier string // "", not, text, exact, contains, missing, identifier, or a type (reference)
	values   []qvalue
	chain    *Chain
}

type tokMode uint8

const (
	tokAny     tokMode = iota // code
	tokSysCode                // system|code
	tokSysOnly                // system|
	tokNoSys                  // |code
)

type qvalue struct {
	mode         tokMode
	system, code string // token and :identifier
	text         string // folded, for string and :text
	raw          string // :exact
	prefix       string // date
	lo, hi       int64  // date; widened for ap
	refType      string // reference: "" when only an id was given
	refID        string
	refRaw       string // a reference that is not Type/id (urn, canonical)
	missing      bool
	vs           *valueSet // :in and :not-in
}

// Error is returned by ParseQuery when the query is refused; Issues are
// ready for an OperationOutcome (400, or too-costly for limit breaches).
type Error struct{ Issues []fhir.Issue }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("search: ")
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(is.Diagnostics)
	}
	return b.String()
}

// TooCostly reports whether the query was refused by a limit rather than
// for being malformed.
func (e *Error) TooCostly() bool {
	return slices.ContainsFunc(e.Issues, func(i fhir.Issue) bool { return i.Code == "too-costly" })
}

var resultParams = []string{"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude", "_format", "_pretty", "_cursor"}

// ParseQuery parses the parameters of a search of resourceType (query
// string and form body merged by the caller). Unknown parameters,
// modifiers the definition does not allow and malformed values are errors;
// with lenient (Prefer: handling=lenient) they are dropped and reported as
// warnings. The returned issues are the warnings (to put in the Bundle);
// the error, if any, is an *Error carrying every issue.
//
// Values are data only: "$where", {"$gt":""} or ".*" are codes, strings or
// ids like any other (and mostly fail the syntax of their type).
func (r *Registry) ParseQuery(resourceType string, params url.Values, lenient bool) (*Query, []fhir.Issue, error) {
	if _, ok := r.byType[resourceType]; !ok {
		return nil, nil, &Error{[]fhir.Issue{{Severity: "error", Code: "not-supported",
			Diagnostics: fmt.Sprintf("resource type %q cannot be searched", truncate(resourceType))}}}
	}
	if is := checkLimits(params); is != nil {
		return nil, nil, &Error{[]fhir.Issue{*is}}
	}
	q := &Query{Type: resourceType, Count: DefaultCount, reg: r, accepted: url.Values{}}
	p := &parser{q: q, lenient: lenient}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names) // map order is random; issues must not be
	for _, name := range names {
		for _, v := range params[name] {
			p.pair(name, v)
		}
	}
	if p.cursorRaw != "" {
		c, err := q.decodeCursor(p.cursorRaw)
		if err != nil {
			p.fail("_cursor", "invalid", "_cursor is not a cursor this search produced (it was changed, or the sort order differs)")
		} else {
			q.cursor, q.Cursor = c, p.cursorRaw
		}
	}
	if p.failed {
		return nil, nil, &Error{p.issues}
	}
	return q, p.issues, nil
}

func checkLimits(params url.Values) *fhir.Issue {
	total, pairs := 0, 0
	for k, vs := range params {
		total += len(k)
		for _, v := range vs {
			pairs++
			total += len(k) + len(v)
			if len(v) > MaxValueLength {
				return costly(k, fmt.Sprintf("the value of %s is %d bytes long; at most %d are accepted", truncate(k), len(v), MaxValueLength))
			}
		}
	}
	if total > MaxQueryLength {
		return costly("", fmt.Sprintf("the query is %d bytes long; at most %d are accepted", total, MaxQueryLength))
	}
	if pairs > MaxParameters {
		return costly("", fmt.Sprintf("the query has %d parameters; at most %d are accepted", pairs, MaxParameters))
	}
	for k, vs := range params {
		for _, v := range vs {
			if n := strings.Count(v, ",") + 1; n > MaxValues {
				return costly(k, fmt.Sprintf("%s has %d comma-separated values; at most %d are accepted", truncate(k), n, MaxValues))
			}
		}
	}
	return nil
}

func costly(name, msg string) *fhir.Issue {
	is := &fhir.Issue{Severity: "error", Code: "too-costly", Diagnostics: msg}
	if name != "" {
		is.Expression = []string{truncate(name)}
	}
	return is
}

func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 61
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

type parser struct {
	q         *Query
	lenient   bool
	failed    bool
	issues    []fhir.Issue
	seen      []string // result parameters that may appear once
	cursorRaw string
}

// fail records a problem with one parameter: an error, or in lenient mode
// a warning (and the parameter is ignored).
func (p *parser) fail(name, code, format string, args ...any) {
	sev := "error"
	if p.lenient {
		sev = "warning"
		format += " (ignored: lenient handling)"
	} else {
		p.failed = true
	}
	p.issues = append(p.issues, fhir.Issue{Severity: sev, Code: code,
		Diagnostics: fmt.Sprintf(format, args...), Expression: []string{truncate(name)}})
}

func (p *parser) warn(name, format string, args ...any) {
	p.issues = append(p.issues, fhir.Issue{Severity: "warning", Code: "informational",
		Diagnostics: fmt.Sprintf(format, args...), Expression: []string{name}})
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func (p *parser) pair(name, value string) {
	q := p.q
	if !validName(name) {
		p.fail(name, "invalid", "%q is not a valid search parameter name", truncate(name))
		return
	}
	if !validValue(value) {
		p.fail(name, "invalid", "the value of %s contains control characters or invalid UTF-8", name)
		return
	}
	if strings.HasPrefix(name, "_has:") {
		p.reverseChain(name, value)
		return
	}
	base, _, _ := strings.Cut(name, ":")
	if slices.Contains(resultParams, base) {
		p.result(name, base, value)
		return
	}
	head, chainPart, isChain := strings.Cut(name, ".")
	pname, modifier, hasMod := strings.Cut(head, ":")
	prm := q.reg.param(q.Type, pname)
	if prm == nil {
		p.fail(name, "not-supported", "%s is not a search parameter of %s", pname, q.Type)
		return
	}
	if hasMod && !p.modifierOK(prm, modifier) {
		p.fail(name, "not-supported", "modifier :%s is not supported for %s (%s)", modifier, pname, prm.Type)
		return
	}
	if value == "" {
		p.fail(name, "invalid", "%s has an empty value", name)
		return
	}
	c := clause{p: prm, modifier: modifier}
	if isChain {
		ch, ok := p.chain(name, prm, modifier, chainPart, value)
		if !ok {
			return
		}
		c.chain = ch
		c.modifier = ""
		q.clauses = append(q.clauses, c)
		q.accepted.Add(name, value)
		return
	}
	if modifier == "missing" {
		if value != "true" && value != "false" {
			p.fail(name, "invalid", "%s takes true or false", name)
			return
		}
		c.values = []qvalue{{missing: value == "true"}}
	} else {
		for _, raw := range splitUnescaped(value, ',') {
			v, err := p.value(prm, modifier, raw)
			if err != "" {
				p.fail(name, "invalid", "%s: %s", name, err)
				return
			}
			c.values = append(c.values, v)
		}
	}
	q.clauses = append(q.clauses, c)
	q.accepted.Add(name, value)
	if q.Type == "Patient" && prm.Name == "identifier" && modifier == "" {
		ch := &Chain{Param: "identifier", TargetType: "Patient", Self: true}
		for _, v := range c.values {
			ch.Identifiers = append(ch.Identifiers, v.token())
		}
		q.chains = append(q.chains, ch)
	}
}

func (p *parser) modifierOK(prm *Param, m string) bool {
	if prm.Type == "reference" && isResourceTypeName(m) {
		return prm.allows("type") && slices.Contains(prm.Targets, m)
	}
	return m != "type" && prm.allows(m)
}

func (v *qvalue) token() Token {
	return Token{System: v.system, Code: v.code, HasSystem: v.mode != tokAny}
}

func (p *parser) chain(name string, prm *Param, modifier, chainPart, value string) (*Chain, bool) {
	if prm.Type != "reference" {
		p.fail(name, "invalid", "%s is not a reference parameter and cannot be chained", prm.Name)
		return nil, false
	}
	if chainPart != "identifier" {
		p.fail(name, "not-supported", "chaining is supported with .identifier only, not .%s", truncate(chainPart))
		return nil, false
	}
	target := modifier
	if target == "" {
		if len(prm.Targets) != 1 {
			// The spec requires the type when a reference can point to
			// several; for subject we assume Patient, the only target
			// whose records this server keeps.
			if !slices.Contains(prm.Targets, "Patient") {
				p.fail(name, "invalid", "%s refers to several types; name one, as in %s:Practitioner.identifier", prm.Name, prm.Name)
				return nil, false
			}
			target = "Patient"
		} else {
			target = prm.Targets[0]
		}
	}
	ch := &Chain{Param: prm.Name, TargetType: target}
	for _, raw := range splitUnescaped(value, ',') {
		v, err := parseToken(raw)
		if err != "" {
			p.fail(name, "invalid", "%s: %s", name, err)
			return nil, false
		}
		ch.Identifiers = append(ch.Identifiers, v.token())
	}
	p.q.chains = append(p.q.chains, ch)
	return ch, true
}

func (p *parser) value(prm *Param, modifier, raw string) (qvalue, string) {
	switch prm.Type {
	case "token":
		switch modifier {
		case "in", "not-in":
			return parseValueSetRef(raw)
		case "of-type":
			return parseOfType(raw)
		}
		if modifier == "text" {
			t := Fold(unescape(raw))
			if t == "" {
				return qvalue{}, "empty value"
			}
			return qvalue{text: t}, ""
		}
		v, err := parseToken(raw)
		if err == "" && prm.Name == "_id" && !isID(v.code) {
			err = fmt.Sprintf("%q is not a resource id", truncate(v.code))
		}
		return v, err
	case "string":
		u := unescape(raw)
		t := Fold(u)
		if t == "" {
			return qvalue{}, "empty value"
		}
		return qvalue{text: t, raw: u}, ""
	case "date":
		return p.date(raw)
	case "quantity":
		return p.parseQuantity(raw)
	case "uri":
		u := unescape(raw)
		if u == "" {
			return qvalue{}, "empty value"
		}
		return qvalue{raw: u}, ""
	case "reference":
		if modifier == "identifier" {
			return parseToken(raw)
		}
		return parseRef(prm, modifier, unescape(raw))
	}
	return qvalue{}, "unsupported parameter type"
}

func parseToken(raw string) (qvalue, string) {
	parts := splitUnescaped(raw, '|')
	switch len(parts) {
	case 1:
		c := unescape(parts[0])
		if c == "" {
			return qvalue{}, "empty value"
		}
		return qvalue{mode: tokAny, code: c}, ""
	case 2:
		s, c := unescape(parts[0]), unescape(parts[1])
		switch {
		case s == "" && c == "":
			return qvalue{}, `"|" needs a system or a code`
		case s == "":
			return qvalue{mode: tokNoSys, code: c}, ""
		case c == "":
			return qvalue{mode: tokSysOnly, system: s}, ""
		}
		return qvalue{mode: tokSysCode, system: s, code: c}, ""
	}
	return qvalue{}, fmt.Sprintf("%q has more than one unescaped |", truncate(raw))
}

func parseRef(prm *Param, modifier, raw string) (qvalue, string) {
	if typ, id, ok := splitRef(raw); ok {
		if !slices.Contains(prm.Targets, typ) {
			return qvalue{}, fmt.Sprintf("%s cannot refer to %s", prm.Name, typ)
		}
		if modifier != "" && modifier != typ {
			return qvalue{}, fmt.Sprintf("%q contradicts the modifier :%s", truncate(raw), modifier)
		}
		v := qvalue{refType: typ, refID: id}
		if strings.Contains(raw, "://") {
			// A canonical (instantiates-canonical) is indexed as written,
			// not as Type/id: it matches too.
			v.refRaw = raw
		}
		return v, ""
	}
	if isID(raw) {
		return qvalue{refType: modifier, refID: raw}, ""
	}
	if modifier == "" && (strings.HasPrefix(raw, "urn:") || strings.Contains(raw, "://")) && !strings.ContainsAny(raw, " ") {
		return qvalue{refRaw: raw}, ""
	}
	return qvalue{}, fmt.Sprintf("%q is not a reference (id, Type/id or URL)", truncate(raw))
}

var datePrefixes = []string{"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"}

func (p *parser) date(raw string) (qvalue, string) {
	v := qvalue{prefix: "eq"}
	s := raw
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		if !slices.Contains(datePrefixes, s[:2]) {
			return v, fmt.Sprintf("unknown prefix %q", truncate(s[:2]))
		}
		v.prefix, s = s[:2], s[2:]
	}
	lo, hi, err := parseDateRange(s)
	if err != nil {
		return v, fmt.Sprintf("%q is not a date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.f]][Z|±hh:mm])", truncate(raw))
	}
	v.lo, v.hi = lo, hi
	if v.prefix == "ap" {
		// "Approximately": the spec leaves the tolerance to the server
		// and suggests 10% of the distance from now; we widen the range
		// by that on both sides, and by at least a day so that ap on a
		// recent date is not stricter than eq.
		if p.q.apNow == 0 {
			p.q.apNow = p.q.reg.now().UnixMicro()
		}
		d := p.q.apNow - lo
		if d < 0 {
			d = -d
		}
		d = max(d/10, 86_400_000_000)
		v.lo, v.hi = sat(lo, -d), sat(hi, d)
	}
	return v, ""
}

func sat(a, d int64) int64 {
	r := a + d
	if d > 0 && r < a {
		return maxTime
	}
	if d < 0 && r > a {
		return minTime
	}
	return r
}

// splitUnescaped splits at sep not preceded by a backslash; escapes are
// kept for unescape (the R4 escapes are \, \| \$ and \\).
func splitUnescaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (p *parser) once(name string) bool {
	if slices.Contains(p.seen, name) {
		p.fail(name, "invalid", "%s may be given only once", name)
		return false
	}
	p.seen = append(p.seen, name)
	return true
}

func (p *parser) result(name, base, value string) {
	q := p.q
	iterate := name == base+":iterate" && (base == "_include" || base == "_revinclude")
	if name != base && !iterate {
		p.fail(name, "not-supported", "%s takes no modifier", base)
		return
	}
	if base != "_include" && base != "_revinclude" && !p.once(base) {
		return
	}
	switch base {
	case "_count":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			p.fail(name, "invalid", "_count must be a whole number ≥ 0, not %q", truncate(value))
			return
		}
		if n > MaxCount {
			p.warn(name, "_count=%d reduced to the maximum page size %d", n, MaxCount)
			n = MaxCount
		}
		q.Count = n
	case "_sort":
		var keys []SortKey
		for _, k := range strings.Split(value, ",") {
			sk := SortKey{Param: k}
			if after, ok := strings.CutPrefix(k, "-"); ok {
				sk = SortKey{Param: after, Desc: true}
			}
			if q.reg.param(q.Type, sk.Param) == nil {
				p.fail(name, "not-supported", "cannot sort %s by %q: it is not a search parameter of %s", q.Type, truncate(sk.Param), q.Type)
				return
			}
			if slices.ContainsFunc(keys, func(o SortKey) bool { return o.Param == sk.Param }) || len(keys) == 3 {
				p.fail(name, "invalid", "_sort names %q twice or has more than 3 keys", truncate(sk.Param))
				return
			}
			keys = append(keys, sk)
		}
		q.SortBy = keys
	case "_total":
		if !slices.Contains([]string{"none", "estimate", "accurate"}, value) {
			p.fail(name, "invalid", "_total must be none, estimate or accurate")
			return
		}
		q.Total = value
	case "_summary":
		if !slices.Contains([]string{"true", "false", "text", "data", "count"}, value) {
			p.fail(name, "invalid", "_summary must be true, false, text, data or count")
			return
		}
		q.Summary = value
	case "_elements":
		var els []string
		for _, e := range strings.Split(value, ",") {
			e = strings.TrimSpace(e)
			if !isName(e) {
				p.fail(name, "invalid", "%q is not an element name", truncate(e))
				return
			}
			els = append(els, e)
		}
		q.Elements = els
	case "_include", "_revinclude":
		inc, err := p.include(base == "_revinclude", iterate, value)
		if err != "" {
			p.fail(name, "invalid", "%s: %s", name, err)
			return
		}
		if base == "_include" {
			q.Include = append(q.Include, inc)
		} else {
			q.RevInclude = append(q.RevInclude, inc)
		}
	case "_format":
		q.Format = value
	case "_pretty":
		if value != "true" && value != "false" {
			p.fail(name, "invalid", "_pretty must be true or false")
			return
		}
		q.Pretty = value == "true"
	case "_cursor":
		p.cursorRaw = value
		return // not part of the canonical query the links repeat
	}
	q.accepted.Add(name, value)
}

func (p *parser) include(rev, iterate bool, value string) (Include, string) {
	if value == "*" {
		return Include{}, "the wildcard * is not supported; name Type:parameter"
	}
	parts := strings.Split(value, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Include{}, fmt.Sprintf("%q is not Type:parameter[:targetType]", truncate(value))
	}
	inc := Include{Source: parts[0], Param: parts[1], Iterate: iterate}
	if len(parts) == 3 {
		inc.Target = parts[2]
	}
	if parts[1] == "*" {
		return inc, "the wildcard * is not supported"
	}
	if parts[0] == "*" {
		return inc, "the wildcard * is not supported"
	}
	if iterate {
		return p.iterateInclude(rev, inc)
	}
	if !rev && inc.Source != p.q.Type {
		return inc, fmt.Sprintf("the source type must be %s (or use _include:iterate to include from included resources)", p.q.Type)
	}
	prm := p.q.reg.param(inc.Source, inc.Param)
	if prm == nil || prm.Type != "reference" {
		return inc, fmt.Sprintf("%s is not a reference parameter of %s", truncate(inc.Param), truncate(inc.Source))
	}
	if inc.Target != "" && !slices.Contains(prm.Targets, inc.Target) {
		return inc, fmt.Sprintf("%s:%s cannot refer to %s", inc.Source, inc.Param, truncate(inc.Target))
	}
	if rev && !slices.Contains(prm.Targets, p.q.Type) || rev && inc.Target != "" && inc.Target != p.q.Type {
		return inc, fmt.Sprintf("%s:%s does not refer to %s", inc.Source, inc.Param, p.q.Type)
	}
	return inc, ""
}

// Values returns the parameters the query was built from (without
// _cursor and without anything lenient handling dropped), for the self,
// next and previous links; add "_cursor" to page.
func (q *Query) Values() url.Values {
	out := make(url.Values, len(q.accepted))
	for k, v := range q.accepted {
		out[k] = slices.Clone(v)
	}
	return out
}

// Chains lists the chained searches the caller must resolve with
// Chain.Resolve before PatientBinding and Match.
func (q *Query) Chains() []*Chain { return q.chains }

// PatientBinding returns the ids of the patients the query can match:
// the intersection, over every patient or subject parameter (and for a
// Patient search every _id and identifier parameter), of the ids each one
// names. ok is false when no parameter restricts the patient at all. The
// REST layer must refuse a clinical search unless ok and len(ids) == 1:
// kjernejournal may not search across patients.
//
// A chain (patient.identifier=...) binds only after Resolve. A modifier
// that does not name patients (:missing, :identifier on a logical
// reference, subject=Group/1) does not bind.
func (q *Query) PatientBinding() (ids []string, ok bool) {
	var set []string
	restrict := func(cands []string) {
		slices.Sort(cands)
		cands = slices.Compact(cands)
		if !ok {
			set, ok = cands, true
			return
		}
		set = slices.DeleteFunc(set, func(s string) bool { return !slices.Contains(cands, s) })
	}
	for _, c := range q.clauses {
		var cands []string
		switch {
		case q.Type == "Patient" && c.p.Name == "_id" && c.modifier == "":
			for _, v := range c.values {
				cands = append(cands, v.code)
			}
		case q.Type != "Patient" && (c.p.Name == "patient" || c.p.Name == "subject"):
			if c.chain != nil {
				if !c.chain.resolved || c.chain.TargetType != "Patient" {
					continue
				}
				cands = slices.Clone(c.chain.ids)
				if cands == nil {
					cands = []string{}
				}
				break
			}
			if c.modifier != "" && c.modifier != "Patient" {
				continue
			}
			bound := true
			for _, v := range c.values {
				// A bare id on subject is taken as a patient id: the
				// caller reads only that patient's compartment, so it can
				// never reach anyone else's resources.
				if v.refID == "" || v.refType != "" && v.refType != "Patient" {
					bound = false
					break
				}
				cands = append(cands, v.refID)
			}
			if !bound {
				continue
			}
		default:
			continue
		}
		restrict(cands)
	}
	for _, ch := range q.chains {
		if ch.Self && ch.resolved {
			restrict(slices.Clone(ch.ids))
		}
	}
	if !ok {
		return nil, false
	}
	if set == nil {
		set = []string{}
	}
	return set, true
}
