package profile

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/kjernejournal/kjernejournal/profiles"
)

// embedded are the conformance resources of profiles/ by resource type and
// id. SearchParameters, a Bundle, is served through the CapabilityStatement
// and not listed here.
var embedded = func() map[string]map[string][]byte {
	all := [][]byte{
		profiles.AllergyIntoleranceProfile,
		profiles.FlagProfile,
		profiles.PrivacyConsent,
		profiles.PrivacySettingSource,
		profiles.CriticalInfoTypeCodes,
		profiles.PrivacySettingCodes,
		profiles.RecordSectionCodes,
		profiles.PrivacySettingSourceCodes,
		profiles.CriticalInfoTypeValueSet,
		profiles.AllergySubstances,
		profiles.PrivacySettingValueSet,
		profiles.RecordSectionValueSet,
		profiles.ConditionComplicationsOfAnesthesia,
		profiles.ConditionCriticalMedicalCondition,
		profiles.ConditionTransplantsAndOtherForeignBodies,
		profiles.ConditionInfection,
		profiles.ProcedureProfile,
		profiles.ConsentLimitsOfLifeProlongingTreatment,
		profiles.ConsentTreatmentClarification,
		profiles.SourceOfInformation,
		profiles.ValidUntil,
		profiles.NationalCriticalInfoTypeCodes,
		profiles.NationalCriticalInfoTypeValueSet,
	}
	out := map[string]map[string][]byte{}
	for _, body := range all {
		var r struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
			panic(fmt.Sprintf("profile: an embedded conformance resource has no resourceType or id: %v", err))
		}
		if out[r.ResourceType] == nil {
			out[r.ResourceType] = map[string][]byte{}
		}
		if _, dup := out[r.ResourceType][r.ID]; dup {
			panic("profile: two embedded " + r.ResourceType + " resources have the id " + r.ID)
		}
		out[r.ResourceType][r.ID] = body
	}
	return out
}()

func copyOf(typ string) map[string][]byte {
	m := make(map[string][]byte, len(embedded[typ]))
	for id, body := range embedded[typ] {
		m[id] = slices.Clone(body)
	}
	return m
}

// StructureDefinitions returns the embedded StructureDefinition resources
// (profiles and extensions) as FHIR JSON by id. The map and the bodies are
// the caller's own.
func StructureDefinitions() map[string][]byte { return copyOf("StructureDefinition") }

// CodeSystems returns the embedded CodeSystem resources as FHIR JSON by id.
func CodeSystems() map[string][]byte { return copyOf("CodeSystem") }

// ValueSets returns the embedded ValueSet resources as FHIR JSON by id.
func ValueSets() map[string][]byte { return copyOf("ValueSet") }

// Resource returns one embedded conformance resource by type and id, for a
// read; ok is false if there is none.
func Resource(resourceType, id string) (body []byte, ok bool) {
	b, ok := embedded[resourceType][id]
	return slices.Clone(b), ok
}

// ResourceTypes lists the conformance resource types Resource serves.
func ResourceTypes() []string { return slices.Sorted(maps.Keys(embedded)) }
