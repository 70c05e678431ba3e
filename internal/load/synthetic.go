package load

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// SyntheticTypes are the resource types SyntheticBodies can generate.
var SyntheticTypes = []string{"Flag", "AllergyIntolerance"}

// SyntheticTagSystem tags every generated resource (meta.tag) so that load
// data can be told apart from, and cleaned out of, anything else.
const SyntheticTagSystem = "http://kjernejournal.example/CodeSystem/kjload"

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text,omitempty"`
}

type reference struct {
	Reference string `json:"reference"`
}

type meta struct {
	Tag []coding `json:"tag"`
}

type period struct {
	Start string `json:"start"`
}

// Field order follows the R4 element order, which keeps bodies readable
// next to the specification.
type flag struct {
	ResourceType string            `json:"resourceType"`
	Meta         meta              `json:"meta"`
	Status       string            `json:"status"`
	Category     []codeableConcept `json:"category"`
	Code         codeableConcept   `json:"code"`
	Subject      reference         `json:"subject"`
	Period       period            `json:"period"`
}

type allergyIntolerance struct {
	ResourceType       string          `json:"resourceType"`
	Meta               meta            `json:"meta"`
	ClinicalStatus     codeableConcept `json:"clinicalStatus"`
	VerificationStatus codeableConcept `json:"verificationStatus"`
	Type               string          `json:"type"`
	Category           []string        `json:"category"`
	Criticality        string          `json:"criticality"`
	Code               codeableConcept `json:"code"`
	Patient            reference       `json:"patient"`
	RecordedDate       string          `json:"recordedDate"`
}

var syntheticTag = meta{Tag: []coding{{System: SyntheticTagSystem, Code: "synthetic", Display: "Synthetic load-test data"}}}

type flagKind struct {
	category coding
	code     coding
}

// The categories are kjernejournal's types of critical information, so
// that created Flags pass the KjFlag profile.
const criticalInfoTypes = domain.SystemCriticalInfoType

var flagKinds = []flagKind{
	{coding{criticalInfoTypes, "implantat", "Implantat"},
		coding{SyntheticTagSystem + "-flag", "pacemaker", "Has a pacemaker"}},
	{coding{criticalInfoTypes, "smitte", "Smitte"},
		coding{SyntheticTagSystem + "-flag", "mrsa", "MRSA carrier"}},
	{coding{criticalInfoTypes, "anestesikomplikasjon", "Anestesikomplikasjon"},
		coding{SyntheticTagSystem + "-flag", "malignant-hyperthermia", "Malignant hyperthermia"}},
	{coding{criticalInfoTypes, "kritisk-tilstand", "Kritisk tilstand"},
		coding{SyntheticTagSystem + "-flag", "adrenal-insufficiency", "Adrenal insufficiency"}},
}

type allergyKind struct {
	category string
	code     coding
}

var allergyKinds = []allergyKind{
	{"medication", coding{"http://www.whocc.no/atc", "J01CE02", "Fenoksymetylpenicillin"}},
	{"food", coding{"http://snomed.info/sct", "91935009", "Allergy to peanuts"}},
	{"environment", coding{"http://snomed.info/sct", "300916003", "Latex allergy"}},
	{"environment", coding{"http://snomed.info/sct", "418689008", "Allergy to grass pollen"}},
}

var criticalities = []string{"low", "high", "unable-to-assess"}

// syntheticEpoch anchors generated dates so that a seed reproduces bodies.
var syntheticEpoch = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

func syntheticDate(r *rand.Rand) string {
	return syntheticEpoch.Add(time.Duration(r.Int64N(int64(10 * 365 * 24 * time.Hour)))).Truncate(time.Second).Format(time.RFC3339)
}

// SyntheticBodies returns a generator of valid FHIR R4 JSON bodies (no id,
// ready for POST /{typ}) of type typ, one of SyntheticTypes, each
// referencing a random one of patientIDs (bare ids or "Patient/{id}").
func SyntheticBodies(typ string, patientIDs []string) (func(r *rand.Rand) []byte, error) {
	if len(patientIDs) == 0 {
		return nil, fmt.Errorf("load: synthetic %s bodies need at least one patient id", typ)
	}
	refs := make([]reference, len(patientIDs))
	for i, id := range patientIDs {
		bare := BarePatientID(id)
		if bare == "" {
			return nil, fmt.Errorf("load: empty patient id at index %d", i)
		}
		refs[i] = reference{"Patient/" + url.PathEscape(bare)}
	}
	var build func(r *rand.Rand) any
	switch typ {
	case "Flag":
		build = func(r *rand.Rand) any {
			k := flagKinds[r.IntN(len(flagKinds))]
			return flag{
				ResourceType: "Flag",
				Meta:         syntheticTag,
				Status:       "active",
				Category:     []codeableConcept{{Coding: []coding{k.category}}},
				Code:         codeableConcept{Coding: []coding{k.code}, Text: k.code.Display},
				Subject:      refs[r.IntN(len(refs))],
				Period:       period{Start: syntheticDate(r)},
			}
		}
	case "AllergyIntolerance":
		build = func(r *rand.Rand) any {
			k := allergyKinds[r.IntN(len(allergyKinds))]
			return allergyIntolerance{
				ResourceType: "AllergyIntolerance",
				Meta:         syntheticTag,
				// R4 invariant ait-1 requires clinicalStatus unless the
				// verification status is entered-in-error.
				ClinicalStatus: codeableConcept{Coding: []coding{{
					"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"}}},
				VerificationStatus: codeableConcept{Coding: []coding{{
					"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"}}},
				Type:         "allergy",
				Category:     []string{k.category},
				Criticality:  criticalities[r.IntN(len(criticalities))],
				Code:         codeableConcept{Coding: []coding{k.code}, Text: k.code.Display},
				Patient:      refs[r.IntN(len(refs))],
				RecordedDate: syntheticDate(r),
			}
		}
	default:
		return nil, fmt.Errorf("load: no synthetic body generator for %q (have %v)", typ, SyntheticTypes)
	}
	return func(r *rand.Rand) []byte {
		b, err := json.Marshal(build(r))
		if err != nil {
			// Only fixed struct types are marshalled; failure is a bug.
			panic(err)
		}
		return b
	}, nil
}
