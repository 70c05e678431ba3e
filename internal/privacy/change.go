package privacy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// Rule is what the access rules need of the setting to decide who may
// change it (access.PrivacyChange).
func (s Setting) Rule() access.PrivacySetting {
	return access.PrivacySetting{Kind: s.Kind, Active: s.Active, Automatic: s.Automatic, Since: s.Since}
}

// ParseAll parses a patient's stored Consents. It fails on the first one
// that is not a valid KjPrivacyConsent: access must fail closed, since an
// unreadable block or reservation cannot simply be ignored. A Consent that
// is critical information (scope adr or treatment: limits of
// life-prolonging treatment, treatment clarifications; told apart by
// profile.CriticalConsent) is no privacy setting and is left out.
func ParseAll(consents [][]byte) ([]Setting, error) {
	out := make([]Setting, 0, len(consents))
	for i, c := range consents {
		if profile.CriticalConsent(c) {
			continue
		}
		s, err := Parse(c)
		if err != nil {
			return nil, fmt.Errorf("privacy: stored Consent %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// AutomaticReservation is the Consent the server writes when the
// population register gives patientID (a valid FHIR id) a secret address.
// It has no id, so the REST layer assigns one; it should write one only
// when State reports no AutomaticReservation yet.
func AutomaticReservation(patientID string, now time.Time) []byte {
	return Setting{Patient: patientID, Kind: Reservation, Active: true, Since: now, Automatic: true}.Consent()
}

// Consent renders s as a KjPrivacyConsent; Parse(s.Consent()) gives s
// back (Since to the second). It is for settings the server makes itself
// and for tests; s must be complete (Kind, Patient, Since).
func (s Setting) Consent() []byte {
	c := consentJSON{
		ResourceType: "Consent",
		ID:           s.ID,
		Meta:         &metaJSON{Profile: []string{ProfileURL}},
		Status:       "inactive",
		Scope:        concept(ScopeSystem, ScopeCode),
		Category:     []conceptJSON{concept(SettingSystem, string(s.Kind))},
		Patient:      referenceJSON{Reference: "Patient/" + s.Patient},
		DateTime:     s.Since.UTC().Format(time.RFC3339),
		PolicyRule:   concept(PolicyRuleSystem, PolicyRuleCode),
		Provision:    provisionJSON{Type: "deny"},
	}
	if s.Active {
		c.Status = "active"
	}
	if s.Automatic {
		c.Extension = []extensionJSON{{
			URL:         SourceExtensionURL,
			ValueCoding: &codingJSON{System: SourceSystem, Code: SourcePopulationReg, Display: "Folkeregisteret"},
		}}
	}
	for _, sec := range s.Sections {
		c.Provision.Code = append(c.Provision.Code, concept(SectionSystem, string(sec)))
	}
	for _, h := range s.BlockedHPR {
		c.Provision.Actor = append(c.Provision.Actor, actorJSON{
			Role:      concept(ActorRoleSystem, ActorRoleCode),
			Reference: referenceJSON{Identifier: &identifierJSON{System: domain.SystemHPR, Value: h}},
		})
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain structs of strings always marshal
	}
	return b
}

type consentJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Meta         *metaJSON       `json:"meta,omitempty"`
	Extension    []extensionJSON `json:"extension,omitempty"`
	Status       string          `json:"status"`
	Scope        conceptJSON     `json:"scope"`
	Category     []conceptJSON   `json:"category"`
	Patient      referenceJSON   `json:"patient"`
	DateTime     string          `json:"dateTime"`
	PolicyRule   conceptJSON     `json:"policyRule"`
	Provision    provisionJSON   `json:"provision"`
}

type metaJSON struct {
	Profile []string `json:"profile"`
}

type extensionJSON struct {
	URL         string      `json:"url"`
	ValueCoding *codingJSON `json:"valueCoding,omitempty"`
}

type codingJSON struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type conceptJSON struct {
	Coding []codingJSON `json:"coding"`
}

func concept(system, code string) conceptJSON {
	return conceptJSON{Coding: []codingJSON{{System: system, Code: code}}}
}

type referenceJSON struct {
	Reference  string          `json:"reference,omitempty"`
	Identifier *identifierJSON `json:"identifier,omitempty"`
}

type identifierJSON struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type provisionJSON struct {
	Type  string        `json:"type"`
	Code  []conceptJSON `json:"code,omitempty"`
	Actor []actorJSON   `json:"actor,omitempty"`
}

type actorJSON struct {
	Role      conceptJSON   `json:"role"`
	Reference referenceJSON `json:"reference"`
}
