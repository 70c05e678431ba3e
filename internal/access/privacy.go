package access

import (
	"fmt"
	"time"
)

// PrivacyKind is a kind of privacy setting: its code in the
// privacy-setting code system (package privacy parses and writes them).
type PrivacyKind string

const (
	KindReservation  PrivacyKind = "reservasjon"   // opted out of kjernejournal
	KindRestriction  PrivacyKind = "sperring"      // sections restricted
	KindBlock        PrivacyKind = "blokkering"    // named health personnel blocked
	KindPortalAccess PrivacyKind = "portaltilgang" // own portal access removed
)

// PrivacySetting is what the rules need to know of one privacy setting.
type PrivacySetting struct {
	Kind   PrivacyKind
	Active bool // in force; false: lifted
	// Automatic marks a reservation the server sets from the population
	// register's secret address.
	Automatic bool
	Since     time.Time // Consent.dateTime
}

// PrivacyChange is a write of a privacy setting: the new setting and, for
// an update, the one it replaces (nil for a new setting).
type PrivacyChange struct {
	New      PrivacySetting
	Previous *PrivacySetting
}

// Reasons of refused privacy changes beyond the role rules.
const (
	// AutomaticLocked: the automatic reservation of a person with a secret
	// address is set and lifted by the server alone.
	AutomaticLocked Reason = "automatic-reservation-locked"
	// KindChanged: an update tried to turn one kind of setting into another.
	KindChanged Reason = "privacy-kind-changed"
	// StaleDateTime: an update moved Consent.dateTime backwards, or put a
	// lifted setting in force again under its old dateTime.
	StaleDateTime Reason = "privacy-datetime-stale"
	// PortalRestoredBySupport: the citizen removed their own portal access;
	// it comes back only on request, through citizen support (rule 8).
	PortalRestoredBySupport Reason = "portal-restored-by-support"
)

// decideChange says whether role may make change. The patient binding (a
// citizen changes only their own record) is the role rules'; this checks
// what the change itself does:
//
//   - Health personnel, systems and every other role never change privacy
//     settings.
//   - The citizen creates, updates and lifts reservations and restrictions,
//     and removes their own portal access.
//   - Portal access comes back only on request: citizen support lifts the
//     removal, never the citizen online (rule 8).
//   - Only the citizen-support role creates and lifts blocks.
//   - Nobody lifts or sets an automatic reservation through the API: it
//     follows the secret address in the population register.
//   - A setting keeps its kind, and dateTime never goes backwards; putting
//     a lifted setting in force again needs a new dateTime, or a
//     re-reservation would inherit the old deletion deadline.
func decideChange(role Role, c PrivacyChange) Decision {
	s, prev := c.New, c.Previous
	switch role {
	case Citizen, CitizenSupport:
	case Practitioner, System:
		return deny(PrivacyByCitizenOnly, "health personnel and systems never change a patient's privacy settings")
	default:
		return deny(RoleNotAllowed, "the role %q cannot change privacy settings", role)
	}
	if s.Automatic || prev != nil && prev.Automatic {
		return deny(AutomaticLocked, "the reservation of a person with a secret address is set automatically from the population register and cannot be changed or lifted")
	}
	if prev != nil && prev.Kind != s.Kind {
		return deny(KindChanged, "a %s cannot be turned into a %s; lift it and create a new setting", prev.Kind, s.Kind)
	}
	restoring := s.Kind == KindPortalAccess && prev != nil && prev.Active && !s.Active
	switch {
	case s.Kind == KindBlock:
		if role != CitizenSupport {
			return deny(BlocksBySupportOnly, "blocks of named health personnel are set and lifted by the citizen-support service on the citizen's request")
		}
	case restoring:
		if role != CitizenSupport {
			return deny(PortalRestoredBySupport, "portal access that the citizen removed is restored only on request, by citizen support (kundesenteret), not online")
		}
	case role != Citizen:
		return deny(PrivacyByCitizenOnly, "the citizen manages their own %s", s.Kind)
	}
	if prev != nil {
		if s.Since.Before(prev.Since) {
			return deny(StaleDateTime, "Consent.dateTime %s is before the current version's %s", s.Since.Format(time.RFC3339), prev.Since.Format(time.RFC3339))
		}
		if s.Active && !prev.Active && !s.Since.After(prev.Since) {
			return deny(StaleDateTime, "putting a lifted %s in force again needs a new Consent.dateTime", s.Kind)
		}
	}
	d := permit()
	d.Message = fmt.Sprintf("%s changed", s.Kind)
	return d
}
