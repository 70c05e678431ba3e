package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
)

// authenticate verifies the token of a request for data. With no
// Authenticator configured (tests of FHIR behaviour, or a loopback server
// started with --insecure-no-auth) every request passes. A refused token
// is answered 401 (or 400) with its challenge, and the usage log records
// the refusal under the patient the request named, with what the token
// claimed marked as unverified.
func (s *Server) authenticate(c *gin.Context, x *exchange) bool {
	if s.cfg.Auth == nil {
		return true
	}
	p, err := s.cfg.Auth.Validate(c.Request.Context(), c.Request)
	if err == nil {
		x.principal = p
		x.facts.Principal = p
		return true
	}
	status := http.StatusUnauthorized
	msg := err.Error()
	var ae *auth.Error
	if errors.As(err, &ae) {
		ae.SetHeader(c.Writer.Header())
		if ae.Status != 0 {
			status = ae.Status
		}
		if ae.Description != "" {
			msg = ae.Description
		} else if ae.Missing() {
			msg = "this endpoint needs an access token (Authorization: Bearer or DPoP)"
		}
	}
	if claimed, ok := auth.Unverified(c.Request); ok {
		x.facts.Unverified = &audit.Claimed{Subject: claimed.Subject, ClientID: claimed.ClientID, Issuer: claimed.Issuer, HPR: claimed.HPR}
	}
	x.facts.Note(x.facts.NamedPatient, x.facts.Type, access.Unauthenticated(msg))
	s.fail(c, &interaction.Error{Status: status, Issues: []fhir.Issue{{Severity: "error", Code: "login", Diagnostics: msg,
		Details: fhir.Coding{System: domain.SystemAccessReason, Code: string(access.NotAuthenticated)}}}})
	return false
}
