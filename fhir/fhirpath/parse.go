package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDate
	tVar  // %name
	tSpec // $this, $index, $total
	tOp
)

type token struct {
	kind tokKind
	s    string
	pos  int
	// quoted is true for `delimited` identifiers, which are never keywords.
	quoted bool
}

func lex(src string) ([]token, error) {
	var out []token
	i := 0
	for {
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				i++
				continue
			}
			if strings.HasPrefix(src[i:], "//") {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			if strings.HasPrefix(src[i:], "/*") {
				end := strings.Index(src[i+2:], "*/")
				if end < 0 {
					return nil, fmt.Errorf("unterminated comment at %d", i)
				}
				i += end + 4
				continue
			}
			break
		}
		if i >= len(src) {
			return append(out, token{kind: tEOF, pos: i}), nil
		}
		start := i
		c := src[i]
		switch {
		case c == '\'' || c == '`':
			s, n, err := unquote(src[i:], c)
			if err != nil {
				return nil, fmt.Errorf("at %d: %w", i, err)
			}
			i += n
			if c == '\'' {
				out = append(out, token{kind: tString, s: s, pos: start})
			} else if s == "" {
				return nil, fmt.Errorf("at %d: empty `name`", start)
			} else {
				out = append(out, token{kind: tIdent, s: s, pos: start, quoted: true})
			}
		case c == '@':
			i++
			for i < len(src) {
				c := src[i]
				if c >= '0' && c <= '9' || strings.IndexByte("-:+TZ", c) >= 0 || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9' {
					i++
					continue
				}
				break
			}
			out = append(out, token{kind: tDate, s: src[start+1 : i], pos: start})
		case c >= '0' && c <= '9':
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
				i++
				for i < len(src) && src[i] >= '0' && src[i] <= '9' {
					i++
				}
			}
			out = append(out, token{kind: tNumber, s: src[start:i], pos: start})
		case isAlpha(c):
			for i < len(src) && isAlnum(src[i]) {
				i++
			}
			out = append(out, token{kind: tIdent, s: src[start:i], pos: start})
		case c == '%' || c == '$':
			i++
			if c == '%' && i < len(src) && (src[i] == '`' || src[i] == '\'') {
				s, n, err := unquote(src[i:], src[i])
				if err != nil {
					return nil, fmt.Errorf("at %d: %w", i, err)
				}
				i += n
				out = append(out, token{kind: tVar, s: s, pos: start})
				continue
			}
			for i < len(src) && isAlnum(src[i]) {
				i++
			}
			if i == start+1 {
				return nil, fmt.Errorf("at %d: %c without a name", start, c)
			}
			k := tVar
			if c == '$' {
				k = tSpec
			}
			out = append(out, token{kind: k, s: src[start+1 : i], pos: start})
		default:
			for _, op := range []string{"<=", ">=", "!=", "!~"} {
				if strings.HasPrefix(src[i:], op) {
					i += 2
					break
				}
			}
			if i == start {
				if strings.IndexByte("=~<>+-*/&|().,[]{}", c) < 0 {
					return nil, fmt.Errorf("at %d: unexpected character %q", i, c)
				}
				i++
			}
			out = append(out, token{kind: tOp, s: src[start:i], pos: start})
		}
	}
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// unescapeAt writes the character the escape at s[i] (the byte after a
// backslash) stands for: \n, \t, \r, \f, \uXXXX, or the byte itself (\\,
// \', \", \`, \/). It returns the index of the escape's last byte, and
// false for a \u without four hex digits. String literals and
// unescape('json') read escapes alike.
func unescapeAt(b *strings.Builder, s string, i int) (int, bool) {
	switch s[i] {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'f':
		b.WriteByte('\f')
	case 'u':
		if i+4 >= len(s) {
			return i, false
		}
		r, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
		if err != nil {
			return i, false
		}
		b.WriteRune(rune(r))
		return i + 4, true
	default:
		b.WriteByte(s[i])
	}
	return i, true
}

func unquote(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			next, ok := unescapeAt(&b, s, i+1)
			if !ok {
				return "", 0, fmt.Errorf("bad \\u escape")
			}
			i = next
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated %c", q)
}

// node kinds of the expression tree.
type nodeKind int

const (
	nLiteral nodeKind = iota
	nEmpty
	nMember // name on the input (or a type name at the start)
	nFunc
	nVar
	nThis
	nIndex
	nTotal
	nBinary
	nUnary
	nIndexer
	nTypeOp // is / as
	nDot    // left . right: right evaluated on left's result
)

type node struct {
	kind  nodeKind
	name  string // member, function, variable, operator, type
	lit   []Item
	args  []*node
	left  *node
	right *node
}

// Expression is a parsed FHIRPath expression, safe for concurrent use.
type Expression struct {
	src  string
	root *node
}

func (e *Expression) String() string { return e.src }

// Parse parses a FHIRPath expression.
func Parse(src string) (*Expression, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: %q: %w", src, err)
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err == nil && p.peek().kind != tEOF {
		err = fmt.Errorf("unexpected %q at %d", p.peek().s, p.peek().pos)
	}
	if err != nil {
		return nil, fmt.Errorf("fhirpath: %q: %w", src, err)
	}
	return &Expression{src: src, root: n}, nil
}

var cache sync.Map // string → *Expression

// Compile is Parse with a cache: each distinct expression is parsed once.
// The cache keeps every expression, so it is for expressions from code and
// definitions, not from requests.
func Compile(src string) (*Expression, error) {
	if e, ok := cache.Load(src); ok {
		return e.(*Expression), nil
	}
	e, err := Parse(src)
	if err != nil {
		return nil, err
	}
	cache.Store(src, e)
	return e, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.s == s
}

func (p *parser) expect(s string) error {
	if !p.isOp(s) {
		t := p.peek()
		if t.kind == tEOF {
			return fmt.Errorf("expected %q at the end", s)
		}
		return fmt.Errorf("expected %q at %d, found %q", s, t.pos, t.s)
	}
	p.i++
	return nil
}

// levels of binary operators, loosest first.
var levels = [][]string{
	{"implies"},
	{"or", "xor"},
	{"and"},
	{"in", "contains"},
	{"=", "~", "!=", "!~"},
	{"<", ">", "<=", ">="},
	{"|"},
	{"is", "as"},
	{"+", "-", "&"},
	{"*", "/", "div", "mod"},
}

func (p *parser) binaryOp(level int) (string, bool) {
	t := p.peek()
	if t.quoted || (t.kind != tOp && t.kind != tIdent) {
		return "", false
	}
	for _, op := range levels[level] {
		if t.s == op {
			return op, true
		}
	}
	return "", false
}

func (p *parser) expr(level int) (*node, error) {
	if level == len(levels) {
		return p.unary()
	}
	left, err := p.expr(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.binaryOp(level)
		if !ok {
			return left, nil
		}
		p.i++
		if op == "is" || op == "as" {
			typ, err := p.typeSpec()
			if err != nil {
				return nil, err
			}
			left = &node{kind: nTypeOp, name: op, left: left, lit: []Item{{V: typ}}}
			continue
		}
		right, err := p.expr(level + 1)
		if err != nil {
			return nil, err
		}
		left = &node{kind: nBinary, name: op, left: left, right: right}
	}
}

func (p *parser) typeSpec() (string, error) {
	t := p.next()
	if t.kind != tIdent {
		return "", fmt.Errorf("expected a type name at %d", t.pos)
	}
	name := t.s
	for p.isOp(".") && p.toks[p.i+1].kind == tIdent {
		p.i++
		name += "." + p.next().s
	}
	return name, nil
}

func (p *parser) unary() (*node, error) {
	if p.isOp("-") || p.isOp("+") {
		op := p.next().s
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return n, nil
		}
		return &node{kind: nUnary, name: op, left: n}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (*node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.i++
			inv, err := p.invocation()
			if err != nil {
				return nil, err
			}
			n = &node{kind: nDot, left: n, right: inv}
		case p.isOp("["):
			p.i++
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = &node{kind: nIndexer, left: n, right: idx}
		default:
			return n, nil
		}
	}
}

func (p *parser) invocation() (*node, error) {
	t := p.next()
	switch t.kind {
	case tIdent:
		if p.isOp("(") && !t.quoted {
			p.i++
			var args []*node
			for !p.isOp(")") {
				a, err := p.expr(0)
				if err != nil {
					return nil, err
				}
				args = append(args, a)
				if !p.isOp(",") {
					break
				}
				p.i++
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			if _, ok := functions[t.s]; !ok {
				return nil, fmt.Errorf("unknown function %s()", t.s)
			}
			return &node{kind: nFunc, name: t.s, args: args}, nil
		}
		return &node{kind: nMember, name: t.s}, nil
	case tSpec:
		switch t.s {
		case "this":
			return &node{kind: nThis}, nil
		case "index":
			return &node{kind: nIndex}, nil
		case "total":
			return &node{kind: nTotal}, nil
		}
		return nil, fmt.Errorf("unknown $%s", t.s)
	}
	if t.kind == tEOF {
		return nil, fmt.Errorf("expression ends where a name was expected")
	}
	return nil, fmt.Errorf("expected a name at %d, found %q", t.pos, t.s)
}

var calendarWords = map[string]bool{
	"year": true, "years": true, "month": true, "months": true, "week": true, "weeks": true,
	"day": true, "days": true, "hour": true, "hours": true, "minute": true, "minutes": true,
	"second": true, "seconds": true, "millisecond": true, "milliseconds": true,
}

func (p *parser) term() (*node, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.i++
		var v any
		if strings.Contains(t.s, ".") {
			f, err := strconv.ParseFloat(t.s, 64)
			if err != nil {
				return nil, err
			}
			v = f
		} else {
			n, err := strconv.ParseInt(t.s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("integer %s out of range", t.s)
			}
			v = n
		}
		// A number followed by a unit is a quantity.
		if u := p.peek(); u.kind == tString || u.kind == tIdent && !u.quoted && calendarWords[u.s] {
			p.i++
			f, _ := strconv.ParseFloat(t.s, 64)
			return &node{kind: nLiteral, lit: []Item{{V: Quantity{Value: f, Unit: u.s}}}}, nil
		}
		return &node{kind: nLiteral, lit: []Item{{V: v}}}, nil
	case tString:
		p.i++
		return &node{kind: nLiteral, lit: []Item{{V: t.s}}}, nil
	case tDate:
		p.i++
		s := t.s
		var d DT
		var ok bool
		if strings.HasPrefix(s, "T") {
			d, ok = parseDT(s[1:], 't')
		} else {
			d, ok = parseDT(s, 'D')
		}
		if !ok {
			return nil, fmt.Errorf("malformed date/time literal @%s", s)
		}
		return &node{kind: nLiteral, lit: []Item{{V: d}}}, nil
	case tVar:
		p.i++
		return &node{kind: nVar, name: t.s}, nil
	case tOp:
		switch t.s {
		case "(":
			p.i++
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		case "{":
			p.i++
			return &node{kind: nEmpty}, p.expect("}")
		}
	case tIdent:
		if !t.quoted && (t.s == "true" || t.s == "false") {
			p.i++
			return &node{kind: nLiteral, lit: []Item{{V: t.s == "true"}}}, nil
		}
	}
	return p.invocation()
}
