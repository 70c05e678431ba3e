// Package domain holds kjernejournal's domain constants in one place: the
// Norwegian identifier and code systems (HL7 Norway no-basis and the
// Directorate of eHealth's volven code systems), this server's own
// canonical URLs, the resource types a patient's record is made of, and
// the rules of Norwegian person numbers (fødselsnummer and D-nummer).
package domain

// Identifier systems.
const (
	SystemFNR   = "urn:oid:2.16.578.1.12.4.1.4.1"   // fødselsnummer (national identity number)
	SystemDNR   = "urn:oid:2.16.578.1.12.4.1.4.2"   // D-nummer (for persons without a fødselsnummer)
	SystemHPR   = "urn:oid:2.16.578.1.12.4.1.4.4"   // HPR-nummer (health personnel register)
	SystemOrgNr = "urn:oid:2.16.578.1.12.4.1.4.101" // organisasjonsnummer (Brønnøysund)
	SystemRESH  = "urn:oid:2.16.578.1.12.4.1.4.102" // RESH id (register of health enterprises)
)

// Code systems.
const (
	// SystemHPCategory is helsepersonellkategori (LE doctor, SP nurse, ...).
	SystemHPCategory = "urn:oid:2.16.578.1.12.4.1.1.9060"
	// SystemDocumentType is the national document type code system (9602).
	SystemDocumentType = "urn:oid:2.16.578.1.12.4.1.1.9602"
	// SystemConfidentiality is the confidentiality code system (9603);
	// NORS marks a document that is never shown.
	SystemConfidentiality = "urn:oid:2.16.578.1.12.4.1.1.9603"
	// SystemNLK is Norsk laboratoriekodeverk, the Norwegian laboratory
	// code list lab results are coded with (mostly NPU codes).
	SystemNLK = "urn:oid:2.16.578.1.12.4.1.1.7280"
	// SystemPurposeOfUse is HL7's purpose of use (TREAT, ETREAT, COC, BTG).
	SystemPurposeOfUse = "urn:oid:2.16.840.1.113883.1.11.20448"
)

// This server's own canonical URLs.
const (
	// Base is the root of every canonical URL this server defines.
	Base = "https://kjernejournal.example.no/fhir/"
	// SecretAddressExtension marks a Patient whose address is secret
	// (strengt fortrolig adresse); such a person is reserved automatically.
	SecretAddressExtension = Base + "StructureDefinition/secret-address"
	// SystemAccessReason names the reason codes of access decisions, in
	// OperationOutcome.issue.details and in the usage log.
	SystemAccessReason = Base + "CodeSystem/access-reason"
	// SystemCriticalInfoType is the kind of critical information
	// (kritisk-info-type, Flag.category).
	SystemCriticalInfoType = Base + "CodeSystem/kritisk-info-type"
)

// RecordTypes are the FHIR resource types a patient's record is stored
// as, in the order the CapabilityStatement lists them. A new slice each
// call: callers may keep or change it.
func RecordTypes() []string {
	return []string{"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent", "Condition", "Procedure"}
}

// PatientElement names the element that ties a resource of typ to its
// patient.
func PatientElement(typ string) string {
	switch typ {
	case "AllergyIntolerance", "Consent":
		return typ + ".patient"
	case "Patient":
		return "Patient.id"
	}
	return typ + ".subject"
}
