package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// profileError lists every violated rule of our profiles: 422.
type profileError struct{ issues []fhir.Issue }

func (e *profileError) Error() string { return fmt.Sprintf("%d profile rules violated", len(e.issues)) }

// checkProfile checks a resource that base R4 validation has accepted
// against its kjernejournal profile (KjAllergyIntolerance, KjFlag), so that
// plain FHIR errors stay 400 and name their element, while profile
// violations are 422 naming every violated rule. Declaring the profile in
// meta.profile is left to ingest, which prints every stored resource.
func checkProfile(typ string, body []byte) error {
	if _, ok := profile.URL(typ); !ok {
		return nil
	}
	issues := profile.Check(typ, body)
	if len(issues) == 0 {
		return nil
	}
	out := make([]fhir.Issue, len(issues))
	for i, is := range issues {
		out[i] = fhir.Issue{Severity: "error", Code: "processing", Diagnostics: is.Message, Expression: []string{is.Path}}
	}
	return &profileError{issues: out}
}

// validate serves POST /{type}/$validate: the same checks as a write,
// without writing; the answer is an OperationOutcome.
func (s *Server) validate(c *gin.Context) {
	c.Set(keyInteraction, "operation")
	typ, ok := s.resourceType(c)
	if !ok {
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	var issues []fhir.Issue
	res, err := s.codec.Parse(body)
	if err == nil && res.Type != typ {
		err = invalid(res.Type+".resourceType", "the body is a %s, but the URL is for %s", res.Type, typ)
	}
	if err == nil {
		err = checkRules(res, body)
	}
	if err == nil {
		err = checkProfile(typ, body)
	}
	var pe *profileError
	var ve *fhir.ValidationError
	switch {
	case err == nil:
		issues = []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: typ + " is valid"}}
	case errors.As(err, &pe):
		issues = pe.issues
	case errors.As(err, &ve):
		issues = ve.Issues
	default:
		issues = issuesOf(err)
	}
	s.write(c, http.StatusOK, out, fhir.Outcome(issues...))
}

// conformance serves reads of our StructureDefinitions, CodeSystems and
// ValueSets: they are public, like the CapabilityStatement.
func (s *Server) conformance(typ string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(keyInteraction, "read")
		c.Set(keyType, typ)
		out, ok := s.negotiate(c)
		if !ok {
			return
		}
		body, ok := profile.Resource(typ, c.Param("id"))
		if !ok {
			s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
				Diagnostics: fmt.Sprintf("%s/%s is not known", typ, c.Param("id"))})
			return
		}
		s.write(c, http.StatusOK, out, body)
	}
}
