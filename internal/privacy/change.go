package privacy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// Reasons CanChange gives beyond those of the access package.
const (
	// AutomaticLocked: the automatic reservation of a person with a secret
	// address is set and lifted by the server alone.
	AutomaticLocked access.Reason = "automatic-reservation-locked"
	// KindChanged: an update tried to turn one kind of setting into another.
	KindChanged access.Reason = "privacy-kind-changed"
	// StaleDateTime: an update moved Consent.dateTime backwards, or put a
	// lifted setting in force again under its old dateTime.
	StaleDateTime access.Reason = "privacy-datetime-stale"
)

// ChangeError is a refused change of a privacy setting, with the reason
// code for the OperationOutcome and the usage log.
type ChangeError struct {
	Reason  access.Reason
	Message string
}

func (e *ChangeError) Error() string { return e.Message }

func refuse(r access.Reason, format string, args ...any) error {
	return &ChangeError{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// CanChange says whether role may write s, a new setting (previous nil)
// or a new version of previous. A DELETE is a lift: pass previous with
// Active false as s. The patient binding (a citizen changes only their own
// record) is access.Decide's; this checks what the change itself does.
//
//   - Health personnel, systems and every other role never change privacy
//     settings.
//   - The citizen creates, updates and lifts reservations, restrictions and
//     the removal of their portal access.
//   - Only the citizen-support role creates and lifts blocks.
//   - Nobody lifts or sets an automatic reservation through the API: it
//     follows the secret address in the population register.
//   - A setting keeps its kind, and dateTime never goes backwards; putting
//     a lifted setting in force again needs a new dateTime, or a
//     re-reservation would inherit the old deletion deadline.
func CanChange(role access.Role, s Setting, previous *Setting) error {
	switch role {
	case access.Citizen, access.CitizenSupport:
	case access.Practitioner, access.System:
		return refuse(access.PrivacyByCitizenOnly, "health personnel and systems never change a patient's privacy settings")
	default:
		return refuse(access.RoleNotAllowed, "the role %q cannot change privacy settings", role)
	}
	if s.Automatic || previous != nil && previous.Automatic {
		return refuse(AutomaticLocked, "the reservation of a person with a secret address is set automatically from the population register and cannot be changed or lifted")
	}
	if previous != nil && previous.Kind != s.Kind {
		return refuse(KindChanged, "a %s cannot be turned into a %s; lift it and create a new setting", previous.Kind, s.Kind)
	}
	if s.Kind == Block {
		if role != access.CitizenSupport {
			return refuse(access.BlocksBySupportOnly, "blocks of named health personnel are set and lifted by the citizen-support service on the citizen's request")
		}
	} else if role != access.Citizen {
		return refuse(access.PrivacyByCitizenOnly, "the citizen manages their own %s", s.Kind)
	}
	if previous != nil {
		if s.Since.Before(previous.Since) {
			return refuse(StaleDateTime, "Consent.dateTime %s is before the current version's %s", s.Since.Format(time.RFC3339), previous.Since.Format(time.RFC3339))
		}
		if s.Active && !previous.Active && !s.Since.After(previous.Since) {
			return refuse(StaleDateTime, "putting a lifted %s in force again needs a new Consent.dateTime", s.Kind)
		}
	}
	return nil
}

// ParseAll parses a patient's stored Consents. It fails on the first one
// that is not a valid KjPrivacyConsent: access must fail closed, since an
// unreadable block or reservation cannot simply be ignored.
func ParseAll(consents [][]byte) ([]Setting, error) {
	out := make([]Setting, 0, len(consents))
	for i, c := range consents {
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
			Reference: referenceJSON{Identifier: &identifierJSON{System: HPRSystem, Value: h}},
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
