package search

import (
	"fmt"
	"slices"
	"strings"
)

// Iterating includes. _include:iterate and _revinclude:iterate apply to
// the matches and then to every resource included, round after round,
// until a round adds nothing new. Their source may be any type searched
// here (Encounter:part-of on a Flag search), since they follow the
// included resources; which resources a round may read is the caller's
// business: it stays in the bound patient's record.

// MaxIncludeRounds and MaxIncluded bound the iteration: rounds after the
// first (which every _include has), and included resources in one page.
// A patient's record is small, so a client that reaches either asked for
// more than one page should carry; the search says so in a warning rather
// than running on.
const (
	MaxIncludeRounds = 4
	MaxIncluded      = MaxCount
)

// Iterates reports whether the query has an _include:iterate or
// _revinclude:iterate.
func (q *Query) Iterates() bool {
	return slices.ContainsFunc(q.Include, func(i Include) bool { return i.Iterate }) ||
		slices.ContainsFunc(q.RevInclude, func(i Include) bool { return i.Iterate })
}

// IterateRefs returns the "Type/id" references the _include:iterate of
// the query ask for from one included resource.
func (q *Query) IterateRefs(idx Index) []string { return q.includeRefs(idx, true) }

// RevIncluded reports whether the resource idx is brought in, by one of
// the query's _revinclude (only the :iterate ones with iterate), as
// referring to ref ("Type/id").
func (q *Query) RevIncluded(idx Index, ref string, iterate bool) bool {
	typ, _, _ := strings.Cut(ref, "/")
	for _, inc := range q.RevInclude {
		if iterate && !inc.Iterate || inc.Target != "" && inc.Target != typ {
			continue
		}
		if inc.RefersTo(idx, ref) {
			return true
		}
	}
	return false
}

// iterateInclude checks an _include:iterate or _revinclude:iterate value.
func (p *parser) iterateInclude(rev bool, inc Include) (Include, string) {
	if _, ok := p.q.reg.byType[inc.Source]; !ok {
		return inc, fmt.Sprintf("%s is not a resource type searched here", truncate(inc.Source))
	}
	prm := p.q.reg.param(inc.Source, inc.Param)
	if prm == nil || prm.Type != "reference" {
		return inc, fmt.Sprintf("%s is not a reference parameter of %s", truncate(inc.Param), inc.Source)
	}
	if inc.Target != "" && !slices.Contains(prm.Targets, inc.Target) {
		return inc, fmt.Sprintf("%s:%s cannot refer to %s", inc.Source, inc.Param, truncate(inc.Target))
	}
	_ = rev // the source and the target are checked alike either way
	return inc, ""
}

// IterateCapabilities lists, for the CapabilityStatement of root type typ,
// the include and revinclude values that can only be used with :iterate:
// those of the types reachable from typ through reference parameters
// (forward for _include, backward for _revinclude) among types, other
// than typ's own (which are listed as plain values). R5 documents this
// convention (CapabilityStatement.rest.resource.searchInclude: iterative
// values are listed on the root type); R4 is silent.
func (r *Registry) IterateCapabilities(typ string, types []string) (include, revinclude []string) {
	refsFrom := func(src string) []*Param {
		var out []*Param
		for _, p := range r.byType[src] {
			if p.Type == "reference" {
				out = append(out, p)
			}
		}
		return out
	}
	// Forward: the types the includes can reach.
	reach := []string{typ}
	for i := 0; i < len(reach); i++ {
		for _, p := range refsFrom(reach[i]) {
			for _, t := range p.Targets {
				if slices.Contains(types, t) && !slices.Contains(reach, t) {
					reach = append(reach, t)
				}
			}
		}
	}
	for _, src := range reach[1:] {
		for _, p := range refsFrom(src) {
			// Only references that can reach a stored type can include
			// anything.
			if slices.ContainsFunc(p.Targets, func(t string) bool { return slices.Contains(types, t) }) {
				include = append(include, src+":"+p.Name)
			}
		}
	}
	// Backward: the types whose resources can refer, in steps, to typ.
	back := []string{typ}
	for i := 0; i < len(back); i++ {
		for _, src := range types {
			for _, p := range refsFrom(src) {
				if !slices.Contains(p.Targets, back[i]) {
					continue
				}
				if !slices.Contains(back, src) {
					back = append(back, src)
				}
				v := src + ":" + p.Name
				if !slices.Contains(p.Targets, typ) && !slices.Contains(revinclude, v) {
					revinclude = append(revinclude, v)
				}
			}
		}
	}
	slices.Sort(include)
	slices.Sort(revinclude)
	return include, revinclude
}
