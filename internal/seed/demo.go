package seed

import (
	"encoding/json"

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
	// covers. Summarize leaves it empty: privacy settings are
	// internal/privacy's to read, and the generator makes none; the caller
	// that restricts a demo patient fills it in.
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
			// A privacy setting is no critical information.
			if len(r.Scope.Coding) == 0 || r.Scope.Coding[0].Code != privacyScope {
				s.Critical++
			}
		}
	}
	return s
}

// privacyScope is the Consent.scope code of a privacy setting
// (privacy.ScopeCode: internal/privacy imports the access rules, which a
// generator of test data must not depend on).
const privacyScope = "patient-privacy"

// RestrictedDemo picks, among the n patients of seed, the one `serve
// --demo-patients` gives a restriction: the first with critical
// information, medications and visits, so that one patient shows every
// part of a record (the demo citizen has no restriction: the conformance
// suite sets and lifts hers). It skips the first two, which tests and the
// old start banner use as plain patients. It returns false when no
// patient qualifies.
func RestrictedDemo(seed int64, n int) (Record, bool) {
	for i, rec := range Generate(seed, n) {
		if i < 2 {
			continue
		}
		s := Summarize(rec)
		if s.Critical > 0 && s.Medications > 0 && s.Visits > 0 {
			return rec, true
		}
	}
	return Record{}, false
}
