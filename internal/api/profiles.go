package api

import (
	"encoding/json"
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

// profiled checks a critical-information resource against its
// kjernejournal profile (KjAllergyIntolerance, KjFlag) and declares the
// profile in meta.profile. Bodies of another resourceType pass unchanged,
// so the parser can report that mismatch as what it is.
func profiled(typ string, body []byte) ([]byte, error) {
	if _, ok := profile.URL(typ); !ok {
		return body, nil
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &head) != nil || head.ResourceType != typ {
		return body, nil
	}
	if issues := profile.Check(typ, body); len(issues) > 0 {
		out := make([]fhir.Issue, len(issues))
		for i, is := range issues {
			out[i] = fhir.Issue{Severity: "error", Code: "processing", Diagnostics: is.Message, Expression: []string{is.Path}}
		}
		return nil, &profileError{issues: out}
	}
	return profile.WithProfile(body, typ)
}

// withProfile applies profiled to a resource the base R4 validation has
// accepted (so that plain FHIR errors stay 400 and name their element) and
// parses the profiled body again.
func (s *Server) withProfile(res *fhir.Resource, typ string, body []byte) (*fhir.Resource, error) {
	if _, ok := profile.URL(typ); !ok || res.Type != typ {
		return res, nil
	}
	pb, err := profiled(typ, body)
	if err != nil {
		return nil, err
	}
	return s.codec.Parse(pb)
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
		_, err = profiled(typ, body)
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
