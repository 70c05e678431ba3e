package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// personNumber makes a synthetic person number for test patient n.
func personNumber(t *testing.T, n int) string {
	t.Helper()
	// Not every individual number has a valid check digit: try the next.
	for ind := 100 + n%300; ind < 500; ind++ {
		pn, err := seed.PersonNumber(time.Date(1950+n%50, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC), ind, n%2 == 0)
		if err == nil {
			return pn
		}
	}
	require.FailNow(t, "no synthetic person number for patient", n)
	return ""
}

func patientJSON(t *testing.T, n int, id string) []byte {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	return []byte(fmt.Sprintf(`{"resourceType":"Patient",%s
	  "identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":%q}],
	  "name":[{"family":"Nordmann","given":["Kari"]}],"gender":"female","birthDate":"1970-05-17",
	  "generalPractitioner":[{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"565501872"},"display":"Lege Lin"}]}`,
		idPart, personNumber(t, n)))
}

// clinical returns a valid resource of typ for the patient; note varies a
// text element so updates are visible.
func clinical(typ, patient, id, note string) []byte {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	var body string
	switch typ {
	case "AllergyIntolerance":
		body = fmt.Sprintf(`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
		  "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},
		  "criticality":"high","code":{"coding":[{"system":"http://www.whocc.no/atc","code":"J01CE02","display":"Fenoksymetylpenicillin"}],"text":%q},
		  "patient":{"reference":"Patient/%s"}`, note, patient)
	case "Flag":
		body = fmt.Sprintf(`"status":"active","category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat"}]}],
		  "code":{"text":%q},"period":{"start":"2024-01-10T08:00:00Z"},"subject":{"reference":"Patient/%s"}`, note, patient)
	case "MedicationStatement":
		body = fmt.Sprintf(`"status":"active","medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"C07AB02","display":"Metoprolol"}],"text":%q},
		  "subject":{"reference":"Patient/%s"},"effectivePeriod":{"start":"2024-01-10"}`, note, patient)
	case "Encounter":
		body = fmt.Sprintf(`"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},
		  "subject":{"reference":"Patient/%s"},"period":{"start":"2024-02-01T10:00:00+01:00","end":"2024-02-03T12:00:00+01:00"},
		  "reasonCode":[{"text":%q}]`, patient, note)
	case "Consent":
		// A restriction (sperring) of the medication overview.
		body = fmt.Sprintf(`"status":"active",
		  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
		  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting","code":"sperring","display":%q}]}],
		  "patient":{"reference":"Patient/%s"},"dateTime":"2026-01-05T10:00:00Z",
		  "policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},
		  "provision":{"type":"deny","code":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/record-section","code":"medications"}]}]}`, note, patient)
	case "Condition":
		// An implant (critical information of type 7).
		body = fmt.Sprintf(`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
		  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"TransplantsAndOtherForeignBodies"}]}],
		  "code":{"text":%q},"subject":{"reference":"Patient/%s"}`, note, patient)
	case "Procedure":
		// Ongoing treatment (critical information of type 6).
		body = fmt.Sprintf(`"status":"in-progress",
		  "category":{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"OngoingTreatment"}]},
		  "code":{"text":%q},"subject":{"reference":"Patient/%s"},"performedDateTime":"2024-05-01"`, note, patient)
	default:
		panic("no fixture for " + typ)
	}
	return []byte(fmt.Sprintf(`{"resourceType":%q,%s%s}`, typ, idPart, body))
}
