// Package access is the one place where kjernejournal decides who may see
// or change what of a patient's record: the SMART scopes of the token, the
// binding of every search to one patient, and the Norwegian access rules
// of ../shared/DOMAIN.md, including who may change which privacy setting
// and which roles may subscribe or read the usage log. Every route asks
// Authorize (or BindSearch for a search's patient); no handler decides on
// its own. The package is pure: it sees the verified identity, the request
// and the patient's privacy state, and returns a decision with a
// machine-readable reason and a sentence for the user. It never answers a
// request itself.
package access

import "slices"

// Role is what kind of user a token represents.
type Role string

const (
	Practitioner   Role = "practitioner"    // health personnel (HP), via HelseID
	Citizen        Role = "citizen"         // the patient, via the citizen portal
	System         Role = "system"          // feeder systems (client credentials)
	CitizenSupport Role = "citizen-support" // sets and lifts HP blocks on the citizen's request
	Auditor        Role = "auditor"         // supervision of the usage log
)

// Basis is the access basis the request declares (header nhn-access-basis).
type Basis string

const (
	Unntak           Basis = "UNNTAK"            // exempt from consent
	Samtykke         Basis = "SAMTYKKE"          // consent obtained
	Akutt            Basis = "AKUTT"             // emergency
	ForhoyetSamtykke Basis = "FORHOYET_SAMTYKKE" // consent that also opens restricted parts
	ForhoyetAkutt    Basis = "FORHOYET_AKUTT"    // emergency that also opens restricted parts
)

// ParseBasis reads the header value; ok is false for unknown values.
func ParseBasis(s string) (Basis, bool) {
	b := Basis(s)
	switch b {
	case Unntak, Samtykke, Akutt, ForhoyetSamtykke, ForhoyetAkutt:
		return b, true
	}
	return "", false
}

// Elevated reports whether the basis opens restricted parts.
func (b Basis) Elevated() bool { return b == ForhoyetSamtykke || b == ForhoyetAkutt }

// Section is a part of the record a citizen can restrict.
type Section string

const (
	Critical     Section = "critical"     // kritisk informasjon: AllergyIntolerance, Flag, Condition, Procedure, critical Consent
	Medications  Section = "medications"  // legemidler: MedicationStatement
	VisitHistory Section = "visits"       // besøkshistorikk: Encounter
	Documents    Section = "documents"    // journaldokumenter: DocumentReference
	LabResults   Section = "lab-results"  // prøvesvar: DiagnosticReport, Observation
	Demographics Section = "demographics" // the Patient itself (never restricted)
	Privacy      Section = "privacy"      // Consent: the citizen's privacy settings
	UsageLog     Section = "usage-log"    // AuditEvent
)

// SectionOf maps a resource type to its section ("" if not part of a record).
func SectionOf(resourceType string) Section {
	switch resourceType {
	case "AllergyIntolerance", "Flag", "Condition", "Procedure", "Subscription":
		// A Subscription watches a patient's critical information.
		return Critical
	case "MedicationStatement":
		return Medications
	case "Encounter":
		return VisitHistory
	case "DocumentReference", "Binary":
		return Documents
	case "DiagnosticReport", "Observation":
		return LabResults
	case "Patient":
		return Demographics
	case "Consent":
		return Privacy
	case "AuditEvent":
		return UsageLog
	}
	return ""
}

// Interaction is what the request does.
type Interaction string

const (
	Read   Interaction = "read" // read, vread, history of one resource
	Search Interaction = "search"
	Create Interaction = "create"
	Update Interaction = "update"
	Delete Interaction = "delete"
	// Status is $kj-status: whether critical information exists and when
	// it changed, whether parts are restricted and whether this HP is
	// blocked — no health data, so no access basis is asked for.
	Status Interaction = "status"
)

func (i Interaction) writes() bool { return i == Create || i == Update || i == Delete }

// Subject is the verified identity behind a request, taken from the token.
type Subject struct {
	Role          Role
	HPR           string // HPR number; required for any HP access
	PID           string // person number of the person logged in
	SecurityLevel int
	HPCategory    string // from the attest, code system 9060: LE doctor, SP nurse, ...
	LegalEntity   string // organisation number of the legal entity (orgnr_parent)
	PointOfCare   string // organisation number of the point of care (orgnr_child)
	PurposeOfUse  string // TREAT, ETREAT, COC, BTG
	// Patients are the FHIR ids of the patients in the token's context:
	// the SMART launch patient and the attest's patients[].
	Patients []string
	// AttestPatients are the national identity numbers the trust-framework
	// attest's patients[] names (nil when it names none): the patients the
	// HP declared to be treating, which a request must agree with.
	AttestPatients []string
}

// Request is one access the server is about to make.
type Request struct {
	Interaction  Interaction
	ResourceType string
	// Patient is the FHIR id of the patient whose record is touched; ""
	// when the request does not bind one patient (a cross-patient search).
	Patient string
	// ID is the resource's id where the rule depends on it: the user's
	// own Practitioner.
	ID    string
	Basis Basis // "" when the request declared none
	// BasisHeader is the raw header, to name an unknown value in the reason.
	BasisHeader string
	// Change, for a write of a privacy setting, is what the write does:
	// who may make it is part of the decision.
	Change *PrivacyChange
	// Critical marks a Consent that is critical information (scope adr or
	// treatment), not a privacy setting; see Request.Section.
	Critical bool
	// NamedPatient is the FHIR id of the patient the request names in
	// nhn-patient-nin (an id no record has when the number is nobody's);
	// "" when the header was not sent. Patient must then be that patient.
	NamedPatient string
	// UserRole is the HP category (code system 9060) the request declares
	// in nhn-user-role; "" when the header was not sent. It must agree
	// with the token.
	UserRole string
}

// PatientState is what the server knows about the patient, from the
// Patient resource and the patient's Consents.
type PatientState struct {
	Exists        bool
	PersonNumber  string
	GPHPR         string // HPR number of the registered GP (fastlege)
	SecretAddress bool
	Reserved      bool // reservasjon: opted out of kjernejournal
	// Restricted are the sections the citizen restricted (sperret); the
	// whole record is every section.
	Restricted          []Section
	BlockedHPR          []string // HP the citizen blocked
	DocumentsBlocked    bool     // blocked document sharing
	PortalAccessRemoved bool     // the citizen removed their own portal access
}

// ReservedNow reports whether the record is hidden: opted out, or a secret
// address (reserved automatically).
func (s PatientState) ReservedNow() bool { return s.Reserved || s.SecretAddress }

// restrictable are the sections a citizen can restrict (sperre), in the
// order the privacy settings list them.
var restrictable = []Section{Critical, Medications, VisitHistory, Documents, LabResults}

// RestrictableSections lists the sections a citizen can restrict, in the
// order the privacy settings list them (package privacy: the code "all"
// stands for every one).
func RestrictableSections() []Section { return slices.Clone(restrictable) }

// RestrictedSection reports whether sec is restricted.
func (s PatientState) RestrictedSection(sec Section) bool {
	return slices.Contains(restrictable, sec) && slices.Contains(s.Restricted, sec)
}

// Organisations holds the configuration the rules need.
type Organisations struct {
	Hospitals           []string // legal entities (org numbers) that are hospitals
	ContractSpecialists []string // legal entities of contract specialists (avtalespesialister)
}
