package interaction

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// recordGate is the one path by which a search uses resources it did not
// match directly: those _include and _revinclude (with or without
// :iterate) bring in, and those a _has looks at. Each must be the bound
// patient's, pass the decision point for its own type (scopes, rules,
// restricted sections; asked once per type and recorded for the usage
// log) and the token's granular constraints. What is refused is left out
// (or, for _has, counts as absent) without failing the search: its
// existence must not show through another type's search.
type recordGate struct {
	s       *Service
	ctx     context.Context
	req     *Request
	patient string
	// Per type, and for Consent per kind (privacy setting or critical
	// information); nil: refused.
	decisions map[string]*access.Decision
	records   map[string][]store.Version
}

func (s *Service) gate(ctx context.Context, req *Request, patient string) *recordGate {
	// The maps are made on first use: most searches use no gate but
	// their own type's records.
	return &recordGate{s: s, ctx: ctx, req: req, patient: patient}
}

func (g *recordGate) permitted(typ string, critical bool) (*access.Decision, error) {
	key := typ
	if critical {
		key += "#critical"
	}
	d, done := g.decisions[key]
	if !done {
		dd, _, err := g.s.decide(g.ctx, g.req, ask{in: access.Read, typ: typ, patient: g.patient, critical: critical})
		if err != nil {
			return nil, err
		}
		if dd.Allowed() && !dd.Hides(typ) && !(critical && slices.Contains(dd.Hidden, access.Critical)) {
			d = &dd
		}
		if g.decisions == nil {
			g.decisions = map[string]*access.Decision{}
		}
		g.decisions[key] = d
	}
	return d, nil
}

// visible reports whether v may be used: the bound patient's, current,
// and permitted to the caller.
func (g *recordGate) visible(v store.Version) (bool, error) {
	if g.patient == "" || v.Deleted || v.Patient != g.patient || !g.s.recordType(v.Type) {
		return false, nil
	}
	d, err := g.permitted(v.Type, criticalVersion(v))
	if err != nil || d == nil {
		return false, err
	}
	return g.s.admits(*d, v), nil
}

// compartment is the patient's current resources of typ, read once per
// search.
func (g *recordGate) compartment(typ string) ([]store.Version, error) {
	if vs, ok := g.records[typ]; ok {
		return vs, nil
	}
	vs, err := g.s.store.Compartment(g.ctx, g.patient, typ)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if g.records == nil {
		g.records = map[string][]store.Version{}
	}
	g.records[typ] = vs
	return vs, nil
}

// included reads the resources _include and _revinclude ask for, inside
// the patient's record only and through the gate. Plain includes apply to
// the page's matches; :iterate ones also to what was included, round
// after round until nothing new comes in, at most
// search.MaxIncludeRounds rounds after the first and search.MaxIncluded
// resources. When a bound stops it with more to include, the returned
// issue (a warning for the Bundle) says so.
func (s *Service) included(g *recordGate, q *search.Query, page []search.Candidate, seen map[string]bool) ([]store.Version, *fhir.Issue, error) {
	if g.patient == "" || len(page) == 0 || len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil, nil, nil
	}
	type node struct {
		ref string // Type/id
		idx search.Index
	}
	frontier := make([]node, 0, len(page))
	for _, m := range page {
		frontier = append(frontier, node{q.Type + "/" + m.Index.ID, *m.Index})
	}
	var out []store.Version
	var next []node
	capped, probing := "", false
	indexes := map[string]search.Index{}
	indexOf := func(v store.Version) (search.Index, error) {
		key := v.Type + "/" + v.ID
		if idx, ok := indexes[key]; ok {
			return idx, nil
		}
		idx, err := s.indexFor(q, v)
		if err != nil {
			return idx, fmt.Errorf("include %s: %w", key, err)
		}
		indexes[key] = idx
		return idx, nil
	}
	// add includes v if it is new and visible; past a bound it only notes
	// that something was left out.
	add := func(v store.Version) error {
		key := v.Type + "/" + v.ID
		if seen[key] || capped != "" {
			return nil
		}
		ok, err := g.visible(v)
		if err != nil || !ok {
			return err
		}
		switch {
		case probing:
			capped = fmt.Sprintf("_include:iterate and _revinclude:iterate stopped after %d rounds", search.MaxIncludeRounds+1)
			return nil
		case len(out) >= search.MaxIncluded:
			capped = fmt.Sprintf("at most %d resources are included in one page", search.MaxIncluded)
			return nil
		}
		idx, err := indexOf(v)
		if err != nil {
			return err
		}
		seen[key] = true
		out = append(out, v)
		next = append(next, node{key, idx})
		return nil
	}
	for round := 0; len(frontier) > 0 && capped == ""; round++ {
		iterate := round > 0
		probing = round > search.MaxIncludeRounds
		next = nil
		for _, f := range frontier {
			refs := q.IncludeRefs(f.idx)
			if iterate {
				refs = q.IterateRefs(f.idx)
			}
			for _, ref := range refs {
				typ, id, _ := strings.Cut(ref, "/")
				if seen[ref] || !s.recordType(typ) || !ValidID(id) {
					continue
				}
				v, err := s.store.Read(g.ctx, typ, id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, nil, err
				}
				if err := add(v); err != nil {
					return nil, nil, err
				}
			}
		}
		for _, src := range revSources(q, iterate) {
			vs, err := g.compartment(src)
			if err != nil {
				return nil, nil, err
			}
			for _, v := range vs {
				if seen[v.Type+"/"+v.ID] {
					continue
				}
				idx, err := indexOf(v)
				if err != nil {
					return nil, nil, err
				}
				for _, f := range frontier {
					if q.RevIncluded(idx, f.ref, iterate) {
						if err := add(v); err != nil {
							return nil, nil, err
						}
						break
					}
				}
			}
		}
		if !q.Iterates() {
			break
		}
		frontier = next
	}
	if capped == "" {
		return out, nil, nil
	}
	return out, &fhir.Issue{Severity: "warning", Code: "too-costly",
		Diagnostics: capped + "; more resources of the record are referenced: search on from the included ones"}, nil
}

// revSources are the source types of the query's _revinclude (the
// :iterate ones only, for rounds after the first).
func revSources(q *search.Query, iterate bool) []string {
	var out []string
	for _, inc := range q.RevInclude {
		if (!iterate || inc.Iterate) && !slices.Contains(out, inc.Source) {
			out = append(out, inc.Source)
		}
	}
	return out
}

// resolveHas resolves the query's _has (reverse chains), innermost first,
// among the bound patient's resources the caller may see: a _has never
// looks outside the patient's record, and a resource the caller may not
// see counts as absent, so a search cannot reveal through _has what it
// could not read.
func (s *Service) resolveHas(g *recordGate, q *search.Query) error {
	for _, h := range q.Has() {
		if _, err := s.resolveChains(g.ctx, h.Query); err != nil {
			return err
		}
		if err := s.resolveHas(g, h.Query); err != nil {
			return err
		}
		var refs []string
		if g.patient != "" && s.recordType(h.Source) {
			vs, err := g.compartment(h.Source)
			if err != nil {
				return err
			}
			for _, v := range vs {
				ok, err := g.visible(v)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				var idx search.Index
				if h.Reextract() {
					idx, err = s.reg.Extract(v.Type, v.Body)
					if err == nil && !v.LastUpdated.IsZero() {
						idx.SetLastUpdated(v.LastUpdated)
					}
				} else {
					idx, err = s.indexOf(v)
				}
				if err != nil {
					return fmt.Errorf("_has %s/%s: %w", v.Type, v.ID, err)
				}
				if h.Query.Match(idx) {
					refs = append(refs, h.Refs(idx)...)
				}
			}
		}
		h.Resolve(refs)
	}
	return nil
}

// iterateCapabilities completes a type's search capabilities with what
// this file serves: the values usable with _include:iterate and
// _revinclude:iterate listed on the root type (the convention R5
// documents for searchInclude; R4 has none), and _has on every type that
// some record type refers to.
func (s *Service) iterateCapabilities(typ string, include, revinclude []string, params []csSearchParam) ([]string, []string, []csSearchParam) {
	types := s.codec.Types()
	inc, rev := s.reg.IterateCapabilities(typ, types)
	include = append(include, inc...)
	revinclude = append(revinclude, rev...)
	for _, src := range types {
		for _, p := range s.reg.Params(src) {
			if p.Type == "reference" && slices.Contains(p.Targets, typ) {
				return include, revinclude, append(params, csSearchParam{Name: "_has", Type: "special",
					Documentation: fmt.Sprintf("reverse chaining, _has:Type:reference:parameter=value (nested at most %d deep), "+
						"evaluated among the bound patient's resources the caller may see", search.MaxHasDepth)})
			}
		}
	}
	return include, revinclude, params
}
