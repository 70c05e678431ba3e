package search

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/profiles"
)

// Definition is the part of an R4 SearchParameter resource the registry
// uses. The JSON tags are the SearchParameter element names, so a
// definition decodes straight from the resource.
type Definition struct {
	URL         string   `json:"url"`
	Name        string   `json:"name"`
	Code        string   `json:"code"`
	Description string   `json:"description"`
	Base        []string `json:"base"`
	Type        string   `json:"type"`
	Expression  string   `json:"expression"`
	Target      []string `json:"target"`
	Modifier    []string `json:"modifier"`
}

// Param is one search parameter as it applies to one resource type.
type Param struct {
	Name          string // the code used in the query string
	Type          string // token | date | reference | string | uri | quantity
	URL           string // SearchParameter.url, for CapabilityStatement definition
	Documentation string
	Expression    string   // the definition's full FHIRPath expression
	Targets       []string // reference targets
	Modifiers     []string // the modifiers the definition allows

	paths []path // the expression's components for this resource type
}

func (p *Param) allows(modifier string) bool { return slices.Contains(p.Modifiers, modifier) }

// queryModifiers spells the modifiers of a definition as a query writes
// them: SearchParameter.modifier codes the identifier-type modifier
// "ofType" (the R4 search-modifier-code), the URL ":of-type".
func queryModifiers(codes []string) []string {
	out := slices.Clone(codes)
	for i, c := range out {
		if c == "ofType" {
			out[i] = "of-type"
		}
	}
	return out
}

// Registry holds the search parameters of a server's resource types. It
// is immutable after construction and safe for concurrent use.
type Registry struct {
	types  []string
	byType map[string][]*Param // sorted by Name
	// Now is the clock the "ap" prefix measures its tolerance from; nil
	// means time.Now. Set it before the registry is shared.
	Now func() time.Time
}

// Load builds the registry of the given resource types from the
// definitions embedded in package profiles.
func Load(types []string) (*Registry, error) {
	defs, err := ParseDefinitions(profiles.SearchParameters)
	if err != nil {
		return nil, err
	}
	return NewRegistry(defs, types)
}

// Types returns the resource types the registry was built for (a new
// slice).
func (r *Registry) Types() []string { return slices.Clone(r.types) }

// Has reports whether the registry was built for resource type t.
func (r *Registry) Has(t string) bool { return slices.Contains(r.types, t) }

// ParseDefinitions reads SearchParameter resources from a Bundle.
func ParseDefinitions(bundle []byte) ([]Definition, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, fmt.Errorf("search: definitions: %w", err)
	}
	if b.ResourceType != "Bundle" {
		return nil, fmt.Errorf("search: definitions: want a Bundle, got %q", b.ResourceType)
	}
	defs := make([]Definition, 0, len(b.Entry))
	for i, e := range b.Entry {
		var d Definition
		var rt struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &rt); err != nil || rt.ResourceType != "SearchParameter" {
			return nil, fmt.Errorf("search: definitions: entry %d is not a SearchParameter", i)
		}
		if err := json.Unmarshal(e.Resource, &d); err != nil {
			return nil, fmt.Errorf("search: definitions: entry %d: %w", i, err)
		}
		defs = append(defs, d)
	}
	return defs, nil
}

var supportedTypes = []string{"token", "date", "reference", "string", "uri", "quantity"}

// NewRegistry compiles definitions for the resource types given. Every
// base type must be one of types (or Resource / DomainResource, meaning
// all of them) and
// every expression must be in the evaluator's subset; anything else is an
// error, because a parameter the server advertises but cannot evaluate
// would silently match nothing.
func NewRegistry(defs []Definition, types []string) (*Registry, error) {
	r := &Registry{types: slices.Clone(types), byType: make(map[string][]*Param)}
	for _, d := range defs {
		if d.Code == "" || d.URL == "" {
			return nil, fmt.Errorf("search: definition %q: code and url are required", d.Name)
		}
		if !slices.Contains(supportedTypes, d.Type) {
			return nil, fmt.Errorf("search: %s: type %q is not supported", d.URL, d.Type)
		}
		terms, err := parseExpression(d.Expression)
		if err != nil {
			return nil, fmt.Errorf("search: %s: %w", d.URL, err)
		}
		for _, base := range d.Base {
			bases := []string{base}
			if base == "Resource" || base == "DomainResource" {
				bases = r.types
			} else if !slices.Contains(r.types, base) {
				return nil, fmt.Errorf("search: %s: base %q is not a served type", d.URL, base)
			}
			for _, typ := range bases {
				var ps []path
				for _, t := range terms {
					if t.root == base {
						ps = append(ps, t)
					}
				}
				if len(ps) == 0 {
					return nil, fmt.Errorf("search: %s: expression has no path for %s", d.URL, base)
				}
				for _, existing := range r.byType[typ] {
					if existing.Name == d.Code {
						return nil, fmt.Errorf("search: %s: %s already has a parameter %q (%s)", d.URL, typ, d.Code, existing.URL)
					}
				}
				r.byType[typ] = append(r.byType[typ], &Param{
					Name: d.Code, Type: d.Type, URL: d.URL, Documentation: d.Description,
					Expression: d.Expression, Targets: slices.Clone(d.Target),
					Modifiers: queryModifiers(d.Modifier), paths: ps,
				})
			}
		}
	}
	for _, ps := range r.byType {
		slices.SortFunc(ps, func(a, b *Param) int { return strings.Compare(a.Name, b.Name) })
	}
	return r, nil
}

// Params lists the parameters of a resource type, sorted by name, for the
// CapabilityStatement. The slice is a copy.
func (r *Registry) Params(resourceType string) []Param {
	ps := r.byType[resourceType]
	out := make([]Param, len(ps))
	for i, p := range ps {
		out[i] = *p
		out[i].Targets = slices.Clone(p.Targets)
		out[i].Modifiers = slices.Clone(p.Modifiers)
	}
	return out
}

// Param returns the named parameter of a resource type.
func (r *Registry) Param(resourceType, name string) (Param, bool) {
	p := r.param(resourceType, name)
	if p == nil {
		return Param{}, false
	}
	return *p, true
}

func (r *Registry) param(resourceType, name string) *Param {
	ps := r.byType[resourceType]
	i, ok := slices.BinarySearchFunc(ps, name, func(p *Param, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return nil
	}
	return ps[i]
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
