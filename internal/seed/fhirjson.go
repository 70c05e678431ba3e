package seed

// Small structs in FHIR JSON shape. Field order is the order FHIR's own
// examples use, which keeps the generated bodies pleasant to read; encoding
// structs rather than maps is also what keeps generation fast.

type jCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type jConcept struct {
	Coding []jCoding `json:"coding,omitempty"`
	Text   string    `json:"text,omitempty"`
}

type jIdentifier struct {
	Use    string `json:"use,omitempty"`
	System string `json:"system"`
	Value  string `json:"value"`
}

type jReference struct {
	Reference  string       `json:"reference,omitempty"`
	Type       string       `json:"type,omitempty"`
	Identifier *jIdentifier `json:"identifier,omitempty"`
	Display    string       `json:"display,omitempty"`
}

type jPeriod struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type jExtension struct {
	URL          string `json:"url"`
	ValueBoolean bool   `json:"valueBoolean"`
}

type jName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

type jAddress struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	District   string   `json:"district,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type jPatient struct {
	ResourceType        string        `json:"resourceType"`
	ID                  string        `json:"id"`
	Extension           []jExtension  `json:"extension,omitempty"`
	Identifier          []jIdentifier `json:"identifier"`
	Active              bool          `json:"active"`
	Name                []jName       `json:"name"`
	Gender              string        `json:"gender"`
	BirthDate           string        `json:"birthDate"`
	Address             []jAddress    `json:"address,omitempty"`
	GeneralPractitioner []jReference  `json:"generalPractitioner"`
}

type jReaction struct {
	Manifestation []jConcept `json:"manifestation"`
	Severity      string     `json:"severity,omitempty"`
}

type jAllergyIntolerance struct {
	ResourceType       string      `json:"resourceType"`
	ID                 string      `json:"id"`
	ClinicalStatus     jConcept    `json:"clinicalStatus"`
	VerificationStatus jConcept    `json:"verificationStatus"`
	Type               string      `json:"type"`
	Category           []string    `json:"category"`
	Criticality        string      `json:"criticality"`
	Code               jConcept    `json:"code"`
	Patient            jReference  `json:"patient"`
	OnsetDateTime      string      `json:"onsetDateTime,omitempty"`
	RecordedDate       string      `json:"recordedDate"`
	Recorder           jReference  `json:"recorder"`
	Reaction           []jReaction `json:"reaction,omitempty"`
}

type jFlag struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Category     []jConcept `json:"category"`
	Code         jConcept   `json:"code"`
	Subject      jReference `json:"subject"`
	Period       jPeriod    `json:"period"`
	Author       jReference `json:"author"`
}

type jDosage struct {
	Text string `json:"text"`
}

type jMedicationStatement struct {
	ResourceType              string     `json:"resourceType"`
	ID                        string     `json:"id"`
	Status                    string     `json:"status"`
	Category                  jConcept   `json:"category"`
	MedicationCodeableConcept jConcept   `json:"medicationCodeableConcept"`
	Subject                   jReference `json:"subject"`
	EffectivePeriod           jPeriod    `json:"effectivePeriod"`
	DateAsserted              string     `json:"dateAsserted"`
	InformationSource         jReference `json:"informationSource"`
	Dosage                    []jDosage  `json:"dosage"`
}

type jEncounter struct {
	ResourceType    string     `json:"resourceType"`
	ID              string     `json:"id"`
	Status          string     `json:"status"`
	Class           jCoding    `json:"class"`
	Type            []jConcept `json:"type"`
	ServiceType     jConcept   `json:"serviceType"`
	Subject         jReference `json:"subject"`
	Period          jPeriod    `json:"period"`
	ReasonCode      []jConcept `json:"reasonCode"`
	ServiceProvider jReference `json:"serviceProvider"`
}
