package seed

// Small structs in FHIR JSON shape; encoding structs rather than maps is
// what keeps generation fast. Their fields are in the order fhir.Codec
// prints members (resourceType and id first, then alphabetical), so that
// Load can store a generated Patient, MedicationStatement or Encounter as
// generated instead of printing it again (ingest.Preparer.WritePrinted;
// TestSeedJSONIsPrinted in internal/ingest fails if the two drift).

type jCoding struct {
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
	System  string `json:"system,omitempty"`
}

type jConcept struct {
	Coding []jCoding `json:"coding,omitempty"`
	Text   string    `json:"text,omitempty"`
}

type jIdentifier struct {
	System string `json:"system"`
	Use    string `json:"use,omitempty"`
	Value  string `json:"value"`
}

type jReference struct {
	Display    string       `json:"display,omitempty"`
	Identifier *jIdentifier `json:"identifier,omitempty"`
	Reference  string       `json:"reference,omitempty"`
	Type       string       `json:"type,omitempty"`
}

type jPeriod struct {
	End   string `json:"end,omitempty"`
	Start string `json:"start,omitempty"`
}

type jExtension struct {
	URL          string `json:"url"`
	ValueBoolean bool   `json:"valueBoolean"`
}

type jName struct {
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Text   string   `json:"text,omitempty"`
	Use    string   `json:"use,omitempty"`
}

type jAddress struct {
	City       string   `json:"city,omitempty"`
	Country    string   `json:"country,omitempty"`
	District   string   `json:"district,omitempty"`
	Line       []string `json:"line,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Type       string   `json:"type,omitempty"`
	Use        string   `json:"use,omitempty"`
}

type jPatient struct {
	ResourceType        string        `json:"resourceType"`
	ID                  string        `json:"id"`
	Active              bool          `json:"active"`
	Address             []jAddress    `json:"address,omitempty"`
	BirthDate           string        `json:"birthDate"`
	Extension           []jExtension  `json:"extension,omitempty"`
	Gender              string        `json:"gender"`
	GeneralPractitioner []jReference  `json:"generalPractitioner"`
	Identifier          []jIdentifier `json:"identifier"`
	Name                []jName       `json:"name"`
}

type jReaction struct {
	Manifestation []jConcept `json:"manifestation"`
	Severity      string     `json:"severity,omitempty"`
}

type jAllergyIntolerance struct {
	ResourceType       string      `json:"resourceType"`
	ID                 string      `json:"id"`
	Category           []string    `json:"category"`
	ClinicalStatus     jConcept    `json:"clinicalStatus"`
	Code               jConcept    `json:"code"`
	Criticality        string      `json:"criticality"`
	OnsetDateTime      string      `json:"onsetDateTime,omitempty"`
	Patient            jReference  `json:"patient"`
	Reaction           []jReaction `json:"reaction,omitempty"`
	RecordedDate       string      `json:"recordedDate"`
	Recorder           jReference  `json:"recorder"`
	Type               string      `json:"type"`
	VerificationStatus jConcept    `json:"verificationStatus"`
}

type jFlag struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Author       jReference `json:"author"`
	Category     []jConcept `json:"category"`
	Code         jConcept   `json:"code"`
	Period       jPeriod    `json:"period"`
	Status       string     `json:"status"`
	Subject      jReference `json:"subject"`
}

type jDosage struct {
	Text string `json:"text"`
}

type jMedicationStatement struct {
	ResourceType              string     `json:"resourceType"`
	ID                        string     `json:"id"`
	Category                  jConcept   `json:"category"`
	DateAsserted              string     `json:"dateAsserted"`
	Dosage                    []jDosage  `json:"dosage"`
	EffectivePeriod           jPeriod    `json:"effectivePeriod"`
	InformationSource         jReference `json:"informationSource"`
	MedicationCodeableConcept jConcept   `json:"medicationCodeableConcept"`
	Status                    string     `json:"status"`
	Subject                   jReference `json:"subject"`
}

type jEncounter struct {
	ResourceType    string     `json:"resourceType"`
	ID              string     `json:"id"`
	Class           jCoding    `json:"class"`
	Period          jPeriod    `json:"period"`
	ReasonCode      []jConcept `json:"reasonCode"`
	ServiceProvider jReference `json:"serviceProvider"`
	ServiceType     jConcept   `json:"serviceType"`
	Status          string     `json:"status"`
	Subject         jReference `json:"subject"`
	Type            []jConcept `json:"type"`
}
