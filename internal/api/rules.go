package api

import (
	"encoding/json"
	"strconv"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Identifier systems from HL7 Norway no-basis.
const (
	systemFNR = "urn:oid:2.16.578.1.12.4.1.4.1" // fødselsnummer
	systemDNR = "urn:oid:2.16.578.1.12.4.1.4.2" // D-nummer
	systemHPR = "urn:oid:2.16.578.1.12.4.1.4.4" // HPR-nummer
)

// patientElement names the element that ties a clinical resource to its
// patient.
func patientElement(typ string) string {
	if typ == "AllergyIntolerance" {
		return "AllergyIntolerance.patient"
	}
	return typ + ".subject"
}

// checkRules applies the kjernejournal rules that go beyond base R4:
// every clinical resource belongs to exactly one patient held here (the
// record is per patient, and the patient is the shard key), and every
// Patient is identified by a Norwegian person number.
func checkRules(res *fhir.Resource, body []byte) error {
	if res.Type != "Patient" {
		if res.Patient == "" {
			return invalid(patientElement(res.Type),
				"%s must refer to the patient as a relative reference Patient/<id>", patientElement(res.Type))
		}
		return nil
	}
	var p struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return invalid("Patient", "cannot read the Patient: %v", err)
	}
	found := false
	for i, id := range p.Identifier {
		if id.System != systemFNR && id.System != systemDNR {
			continue
		}
		if !seed.ValidPersonNumber(id.Value) {
			return invalid("Patient.identifier["+strconv.Itoa(i)+"].value",
				"%q is not a valid Norwegian person number (11 digits with correct check digits)", id.Value)
		}
		found = true
	}
	if !found {
		return invalid("Patient.identifier",
			"a Patient needs an identifier with system %s (fødselsnummer) or %s (D-nummer)", systemFNR, systemDNR)
	}
	return nil
}
