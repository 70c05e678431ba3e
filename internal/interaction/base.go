package interaction

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/narrative"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// checkBase is what base R4 asks of a resource beyond what the parser
// checks. It is all $validate runs against the base StructureDefinition,
// so R4 rules the parser leaves out belong here, not in checkRules.
func checkBase(res *fhir.Resource, body []byte) error {
	var issues []fhir.Issue
	if fhir.MayBreakBaseRules(body) {
		issues = res.BaseIssues()
	}
	if err := checkNarrative(res.Type, body); err != nil {
		issues = append(issues, errorOf(err).Issues...)
	}
	if len(issues) == 0 {
		return nil
	}
	return &Error{Status: http.StatusBadRequest, Issues: issues}
}

// checkNarrative applies txt-1 and txt-2 to the narrative of the resource
// and of its contained resources. A narrative is XHTML that browsers (the
// citizen portal, SMART apps) show as is, so a violation is refused like
// any other base R4 error: 400, naming the rule and the element.
func checkNarrative(typ string, body []byte) error {
	vs := narrative.CheckResource(typ, body)
	if len(vs) == 0 {
		return nil
	}
	issues := make([]fhir.Issue, len(vs))
	for i, v := range vs {
		issues[i] = fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: v.Element + ": " + v.Error(), Expression: []string{v.Element}}
	}
	return &Error{Status: http.StatusBadRequest, Issues: issues}
}

// validateInput reads what POST /{type}/$validate validates: the body
// (the resource, or a Parameters with a resource parameter) and the
// profile (the profile query parameter, or the Parameters' profile).
// base reports the profile is the base R4 StructureDefinition of the type:
// then only base R4 is checked, without kjernejournal's rules. Any other
// profile must be one of kjernejournal's for the type.
func validateInput(c *Call) (body []byte, base bool, err error) {
	body = c.Body
	profiles := c.Query["profile"]
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &head) == nil && head.ResourceType == "Parameters" && c.Type != "Parameters" {
		var p struct {
			Parameter []struct {
				Name           string          `json:"name"`
				Resource       json.RawMessage `json:"resource"`
				ValueURI       *string         `json:"valueUri"`
				ValueCanonical *string         `json:"valueCanonical"`
			} `json:"parameter"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, false, invalid("Parameters", "cannot read the Parameters of $validate: %v", err)
		}
		body = nil
		for _, pp := range p.Parameter {
			switch pp.Name {
			case "resource":
				if body != nil {
					return nil, false, invalid("Parameters.parameter", "$validate takes one resource parameter, the Parameters has several")
				}
				body = pp.Resource
			case "profile":
				switch {
				case pp.ValueURI != nil:
					profiles = append(profiles, *pp.ValueURI)
				case pp.ValueCanonical != nil:
					profiles = append(profiles, *pp.ValueCanonical)
				}
			}
		}
		if len(body) == 0 {
			return nil, false, invalid("Parameters.parameter", "the Parameters of $validate has no resource parameter with the %s to validate", c.Type)
		}
	}
	if len(profiles) > 1 {
		return nil, false, invalid("profile", "$validate takes one profile, the request names %d: %s", len(profiles), strings.Join(profiles, ", "))
	}
	if len(profiles) == 0 {
		return body, false, nil
	}
	want, _, _ := strings.Cut(profiles[0], "|")
	if want == baseProfile(c.Type) {
		return body, true, nil
	}
	if slices.Contains(profile.Profiles(c.Type), want) {
		return body, false, nil
	}
	known := append([]string{baseProfile(c.Type)}, profile.Profiles(c.Type)...)
	return nil, false, invalid("profile", "profile %q is not known to this server for %s; $validate knows %s", profiles[0], c.Type, strings.Join(known, ", "))
}

// baseProfile is the canonical URL of the base R4 StructureDefinition of
// a resource type.
func baseProfile(typ string) string { return "http://hl7.org/fhir/StructureDefinition/" + typ }
