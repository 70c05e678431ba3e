package search

import (
	"fmt"
	"strings"
)

// The evaluator understands the FHIRPath subset that search parameter
// definitions use for the served types, and nothing more, so what a
// definition means is never in doubt:
//
//	expr  = term *( "|" term )
//	term  = path | "(" path " as " Type ")"
//	path  = Type 1*( "." name ) [ ".where(resolve() is " Type ")" | ".as(" Type ")"
//	        | ".where(" name "='" value "')" ]
//
// A step naming a choice element ("effective", "medication") matches every
// choice variant (effectiveDateTime, effectivePeriod, ...); "as Type" keeps
// one of them. where(resolve() is Type) is decided from the reference
// itself (its "Type/id" or Reference.type), since search must not fetch
// other resources to build an index. where(name='value') keeps the
// objects whose element name is the string value (ContactPoint.system for
// Patient's email and phone).
type path struct {
	root      string   // the resource type (or Resource) the path starts at
	steps     []string // element names after the root
	as        string   // choice type to keep, "" for all
	resolveIs string   // reference target type to keep, "" for all
	whereKey  string   // where(whereKey='whereVal'): keep objects whose element is that string
	whereVal  string
}

func parseExpression(expr string) ([]path, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	var out []path
	for _, term := range strings.Split(expr, "|") {
		p, err := parseTerm(strings.TrimSpace(term))
		if err != nil {
			return nil, fmt.Errorf("expression %q: %w", expr, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseTerm(t string) (path, error) {
	var p path
	if strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
		inner := t[1 : len(t)-1]
		body, typ, ok := strings.Cut(inner, " as ")
		if !ok || !isName(strings.TrimSpace(typ)) {
			return p, fmt.Errorf("term %q: only (path as Type) is supported in parentheses", t)
		}
		t, p.as = strings.TrimSpace(body), strings.TrimSpace(typ)
	}
	if body, ok := strings.CutSuffix(t, ")"); ok {
		switch {
		case strings.Contains(body, ".where(resolve() is "):
			i := strings.LastIndex(body, ".where(resolve() is ")
			p.resolveIs = strings.TrimSpace(strings.TrimSuffix(body[i+len(".where(resolve() is "):], ")"))
			t = body[:i]
			if !isName(p.resolveIs) {
				return p, fmt.Errorf("term %q: malformed where(resolve() is Type)", t)
			}
		case strings.HasSuffix(body, "'") && strings.Contains(body, ".where("):
			i := strings.LastIndex(body, ".where(")
			cond := strings.TrimSuffix(body[i+len(".where("):], "'")
			k, v, ok := strings.Cut(cond, "='")
			if !ok || !isName(k) || v == "" || strings.ContainsAny(v, "'\\") {
				return p, fmt.Errorf("term %q: malformed where(name='value')", t)
			}
			p.whereKey, p.whereVal = k, v
			t = body[:i]
		case strings.Contains(body, ".as("):
			i := strings.LastIndex(body, ".as(")
			p.as = body[i+len(".as("):]
			t = body[:i]
			if !isName(p.as) {
				return p, fmt.Errorf("term %q: malformed as(Type)", t)
			}
		default:
			return p, fmt.Errorf("term %q: function not supported", t)
		}
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 {
		return p, fmt.Errorf("term %q: want Type.element", t)
	}
	for _, s := range parts {
		if !isName(s) {
			return p, fmt.Errorf("term %q: %q is not an element name", t, s)
		}
	}
	p.root, p.steps = parts[0], parts[1:]
	return p, nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 || c == '_' && i > 0) {
			return false
		}
	}
	return true
}

// node is one value an expression selected: the decoded JSON and, for a
// choice element, the type its JSON name carried ("Period" for
// effectivePeriod).
type node struct {
	v      any
	choice string
}

func appendFlat(dst []node, v any, choice string) []node {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if e != nil {
				dst = append(dst, node{e, choice})
			}
		}
		return dst
	}
	if v != nil {
		dst = append(dst, node{v, choice})
	}
	return dst
}

func (p *path) eval(root map[string]any, dst []node) []node {
	cur := []node{{root, ""}}
	for _, step := range p.steps {
		var next []node
		for _, n := range cur {
			m, ok := n.v.(map[string]any)
			if !ok {
				continue
			}
			if v, ok := m[step]; ok {
				next = appendFlat(next, v, "")
				continue
			}
			for k, v := range m {
				if len(k) > len(step) && strings.HasPrefix(k, step) && k[len(step)] >= 'A' && k[len(step)] <= 'Z' {
					next = appendFlat(next, v, k[len(step):])
				}
			}
		}
		cur = next
		if len(cur) == 0 {
			return dst
		}
	}
	for _, n := range cur {
		if p.as != "" && !strings.EqualFold(n.choice, p.as) {
			continue
		}
		if p.resolveIs != "" && refType(n.v) != p.resolveIs {
			continue
		}
		if p.whereKey != "" {
			if m, ok := n.v.(map[string]any); !ok || m[p.whereKey] != p.whereVal {
				continue
			}
		}
		dst = append(dst, n)
	}
	return dst
}

// refType is the target type of a Reference: from "Type/id" (relative or
// at the end of an absolute URL), else from Reference.type.
func refType(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if s, ok := m["reference"].(string); ok {
		if t, _, ok := splitRef(s); ok {
			return t
		}
	}
	t, _ := m["type"].(string)
	return t
}

// splitRef takes "Type/id", "Type/id/_history/n" or an absolute URL ending
// in either, and returns Type and id.
func splitRef(s string) (typ, id string, ok bool) {
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	j := strings.LastIndexByte(s, '/')
	if j <= 0 || j == len(s)-1 {
		return "", "", false
	}
	id = s[j+1:]
	rest := s[:j]
	typ = rest[strings.LastIndexByte(rest, '/')+1:]
	if !isResourceTypeName(typ) || !isID(id) {
		return "", "", false
	}
	return typ, id, true
}

func isResourceTypeName(s string) bool {
	return isName(s) && s[0] >= 'A' && s[0] <= 'Z'
}

// isID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
