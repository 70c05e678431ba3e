package search

import (
	"slices"
	"strings"
)

// Match reports whether an indexed resource satisfies every parameter of
// the query (repeated parameters AND, comma values OR). A chain that was
// not resolved matches only references carrying the identifier; it never
// matches by accident.
func (q *Query) Match(idx Index) bool {
	if idx.Type != q.Type {
		return false
	}
	for i := range q.clauses {
		if !q.clauses[i].match(idx.Values(q.clauses[i].p.Name)) {
			return false
		}
	}
	for _, h := range q.has {
		if !h.match(&idx) {
			return false
		}
	}
	return true
}

// MatchJSON extracts the index from stored JSON and matches it, for
// engines that keep no index next to the resource.
func (q *Query) MatchJSON(body []byte) (bool, Index, error) {
	idx, err := q.reg.Extract(q.Type, body)
	if err != nil {
		return false, idx, err
	}
	return q.Match(idx), idx, nil
}

func (c *clause) match(vals []Value) bool {
	if c.chain != nil {
		return c.chain.match(vals)
	}
	switch c.modifier {
	case "missing":
		return (len(vals) == 0) == c.values[0].missing
	case "not", "not-in":
		// :not is the complement, so a resource without any value
		// matches, as the specification requires; :not-in is the
		// complement of :in in the same way.
		return !c.anyValue(vals)
	}
	return c.anyValue(vals)
}

func (c *clause) anyValue(vals []Value) bool {
	for i := range c.values {
		for j := range vals {
			if c.one(&c.values[i], &vals[j]) {
				return true
			}
		}
	}
	return false
}

func (c *clause) one(q *qvalue, x *Value) bool {
	switch c.p.Type {
	case "token":
		switch c.modifier {
		case "text":
			return wordPrefix(x.Text, q.text)
		case "in", "not-in":
			return q.vs.contains(x.System, x.Code)
		case "of-type":
			return q.matchOfType(x)
		}
		return q.matchToken(x.System, x.Code)
	case "string":
		switch c.modifier {
		case "exact":
			return x.Raw == q.raw
		case "contains":
			return strings.Contains(x.Text, q.text)
		}
		return strings.HasPrefix(x.Text, q.text)
	case "date":
		return dateMatch(q.prefix, q.lo, q.hi, x.Low, x.High)
	case "quantity":
		return q.matchQuantity(x)
	case "uri":
		return x.Ref == q.raw
	case "reference":
		if c.modifier == "identifier" {
			return x.Code != "" && q.matchToken(x.System, x.Code)
		}
		return q.matchRef(x.Ref, c.p.Targets)
	}
	return false
}

func (q *qvalue) matchToken(system, code string) bool {
	switch q.mode {
	case tokSysCode:
		return system == q.system && code == q.code
	case tokSysOnly:
		return system == q.system
	case tokNoSys:
		return system == "" && code == q.code
	}
	return code == q.code
}

func (q *qvalue) matchRef(ref string, targets []string) bool {
	if q.refRaw != "" && ref == q.refRaw {
		return true
	}
	if q.refID == "" {
		return false
	}
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 || ref[i+1:] != q.refID {
		return false
	}
	typ := ref[:i]
	if q.refType != "" {
		return typ == q.refType
	}
	return slices.Contains(targets, typ)
}

// wordPrefix is the :text match: the folded search text starts one of the
// words of the folded display text, so "kolecyst" finds "Gallestein uten
// kolecystitt" and "penicillin allergi" finds "Penicillin allergi".
func wordPrefix(text, q string) bool {
	if q == "" {
		return false
	}
	for {
		if strings.HasPrefix(text, q) {
			return true
		}
		i := strings.IndexAny(text, " -/(,")
		if i < 0 {
			return false
		}
		text = text[i+1:]
	}
}

// dateMatch applies a prefix to the search range [ql, qh] and the value's
// range [tl, th] as R4 search defines it (ap after widening the search
// range).
func dateMatch(prefix string, ql, qh, tl, th int64) bool {
	eq := ql <= tl && th <= qh
	switch prefix {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt":
		return th > qh
	case "lt":
		return tl < ql
	case "ge":
		return th > qh || eq
	case "le":
		return tl < ql || eq
	case "sa":
		return tl > qh
	case "eb":
		return th < ql
	case "ap":
		return tl <= qh && th >= ql
	}
	return false
}

func (ch *Chain) match(vals []Value) bool {
	for i := range vals {
		x := &vals[i]
		if ch.resolved {
			if t, id, ok := strings.Cut(x.Ref, "/"); ok && t == ch.TargetType && slices.Contains(ch.ids, id) {
				return true
			}
		}
		if x.Code == "" {
			continue
		}
		for _, t := range ch.Identifiers {
			if x.Code == t.Code && (!t.HasSystem || x.System == t.System) {
				return true
			}
		}
	}
	return false
}

// IncludeRefs returns the "Type/id" references an _include of the query
// asks for from one matched resource. The caller reads them (from the same
// patient's compartment: an include never leaves the patient) and adds
// them with search mode "include".
func (q *Query) IncludeRefs(idx Index) []string { return q.includeRefs(idx, false) }

func (q *Query) includeRefs(idx Index, iterateOnly bool) []string {
	var out []string
	for _, inc := range q.Include {
		if inc.Source != idx.Type || iterateOnly && !inc.Iterate {
			continue
		}
		for _, v := range idx.Values(inc.Param) {
			typ, _, ok := strings.Cut(v.Ref, "/")
			if !ok || inc.Target != "" && typ != inc.Target || strings.Contains(v.Ref, ":") {
				continue
			}
			if !slices.Contains(out, v.Ref) {
				out = append(out, v.Ref)
			}
		}
	}
	return out
}

// RefersTo reports whether a resource of inc.Source refers, through
// inc.Param, to ref ("Type/id"); for _revinclude, the caller checks the
// patient's resources of inc.Source against each match.
func (inc Include) RefersTo(idx Index, ref string) bool {
	if idx.Type != inc.Source {
		return false
	}
	for _, v := range idx.Values(inc.Param) {
		if v.Ref == ref {
			return true
		}
	}
	return false
}
