package profile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Valid reports of the national model as an EHR sends them (the server
// adds recorderRef from the token).
const (
	validCondition = `{"resourceType":"Condition",
	  "extension":[{"url":"https://kjernejournal.example.no/fhir/StructureDefinition/KjSourceOfInformation","valueString":"Pasienten selv"}],
	  "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"Infection"}]}],
	  "code":{"text":"MRSA-bærer"},"subject":{"reference":"Patient/p1"}}`
	validProcedure = `{"resourceType":"Procedure",
	  "extension":[{"url":"https://kjernejournal.example.no/fhir/StructureDefinition/KjValidUntil","valueDateTime":"2026-12-31"}],
	  "status":"in-progress",
	  "category":{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"OngoingTreatment"}]},
	  "code":{"text":"Hemodialyse tre ganger i uken"},"subject":{"reference":"Patient/p1"},"performedDateTime":"2024-05-01"}`
	validCriticalConsent = `{"resourceType":"Consent","status":"active",
	  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]},
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"LimitsOfLifeProlongingTreatment"}]}],
	  "patient":{"reference":"Patient/p1"},"dateTime":"2025-01-02T10:00:00+01:00",
	  "provision":{"type":"deny","code":[{"text":"Ikke HLR"}]}}`
	withRecorderRef = `"contained":[{"resourceType":"PractitionerRole","id":"recorderRef",
	  "practitioner":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"991000001"}},
	  "organization":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"983971636"}},
	  "code":[{"coding":[{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LE"}]}]}]`
)

// Procedure.category is a single CodeableConcept in R4, unlike Condition's
// and Consent's lists.
func TestCriticalModelValid(t *testing.T) {
	for _, c := range []struct{ typ, body, url string }{
		{"Condition", validCondition, ConditionInfectionURL},
		{"Procedure", validProcedure, ProcedureURL},
		{"Consent", validCriticalConsent, ConsentLimitsURL},
	} {
		assert.Empty(t, Check(c.typ, []byte(c.body)), c.typ)
		u, ok := URLOf(c.typ, []byte(c.body))
		assert.True(t, ok)
		assert.Equal(t, c.url, u)
		withRole := strings.Replace(c.body, "{", "{"+withRecorderRef+",", 1)
		ref := `"recorder":{"reference":"#recorderRef"},`
		if c.typ == "Consent" {
			ref = `"performer":[{"reference":"#recorderRef"}],`
		}
		withRole = strings.Replace(withRole, `"resourceType":"`+c.typ+`",`, `"resourceType":"`+c.typ+`",`+ref, 1)
		assert.Empty(t, Check(c.typ, []byte(withRole)), "%s with recorderRef: %s", c.typ, withRole)
	}
}

func TestConditionProfileFollowsTheType(t *testing.T) {
	for code, want := range map[string]string{
		"IntubationProblem": ConditionAnesthesiaURL, "OtherAnesthesiaProblem": ConditionAnesthesiaURL,
		"CriticalMedicalCondition": ConditionCriticalURL, "TransplantsAndOtherForeignBodies": ConditionTransplantsURL,
		"Infection": ConditionInfectionURL,
	} {
		body := strings.Replace(validCondition, `"code":"Infection"`, `"code":"`+code+`"`, 1)
		got, ok := URLOf("Condition", []byte(body))
		assert.True(t, ok)
		assert.Equal(t, want, got, code)
		assert.Empty(t, Check("Condition", []byte(body)), code)
	}
	declared := edit(t, validCondition, func(r map[string]any) {
		r["meta"] = map[string]any{"profile": []any{ConditionCriticalURL}}
	})
	issues := Check("Condition", declared)
	require.Len(t, issues, 1)
	assert.Contains(t, issues[0].Message, "kj-profile-1")
}

// Every broken rule is reported with its key in the message, so that the
// 422 names it.
func TestCriticalModelRules(t *testing.T) {
	cases := []struct {
		name, typ, base string
		change          func(r map[string]any)
		rule, path      string
	}{
		{"condition without type", "Condition", validCondition, func(r map[string]any) { delete(r, "category") }, "kj-condition-1", "Condition.category"},
		{"condition with a Procedure type", "Condition", validCondition, func(r map[string]any) {
			r["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type", "code": "OngoingTreatment"}}}}
		}, "kj-condition-1", "Condition.category[0].coding[0].code"},
		{"condition without code", "Condition", validCondition, func(r map[string]any) { delete(r, "code") }, "kj-condition-2", "Condition.code"},
		{"condition for a Group", "Condition", validCondition, func(r map[string]any) { r["subject"] = map[string]any{"reference": "Group/g1"} }, "kj-condition-3", "Condition.subject"},
		{"condition without clinicalStatus", "Condition", validCondition, func(r map[string]any) { delete(r, "clinicalStatus") }, "kj-condition-4", "Condition.clinicalStatus"},
		{"empty source of information", "Condition", validCondition, func(r map[string]any) {
			r["extension"] = []any{map[string]any{"url": "https://kjernejournal.example.no/fhir/StructureDefinition/KjSourceOfInformation", "valueString": " "}}
		}, "kj-source-1", "Condition.extension[0]"},
		{"procedure preparation", "Procedure", validProcedure, func(r map[string]any) { r["status"] = "preparation" }, "kj-procedure-1", "Procedure.status"},
		{"procedure of another type", "Procedure", validProcedure, func(r map[string]any) {
			r["category"] = map[string]any{"coding": []any{map[string]any{"system": "https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type", "code": "Infection"}}}
		}, "kj-procedure-2", "Procedure.category.coding[0].code"},
		{"procedure without code", "Procedure", validProcedure, func(r map[string]any) { delete(r, "code") }, "kj-procedure-3", "Procedure.code"},
		{"valid until before the start", "Procedure", validProcedure, func(r map[string]any) {
			r["extension"] = []any{map[string]any{"url": "https://kjernejournal.example.no/fhir/StructureDefinition/KjValidUntil", "valueDateTime": "2020-01-01"}}
		}, "kj-procedure-5", "Procedure.extension[0].valueDateTime"},
		{"consent draft", "Consent", validCriticalConsent, func(r map[string]any) { r["status"] = "draft" }, "kj-consent-1", "Consent.status"},
		{"consent with scope and type apart", "Consent", validCriticalConsent, func(r map[string]any) {
			r["scope"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}}}
		}, "kj-consent-3", "Consent.scope"},
		{"consent without dateTime", "Consent", validCriticalConsent, func(r map[string]any) { delete(r, "dateTime") }, "kj-consent-5", "Consent.dateTime"},
		{"consent without what", "Consent", validCriticalConsent, func(r map[string]any) { delete(r, "provision") }, "kj-consent-6", "Consent.provision.code"},
		{"recorderRef not a PractitionerRole", "Condition", validCondition, func(r map[string]any) {
			r["contained"] = []any{map[string]any{"resourceType": "Patient", "id": "recorderRef"}}
		}, "kj-recorder-1", "Condition.contained[0]"},
		{"recorderRef without HPR number", "Procedure", validProcedure, func(r map[string]any) {
			r["contained"] = []any{map[string]any{"resourceType": "PractitionerRole", "id": "recorderRef"}}
			r["recorder"] = map[string]any{"reference": "#recorderRef"}
		}, "kj-recorder-2", "Procedure.contained[0].practitioner.identifier"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			issues := Check(c.typ, edit(t, c.base, c.change))
			require.NotEmpty(t, issues)
			found := false
			for _, is := range issues {
				found = found || is.Path == c.path && strings.HasPrefix(is.Message, c.rule+": ")
			}
			assert.True(t, found, "want %s at %s, got %v", c.rule, c.path, issues)
		})
	}
}

// A privacy setting is no critical information: no profile here, nothing
// to check (internal/privacy checks it).
func TestPrivacyConsentIsNotCritical(t *testing.T) {
	privacy := `{"resourceType":"Consent","status":"active",
	  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	  "patient":{"reference":"Patient/p1"}}`
	assert.False(t, CriticalConsent([]byte(privacy)))
	assert.True(t, CriticalConsent([]byte(validCriticalConsent)))
	_, ok := URLOf("Consent", []byte(privacy))
	assert.False(t, ok)
	assert.Nil(t, Check("Consent", []byte(privacy)))
	assert.False(t, CriticalConsent([]byte(`{"resourceType":"Flag","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]}}`)))
}

// The seed's national-model critical information conforms, each type
// occurs, and the Consents among it are critical, never privacy settings.
func TestSeedCriticalModelConforms(t *testing.T) {
	seen := map[string]bool{}
	for _, rec := range seed.Generate(7, 3000) {
		for _, body := range rec.Resources {
			var r struct {
				ResourceType string
			}
			require.NoError(t, json.Unmarshal(body, &r))
			switch r.ResourceType {
			case "Condition", "Procedure", "Consent":
				assert.Empty(t, Check(r.ResourceType, body), "%s", body)
				if r.ResourceType == "Consent" {
					assert.True(t, CriticalConsent(body), "%s", body)
				}
				seen[CriticalInfoType(body)] = true
			}
		}
	}
	for _, code := range []string{"IntubationProblem", "OtherAnesthesiaProblem", "CriticalMedicalCondition", "OngoingTreatment",
		"TransplantsAndOtherForeignBodies", "LimitsOfLifeProlongingTreatment", "Infection", "TreatmentClarification"} {
		assert.True(t, seen[code], "no %s among 3000 patients", code)
	}
}
