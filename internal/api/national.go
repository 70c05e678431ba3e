package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
)

// The national API conventions (DOMAIN.md): EHRs that already use the
// national kjernejournal APIs send, besides the token, the patient's
// person number, the HP's category, the access basis and their system's
// name in nhn-* headers, and older clients send the same with a hit-
// prefix. Both spellings are read here, once; what they mean is decided
// in the interactions (the patient, national.go there) and the decision
// point (the role, access.PatientNotNamed and UserRoleMismatch).
const (
	ninHeader          = "Nhn-Patient-Nin"
	legacyNINHeader    = "Hit-Patient-Nin"
	roleHeader         = "Nhn-User-Role"
	legacyRoleHeader   = "Hit-User-Role"
	sourceHeader       = "Nhn-Source-System"
	legacySourceHeader = "Hit-Source-System"
	legacyBasisHeader  = "Hit-Access-Basis"
)

// nationalHeaders are the request headers of the convention, for CORS.
var nationalHeaders = []string{ninHeader, legacyNINHeader, roleHeader, legacyRoleHeader, sourceHeader, legacySourceHeader, legacyBasisHeader}

// maxSourceSystem bounds the source system's name: a name, not a document.
const maxSourceSystem = 200

// nationalHeader reads a header under its name or its legacy hit- name.
// ok is false when it is sent more than once, or under both names with
// different values: which one the client meant cannot be told, so the
// request is refused rather than one of them guessed.
func nationalHeader(h http.Header, name, legacy string) (value string, ok bool) {
	vs, old := h[name], h[legacy]
	if len(vs) > 1 || len(old) > 1 {
		return "", false
	}
	switch {
	case len(vs) == 1 && len(old) == 1:
		return vs[0], vs[0] == old[0]
	case len(vs) == 1:
		return vs[0], true
	case len(old) == 1:
		return old[0], true
	}
	return "", true
}

// basisFrom is the access basis as sent (nhn-access-basis, or
// hit-access-basis from an older client), for the usage log from the
// first moment of the request. Two different ones give "" here and a 400
// in readNational.
func basisFrom(h http.Header) string {
	if _, legacy := h[legacyBasisHeader]; !legacy {
		// The common case, without a second lookup.
		if vs := h[basisHeader]; len(vs) == 1 {
			return vs[0]
		}
	}
	v, _ := nationalHeader(h, basisHeader, legacyBasisHeader)
	return v
}

// sourceSystemFrom is the source system as sent, if it is one that may
// be logged ("" otherwise: readNational refuses the request).
func sourceSystemFrom(h http.Header) string {
	v, ok := nationalHeader(h, sourceHeader, legacySourceHeader)
	if !ok || !validSourceSystem(v) {
		return ""
	}
	return v
}

func validSourceSystem(v string) bool {
	if len(v) > maxSourceSystem || strings.TrimSpace(v) != v {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// national is what the national headers say about a request.
type national struct {
	personNumber, userRole string
}

// readNational reads and checks the national headers of a FHIR request:
// a malformed one is the client's error (400), before anything is read or
// written.
func readNational(h http.Header) (national, *interaction.Error) {
	var n national
	bad := func(header, msg string) (national, *interaction.Error) {
		e := badRequest(msg)
		e.Issues[0].Expression = []string{header}
		return national{}, e
	}
	if _, ok := nationalHeader(h, basisHeader, legacyBasisHeader); !ok {
		return bad("nhn-access-basis", "send the access basis once, in nhn-access-basis (or hit-access-basis), not two different ones")
	}
	if v, ok := nationalHeader(h, sourceHeader, legacySourceHeader); !ok {
		return bad("nhn-source-system", "send the source system once, in nhn-source-system (or hit-source-system), not two different ones")
	} else if !validSourceSystem(v) {
		return bad("nhn-source-system", "nhn-source-system must be the name of the sending system: at most 200 characters of printable text")
	}
	nin, ok := nationalHeader(h, ninHeader, legacyNINHeader)
	switch {
	case !ok:
		return bad("nhn-patient-nin", "send the patient's person number once, in nhn-patient-nin (or hit-patient-nin), not two different ones")
	case nin != "" && !domain.ValidPersonNumber(nin):
		// The value is not echoed: it may be a person number with a typo.
		return bad("nhn-patient-nin", "nhn-patient-nin must be a fødselsnummer or D-nummer: 11 digits with valid check digits")
	}
	n.personNumber = nin
	role, ok := nationalHeader(h, roleHeader, legacyRoleHeader)
	if !ok {
		return bad("nhn-user-role", "send the user's role once, in nhn-user-role (or hit-user-role), not two different ones")
	}
	if role != "" {
		code, msg := parseUserRole(role)
		if msg != "" {
			return bad("nhn-user-role", msg)
		}
		n.userRole = code
	}
	return n, nil
}

// parseUserRole reads nhn-user-role: a URL-encoded JSON coding of the
// HP category, {"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LE"}
// (unencoded JSON is taken too). msg says what is wrong, "" if nothing.
func parseUserRole(v string) (code, msg string) {
	const want = `nhn-user-role must be a URL-encoded JSON coding such as {"system":"` + domain.SystemHPCategory + `","code":"LE"}`
	raw, err := url.PathUnescape(v)
	if err != nil {
		return "", want
	}
	var c struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display"`
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return "", want
	}
	if c.System != domain.SystemHPCategory {
		return "", "nhn-user-role must name a health personnel category of code system " + domain.SystemHPCategory
	}
	if c.Code == "" || len(c.Code) > 10 {
		return "", want
	}
	for i := 0; i < len(c.Code); i++ {
		if ch := c.Code[i]; !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return "", "nhn-user-role's code must be a category code of " + domain.SystemHPCategory + " (LE, SP, ...)"
		}
	}
	return c.Code, ""
}
