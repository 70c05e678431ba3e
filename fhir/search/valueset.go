package search

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kjernejournal/kjernejournal/profiles"
)

// The :in and :not-in token modifiers take a ValueSet's canonical URL.
// They resolve against the server's own ValueSets (profiles/valueset-*),
// the ones it serves, so a client can read what a search means. A
// ValueSet is expanded from its compose: an include of a whole system
// takes every code of that system, an include with concepts only those
// codes. A filter (SNOMED CT is-a, say), an exclude or an import of
// another ValueSet needs a terminology service this server does not
// have: such a ValueSet is refused with the reason, never approximated,
// because a wrong expansion silently hides or shows clinical records.

type valueSet struct {
	url        string
	systems    map[string]bool            // whole systems
	codes      map[string]map[string]bool // system → codes
	unexpanded string                     // why it cannot be expanded here, or ""
}

func (v *valueSet) contains(system, code string) bool {
	if code == "" {
		return false
	}
	return v.systems[system] || v.codes[system][code]
}

var valueSets = func() map[string]*valueSet {
	out := map[string]*valueSet{}
	names, err := fs.Glob(profiles.ValueSets, "valueset-*.json")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		b, err := profiles.ValueSets.ReadFile(n)
		if err != nil {
			panic(err)
		}
		v, err := parseValueSet(b)
		if err != nil {
			panic(fmt.Sprintf("search: profiles/%s: %v", n, err))
		}
		out[v.url] = v
	}
	return out
}()

func parseValueSet(b []byte) (*valueSet, error) {
	var r struct {
		URL     string `json:"url"`
		Compose struct {
			Include []struct {
				System  string `json:"system"`
				Concept []struct {
					Code string `json:"code"`
				} `json:"concept"`
				Filter []struct {
					Property string `json:"property"`
					Op       string `json:"op"`
					Value    string `json:"value"`
				} `json:"filter"`
				ValueSet []string `json:"valueSet"`
			} `json:"include"`
			Exclude []json.RawMessage `json:"exclude"`
		} `json:"compose"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.URL == "" {
		return nil, fmt.Errorf("ValueSet without url")
	}
	v := &valueSet{url: r.URL, systems: map[string]bool{}, codes: map[string]map[string]bool{}}
	var why []string
	if len(r.Compose.Exclude) > 0 {
		why = append(why, "it excludes codes")
	}
	for _, in := range r.Compose.Include {
		switch {
		case len(in.ValueSet) > 0:
			why = append(why, "it imports "+strings.Join(in.ValueSet, ", "))
		case len(in.Filter) > 0:
			f := in.Filter[0]
			why = append(why, fmt.Sprintf("its include of %s has a filter (%s %s %s) that needs a terminology service", in.System, f.Property, f.Op, f.Value))
		case in.System == "":
			why = append(why, "an include names no system")
		case len(in.Concept) == 0:
			v.systems[in.System] = true
		default:
			if v.codes[in.System] == nil {
				v.codes[in.System] = map[string]bool{}
			}
			for _, c := range in.Concept {
				v.codes[in.System][c.Code] = true
			}
		}
	}
	v.unexpanded = strings.Join(why, "; ")
	return v, nil
}

// parseValueSetRef resolves the value of :in / :not-in: a canonical URL,
// optionally url|version (the version is not checked: the server has one
// version of each).
func parseValueSetRef(raw string) (qvalue, string) {
	u := unescape(raw)
	if i := strings.LastIndexByte(u, '|'); i > 0 {
		u = u[:i]
	}
	v, ok := valueSets[u]
	if !ok {
		return qvalue{}, fmt.Sprintf("%q is not a ValueSet this server knows (read GET /ValueSet for the ones it has)", truncate(u))
	}
	if v.unexpanded != "" {
		return qvalue{}, fmt.Sprintf("ValueSet %s cannot be expanded here: %s", v.url, v.unexpanded)
	}
	return qvalue{vs: v}, ""
}

// parseOfType parses the value of :of-type: type-system|type-code|value,
// where the type is a coding of Identifier.type and value the
// Identifier.value; the type system may be empty (any system).
func parseOfType(raw string) (qvalue, string) {
	parts := splitUnescaped(raw, '|')
	if len(parts) != 3 {
		return qvalue{}, fmt.Sprintf("%q is not type-system|type-code|value", truncate(raw))
	}
	s, c, val := unescape(parts[0]), unescape(parts[1]), unescape(parts[2])
	if c == "" || val == "" {
		return qvalue{}, fmt.Sprintf("%q needs a type code and an identifier value", truncate(raw))
	}
	v := qvalue{mode: tokAny, code: c, raw: val}
	if s != "" {
		v.mode, v.system = tokSysCode, s
	}
	return v, ""
}

// matchOfType matches an identifier value indexed with one of its type
// codings in Raw ("system|code", see appendToken).
func (q *qvalue) matchOfType(x *Value) bool {
	if x.Code != q.raw || x.Raw == "" {
		return false
	}
	sys, code, _ := strings.Cut(x.Raw, "|")
	if q.mode == tokSysCode {
		return sys == q.system && code == q.code
	}
	return code == q.code
}
