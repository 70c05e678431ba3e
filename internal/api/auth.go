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
	// An address that has spent its failure budget is refused before its
	// token costs a signature check; a client's is checked below, on
	// failure only (limits.go).
	addr := s.limits.proxies.Key(c.Request)
	if blocked, wait := s.limits.addrSpent(addr); blocked {
		s.rateLimited(c, x, limitFailedAuth, wait, "too many failed authentications from this address",
			"for mange mislykkede pålogginger fra denne adressen")
		return false
	}
	p, err := s.cfg.Auth.Validate(c.Request.Context(), c.Request)
	if err == nil {
		x.principal = p
		x.facts.Principal = p
		if ok, wait := s.limits.client.Allow(p.ClientID); !ok {
			s.rateLimited(c, x, limitClient, wait, "client "+p.ClientID+" has used its request budget",
				"klienten har brukt opp sin kvote av forespørsler")
			return false
		}
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
	claimedClient := ""
	if claimed, ok := auth.Unverified(c.Request); ok {
		x.facts.Unverified = &audit.Claimed{Subject: claimed.Subject, ClientID: claimed.ClientID, Issuer: claimed.Issuer, HPR: claimed.HPR}
		claimedClient = claimed.ClientID
	}
	// A missing token is no guess at one; a refused token spends the
	// budgets of its address and of the client it claims to be.
	if ae == nil || !ae.Missing() {
		if ok, wait := s.limits.failed(c.Request.Context(), addr, claimedClient); !ok {
			c.Writer.Header().Del("WWW-Authenticate")
			s.rateLimited(c, x, limitFailedAuth, wait, "too many failed authentications",
				"for mange mislykkede pålogginger")
			return false
		}
	}
	x.facts.Note(x.facts.NamedPatient, x.facts.Type, access.Unauthenticated(msg))
	s.fail(c, &interaction.Error{Status: status, Issues: []fhir.Issue{{Severity: "error", Code: "login", Diagnostics: msg,
		Details: fhir.Coding{System: domain.SystemAccessReason, Code: string(access.NotAuthenticated)}}}})
	return false
}
