package privacy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/profiles"
)

// Synthetic identities: patient ids and HPR numbers are made up.
const (
	pat   = "pas-1"
	hprA  = "991000101"
	hprB  = "991000102"
	setAt = "2025-03-01T10:15:00Z"
)

var setTime = time.Date(2025, 3, 1, 10, 15, 0, 0, time.UTC)

// r4 parses b as an R4 resource with the library the REST layer's codec
// uses, so that every Consent here is checked against the base spec too.
func r4(t *testing.T, b []byte) error {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	_, err = u.Unmarshal(b)
	return err
}

func cc(system, code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
}

func hprActor(system, value string) map[string]any {
	return map[string]any{
		"role":      cc(ActorRoleSystem, ActorRoleCode),
		"reference": map[string]any{"identifier": map[string]any{"system": system, "value": value}},
	}
}

// consent builds a valid KjPrivacyConsent of kind k and applies edits.
func consent(k Kind, edits ...func(c map[string]any)) map[string]any {
	c := map[string]any{
		"resourceType": "Consent",
		"id":           "sett-1",
		"meta":         map[string]any{"profile": []any{ProfileURL}},
		"status":       "active",
		"scope":        cc(ScopeSystem, ScopeCode),
		"category":     []any{cc(SettingSystem, string(k))},
		"patient":      map[string]any{"reference": "Patient/" + pat},
		"dateTime":     setAt,
		"policyRule":   cc(PolicyRuleSystem, PolicyRuleCode),
		"provision":    map[string]any{"type": "deny"},
	}
	switch k {
	case Restriction:
		prov(c)["code"] = []any{cc(SectionSystem, "medications")}
	case Block:
		prov(c)["actor"] = []any{hprActor(domain.SystemHPR, hprA)}
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func prov(c map[string]any) map[string]any { return c["provision"].(map[string]any) }

func js(t *testing.T, c map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	return b
}

func sourceExt(code string) []any {
	return []any{map[string]any{
		"url":         SourceExtensionURL,
		"valueCoding": map[string]any{"system": SourceSystem, "code": code},
	}}
}

func TestParseValid(t *testing.T) {
	cases := []struct {
		name string
		body map[string]any
		want Setting
	}{
		{"reservation", consent(Reservation),
			Setting{ID: "sett-1", Patient: pat, Kind: Reservation, Active: true, Since: setTime}},
		{"lifted reservation", consent(Reservation, func(c map[string]any) { c["status"] = "inactive" }),
			Setting{ID: "sett-1", Patient: pat, Kind: Reservation, Since: setTime}},
		{"automatic reservation", consent(Reservation, func(c map[string]any) { c["extension"] = sourceExt(SourcePopulationReg) }),
			Setting{ID: "sett-1", Patient: pat, Kind: Reservation, Active: true, Since: setTime, Automatic: true}},
		{"restriction of two sections, in canonical order", consent(Restriction, func(c map[string]any) {
			prov(c)["code"] = []any{cc(SectionSystem, "visits"), cc(SectionSystem, "medications")}
		}), Setting{ID: "sett-1", Patient: pat, Kind: Restriction, Active: true, Since: setTime,
			Sections: []access.Section{access.Medications, access.VisitHistory}}},
		{"whole-record restriction is every section", consent(Restriction, func(c map[string]any) {
			prov(c)["code"] = []any{cc(SectionSystem, "medications"), cc(SectionSystem, WholeRecordCode)}
		}), Setting{ID: "sett-1", Patient: pat, Kind: Restriction, Active: true, Since: setTime, Sections: AllSections}},
		{"block of two HP, repeats dropped", consent(Block, func(c map[string]any) {
			prov(c)["actor"] = []any{hprActor(domain.SystemHPR, hprB), hprActor(domain.SystemHPR, hprA), hprActor(domain.SystemHPR, hprB)}
		}), Setting{ID: "sett-1", Patient: pat, Kind: Block, Active: true, Since: setTime, BlockedHPR: []string{hprA, hprB}}},
		{"portal access removed", consent(PortalAccessRemoved),
			Setting{ID: "sett-1", Patient: pat, Kind: PortalAccessRemoved, Active: true, Since: setTime}},
		{"no id yet, offset and fractional seconds, extra elements", consent(Reservation, func(c map[string]any) {
			delete(c, "id")
			c["dateTime"] = "2025-03-01T11:15:00.250+01:00"
			c["text"] = map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">Reservasjon</div>`}
			c["category"] = []any{cc(SettingSystem, "reservasjon"), cc("http://loinc.org", "59284-0")}
		}), Setting{Patient: pat, Kind: Reservation, Active: true, Since: setTime.Add(250 * time.Millisecond)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := js(t, tc.body)
			require.NoError(t, r4(t, b), "fixture must be valid R4")
			got, err := Parse(b)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		name string
		body []byte         // raw body; when nil, built from c
		c    map[string]any // a Consent with one profile rule broken
		path string         // the one issue expected
		// validR4 says the Consent is valid R4 and breaks only the
		// profile; otherwise the R4 codec must refuse it as well.
		validR4 bool
	}{
		{name: "not JSON", body: []byte(`{"resourceType":`), path: "Consent"},
		{name: "JSON array", body: []byte(`[]`), path: "Consent"},
		{name: "not a Consent", c: consent(Reservation, func(c map[string]any) { c["resourceType"] = "Patient" }), path: "Consent.resourceType"},
		{name: "malformed id", c: consent(Reservation, func(c map[string]any) { c["id"] = "sett 1" }), path: "Consent.id"},
		{name: "modifier extension", validR4: true, path: "Consent.modifierExtension", c: consent(Reservation, func(c map[string]any) {
			c["modifierExtension"] = []any{map[string]any{"url": "https://example.org/fhir/unless", "valueBoolean": true}}
		})},
		{name: "status missing", c: consent(Reservation, func(c map[string]any) { delete(c, "status") }), path: "Consent.status"},
		{name: "status proposed", validR4: true, c: consent(Reservation, func(c map[string]any) { c["status"] = "proposed" }), path: "Consent.status"},
		{name: "status wrongly typed", c: consent(Reservation, func(c map[string]any) { c["status"] = 1 }), path: "Consent.status"},
		{name: "scope research", validR4: true, c: consent(Reservation, func(c map[string]any) { c["scope"] = cc(ScopeSystem, "research") }), path: "Consent.scope"},
		{name: "scope missing", c: consent(Reservation, func(c map[string]any) { delete(c, "scope") }), path: "Consent.scope"},
		{name: "category missing", c: consent(Reservation, func(c map[string]any) { delete(c, "category") }), path: "Consent.category[0]"},
		{name: "category without privacy-setting code", validR4: true, path: "Consent.category[0]", c: consent(Reservation, func(c map[string]any) {
			c["category"] = []any{cc("http://loinc.org", "59284-0")}
		})},
		{name: "unknown privacy-setting code", validR4: true, path: "Consent.category[0].coding[0].code", c: consent(Reservation, func(c map[string]any) {
			c["category"] = []any{cc(SettingSystem, "samtykke")}
		})},
		{name: "two privacy-setting codes", validR4: true, path: "Consent.category[0]", c: consent(Reservation, func(c map[string]any) {
			c["category"] = []any{map[string]any{"coding": []any{
				map[string]any{"system": SettingSystem, "code": "reservasjon"},
				map[string]any{"system": SettingSystem, "code": "portaltilgang"},
			}}}
		})},
		{name: "privacy-setting code not first", validR4: true, path: "Consent.category[1]", c: consent(Reservation, func(c map[string]any) {
			c["category"] = []any{cc("http://loinc.org", "59284-0"), cc(SettingSystem, "reservasjon")}
		})},
		{name: "patient missing", validR4: true, c: consent(Reservation, func(c map[string]any) { delete(c, "patient") }), path: "Consent.patient.reference"},
		{name: "patient as absolute URL", validR4: true, path: "Consent.patient.reference", c: consent(Reservation, func(c map[string]any) {
			c["patient"] = map[string]any{"reference": "https://example.org/fhir/Patient/" + pat}
		})},
		{name: "patient by identifier only", validR4: true, path: "Consent.patient.reference", c: consent(Reservation, func(c map[string]any) {
			c["patient"] = map[string]any{"identifier": map[string]any{"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "17837012345"}}
		})},
		{name: "dateTime missing", validR4: true, c: consent(Reservation, func(c map[string]any) { delete(c, "dateTime") }), path: "Consent.dateTime"},
		{name: "dateTime a date only", validR4: true, c: consent(Reservation, func(c map[string]any) { c["dateTime"] = "2025-03-01" }), path: "Consent.dateTime"},
		{name: "dateTime not a date", c: consent(Reservation, func(c map[string]any) { c["dateTime"] = "1. mars 2025" }), path: "Consent.dateTime"},
		{name: "policyRule missing", validR4: true, c: consent(Reservation, func(c map[string]any) { delete(c, "policyRule") }), path: "Consent.policyRule"},
		{name: "policyRule OPTIN", validR4: true, path: "Consent.policyRule", c: consent(Reservation, func(c map[string]any) {
			c["policyRule"] = cc(PolicyRuleSystem, "OPTIN")
		})},
		{name: "provision missing", validR4: true, c: consent(Reservation, func(c map[string]any) { delete(c, "provision") }), path: "Consent.provision"},
		{name: "provision permit", validR4: true, c: consent(Restriction, func(c map[string]any) { prov(c)["type"] = "permit" }), path: "Consent.provision.type"},
		{name: "provision type missing", validR4: true, c: consent(Restriction, func(c map[string]any) { delete(prov(c), "type") }), path: "Consent.provision.type"},
		{name: "provision period", validR4: true, path: "Consent.provision.period", c: consent(Restriction, func(c map[string]any) {
			prov(c)["period"] = map[string]any{"end": "2025-04-01"}
		})},
		{name: "nested provision", validR4: true, path: "Consent.provision.provision", c: consent(Restriction, func(c map[string]any) {
			prov(c)["provision"] = []any{map[string]any{"type": "permit", "code": []any{cc(SectionSystem, "medications")}}}
		})},
		{name: "restriction without sections", validR4: true, c: consent(Restriction, func(c map[string]any) { delete(prov(c), "code") }), path: "Consent.provision.code"},
		{name: "restriction of unknown section", validR4: true, path: "Consent.provision.code[1]", c: consent(Restriction, func(c map[string]any) {
			prov(c)["code"] = []any{cc(SectionSystem, "medications"), cc(SectionSystem, "lab")}
		})},
		{name: "restriction code from another system", validR4: true, path: "Consent.provision.code[0]", c: consent(Restriction, func(c map[string]any) {
			prov(c)["code"] = []any{cc("http://loinc.org", "10160-0")}
		})},
		{name: "section concept with two section codes", validR4: true, path: "Consent.provision.code[0]", c: consent(Restriction, func(c map[string]any) {
			prov(c)["code"] = []any{map[string]any{"coding": []any{
				map[string]any{"system": SectionSystem, "code": "medications"},
				map[string]any{"system": SectionSystem, "code": "visits"},
			}}}
		})},
		{name: "block without actor", validR4: true, c: consent(Block, func(c map[string]any) { delete(prov(c), "actor") }), path: "Consent.provision.actor"},
		{name: "blocked HP by literal reference", validR4: true, path: "Consent.provision.actor[0].reference.identifier", c: consent(Block, func(c map[string]any) {
			prov(c)["actor"] = []any{map[string]any{"role": cc(ActorRoleSystem, ActorRoleCode), "reference": map[string]any{"reference": "Practitioner/hp-1"}}}
		})},
		{name: "blocked HP by person number", validR4: true, path: "Consent.provision.actor[0].reference.identifier.system", c: consent(Block, func(c map[string]any) {
			prov(c)["actor"] = []any{hprActor("urn:oid:2.16.578.1.12.4.1.4.1", "17837012345")}
		})},
		{name: "HPR number not digits", validR4: true, path: "Consent.provision.actor[1].reference.identifier.value", c: consent(Block, func(c map[string]any) {
			prov(c)["actor"] = []any{hprActor(domain.SystemHPR, hprA), hprActor(domain.SystemHPR, "HPR-991000102")}
		})},
		{name: "sections on a reservation", validR4: true, path: "Consent.provision.code", c: consent(Reservation, func(c map[string]any) {
			prov(c)["code"] = []any{cc(SectionSystem, "all")}
		})},
		{name: "actor on a restriction", validR4: true, path: "Consent.provision.actor", c: consent(Restriction, func(c map[string]any) {
			prov(c)["actor"] = []any{hprActor(domain.SystemHPR, hprA)}
		})},
		{name: "automatic restriction", validR4: true, c: consent(Restriction, func(c map[string]any) { c["extension"] = sourceExt(SourcePopulationReg) }), path: "Consent.extension[0]"},
		{name: "unknown source", validR4: true, c: consent(Reservation, func(c map[string]any) { c["extension"] = sourceExt("citizen") }), path: "Consent.extension[0].valueCoding"},
		{name: "source twice", validR4: true, path: "Consent.extension[1]", c: consent(Reservation, func(c map[string]any) {
			c["extension"] = append(sourceExt(SourcePopulationReg), sourceExt(SourcePopulationReg)...)
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.body
			if b == nil {
				b = js(t, tc.c)
			}
			if tc.validR4 {
				require.NoError(t, r4(t, b), "the fixture should break the profile only")
			} else {
				require.Error(t, r4(t, b), "the R4 codec should refuse this before Parse sees it")
			}
			got, err := Parse(b)
			assert.Zero(t, got)
			var pe *ProfileError
			require.ErrorAs(t, err, &pe)
			require.Len(t, pe.Issues, 1, "%v", pe.Issues)
			assert.Equal(t, tc.path, pe.Issues[0].Path)
			assert.NotEmpty(t, pe.Issues[0].Message)
			assert.Contains(t, err.Error(), tc.path+": ")
		})
	}
}

func TestParseReportsEveryIssue(t *testing.T) {
	b := js(t, consent(Block, func(c map[string]any) {
		c["status"] = "draft"
		c["dateTime"] = "2025"
		prov(c)["type"] = "permit"
		prov(c)["actor"] = []any{hprActor(domain.SystemHPR, "x")}
	}))
	require.NoError(t, r4(t, b))
	_, err := Parse(b)
	var pe *ProfileError
	require.ErrorAs(t, err, &pe)
	var paths []string
	for _, is := range pe.Issues {
		paths = append(paths, is.Path)
	}
	assert.ElementsMatch(t, []string{"Consent.status", "Consent.dateTime", "Consent.provision.type", "Consent.provision.actor[0].reference.identifier.value"}, paths)
}

// Every Consent the package produces is valid R4, satisfies the profile
// and parses back to the same setting.
func TestConsentRoundTrip(t *testing.T) {
	settings := []Setting{
		{ID: "sett-1", Patient: pat, Kind: Reservation, Active: true, Since: setTime},
		{ID: "sett-2", Patient: pat, Kind: Reservation, Since: setTime, Automatic: true},
		{Patient: pat, Kind: Restriction, Active: true, Since: setTime, Sections: AllSections},
		{Patient: pat, Kind: Restriction, Active: true, Since: setTime, Sections: []access.Section{access.Documents}},
		{Patient: pat, Kind: Block, Active: true, Since: setTime, BlockedHPR: []string{hprA, hprB}},
		{Patient: pat, Kind: PortalAccessRemoved, Since: setTime},
	}
	for _, s := range settings {
		t.Run(string(s.Kind)+"/"+s.ID, func(t *testing.T) {
			b := s.Consent()
			require.NoError(t, r4(t, b))
			got, err := Parse(b)
			require.NoError(t, err)
			assert.Equal(t, s, got)
		})
	}
}

func TestAutomaticReservation(t *testing.T) {
	now := time.Date(2025, 6, 30, 23, 59, 59, 0, time.FixedZone("CEST", 2*3600))
	b := AutomaticReservation(pat, now)
	require.NoError(t, r4(t, b))
	s, err := Parse(b)
	require.NoError(t, err)
	assert.Equal(t, Setting{Patient: pat, Kind: Reservation, Active: true, Since: now.UTC(), Automatic: true}, s)
	assert.Contains(t, string(b), `"profile":["`+ProfileURL+`"]`)
	// The citizen cannot lift it, and nobody else may touch it either.
	lifted := s
	lifted.Active, lifted.Since = false, now.Add(time.Hour)
	prev := s.Rule()
	for _, r := range []access.Role{access.Citizen, access.CitizenSupport} {
		d := (&access.Policy{}).Decide(access.Subject{Role: r, PID: "17837012345", SecurityLevel: 4},
			access.Request{Interaction: access.Update, ResourceType: "Consent", Patient: pat, Change: &access.PrivacyChange{New: lifted.Rule(), Previous: &prev}},
			access.PatientState{Exists: true, PersonNumber: "17837012345"})
		assert.Equal(t, access.AutomaticLocked, d.Reason)
	}
}

// The embedded conformance resources are valid R4 and agree with the code.
func TestProfileResources(t *testing.T) {
	type res struct {
		ResourceType string `json:"resourceType"`
		URL          string `json:"url"`
		Concept      []struct {
			Code    string `json:"code"`
			Concept []struct {
				Code string `json:"code"`
			} `json:"concept"`
		} `json:"concept"`
		Compose struct {
			Include []struct {
				System string `json:"system"`
			} `json:"include"`
		} `json:"compose"`
	}
	codes := func(r res) []string {
		var out []string
		for _, c := range r.Concept {
			out = append(out, c.Code)
			for _, cc := range c.Concept {
				out = append(out, cc.Code)
			}
		}
		return out
	}
	cases := []struct {
		name  string
		body  []byte
		typ   string
		url   string
		check func(t *testing.T, r res)
	}{
		{"consent profile", profiles.PrivacyConsent, "StructureDefinition", ProfileURL, nil},
		{"source extension", profiles.PrivacySettingSource, "StructureDefinition", SourceExtensionURL, nil},
		{"privacy-setting codes", profiles.PrivacySettingCodes, "CodeSystem", SettingSystem, func(t *testing.T, r res) {
			assert.ElementsMatch(t, []string{string(Reservation), string(Restriction), string(Block), string(PortalAccessRemoved)}, codes(r))
		}},
		{"record-section codes", profiles.RecordSectionCodes, "CodeSystem", SectionSystem, func(t *testing.T, r res) {
			want := []string{WholeRecordCode}
			for _, s := range AllSections {
				want = append(want, string(s))
			}
			assert.ElementsMatch(t, want, codes(r))
		}},
		{"source codes", profiles.PrivacySettingSourceCodes, "CodeSystem", SourceSystem, func(t *testing.T, r res) {
			assert.Equal(t, []string{SourcePopulationReg}, codes(r))
		}},
		{"privacy-setting value set", profiles.PrivacySettingValueSet, "ValueSet", "https://kjernejournal.example.no/fhir/ValueSet/privacy-setting", func(t *testing.T, r res) {
			assert.Equal(t, SettingSystem, r.Compose.Include[0].System)
		}},
		{"record-section value set", profiles.RecordSectionValueSet, "ValueSet", "https://kjernejournal.example.no/fhir/ValueSet/record-section", func(t *testing.T, r res) {
			assert.Equal(t, SectionSystem, r.Compose.Include[0].System)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, r4(t, tc.body))
			var r res
			require.NoError(t, json.Unmarshal(tc.body, &r))
			assert.Equal(t, tc.typ, r.ResourceType)
			assert.Equal(t, tc.url, r.URL)
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestParseAllFailsClosed(t *testing.T) {
	good := consent(Reservation)
	bad := consent(Block, func(c map[string]any) { delete(prov(c), "actor") })
	got, err := ParseAll([][]byte{js(t, good), js(t, good)})
	require.NoError(t, err)
	assert.Len(t, got, 2)
	_, err = ParseAll([][]byte{js(t, good), js(t, bad)})
	var pe *ProfileError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, err.Error(), "stored Consent 1")
}
