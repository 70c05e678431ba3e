package search

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// MaxHasDepth is how deeply _has may nest (_has:A:p:_has:B:q:r=v is 2).
// Each level is one more pass over one patient's resources of a type;
// three is more than any clinical question needs and keeps a query's work
// bounded whatever arrives.
const MaxHasDepth = 3

// Has is one reverse chain, _has:Source:Param:condition=value: the
// searched resource matches when some resource of Source that meets the
// condition (Query, which may hold another _has) refers to it through
// Param. Like a Chain, the caller resolves it (Resolve) because the store
// holds the resources; it must do so among the bound patient's resources
// only, and among those the caller may see. Until resolved it matches
// nothing, so a forgotten resolution can only narrow a search.
type Has struct {
	Source, Param string
	Query         *Query
	refs          map[string]bool
	resolved      bool
}

// Has lists the query's reverse chains, for the caller to resolve before
// Match.
func (q *Query) Has() []*Has { return q.has }

// Refs returns the "Type/id" references the resource idx (of h.Source)
// makes through h.Param.
func (h *Has) Refs(idx Index) []string {
	var out []string
	for _, v := range idx.Values(h.Param) {
		if t, id, ok := strings.Cut(v.Ref, "/"); ok && t != "" && id != "" && !strings.Contains(v.Ref, ":") {
			out = append(out, v.Ref)
		}
	}
	return out
}

// Reextract reports whether resources of h.Source must be matched on an
// index extracted again from the body (Query.Reextract), counting the
// reference parameter too.
func (h *Has) Reextract() bool {
	if h.Query.Reextract() {
		return true
	}
	p := h.Query.reg.param(h.Source, h.Param)
	return p != nil && p.addedLater(h.Source)
}

// Resolve records the references ("Type/id") that the resources of
// h.Source meeting the condition make through h.Param.
func (h *Has) Resolve(refs []string) {
	h.refs = make(map[string]bool, len(refs))
	for _, r := range refs {
		h.refs[r] = true
	}
	h.resolved = true
}

func (h *Has) match(idx *Index) bool {
	return h.resolved && h.refs[idx.Type+"/"+idx.ID]
}

// reverseChain parses _has:Source:param:condition=value.
func (p *parser) reverseChain(name, value string) {
	if strings.Count(name, "_has:") > MaxHasDepth {
		p.fail(name, "not-supported", "_has nests at most %d deep", MaxHasDepth)
		return
	}
	parts := strings.SplitN(name, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		p.fail(name, "invalid", "%s is not _has:Type:referenceParameter:searchParameter", truncate(name))
		return
	}
	src, ref, cond := parts[1], parts[2], parts[3]
	if _, ok := p.q.reg.byType[src]; !ok {
		p.fail(name, "not-supported", "%s: resource type %s is not searched here", truncate(name), truncate(src))
		return
	}
	prm := p.q.reg.param(src, ref)
	if prm == nil || prm.Type != "reference" {
		p.fail(name, "invalid", "%s: %s is not a reference parameter of %s", truncate(name), truncate(ref), src)
		return
	}
	if !slices.Contains(prm.Targets, p.q.Type) {
		p.fail(name, "invalid", "%s: %s:%s does not refer to %s", truncate(name), src, ref, p.q.Type)
		return
	}
	cb, _, _ := strings.Cut(cond, ":")
	cb, _, _ = strings.Cut(cb, ".")
	if slices.Contains(resultParams, cb) {
		p.fail(name, "invalid", "%s: %s is a result parameter; _has takes a search parameter of %s", truncate(name), cb, src)
		return
	}
	sub, warnings, err := p.q.reg.ParseQuery(src, url.Values{cond: {value}}, p.lenient)
	var perr *Error
	if errors.As(err, &perr) {
		for _, is := range perr.Issues {
			p.fail(name, is.Code, "%s: %s", truncate(name), is.Diagnostics)
		}
		return
	}
	if err != nil {
		p.fail(name, "invalid", "%s: %v", truncate(name), err)
		return
	}
	for _, w := range warnings {
		w.Expression = []string{truncate(name)}
		p.issues = append(p.issues, w)
	}
	if len(sub.clauses) == 0 && len(sub.has) == 0 {
		return // the condition was dropped (lenient handling)
	}
	p.q.has = append(p.q.has, &Has{Source: src, Param: ref, Query: sub})
	p.q.accepted.Add(name, value)
}
