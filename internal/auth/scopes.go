package auth

import (
	"net/url"
	"strings"
)

// Context is the SMART scope context: whose data a resource scope covers.
type Context string

// The three SMART resource scope contexts.
const (
	ContextPatient Context = "patient"
	ContextUser    Context = "user"
	ContextSystem  Context = "system"
)

// Interaction is a set of SMART v2 permissions (the letters c r u d s).
type Interaction uint8

// The SMART v2 permissions, in the order the letters must appear.
const (
	Create Interaction = 1 << iota
	Read
	Update
	Delete
	Search

	allInteractions = Create | Read | Update | Delete | Search
)

const interactionLetters = "cruds"

func (in Interaction) String() string {
	var b strings.Builder
	for i := 0; i < len(interactionLetters); i++ {
		if in&(1<<i) != 0 {
			b.WriteByte(interactionLetters[i])
		}
	}
	return b.String()
}

// Constraint is one granular query parameter of a SMART v2 scope
// (e.g. category=http://…|problem-list-item). A resource the caller returns
// or writes under a constrained grant must satisfy it.
type Constraint struct {
	Param string // search parameter name, one of granularParams
	Value string // unescaped value; token form "system|code", "code", "system|" or "|code"
}

// Token splits a token-typed value. hasSystem is false for a bare "code",
// which per FHIR token search matches any system.
func (c Constraint) Token() (system, code string, hasSystem bool) {
	if i := strings.IndexByte(c.Value, '|'); i >= 0 {
		return c.Value[:i], c.Value[i+1:], true
	}
	return "", c.Value, false
}

// Scope is one parsed scope. Non-resource scopes (openid, launch/patient,
// HelseID's own helseid://scopes/…, …) have an empty Context and only Raw set.
type Scope struct {
	Raw          string
	Context      Context
	ResourceType string // FHIR resource type or "*"
	Interactions Interaction
	Constraints  []Constraint
	V1           bool // written in SMART v1 syntax (.read/.write/.*)
}

// IsResource reports whether s grants access to FHIR resources.
func (s Scope) IsResource() bool { return s.Context != "" }

// ScopeError reports a scope that was dropped. Dropping is always safe: a
// malformed scope never grants anything, so it can never widen access.
type ScopeError struct {
	Scope  string
	Reason string
}

func (e ScopeError) Error() string { return "scope " + `"` + e.Scope + `": ` + e.Reason }

// Scopes is the parsed content of a token's scope claim.
type Scopes []Scope

// nonResourceScopes are the SMART App Launch 2.x scopes that are not about
// resources. They are kept so the REST layer can check for them (Has).
var nonResourceScopes = map[string]bool{
	"openid": true, "fhirUser": true, "profile": true,
	"launch": true, "launch/patient": true, "launch/encounter": true,
	"offline_access": true, "online_access": true,
}

// granularParams are the search parameters we accept in v2 granular scopes.
// Anything else is refused rather than ignored: ignoring a constraint would
// widen the grant, and a parameter the REST layer cannot evaluate on Flag or
// AllergyIntolerance could only be mis-enforced.
var granularParams = map[string]bool{
	"category": true, "code": true, "status": true,
	"clinical-status": true, "verification-status": true,
	"criticality": true, "type": true,
}

const maxScopeLen = 1024

// ParseScopes parses a space-separated scope string strictly. Scopes it
// cannot understand are left out of the result and reported; the result only
// ever grants what a well-formed scope says.
//
// A string is treated as a SMART resource scope (and must then be valid) when
// it has a '/' whose prefix contains no ':' (so helseid://… and nhn:…/… URIs
// stay opaque), or when it has no '/' but a '.' ("*.*", "Flag.read": a
// resource scope missing its context). Everything else is kept as an opaque
// scope that grants no resource access.
func ParseScopes(s string) (Scopes, []ScopeError) {
	var out Scopes
	var errs []ScopeError
	for _, raw := range strings.Fields(s) {
		sc, err := parseScope(raw)
		if err != "" {
			errs = append(errs, ScopeError{Scope: raw, Reason: err})
			continue
		}
		out = append(out, sc)
	}
	return out, errs
}

func parseScope(raw string) (Scope, string) {
	if len(raw) > maxScopeLen {
		return Scope{}, "too long"
	}
	if nonResourceScopes[raw] {
		return Scope{Raw: raw}, ""
	}
	slash := strings.IndexByte(raw, '/')
	switch {
	case slash >= 0 && !strings.Contains(raw[:slash], ":"):
		// a resource scope candidate
	case slash < 0 && strings.Contains(raw, "."):
		return Scope{}, "resource scope without context (patient/, user/ or system/)"
	default:
		return Scope{Raw: raw}, ""
	}

	ctx := Context(raw[:slash])
	switch ctx {
	case ContextPatient, ContextUser, ContextSystem:
	default:
		return Scope{}, "unknown context " + `"` + string(ctx) + `"`
	}
	rest := raw[slash+1:]
	var query string
	hasQuery := false
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query, hasQuery = rest[:q], rest[q+1:], true
	}
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return Scope{}, "missing permissions (.rs, .read, …)"
	}
	rt, perm := rest[:dot], rest[dot+1:]
	if !validResourceType(rt) {
		return Scope{}, "invalid resource type " + `"` + rt + `"`
	}
	sc := Scope{Raw: raw, Context: ctx, ResourceType: rt}
	switch perm {
	case "read":
		sc.Interactions, sc.V1 = Read|Search, true
	case "write":
		sc.Interactions, sc.V1 = Create|Update|Delete, true
	case "*":
		sc.Interactions, sc.V1 = allInteractions, true
	default:
		in, ok := parseV2Permissions(perm)
		if !ok {
			return Scope{}, "invalid permissions " + `"` + perm + `"` + " (v2 letters c r u d s, in that order, each once)"
		}
		sc.Interactions = in
	}
	if hasQuery {
		if sc.V1 {
			return Scope{}, "granular parameters need SMART v2 permissions"
		}
		cs, reason := parseConstraints(query)
		if reason != "" {
			return Scope{}, reason
		}
		sc.Constraints = cs
	}
	return sc, ""
}

// parseV2Permissions accepts a non-empty subsequence of "cruds".
func parseV2Permissions(p string) (Interaction, bool) {
	if p == "" {
		return 0, false
	}
	var in Interaction
	next := 0
	for i := 0; i < len(p); i++ {
		j := strings.IndexByte(interactionLetters[next:], p[i])
		if j < 0 {
			return 0, false
		}
		next += j
		in |= 1 << next
		next++
	}
	return in, true
}

func validResourceType(rt string) bool {
	if rt == "*" {
		return true
	}
	if len(rt) == 0 || len(rt) > 64 || rt[0] < 'A' || rt[0] > 'Z' {
		return false
	}
	for i := 1; i < len(rt); i++ {
		c := rt[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func parseConstraints(q string) ([]Constraint, string) {
	if q == "" {
		return nil, "empty granular query"
	}
	var cs []Constraint
	for part := range strings.SplitSeq(q, "&") {
		eq := strings.IndexByte(part, '=')
		if eq <= 0 {
			return nil, "malformed granular parameter " + `"` + part + `"`
		}
		name, rawVal := part[:eq], part[eq+1:]
		if !granularParams[name] {
			return nil, "unsupported granular parameter " + `"` + name + `"`
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil || val == "" || val == "|" {
			return nil, "malformed value for granular parameter " + `"` + name + `"`
		}
		// A comma is FHIR's OR: it would need the REST layer to evaluate
		// more than one token match, so such scopes are refused rather than
		// half-understood. (Modifiers and chains never get here: the name
		// must be in granularParams.)
		if strings.Contains(val, ",") || strings.Count(val, "|") > 1 {
			return nil, "unsupported granular value for " + `"` + name + `"`
		}
		for i := 0; i < len(val); i++ {
			if val[i] < 0x21 || val[i] > 0x7e {
				return nil, "unsupported character in granular value for " + `"` + name + `"`
			}
		}
		cs = append(cs, Constraint{Param: name, Value: val})
	}
	return cs, ""
}

// Has reports whether the exact non-resource scope name is present
// (e.g. "launch/patient", "offline_access").
func (s Scopes) Has(name string) bool {
	for _, sc := range s {
		if !sc.IsResource() && sc.Raw == name {
			return true
		}
	}
	return false
}

// Contexts returns the set of resource contexts present.
func (s Scopes) Contexts() map[Context]bool {
	m := map[Context]bool{}
	for _, sc := range s {
		if sc.IsResource() {
			m[sc.Context] = true
		}
	}
	return m
}

// String re-joins the raw scopes that were kept.
func (s Scopes) String() string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = sc.Raw
	}
	return strings.Join(parts, " ")
}

// Grant is one scope that allows the interaction asked about.
type Grant struct {
	Scope       string
	Constraints []Constraint // all must hold (AND); empty means unconstrained
}

// Decision is the answer of Permits.
//
// Allowed says whether the interaction may happen at all. When it may, the
// resources involved (the results of a read or search, or the resource being
// created/updated/deleted) must be admitted by at least one grant: Admits
// checks that given a matcher for one constraint. A decision with an
// unconstrained grant admits everything.
type Decision struct {
	Allowed bool
	Grants  []Grant
}

// Constrained reports whether the caller must filter by Admits: true when
// every matching grant carries constraints.
func (d Decision) Constrained() bool {
	if !d.Allowed {
		return false
	}
	for _, g := range d.Grants {
		if len(g.Constraints) == 0 {
			return false
		}
	}
	return true
}

// Admits reports whether a resource passes the decision: some grant whose
// constraints all match. match must return false for any constraint it does
// not understand, so that an unknown parameter narrows instead of widens.
func (d Decision) Admits(match func(Constraint) bool) bool {
	if !d.Allowed {
		return false
	}
	for _, g := range d.Grants {
		ok := true
		for _, c := range g.Constraints {
			if !match(c) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Permits says whether the scopes allow one interaction on resourceType in
// the given context. in must be exactly one of Create, Read, Update, Delete,
// Search (vread and history are Read; _include results are Read on the
// included type). Contexts never stand in for each other: whether a user/
// scope may serve a patient-context request is the REST layer's policy.
func (s Scopes) Permits(ctx Context, resourceType string, in Interaction) Decision {
	var d Decision
	if in == 0 || in&(in-1) != 0 || in&^allInteractions != 0 || resourceType == "" || resourceType == "*" {
		return d
	}
	for _, sc := range s {
		if sc.Context != ctx || sc.Interactions&in == 0 {
			continue
		}
		if sc.ResourceType != "*" && sc.ResourceType != resourceType {
			continue
		}
		d.Allowed = true
		d.Grants = append(d.Grants, Grant{Scope: sc.Raw, Constraints: sc.Constraints})
	}
	return d
}
