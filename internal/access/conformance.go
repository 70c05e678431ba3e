package access

import "slices"

// ConformanceTypes are the resource types of the server's conformance
// resources (its profiles, extensions, code systems, value sets and search
// parameters): definitions, not health data, so they belong to no patient
// and are public like the CapabilityStatement.
var ConformanceTypes = []string{"StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter"}

// IsConformanceType reports whether t is one of ConformanceTypes.
func IsConformanceType(t string) bool { return slices.Contains(ConformanceTypes, t) }

// Conformance is the decision for an access to the conformance resources
// (read and search by canonical url, name and version, as validators and
// SMART apps resolve them): permitted to anyone, with or without a token,
// bound to no patient; nobody writes them through the API (they are built
// into the server). Any other resource type is not for this rule.
func Conformance(r Request) Decision {
	switch {
	case !IsConformanceType(r.ResourceType):
		return deny(RoleNotAllowed, "%s is not a conformance resource type", r.ResourceType)
	case r.Patient != "":
		return deny(RoleNotAllowed, "%s resources belong to no patient", r.ResourceType)
	case r.Interaction == Read || r.Interaction == Search:
		d := permit()
		d.Message = "conformance resources are public"
		return d
	}
	return deny(RoleNotAllowed, "%s resources are built into the server and cannot be written through the API", r.ResourceType)
}
