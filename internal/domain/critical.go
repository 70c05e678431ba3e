package domain

import "slices"

// The national model of critical information (kritisk informasjon): eleven
// types, numbered as the national summary care record numbers them, each
// carried by one FHIR resource type. The national profiles are published
// in the Simplifier project kjernejournalr4; its CodeSystem of the types
// was not available to us, so SystemCriticalInfoTypeNational is this
// server's own (profiles/codesystem-critical-info-type.json), with the
// national profiles' English names as codes.
const (
	SystemCriticalInfoTypeNational = Base + "CodeSystem/critical-info-type"

	DrugReaction                     = "DrugReaction"                     // 1 legemiddelreaksjon (AllergyIntolerance)
	OtherAllergen                    = "OtherAllergen"                    // 2 annen allergi (AllergyIntolerance)
	IntubationProblem                = "IntubationProblem"                // 3 intubasjonsproblem (Condition)
	OtherAnesthesiaProblem           = "OtherAnesthesiaProblem"           // 4 andre anestesiproblemer (Condition)
	CriticalMedicalCondition         = "CriticalMedicalCondition"         // 5 kritisk medisinsk tilstand (Condition)
	OngoingTreatment                 = "OngoingTreatment"                 // 6 pågående behandling (Procedure)
	TransplantsAndOtherForeignBodies = "TransplantsAndOtherForeignBodies" // 7 implantater og transplantater (Condition)
	LimitsOfLifeProlongingTreatment  = "LimitsOfLifeProlongingTreatment"  // 8 begrensning av livsforlengende behandling (Consent)
	ChangedTreatmentRoutines         = "ChangedTreatmentRoutines"         // 9 endret behandlingsrutine (Flag)
	Infection                        = "Infection"                        // 10 smitte (Condition)
	TreatmentClarification           = "TreatmentClarification"           // 11 behandlingsavklaring (Consent)
)

// Extensions and code systems the critical-information profiles share.
const (
	// SourceOfInformationExtension is KjSourceOfInformation: where the
	// health personnel got the information (the patient, a relative, an
	// other health record, ...), as a CodeableConcept or text.
	SourceOfInformationExtension = Base + "StructureDefinition/KjSourceOfInformation"
	// ValidUntilExtension is KjProcedure's date after which an ongoing
	// treatment no longer applies.
	ValidUntilExtension = Base + "StructureDefinition/KjValidUntil"
	// RecorderRef is the id of the contained PractitionerRole, set by the
	// server from the token, that names who recorded critical information.
	RecorderRef = "recorderRef"
	// SystemConsentScope is R4's Consent.scope code system; adr (advance
	// directive) and treatment mark critical information, patient-privacy
	// marks a privacy setting.
	SystemConsentScope = "http://terminology.hl7.org/CodeSystem/consentscope"
	// SystemConditionCategory is R4's Condition.category code system.
	SystemConditionCategory = "http://terminology.hl7.org/CodeSystem/condition-category"
)

// CriticalTypes are the resource types that hold critical information
// whatever their content. A Consent is critical information only with
// scope adr or treatment (profile.CriticalConsent decides); the other
// Consents are privacy settings. A new slice each call.
func CriticalTypes() []string {
	return []string{"AllergyIntolerance", "Flag", "Condition", "Procedure"}
}

// IsCriticalType reports whether every resource of typ is critical
// information.
func IsCriticalType(typ string) bool { return slices.Contains(CriticalTypes(), typ) }
