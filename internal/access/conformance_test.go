package access

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestConformance(t *testing.T) {
	cases := []struct {
		name   string
		r      Request
		effect Effect
		reason Reason
	}{
		{"read a StructureDefinition", Request{Interaction: Read, ResourceType: "StructureDefinition"}, Permit, OK},
		{"search SearchParameter by url", Request{Interaction: Search, ResourceType: "SearchParameter"}, Permit, OK},
		{"search CodeSystem", Request{Interaction: Search, ResourceType: "CodeSystem"}, Permit, OK},
		{"read a ValueSet", Request{Interaction: Read, ResourceType: "ValueSet"}, Permit, OK},
		{"create a ValueSet", Request{Interaction: Create, ResourceType: "ValueSet"}, Deny, RoleNotAllowed},
		{"update a SearchParameter", Request{Interaction: Update, ResourceType: "SearchParameter"}, Deny, RoleNotAllowed},
		{"delete a StructureDefinition", Request{Interaction: Delete, ResourceType: "StructureDefinition"}, Deny, RoleNotAllowed},
		{"bound to a patient", Request{Interaction: Read, ResourceType: "CodeSystem", Patient: pat}, Deny, RoleNotAllowed},
		{"health data is not public", Request{Interaction: Read, ResourceType: "Flag", Patient: pat}, Deny, RoleNotAllowed},
		{"a search of health data is not public", Request{Interaction: Search, ResourceType: "AllergyIntolerance"}, Deny, RoleNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Conformance(c.r)
			assert.Equal(t, c.effect, d.Effect, d.Message)
			assert.Equal(t, c.reason, d.Reason, d.Message)
		})
	}
}
