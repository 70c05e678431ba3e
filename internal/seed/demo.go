package seed

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Summary is what a newcomer needs to pick a demo patient: who it is and
// what the record holds.
type Summary struct {
	ID           string
	PersonNumber string
	Name         string
	// Critical counts critical information: allergies, Flags and the
	// national model's Condition, Procedure and Consent (adr, treatment).
	Critical    int
	Medications int
	Visits      int
	// Restricted names the sections a privacy restriction (sperring)
	// covers.
	Restricted []string
}

// Summarize reads a record's Patient and counts its resources.
func Summarize(rec Record) Summary {
	var p struct {
		ID         string `json:"id"`
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
		Name []struct {
			Text string `json:"text"`
		} `json:"name"`
	}
	_ = json.Unmarshal(rec.Patient, &p)
	s := Summary{ID: p.ID}
	for _, id := range p.Identifier {
		if id.System == domain.SystemFNR || id.System == domain.SystemDNR {
			s.PersonNumber = id.Value
		}
	}
	if len(p.Name) > 0 {
		s.Name = p.Name[0].Text
	}
	for _, b := range rec.Resources {
		var r struct {
			ResourceType string `json:"resourceType"`
			Scope        struct {
				Coding []jCoding `json:"coding"`
			} `json:"scope"`
			Category  json.RawMessage `json:"category"`
			Provision struct {
				Code []struct {
					Coding []jCoding `json:"coding"`
				} `json:"code"`
			} `json:"provision"`
		}
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		switch r.ResourceType {
		case "AllergyIntolerance", "Flag", "Condition", "Procedure":
			s.Critical++
		case "MedicationStatement":
			s.Medications++
		case "Encounter":
			s.Visits++
		case "Consent":
			if len(r.Scope.Coding) == 0 || r.Scope.Coding[0].Code != demoPrivacyScope {
				s.Critical++
				continue
			}
			if !strings.Contains(string(r.Category), `"`+demoRestriction+`"`) {
				continue
			}
			for _, c := range r.Provision.Code {
				for _, cd := range c.Coding {
					s.Restricted = append(s.Restricted, cd.Code)
				}
			}
		}
	}
	return s
}

// Codes of the privacy-setting profile (profiles/consent-privacy.json).
// internal/privacy owns them, but it imports the access rules, which a
// generator of test data should not depend on.
const (
	demoPrivacyProfile = "https://kjernejournal.example.no/fhir/StructureDefinition/KjPrivacyConsent"
	demoPrivacyScope   = "patient-privacy"
	demoSettingSystem  = "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting"
	demoSectionSystem  = "https://kjernejournal.example.no/fhir/CodeSystem/record-section"
	demoRestriction    = "sperring"
)

// DemoRestrictedSection is the section the restricted demo patient
// restricted: medications, because the README shows that search coming
// back empty with one basis and full with an elevated one.
const DemoRestrictedSection = "medications"

// RestrictedDemo picks, among the n patients of seed, the one `serve
// --demo-patients` gives a restriction: the first with critical
// information, medications and visits, so that one patient shows every
// part of a record (the demo citizen has no restriction: the conformance
// suite sets and lifts hers). It skips the first two, which tests and the
// old start banner use as plain patients. It returns the patient's record
// with the restriction added, and false when no patient qualifies.
func RestrictedDemo(seed int64, n int) (Record, bool) {
	for i, rec := range Generate(seed, n) {
		if i < 2 {
			continue
		}
		s := Summarize(rec)
		if s.Critical > 0 && s.Medications > 0 && s.Visits > 0 {
			rec.Resources = append(rec.Resources, DemoRestriction(s.ID))
			return rec, true
		}
	}
	return Record{}, false
}

// DemoRestriction is the privacy Consent restricting
// DemoRestrictedSection of patient, as the citizen would set it, dated
// back from DefaultBase. The id is fixed, so storing it twice is one
// resource.
func DemoRestriction(patient string) []byte {
	coding := func(system, code string) map[string]any {
		return map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
	}
	return mustJSON(map[string]any{
		"resourceType": "Consent",
		"id":           patient + "-restriction",
		"meta":         map[string]any{"profile": []string{demoPrivacyProfile}},
		"status":       "active",
		"scope":        coding("http://terminology.hl7.org/CodeSystem/consentscope", demoPrivacyScope),
		"category":     []any{coding(demoSettingSystem, demoRestriction)},
		"patient":      map[string]any{"reference": "Patient/" + patient},
		"dateTime":     DefaultBase.AddDate(0, -2, -3).Add(19 * time.Hour).Format(time.RFC3339),
		"policyRule":   coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTOUT"),
		"provision":    map[string]any{"type": "deny", "code": []any{coding(demoSectionSystem, DemoRestrictedSection)}},
	})
}
