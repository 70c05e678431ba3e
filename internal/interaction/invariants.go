package interaction

import (
	"net/http"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/fhirpath"
)

// invariantIssues evaluates the R4 invariants (the constraints of the
// StructureDefinitions, FHIRPath) on a body the parser has accepted, and
// returns the violations of error severity and the warnings apart. The
// body is decoded once for all of them (fhirpath.DecodeJSON, several times
// faster than encoding/json: this is on every write).
func invariantIssues(typ string, body []byte) (errs, warns []fhir.Issue) {
	root, err := fhirpath.DecodeJSON(body)
	if err != nil {
		// The parser has read this body already; a body it accepts and
		// encoding/json does not is a bug to see, not to hide.
		return []fhir.Issue{{Severity: "error", Code: "invariant", Diagnostics: "the resource could not be read to check its invariants: " + err.Error()}}, nil
	}
	for _, v := range fhirpath.Invariants(typ, root) {
		is := fhir.Issue{Severity: "error", Code: "invariant", Diagnostics: v.Key + ": " + v.Human, Expression: []string{v.Path}}
		if v.Severity == "error" {
			errs = append(errs, is)
		} else {
			is.Severity = "warning"
			warns = append(warns, is)
		}
	}
	return errs, warns
}

// checkInvariants refuses a resource that violates an R4 invariant of
// error severity: 422, as FHIR's http page has it for content that is
// well-formed but breaks a rule, with one issue per violation naming the
// invariant and the element. Warnings do not stop a write.
func checkInvariants(typ string, body []byte) error {
	errs, _ := invariantIssues(typ, body)
	if len(errs) == 0 {
		return nil
	}
	return &Error{Status: http.StatusUnprocessableEntity, Issues: errs}
}

// join422 answers the invariants' and the profile's violations together,
// so that a client sees every rule its resource breaks at once.
func join422(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	ea, eb := errorOf(a), errorOf(b)
	if ea.Status != http.StatusUnprocessableEntity || eb.Status != http.StatusUnprocessableEntity {
		return a
	}
	out := *ea
	out.Issues = append(append([]fhir.Issue(nil), ea.Issues...), eb.Issues...)
	return &out
}
