package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/auth"
)

// Effect is the outcome of a decision.
type Effect string

const (
	Permit Effect = "permit"
	Deny   Effect = "deny"
)

// Reason is a machine-readable reason code; it goes into the
// OperationOutcome and the AuditEvent.
type Reason string

const (
	OK                    Reason = "ok"
	OKRestrictedOpened    Reason = "ok-restricted-opened"     // FORHOYET_* opened restricted parts
	OKPartsHidden         Reason = "ok-restricted-hidden"     // permitted, restricted sections left out
	NotAuthenticated      Reason = "not-authenticated"        // no verified token
	InsufficientScope     Reason = "insufficient-scope"       // the token's SMART scopes do not cover the access
	NoHPR                 Reason = "no-hpr-number"            // rule 1
	LowSecurityLevel      Reason = "security-level-too-low"   // rule 1
	NoPatientBound        Reason = "no-patient-bound"         // rule 1: cross-patient search, bulk extraction
	PatientNotInContext   Reason = "patient-not-in-context"   // rule 1
	AttestPatientMismatch Reason = "attest-patient-mismatch"  // rule 1: the attest's patients[] names someone else
	BasisMissing          Reason = "access-basis-missing"     // rule 2
	BasisUnknown          Reason = "access-basis-unknown"     // rule 2
	UnntakNotSupported    Reason = "unntak-not-supported"     // rule 2
	AkuttNotSupported     Reason = "akutt-not-supported"      // rule 2
	NoRecord              Reason = "no-record"                // rule 4: reserved, or unknown patient
	ReservedNoNewData     Reason = "reserved-no-new-data"     // rule 4
	SectionRestricted     Reason = "section-restricted"       // rule 5
	HPBlocked             Reason = "hp-blocked"               // rule 6
	DocumentsUnavailable  Reason = "documents-unavailable"    // rule 7
	NotOwnRecord          Reason = "not-own-record"           // rule 8
	PortalAccessRemoved   Reason = "portal-access-removed"    // rule 8
	SystemNoClinicalRead  Reason = "system-no-clinical-read"  // rule 1/9: no automatic extraction
	RoleNotAllowed        Reason = "role-not-allowed"         // the role may not do this at all
	PrivacyByCitizenOnly  Reason = "privacy-by-citizen-only"  // rule 6/8: HP never change privacy settings
	BlocksBySupportOnly   Reason = "blocks-by-support-only"   // rule 6
	HPWritesCriticalOnly  Reason = "hp-writes-critical-only"  // HP report critical information only
	FeederWritesOwnFields Reason = "feeder-writes-own-fields" // feeders write medications and visits only
	NotOwnUser            Reason = "not-own-user"             // a Practitioner is read by that practitioner only
	DocumentsForHP        Reason = "documents-for-hp"         // journal documents are shared with health personnel
	LabResultsUnavailable Reason = "lab-results-unavailable"  // rule 7 for lab results, where the configuration says so
)

// Decision is the answer for one request.
type Decision struct {
	Effect  Effect
	Reason  Reason
	Message string // a sentence for the user, in English
	// Hidden are the sections left out of a permitted search, so that the
	// response can say that restricted information exists.
	Hidden []Section
	// OpenedRestricted is set when an elevated basis opened a restricted
	// section; the usage log marks such openings for the citizen.
	OpenedRestricted bool
	// AsNotFound asks the REST layer to answer as if the record did not
	// exist (a reserved patient must be indistinguishable from none).
	AsNotFound bool
	// CitizenView asks for the citizen's view of the usage log: health
	// personnel's names hidden for the first days, documents shown as
	// viewed but not which (DOMAIN.md, "Usage log").
	CitizenView bool
	// ScopeRefused marks a refusal by the token's SMART scopes: the answer
	// carries an insufficient_scope challenge (RFC 6750).
	ScopeRefused bool
	// Scopes is the scope grant of a permit: results and written
	// resources must also pass its granular constraints (Admits).
	Scopes auth.Decision
}

// Admits applies the grant's granular scope constraints (e.g.
// patient/Flag.rs?category=x) to one resource, given a matcher for one
// constraint that returns false for any constraint it cannot evaluate, so
// that an unknown constraint narrows instead of widening. An
// unconstrained grant admits everything.
func (d Decision) Admits(match func(auth.Constraint) bool) bool {
	if !d.Scopes.Constrained() {
		return true
	}
	return d.Scopes.Admits(match)
}

// Hides reports whether a permitted search leaves out the section the
// resource type belongs to (restricted, not opened).
func (d Decision) Hides(resourceType string) bool {
	return slices.Contains(d.Hidden, SectionOf(resourceType))
}

// Allowed reports whether the request may go ahead.
func (d Decision) Allowed() bool { return d.Effect == Permit }

func deny(r Reason, format string, args ...any) Decision {
	return Decision{Effect: Deny, Reason: r, Message: fmt.Sprintf(format, args...)}
}

func permit() Decision { return Decision{Effect: Permit, Reason: OK, Message: "access permitted"} }

// Policy applies the rules with the organisation configuration.
type Policy struct {
	Orgs Organisations
	// LabFollowsVisitHistory makes lab results unavailable, whatever the
	// basis, to a patient who restricted the visit history, as documents
	// are (rule 7): a deployment decides it (serve
	// --lab-follows-visit-history), since the regulation names documents
	// only.
	LabFollowsVisitHistory bool
}

// Decide applies the access rules to one request: the role's rules, then,
// for a change of a privacy setting, who may make that change.
func (p *Policy) Decide(s Subject, r Request, st PatientState) Decision {
	if d, ok := national(s, r); !ok {
		return d
	}
	d := p.decideRole(s, r, st)
	if d.Allowed() && r.Change != nil {
		return decideChange(s.Role, *r.Change)
	}
	return d
}

func (p *Policy) decideRole(s Subject, r Request, st PatientState) Decision {
	if r.ResourceType == "Subscription" && r.Interaction.writes() && s.Role != Practitioner {
		// Notifications of changed critical information go to the EHRs of
		// health personnel treating the patient.
		return deny(RoleNotAllowed, "subscriptions are made by health personnel treating the patient")
	}
	switch s.Role {
	case Practitioner:
		return p.practitioner(s, r, st)
	case Citizen:
		return citizen(s, r, st)
	case System:
		return system(r, st)
	case CitizenSupport:
		return support(r, st)
	case Auditor:
		if r.Section() == UsageLog && !r.Interaction.writes() {
			return permit()
		}
		return deny(RoleNotAllowed, "the auditor role reads the usage log only")
	}
	return deny(RoleNotAllowed, "the token represents no role this server knows")
}

func (p *Policy) practitioner(s Subject, r Request, st PatientState) Decision {
	sec := r.Section()
	// Rule 1: only authorised HP, with a concrete need, one patient at a time.
	if s.HPR == "" {
		return deny(NoHPR, "health personnel need an HPR number in the token to access health data")
	}
	if s.SecurityLevel < 4 {
		return deny(LowSecurityLevel, "access to health data needs security level 4; the token has %d", s.SecurityLevel)
	}
	if sec == UsageLog {
		return deny(RoleNotAllowed, "health personnel cannot read the usage log")
	}
	if sec == Privacy {
		if r.Interaction.writes() {
			return deny(PrivacyByCitizenOnly, "health personnel never change a patient's privacy settings")
		}
		// What a restriction or block means for this HP shows in the record
		// and in $kj-status; the settings themselves (whom the patient
		// blocked) are the citizen's.
		return deny(PrivacyByCitizenOnly, "health personnel do not read a patient's privacy settings; restrictions show in the record and in $kj-status")
	}
	if r.Patient == "" {
		return deny(NoPatientBound, "every request for health data must concern exactly one patient; searching across patients is not allowed")
	}
	if !slices.Contains(s.Patients, r.Patient) {
		return deny(PatientNotInContext, "Patient/%s is not the patient in the token's context", r.Patient)
	}
	// Rule 4 before every other rule that names the patient's settings: a
	// reserved record is as if it did not exist, and answers exactly as an
	// unknown one to everybody, a blocked HP included, so that no answer
	// reveals that a reservation (or a block on a reserved record) exists.
	if !st.Exists || st.ReservedNow() {
		return noRecord(r, st)
	}
	// Rule 1, the concrete need as the HP declared it: the attest names
	// the patients the HP is treating, and a launch context naming another
	// patient does not widen it. Checked after rule 4, so that a reserved
	// record still answers as an unknown one.
	if len(s.AttestPatients) > 0 && st.PersonNumber != "" && !slices.Contains(s.AttestPatients, st.PersonNumber) {
		return deny(AttestPatientMismatch, "the trust-framework attest's patients[] does not name Patient/%s: the token's attest is for another patient, so get a token whose attest names the patient you are treating", r.Patient)
	}
	if r.Interaction == Status {
		return permit()
	}
	// Rule 6: a blocked HP is refused always, emergencies included.
	if slices.Contains(st.BlockedHPR, s.HPR) {
		return deny(HPBlocked, "the patient has blocked health personnel with HPR number %s from their record", s.HPR)
	}
	if r.Interaction.writes() && sec != Critical {
		return deny(HPWritesCriticalOnly, "health personnel report critical information (AllergyIntolerance, Flag, Condition, Procedure, Consent of scope adr or treatment) only; %s comes from the national registers", r.ResourceType)
	}
	// Rule 2: consent is the main rule, with exemptions the token must support.
	if d, ok := p.basis(s, r, st); !ok {
		return d
	}
	// Rule 7: documents follow the visit history and the sharing block,
	// whatever the basis: no elevated basis opens them; the patient must
	// lift the block.
	if sec == Documents && (st.DocumentsBlocked || st.RestrictedSection(VisitHistory)) {
		return deny(DocumentsUnavailable, "the patient's documents are not available: the patient blocked document sharing or the visit history, and no access basis opens them")
	}
	if sec == LabResults && p.LabFollowsVisitHistory && st.RestrictedSection(VisitHistory) {
		return deny(LabResultsUnavailable, "the patient's lab results are not available: the patient restricted the visit history, which on this server also closes the lab results, and no access basis opens them")
	}
	// Rule 5: restricted sections need an elevated basis.
	if sec != Demographics && st.RestrictedSection(sec) {
		if r.Basis.Elevated() {
			d := permit()
			d.Reason, d.OpenedRestricted = OKRestrictedOpened, true
			d.Message = fmt.Sprintf("restricted %s opened with basis %s; the opening is logged and shown to the patient", sec, r.Basis)
			return d
		}
		if r.Interaction == Search {
			d := permit()
			d.Reason, d.Hidden = OKPartsHidden, []Section{sec}
			d.Message = fmt.Sprintf("the patient has restricted %s; it is left out unless the basis is FORHOYET_SAMTYKKE or FORHOYET_AKUTT", sec)
			return d
		}
		return deny(SectionRestricted, "the patient has restricted %s; it can be opened only with basis FORHOYET_SAMTYKKE or FORHOYET_AKUTT", sec)
	}
	// A Patient read or search shows that restricted sections exist.
	if sec == Demographics {
		d := permit()
		if !r.Basis.Elevated() && len(st.Restricted) > 0 {
			d.Hidden = append(d.Hidden, st.Restricted...)
			d.Reason = OKPartsHidden
			names := make([]string, len(st.Restricted))
			for i, rs := range st.Restricted {
				names[i] = string(rs)
			}
			d.Message = fmt.Sprintf("the patient has restricted parts of the record (%s); they open only with basis FORHOYET_SAMTYKKE or FORHOYET_AKUTT", strings.Join(names, ", "))
		}
		return d
	}
	return permit()
}

// basis checks the declared access basis against what the token supports.
func (p *Policy) basis(s Subject, r Request, st PatientState) (Decision, bool) {
	switch {
	case r.BasisHeader == "" && r.Basis == "":
		return deny(BasisMissing, "declare the access basis in the nhn-access-basis header: UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE or FORHOYET_AKUTT"), false
	case r.Basis == "":
		return deny(BasisUnknown, "%q is not an access basis; use UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE or FORHOYET_AKUTT", r.BasisHeader), false
	}
	switch r.Basis {
	case Unntak:
		switch {
		case st.GPHPR != "" && st.GPHPR == s.HPR:
		case slices.Contains(p.Orgs.ContractSpecialists, s.LegalEntity):
		case (s.HPCategory == "LE" || s.HPCategory == "SP") && slices.Contains(p.Orgs.Hospitals, s.LegalEntity):
		default:
			return deny(UnntakNotSupported, "UNNTAK (exempt from consent) is for the patient's own GP, contract specialists, and doctors and nurses treating the patient in a hospital; the token shows none of these, so declare SAMTYKKE"), false
		}
	case Akutt, ForhoyetAkutt:
		if s.PurposeOfUse != "ETREAT" && s.PurposeOfUse != "BTG" {
			return deny(AkuttNotSupported, "%s (emergency) needs purpose of use ETREAT or BTG in the token; it has %q", r.Basis, s.PurposeOfUse), false
		}
	}
	return Decision{}, true
}

func citizen(s Subject, r Request, st PatientState) Decision {
	sec := r.Section()
	if s.SecurityLevel < 4 {
		return deny(LowSecurityLevel, "access to health data needs security level 4; the token has %d", s.SecurityLevel)
	}
	if r.Patient == "" {
		return deny(NoPatientBound, "a citizen reads their own record only; name the patient")
	}
	if !st.Exists || s.PID == "" || st.PersonNumber != s.PID {
		return deny(NotOwnRecord, "a citizen reads their own record only, and Patient/%s is not the logged-in person", r.Patient)
	}
	if st.PortalAccessRemoved && !(sec == Privacy) {
		return deny(PortalAccessRemoved, "you have removed your own access to kjernejournal through the portal; citizen support (kundesenteret) restores it on request")
	}
	if r.Interaction.writes() {
		if sec == Privacy {
			return permit()
		}
		return deny(RoleNotAllowed, "a citizen manages their privacy settings; health information is reported by health personnel")
	}
	if sec == Documents {
		// The sources share documents with health personnel, and verify an
		// HP's assertion for each lookup; the citizen reads their hospital
		// records in the hospitals' own patient portals.
		return deny(DocumentsForHP, "journal documents from other hospitals are shared with health personnel; citizens read them in the hospitals' own patient portals")
	}
	d := permit()
	d.CitizenView = sec == UsageLog
	return d
}

func system(r Request, st PatientState) Decision {
	sec := r.Section()
	if !r.Interaction.writes() {
		return deny(SystemNoClinicalRead, "system clients feed data and never read health data: no automatic extraction")
	}
	if sec != Medications && sec != VisitHistory && sec != Demographics {
		return deny(FeederWritesOwnFields, "feeder systems write MedicationStatement, Encounter and Patient only, not %s", r.ResourceType)
	}
	if st.Exists && st.ReservedNow() {
		// Rule 4: no new data, the Patient included. A reservation that
		// comes from a secret address alone is the population register's
		// own flag: its updates of the Patient must get through, or a
		// lifted secret address would never reach the record.
		if sec == Demographics && !st.Reserved {
			return permit()
		}
		return deny(ReservedNoNewData, "the patient has opted out of kjernejournal; no new information is accepted")
	}
	return permit()
}

// noRecord is rule 4's answer for a reserved or unknown patient: as if
// there were no record, whatever the request does. The reason stays in the
// usage log; the answer (AsNotFound) hides it.
func noRecord(r Request, st PatientState) Decision {
	d := deny(NoRecord, "there is no kjernejournal for Patient/%s", r.Patient)
	if st.Exists && r.Interaction.writes() {
		d.Reason = ReservedNoNewData
	}
	d.AsNotFound = true
	return d
}

func support(r Request, st PatientState) Decision {
	if r.Section() != Privacy {
		return deny(RoleNotAllowed, "the citizen-support role manages HP blocks only and reads no health data")
	}
	if r.Patient == "" {
		return deny(NoPatientBound, "name the patient whose blocks are managed")
	}
	return permit()
}
