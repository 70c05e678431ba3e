package search

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// offeredOutsideRegistry are the R4 parameters of the types searched
// without the registry (internal/interaction usagelog.go, documents.go),
// as the CapabilityStatement lists them.
var offeredOutsideRegistry = map[string][]string{
	"AuditEvent":        {"patient", "agent", "date", "outcome"},
	"DocumentReference": {"patient", "type", "category", "date"},
	"DiagnosticReport":  {"patient", "subject", "date", "category", "code", "status"},
	"Observation":       {"patient", "subject", "date", "category", "code", "status"},
	"Subscription":      nil,
}

type r4Param struct {
	Type       string `json:"type"`
	URL        string `json:"url"`
	Expression string `json:"expression"`
}

func loadR4Params(t *testing.T) map[string]map[string]r4Param {
	t.Helper()
	b, err := os.ReadFile("testdata/r4-base-search-parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Types map[string]map[string]r4Param `json:"types"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Types
}

// terms normalises an expression to its sorted union terms, reading
// "(X as T)" and "X.as(T)" alike.
func terms(expr string) []string {
	var out []string
	for _, t := range strings.Split(expr, "|") {
		t = strings.TrimSpace(t)
		if inner, ok := strings.CutPrefix(t, "("); ok {
			if body, typ, ok := strings.Cut(strings.TrimSuffix(inner, ")"), " as "); ok {
				t = body + ".as(" + typ + ")"
			}
		}
		if t != "" {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// TestRegistryCoversR4: every R4 base search parameter of a served type
// is in the registry with R4's type, url and expression (the terms for
// that type), or is listed in R4LeftOut with a reason; and nothing is
// listed as left out that the registry has.
func TestRegistryCoversR4(t *testing.T) {
	r4 := loadR4Params(t)
	r := testRegistry(t)
	common := map[string]r4Param{}
	for _, k := range []string{"Resource", "DomainResource"} {
		for code, p := range r4[k] {
			common[code] = p
		}
	}
	for typ, params := range r4 {
		if typ == "Resource" || typ == "DomainResource" {
			continue
		}
		all := map[string]r4Param{}
		for code, p := range params {
			all[code] = p
		}
		offered, outside := offeredOutsideRegistry[typ]
		if !outside {
			for code, p := range common {
				p.Expression = strings.ReplaceAll(p.Expression, "Resource.", typ+".")
				all[code] = p
			}
		}
		for code, p := range all {
			why, left := R4LeftOut[typ][code]
			if !left && !outside {
				why, left = R4LeftOut["Resource"][code]
			}
			if outside {
				if !left && !slices.Contains(offered, code) {
					t.Errorf("%s.%s (%s): neither offered nor in R4LeftOut", typ, code, p.URL)
				}
				continue
			}
			ours, ok := r.Param(typ, code)
			switch {
			case ok && left:
				t.Errorf("%s.%s: in the registry and in R4LeftOut (%s)", typ, code, why)
			case !ok && !left:
				t.Errorf("%s.%s (%s %s): neither in the registry nor in R4LeftOut", typ, code, p.Type, p.URL)
			case ok:
				if ours.Type != p.Type {
					t.Errorf("%s.%s: type %s, R4 %s", typ, code, ours.Type, p.Type)
				}
				if ours.URL != p.URL {
					t.Errorf("%s.%s: url %s, R4 %s", typ, code, ours.URL, p.URL)
				}
				var mine []string
				for _, term := range terms(ours.Expression) {
					if strings.HasPrefix(strings.TrimPrefix(term, "("), typ+".") || strings.HasPrefix(term, "Resource.") {
						mine = append(mine, strings.Replace(term, "Resource.", typ+".", 1))
					}
				}
				sort.Strings(mine)
				if want := terms(strings.ReplaceAll(p.Expression, "Resource.", typ+".")); !slices.Equal(mine, want) {
					t.Errorf("%s.%s: expression terms %q, R4 %q", typ, code, mine, want)
				}
			}
		}
	}
	for typ, m := range R4LeftOut {
		for code := range m {
			if typ == "Resource" {
				if _, ok := common[code]; !ok {
					t.Errorf("R4LeftOut Resource.%s is not an R4 base parameter", code)
				}
				continue
			}
			if _, ok := r4[typ][code]; !ok {
				t.Errorf("R4LeftOut %s.%s is not an R4 base parameter", typ, code)
			}
		}
	}
}

// TestLeftOutDocumentation: the CapabilityStatement sentence names each
// parameter left out and its reason.
func TestLeftOutDocumentation(t *testing.T) {
	doc := LeftOutDocumentation("Patient", true)
	for _, want := range []string{"phonetic: needs a phonetic algorithm", "_content", "_filter: the _filter", "R4 search parameters not offered"} {
		if !strings.Contains(doc, want) {
			t.Errorf("documentation %q lacks %q", doc, want)
		}
	}
	if d := LeftOutDocumentation("Subscription", false); strings.Contains(d, "_content") || !strings.Contains(d, "criteria") {
		t.Errorf("Subscription documentation %q", d)
	}
}
