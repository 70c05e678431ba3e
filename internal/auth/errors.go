package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// Authentication schemes a request may use.
const (
	SchemeBearer = "Bearer"
	SchemeDPoP   = "DPoP"
)

// Error codes from RFC 6750 §3.1 and RFC 9449 §7.1.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInvalidDPoPProof  = "invalid_dpop_proof"
	CodeInsufficientScope = "insufficient_scope"
	// CodeTemporarilyUnavailable: the DPoP replay check could not be made
	// (the store did not answer); the request may be retried with a new
	// proof.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Error is the only error type Validate returns. The REST layer answers with
// Status and the WWW-Authenticate challenge(s) from SetHeader.
//
// Code is empty when the request carried no credentials at all: RFC 6750
// §3.1 says the challenge must then carry no error code, and the REST layer
// can use Missing to tell "anonymous" from "bad token" (public routes such as
// /metadata accept the former, never the latter).
type Error struct {
	Status      int    // 400, 401 or 403
	Scheme      string // SchemeBearer or SchemeDPoP: the challenge to answer with
	Code        string // one of the Code constants, or "" for missing credentials
	Description string
	// Scope is the scope the request would need (insufficient_scope only).
	Scope string

	realm string
	algs  string // DPoP algs auth-param, space separated
	// dpopOnly: the server accepts DPoP only (Config.RequireDPoP), so a
	// request without credentials is not invited to send a Bearer token.
	dpopOnly bool
}

func (e *Error) Error() string {
	if e.Code == "" {
		return "auth: no credentials: " + e.Description
	}
	return fmt.Sprintf("auth: %s: %s", e.Code, e.Description)
}

// Missing reports whether the request simply carried no credentials.
func (e *Error) Missing() bool { return e.Code == "" }

// WWWAuthenticate renders the challenge for e.Scheme in the form of RFC 6750
// §3 (Bearer) or RFC 9449 §7.1 (DPoP).
func (e *Error) WWWAuthenticate() string {
	return e.challenge(e.Scheme)
}

// Challenges returns every challenge the response should carry. A request
// without credentials learns both schemes we accept; otherwise only the
// scheme the failure concerns is named, so a client is not invited to retry a
// DPoP-bound token as Bearer.
func (e *Error) Challenges() []string {
	if e.Missing() && e.dpopOnly {
		return []string{e.challenge(SchemeDPoP)}
	}
	if e.Missing() {
		return []string{e.challenge(SchemeBearer), e.challenge(SchemeDPoP)}
	}
	return []string{e.WWWAuthenticate()}
}

// SetHeader adds the WWW-Authenticate challenges to h.
func (e *Error) SetHeader(h http.Header) {
	h.Del("WWW-Authenticate")
	for _, c := range e.Challenges() {
		h.Add("WWW-Authenticate", c)
	}
}

func (e *Error) challenge(scheme string) string {
	var b strings.Builder
	b.WriteString(scheme)
	sep := " "
	param := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(quoteSafe(v))
		b.WriteByte('"')
		sep = ", "
	}
	param("realm", e.realm)
	if scheme == SchemeDPoP {
		param("algs", e.algs)
	}
	// RFC 6750 §3.1: a request without credentials gets no error details.
	if scheme == e.Scheme && e.Code != "" {
		param("error", e.Code)
		param("error_description", e.Description)
		param("scope", e.Scope)
	}
	return b.String()
}

// quoteSafe keeps only the characters RFC 6750 §3 allows inside
// error_description (%x20-21 / %x23-5B / %x5D-7E). Descriptions may echo
// parts of attacker-chosen input, so header injection and broken quoting are
// ruled out here rather than trusted to every call site.
func quoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteByte('\'')
		case c < 0x20 || c > 0x7e || c == '\\':
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// InsufficientScope builds the 403 the REST layer returns when a valid token
// lacks the scope for an interaction (RFC 6750 §3.1). scheme is the scheme
// the token was presented with (Principal.Scheme).
func InsufficientScope(scheme, description, scope string) *Error {
	if scheme != SchemeDPoP {
		scheme = SchemeBearer
	}
	return &Error{Status: http.StatusForbidden, Scheme: scheme, Code: CodeInsufficientScope, Description: description, Scope: scope}
}

func (v *Validator) errorf(status int, scheme, code, format string, args ...any) *Error {
	return &Error{
		Status:      status,
		Scheme:      scheme,
		Code:        code,
		Description: fmt.Sprintf(format, args...),
		realm:       v.cfg.Realm,
		algs:        v.dpopAlgsParam,
	}
}

func (v *Validator) invalidToken(scheme, format string, args ...any) *Error {
	return v.errorf(http.StatusUnauthorized, scheme, CodeInvalidToken, format, args...)
}

func (v *Validator) invalidProof(format string, args ...any) *Error {
	return v.errorf(http.StatusUnauthorized, SchemeDPoP, CodeInvalidDPoPProof, format, args...)
}
