package profile

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Valid reports as an EHR sends them.
const (
	validAllergy = `{"resourceType":"AllergyIntolerance",
	  "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
	  "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},
	  "type":"allergy","category":["medication"],"criticality":"high",
	  "code":{"coding":[{"system":"http://www.whocc.no/atc","code":"J01CE02","display":"Fenoksymetylpenicillin"}],"text":"Penicillin V"},
	  "patient":{"reference":"Patient/p1"},
	  "reaction":[{"manifestation":[{"coding":[{"system":"http://snomed.info/sct","code":"39579001","display":"Anafylaksi"}]}],"severity":"severe"}]}`
	validFlag = `{"resourceType":"Flag","status":"active",
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat","display":"Implantat"}]}],
	  "code":{"text":"Pacemaker – MR kun etter avklaring med kardiolog"},
	  "subject":{"reference":"Patient/p1"},
	  "period":{"start":"2024-03-01T10:00:00+01:00"}}`
)

// The bodies of internal/api/fixtures_test.go's clinical(typ, "p1", "", "note").
const (
	apiAllergyFixture = `{"resourceType":"AllergyIntolerance","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
	  "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},
	  "criticality":"high","code":{"coding":[{"system":"http://www.whocc.no/atc","code":"J01CE02","display":"Fenoksymetylpenicillin"}],"text":"note"},
	  "patient":{"reference":"Patient/p1"}}`
	apiFlagFixture = `{"resourceType":"Flag","status":"active","category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat"}]}],
	  "code":{"text":"note"},"subject":{"reference":"Patient/p1"}}`
)

// edit returns base with change applied to its decoded JSON.
func edit(t *testing.T, base string, change func(r map[string]any)) []byte {
	t.Helper()
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(base), &r))
	change(r)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	return b
}

// at walks a decoded JSON value along keys and indices.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func obj(v any, path ...any) map[string]any { return at(v, path...).(map[string]any) }

func paths(issues []Issue) []string {
	out := make([]string, len(issues))
	for i, is := range issues {
		out[i] = is.Path
	}
	return out
}

func TestValid(t *testing.T) {
	assert.Empty(t, Check("AllergyIntolerance", []byte(validAllergy)))
	assert.Empty(t, Check("Flag", []byte(validFlag)))
	assert.Empty(t, Check("AllergyIntolerance", []byte(apiAllergyFixture)), "the api allergy fixture conforms")
	assert.Nil(t, Check("Patient", []byte(`{"resourceType":"Patient"}`)), "types without a profile have nothing to check")

	t.Run("variants", func(t *testing.T) {
		for name, body := range map[string][]byte{
			"entered in error without clinicalStatus": edit(t, validAllergy, func(r map[string]any) {
				delete(r, "clinicalStatus")
				obj(r, "verificationStatus", "coding", 0)["code"] = "entered-in-error"
			}),
			"national substance list": edit(t, validAllergy, func(r map[string]any) {
				obj(r, "code", "coding", 0)["system"] = SubstanceListSystem
				obj(r, "code", "coding", 0)["code"] = "ID_5E7A8F3B-2C1D-4E5F-9A8B-7C6D5E4F3A2B"
			}),
			"SNOMED CT food allergen": edit(t, validAllergy, func(r map[string]any) {
				r["category"] = []any{"food"}
				r["code"] = map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": "762952008"}}}
			}),
			"ATC group level and a second reaction with one uncoded manifestation": edit(t, validAllergy, func(r map[string]any) {
				obj(r, "code", "coding", 0)["code"] = "J01C"
				r["reaction"] = append(r["reaction"].([]any), map[string]any{"manifestation": []any{
					map[string]any{"text": "hoste"},
					map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": "126485001"}}},
				}})
			}),
			"no reaction (unknown reactions)": edit(t, validAllergy, func(r map[string]any) { delete(r, "reaction") }),
			"own profile declared with version": edit(t, validAllergy, func(r map[string]any) {
				r["meta"] = map[string]any{"profile": []any{AllergyIntoleranceURL + "|0.1.0", "http://example.org/other"}}
			}),
			"transaction-local patient": edit(t, validAllergy, func(r map[string]any) {
				obj(r, "patient")["reference"] = "urn:uuid:6a1c2f9e-0000-4000-8000-000000000001"
			}),
		} {
			assert.Empty(t, Check("AllergyIntolerance", body), name)
		}
		for name, body := range map[string][]byte{
			"coded, with end and date-only start": edit(t, validFlag, func(r map[string]any) {
				r["code"] = map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": "441509002"}}}
				r["period"] = map[string]any{"start": "2024-03-01", "end": "2024-03-01T12:00:00Z"}
				r["status"] = "inactive"
			}),
			"extra category without kritisk-info-type": edit(t, validFlag, func(r map[string]any) {
				r["category"] = append(r["category"].([]any), map[string]any{"text": "annet"})
			}),
			"entered in error": edit(t, validFlag, func(r map[string]any) { r["status"] = "entered-in-error" }),
			"absolute patient reference and own profile": edit(t, validFlag, func(r map[string]any) {
				obj(r, "subject")["reference"] = "https://kj.example.no/fhir/Patient/p1"
				r["meta"] = map[string]any{"profile": []any{FlagURL}}
			}),
		} {
			assert.Empty(t, Check("Flag", body), name)
		}
	})
}

// TestAPIFlagFixtureLacksPeriod documents the one change internal/api's
// clinical("Flag", ...) fixture needs: a period.start.
func TestAPIFlagFixtureLacksPeriod(t *testing.T) {
	assert.Equal(t, []string{"Flag.period.start"}, paths(Check("Flag", []byte(apiFlagFixture))))
	fixed := strings.Replace(apiFlagFixture, `"subject"`, `"period":{"start":"2024-01-10T08:00:00Z"},"subject"`, 1)
	assert.Empty(t, Check("Flag", []byte(fixed)))
}

func TestAllergyRules(t *testing.T) {
	cases := []struct {
		name   string
		change func(r map[string]any)
		path   string
	}{
		{"wrong resourceType", func(r map[string]any) { r["resourceType"] = "Flag" }, "AllergyIntolerance.resourceType"},
		{"other kjernejournal profile", func(r map[string]any) {
			r["meta"] = map[string]any{"profile": []any{"http://example.org/x", FlagURL}}
		}, "AllergyIntolerance.meta.profile[1]"},
		{"no verificationStatus", func(r map[string]any) { delete(r, "verificationStatus") }, "AllergyIntolerance.verificationStatus"},
		{"verificationStatus from another system", func(r map[string]any) {
			obj(r, "verificationStatus", "coding", 0)["system"] = "http://example.org/vs"
		}, "AllergyIntolerance.verificationStatus.coding"},
		{"unknown verificationStatus", func(r map[string]any) { obj(r, "verificationStatus", "coding", 0)["code"] = "maybe" },
			"AllergyIntolerance.verificationStatus.coding[0].code"},
		{"no clinicalStatus", func(r map[string]any) { delete(r, "clinicalStatus") }, "AllergyIntolerance.clinicalStatus"},
		{"clinicalStatus when entered in error", func(r map[string]any) {
			obj(r, "verificationStatus", "coding", 0)["code"] = "entered-in-error"
		}, "AllergyIntolerance.clinicalStatus"},
		{"clinicalStatus without its system", func(r map[string]any) { obj(r, "clinicalStatus")["coding"] = []any{} },
			"AllergyIntolerance.clinicalStatus.coding"},
		{"unknown clinicalStatus", func(r map[string]any) { obj(r, "clinicalStatus", "coding", 0)["code"] = "dormant" },
			"AllergyIntolerance.clinicalStatus.coding[0].code"},
		{"unknown type", func(r map[string]any) { r["type"] = "sensitivity" }, "AllergyIntolerance.type"},
		{"unknown category", func(r map[string]any) { r["category"] = []any{"medication", "drug"} }, "AllergyIntolerance.category[1]"},
		{"no criticality", func(r map[string]any) { delete(r, "criticality") }, "AllergyIntolerance.criticality"},
		{"unknown criticality", func(r map[string]any) { r["criticality"] = "medium" }, "AllergyIntolerance.criticality"},
		{"no code", func(r map[string]any) { delete(r, "code") }, "AllergyIntolerance.code"},
		{"code as text only", func(r map[string]any) { r["code"] = map[string]any{"text": "penicillin"} }, "AllergyIntolerance.code.coding"},
		{"code from another system", func(r map[string]any) {
			obj(r, "code", "coding", 0)["system"] = "urn:oid:2.16.578.1.12.4.1.1.7110"
		}, "AllergyIntolerance.code.coding"},
		{"SNOMED CT substance for a medication", func(r map[string]any) {
			r["code"] = map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": "764146007"}}}
		}, "AllergyIntolerance.code.coding"},
		{"malformed ATC code", func(r map[string]any) { obj(r, "code", "coding", 0)["code"] = "penicillin" },
			"AllergyIntolerance.code.coding[0].code"},
		{"malformed national substance code", func(r map[string]any) {
			r["code"] = map[string]any{"coding": []any{
				map[string]any{"system": ATCSystem, "code": "J01CE02"},
				map[string]any{"system": SubstanceListSystem, "code": "ID 1"},
			}}
		}, "AllergyIntolerance.code.coding[1].code"},
		{"malformed SNOMED CT substance", func(r map[string]any) {
			r["category"] = []any{"food"}
			r["code"] = map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": "peanut"}}}
		}, "AllergyIntolerance.code.coding[0].code"},
		{"no patient", func(r map[string]any) { delete(r, "patient") }, "AllergyIntolerance.patient"},
		{"patient by display only", func(r map[string]any) { r["patient"] = map[string]any{"display": "Kari"} }, "AllergyIntolerance.patient"},
		{"patient reference to a Group", func(r map[string]any) { obj(r, "patient")["reference"] = "Group/g1" }, "AllergyIntolerance.patient"},
		{"reaction without manifestation", func(r map[string]any) { delete(obj(r, "reaction", 0), "manifestation") },
			"AllergyIntolerance.reaction[0].manifestation"},
		{"second reaction without SNOMED CT manifestation", func(r map[string]any) {
			r["reaction"] = append(r["reaction"].([]any), map[string]any{"manifestation": []any{
				map[string]any{"text": "utslett"},
				map[string]any{"coding": []any{map[string]any{"system": "http://example.org/symptoms", "code": "rash"}}},
			}})
		}, "AllergyIntolerance.reaction[1].manifestation"},
		{"malformed SNOMED CT manifestation", func(r map[string]any) {
			m := obj(r, "reaction", 0, "manifestation", 0)
			m["coding"] = append(m["coding"].([]any), map[string]any{"system": SNOMEDSystem, "code": "0123"})
		}, "AllergyIntolerance.reaction[0].manifestation[0].coding[1].code"},
		{"unknown severity", func(r map[string]any) { obj(r, "reaction", 0)["severity"] = "fatal" }, "AllergyIntolerance.reaction[0].severity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issues := Check("AllergyIntolerance", edit(t, validAllergy, tc.change))
			assert.Equal(t, []string{tc.path}, paths(issues), "%v", issues)
			for _, is := range issues {
				assert.NotEmpty(t, is.Message)
			}
		})
	}
}

func TestFlagRules(t *testing.T) {
	other := map[string]any{"coding": []any{map[string]any{"system": CriticalInfoTypeSystem, "code": "smitte"}}}
	cases := []struct {
		name   string
		change func(r map[string]any)
		path   string
	}{
		{"wrong resourceType", func(r map[string]any) { r["resourceType"] = "AllergyIntolerance" }, "Flag.resourceType"},
		{"other kjernejournal profile", func(r map[string]any) {
			r["meta"] = map[string]any{"profile": []any{AllergyIntoleranceURL + "|0.1.0"}}
		}, "Flag.meta.profile[0]"},
		{"no status", func(r map[string]any) { delete(r, "status") }, "Flag.status"},
		{"unknown status", func(r map[string]any) { r["status"] = "retired" }, "Flag.status"},
		{"no category", func(r map[string]any) { delete(r, "category") }, "Flag.category"},
		{"empty category list", func(r map[string]any) { r["category"] = []any{} }, "Flag.category"},
		{"category from another system", func(r map[string]any) {
			obj(r, "category", 0, "coding", 0)["system"] = "http://terminology.hl7.org/CodeSystem/flag-category"
		}, "Flag.category[0].coding"},
		{"two kritisk-info-type codings", func(r map[string]any) {
			c := obj(r, "category", 0)
			c["coding"] = append(c["coding"].([]any), map[string]any{"system": CriticalInfoTypeSystem, "code": "smitte"})
		}, "Flag.category[0].coding"},
		{"kritisk-info-type in a second category", func(r map[string]any) {
			r["category"] = append(r["category"].([]any), other)
		}, "Flag.category[1].coding"},
		{"unknown kritisk-info-type code", func(r map[string]any) { obj(r, "category", 0, "coding", 0)["code"] = "allergi" },
			"Flag.category[0].coding[0].code"},
		{"no code", func(r map[string]any) { delete(r, "code") }, "Flag.code"},
		{"code without text or coded code", func(r map[string]any) {
			r["code"] = map[string]any{"text": "  ", "coding": []any{map[string]any{"system": SNOMEDSystem}}}
		}, "Flag.code"},
		{"no subject", func(r map[string]any) { delete(r, "subject") }, "Flag.subject"},
		{"subject without reference", func(r map[string]any) { r["subject"] = map[string]any{"display": "Ola"} }, "Flag.subject"},
		{"subject is a Location", func(r map[string]any) { obj(r, "subject")["reference"] = "Location/l1" }, "Flag.subject"},
		{"no period", func(r map[string]any) { delete(r, "period") }, "Flag.period.start"},
		{"period without start", func(r map[string]any) { r["period"] = map[string]any{"end": "2025-01-01"} }, "Flag.period.start"},
		{"malformed start", func(r map[string]any) { obj(r, "period")["start"] = "01.03.2024" }, "Flag.period.start"},
		{"malformed end", func(r map[string]any) { obj(r, "period")["end"] = "2024-03-01T10:00:00" }, "Flag.period.end"},
		{"end before start", func(r map[string]any) { obj(r, "period")["end"] = "2024-02" }, "Flag.period.end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issues := Check("Flag", edit(t, validFlag, tc.change))
			assert.Equal(t, []string{tc.path}, paths(issues), "%v", issues)
		})
	}
}

func TestEveryViolationReported(t *testing.T) {
	allergy := `{"resourceType":"AllergyIntolerance","meta":{"profile":["` + FlagURL + `"]},
	  "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"probable"}]},
	  "code":{"text":"penicillin"},"reaction":[{"manifestation":[]},{"manifestation":[{"text":"kløe"}],"severity":"bad"}]}`
	assert.Equal(t, []string{
		"AllergyIntolerance.meta.profile[0]",
		"AllergyIntolerance.verificationStatus.coding[0].code",
		"AllergyIntolerance.clinicalStatus",
		"AllergyIntolerance.criticality",
		"AllergyIntolerance.code.coding",
		"AllergyIntolerance.patient",
		"AllergyIntolerance.reaction[0].manifestation",
		"AllergyIntolerance.reaction[1].manifestation",
		"AllergyIntolerance.reaction[1].severity",
	}, paths(Check("AllergyIntolerance", []byte(allergy))))

	flag := `{"resourceType":"Flag","category":[{"coding":[{"system":"http://example.org","code":"x"}]},
	  {"coding":[{"system":"` + CriticalInfoTypeSystem + `","code":"nope"}]}],"period":{"start":"2024-05-01","end":"2024-04-30"}}`
	assert.Equal(t, []string{
		"Flag.status",
		"Flag.category[0].coding",
		"Flag.category[1].coding[0].code",
		"Flag.category[1].coding",
		"Flag.code",
		"Flag.subject",
		"Flag.period.end",
	}, paths(Check("Flag", []byte(flag))))

	assert.Equal(t, []string{"Flag"}, paths(Check("Flag", []byte(`{"resourceType":"Flag",`))), "not JSON")
	assert.Equal(t, []string{"Flag"}, paths(Check("Flag", []byte(`{"resourceType":"Flag","status":7}`))), "wrong JSON types")
}

func TestSeedResourcesConform(t *testing.T) {
	counts := map[string]int{}
	for _, rec := range seed.Generate(1, 300) {
		for _, body := range rec.Resources {
			var r struct{ ResourceType string }
			require.NoError(t, json.Unmarshal(body, &r))
			if _, ok := URL(r.ResourceType); !ok {
				continue
			}
			counts[r.ResourceType]++
			assert.Empty(t, Check(r.ResourceType, body), "%s", body)
			withProfile, err := WithProfile(body, r.ResourceType)
			require.NoError(t, err)
			assert.True(t, Declared(withProfile))
			assert.Empty(t, Check(r.ResourceType, withProfile))
		}
	}
	assert.Greater(t, counts["AllergyIntolerance"], 50)
	assert.Greater(t, counts["Flag"], 5)
	t.Logf("checked %v", counts)
}

func TestWithProfileAndDeclared(t *testing.T) {
	assert.False(t, Declared([]byte(validFlag)))
	out, err := WithProfile([]byte(validFlag), "Flag")
	require.NoError(t, err)
	assert.True(t, Declared(out))
	assert.True(t, strings.HasPrefix(string(out), `{"resourceType":"Flag","meta":{"profile":["`+FlagURL+`"]},"status"`), "%s", out)

	var before, after map[string]any
	require.NoError(t, json.Unmarshal([]byte(validFlag), &before))
	require.NoError(t, json.Unmarshal(out, &after))
	delete(after, "meta")
	assert.Equal(t, before, after, "nothing but meta changes")

	body := `{"resourceType":"AllergyIntolerance","id":"a1","meta":{"versionId":"3","profile":["http://example.org/p","` +
		FlagURL + `","http://example.org/p"]},"criticality":"low"}`
	out, err = WithProfile([]byte(body), "AllergyIntolerance")
	require.NoError(t, err)
	assert.JSONEq(t, `{"resourceType":"AllergyIntolerance","id":"a1","meta":{"versionId":"3","profile":["`+
		AllergyIntoleranceURL+`","http://example.org/p"]},"criticality":"low"}`, string(out))
	assert.True(t, strings.HasPrefix(string(out), `{"resourceType":"AllergyIntolerance","id":"a1","meta":{"versionId":"3",`), "%s", out)
	assert.False(t, Declared([]byte(body)))
	assert.True(t, Declared([]byte(`{"resourceType":"Flag","meta":{"profile":["`+FlagURL+`|0.1.0"]}}`)))
	assert.False(t, Declared([]byte(`{"resourceType":"Patient","meta":{"profile":["`+FlagURL+`"]}}`)))
	assert.False(t, Declared([]byte(`not json`)))

	_, err = WithProfile([]byte(validFlag), "Patient")
	assert.Error(t, err)
	for _, bad := range []string{`[]`, `{"a":1} {}`, `{"meta":[]}`, `{"meta":{"profile":"x"}}`, `{"a":`} {
		_, err = WithProfile([]byte(bad), "Flag")
		assert.Error(t, err, bad)
	}
}

func TestEmbeddedResourcesAreR4(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	sets := map[string]map[string][]byte{
		"StructureDefinition": StructureDefinitions(),
		"CodeSystem":          CodeSystems(),
		"ValueSet":            ValueSets(),
	}
	assert.ElementsMatch(t, []string{"StructureDefinition", "CodeSystem", "ValueSet"}, ResourceTypes())
	for typ, set := range sets {
		for id, body := range set {
			t.Run(typ+"/"+id, func(t *testing.T) {
				_, err := u.Unmarshal(body)
				require.NoError(t, err)
				var r struct{ ResourceType, ID, URL string }
				require.NoError(t, json.Unmarshal(body, &r))
				assert.Equal(t, typ, r.ResourceType)
				assert.Equal(t, id, r.ID)
				assert.True(t, strings.HasPrefix(r.URL, "https://kjernejournal.example.no/fhir/"+typ+"/"), r.URL)
				got, ok := Resource(typ, id)
				require.True(t, ok)
				assert.Equal(t, body, got)
			})
		}
	}
	for typ, url := range profileURL {
		var sd struct{ URL, Type string }
		require.NoError(t, json.Unmarshal(sets["StructureDefinition"][strings.TrimPrefix(url, URLPrefix)], &sd))
		assert.Equal(t, url, sd.URL)
		assert.Equal(t, typ, sd.Type)
	}
	_, ok := Resource("ValueSet", "no-such")
	assert.False(t, ok)
}

func TestCriticalInfoTypeCodeSystem(t *testing.T) {
	var cs struct {
		URL     string
		Count   int
		Concept []struct{ Code, Display, Definition string }
	}
	require.NoError(t, json.Unmarshal(CodeSystems()["kritisk-info-type"], &cs))
	assert.Equal(t, CriticalInfoTypeSystem, cs.URL)
	assert.Equal(t, domain.SystemCriticalInfoType, cs.URL)
	var codes []string
	for _, c := range cs.Concept {
		codes = append(codes, c.Code)
		assert.NotEmpty(t, c.Display, c.Code)
		assert.NotEmpty(t, c.Definition, c.Code)
	}
	assert.Equal(t, CriticalInfoTypes, codes)
	assert.Equal(t, len(codes), cs.Count)

	// Every category code the seed uses is in the CodeSystem.
	used := map[string]bool{}
	for _, rec := range seed.Generate(7, 2000) {
		for _, body := range rec.Resources {
			var r struct{ ResourceType string }
			require.NoError(t, json.Unmarshal(body, &r))
			if r.ResourceType == "Flag" {
				var f flag
				require.NoError(t, json.Unmarshal(body, &f))
				used[f.Category[0].Coding[0].Code] = true
			}
		}
	}
	for code := range used {
		assert.Contains(t, codes, code)
	}
	assert.Len(t, used, len(codes), fmt.Sprint(used))
}

// TestDeclareMatchesWithProfile: declaring the profile on the parsed
// resource before it is printed gives the JSON that editing the printed
// JSON gave, for the seed's resources and for bodies that declare other
// profiles, or an older version of ours, already.
func TestDeclareMatchesWithProfile(t *testing.T) {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	bodies := []string{validFlag,
		`{"resourceType":"Flag","meta":{"profile":["http://example.org/p","` + FlagURL + `|0.1.0","http://example.org/p"],"tag":[{"code":"x"}]},` + validFlag[len(`{"resourceType":"Flag",`):]}
	for _, rec := range seed.Generate(2, 40) {
		for _, b := range rec.Resources {
			bodies = append(bodies, string(b))
		}
	}
	n := 0
	for _, body := range bodies {
		res, err := codec.Parse([]byte(body))
		require.NoError(t, err, body)
		if _, ok := URL(res.Type); !ok {
			continue
		}
		n++
		printed, err := codec.Marshal(res)
		require.NoError(t, err)
		want, err := WithProfile(printed, res.Type)
		require.NoError(t, err)
		require.NoError(t, Declare(res))
		got, err := codec.Marshal(res)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got), body)
		assert.True(t, Declared(got))
	}
	assert.Greater(t, n, 20)
	p, err := codec.Parse([]byte(`{"resourceType":"Patient"}`))
	require.NoError(t, err)
	assert.Error(t, Declare(p), "Patient has no kjernejournal profile")
}
