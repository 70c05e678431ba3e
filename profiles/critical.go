package profiles

import _ "embed"

// The national critical-information model beyond AllergyIntolerance and
// Flag: Condition profiles by type of critical information, KjProcedure,
// the critical Consents (kept apart from KjPrivacyConsent by their scope),
// the extensions they share and the CodeSystem of the eleven types.
// internal/profile enforces them; keep the two in step.
var (
	//go:embed condition-complicationsofanesthesia-kj.json
	ConditionComplicationsOfAnesthesia []byte
	//go:embed condition-criticalmedicalcondition-kj.json
	ConditionCriticalMedicalCondition []byte
	//go:embed condition-transplantsandotherforeignbodies-kj.json
	ConditionTransplantsAndOtherForeignBodies []byte
	//go:embed condition-infection-kj.json
	ConditionInfection []byte
	//go:embed procedure-kj.json
	ProcedureProfile []byte
	//go:embed consent-limitsoflifeprolongingtreatment-kj.json
	ConsentLimitsOfLifeProlongingTreatment []byte
	//go:embed consent-treatmentclarification-kj.json
	ConsentTreatmentClarification []byte
	//go:embed extension-source-of-information.json
	SourceOfInformation []byte
	//go:embed extension-valid-until.json
	ValidUntil []byte
	// NationalCriticalInfoTypeCodes is the CodeSystem critical-info-type of
	// the eleven types; NationalCriticalInfoTypeValueSet holds all of them.
	//go:embed codesystem-critical-info-type.json
	NationalCriticalInfoTypeCodes []byte
	//go:embed valueset-critical-info-type.json
	NationalCriticalInfoTypeValueSet []byte
)
