package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// HelseID claim names (DOMAIN.md, "Identities and tokens").
const (
	ClaimHPRNumber     = "helseid://claims/hpr/hpr_number"
	ClaimPID           = "helseid://claims/identity/pid"
	ClaimSecurityLevel = "helseid://claims/identity/security_level"
	ClaimOrgParent     = "helseid://claims/client/claims/orgnr_parent"
	ClaimOrgChild      = "helseid://claims/client/claims/orgnr_child"

	// AttestType is the authorization_details type of the trust-framework
	// attest.
	AttestType = "nhn:tillitsrammeverk:parameters"
)

// Kind is who is behind a token.
type Kind string

// The principal kinds. KindUnknown gets no health data.
const (
	KindUnknown      Kind = ""
	KindPractitioner Kind = "practitioner"
	KindCitizen      Kind = "citizen"
	KindSystem       Kind = "system"
	// Service roles of the national service, from the role claim (HelseID
	// has no claim for them; the name is this project's own).
	KindCitizenSupport Kind = "citizen-support"
	KindAuditor        Kind = "auditor"
)

// ClaimRole names the service role of a token (citizen-support, auditor).
const ClaimRole = "kjernejournal://claims/role"

// Principal is the verified identity behind a request. It is shared between
// requests through the token cache: treat it, and every slice in it, as
// read-only.
type Principal struct {
	Subject   string
	Issuer    string
	Audience  []string
	ClientID  string
	TokenID   string // jti
	IssuedAt  time.Time
	ExpiresAt time.Time

	// Scheme is how the token was presented (SchemeBearer or SchemeDPoP).
	Scheme string
	// DPoPThumbprint is the token's cnf.jkt; non-empty means every request
	// was checked to carry a matching DPoP proof.
	DPoPThumbprint string

	Scopes      Scopes
	ScopeErrors []ScopeError // scopes dropped as malformed, for the audit log

	Patient   string // SMART launch context: FHIR id of the patient in context
	Encounter string // SMART launch context
	FHIRUser  string // as issued: "Practitioner/123", "Patient/abc" or an absolute URL
	Name      string

	HPR           string // helseid://claims/hpr/hpr_number
	PID           string // helseid://claims/identity/pid
	SecurityLevel int    // helseid://claims/identity/security_level; 0 when absent or not a number
	OrgParent     string // helseid://claims/client/claims/orgnr_parent: legal entity
	OrgChild      string // helseid://claims/client/claims/orgnr_child: point of care
	Role          string // kjernejournal://claims/role: a service role, if any

	// Attest is the trust-framework attest, nil when the token has none.
	Attest *Attest
	// HPCategory is Attest practitioner.authorization.code when its system is
	// domain.SystemHPCategory, else "".
	HPCategory string
	// PurposeOfUse is Attest care_relationship.purpose_of_use.code when its
	// system is domain.SystemPurposeOfUse, else "".
	PurposeOfUse string
	// Patients are the identifier ids of the attest's patients[] (national
	// identity numbers), in order.
	Patients []string
	// AttestTime is when the attest was made (its toa), zero when it says
	// not; an attest lives at most 60 minutes (Config.MaxAttestAge).
	AttestTime time.Time

	kind Kind
}

// Kind classifies the principal:
//   - practitioner: an HPR number or fhirUser Practitioner/…;
//   - citizen: a pid and fhirUser Patient/… (and no practitioner marker);
//   - system: no person at all (no pid, HPR or fhirUser) and resource scopes
//     that are all system/ (a client_credentials token);
//   - unknown otherwise, including contradictory tokens (an HPR number with
//     fhirUser Patient/…): they get no health data.
func (p *Principal) Kind() Kind { return p.kind }

// FHIRUserRef returns the resource type and id that fhirUser points at,
// accepting both relative ("Practitioner/1") and absolute URLs.
func (p *Principal) FHIRUserRef() (resourceType, id string) {
	return fhirRef(p.FHIRUser)
}

func fhirRef(u string) (string, string) {
	u = strings.TrimRight(u, "/")
	i := strings.LastIndexByte(u, '/')
	if i <= 0 {
		return "", ""
	}
	id := u[i+1:]
	rest := u[:i]
	rt := rest
	if j := strings.LastIndexByte(rest, '/'); j >= 0 {
		rt = rest[j+1:]
	}
	if !validResourceType(rt) || rt == "*" || id == "" {
		return "", ""
	}
	return rt, id
}

func classify(p *Principal) Kind {
	rt, _ := p.FHIRUserRef()
	// A service role is a person acting for the national service, never
	// also an HP or a citizen reading their own record.
	switch p.Role {
	case "":
	case string(KindCitizenSupport), string(KindAuditor):
		if p.HPR == "" && rt != "Patient" && rt != "Practitioner" {
			return Kind(p.Role)
		}
		return KindUnknown
	default:
		return KindUnknown
	}
	practitioner := p.HPR != "" || rt == "Practitioner" || rt == "PractitionerRole"
	switch {
	case practitioner && rt == "Patient":
		return KindUnknown
	case practitioner:
		return KindPractitioner
	case p.PID != "" && rt == "Patient":
		return KindCitizen
	case p.PID == "" && p.FHIRUser == "":
		system := false
		for _, sc := range p.Scopes {
			if !sc.IsResource() {
				continue
			}
			if sc.Context != ContextSystem {
				return KindUnknown
			}
			system = true
		}
		if system {
			return KindSystem
		}
	}
	return KindUnknown
}

// Attest is the trust-framework attest (authorization_details entry of type
// nhn:tillitsrammeverk:parameters).
//
// Shape: HelseID's published JSON schema for the attest ("Complete Trust
// Framework structure", documented at utviklerportal.nhn.no, tillitsrammeverk
// profile) uses snake_case members: practitioner{authorization{code,system},
// legal_entity{id,system}, point_of_care{id,system}, department{id,system}},
// care_relationship{healthcare_service{code,system}, purpose_of_use{code,
// system}, purpose_of_use_details{code,system}, decision_ref{id,
// user_selected}}, patients[]{point_of_care, department}. The earlier draft
// in NorskHelsenett/Tillitsrammeverk used hyphenated names ("care-relation",
// "point-of-care") and is not what HelseID issues, so only snake_case is read.
// Optional "name" members (in the draft's organisation objects) and the
// patient "identifier"{id,system} object (the draft's patient identity, and
// what DOMAIN.md calls patients[]) are read as well; the schema allows extra
// members. Unknown members are ignored, wrong JSON types make the token
// invalid: the issuer signed something we cannot interpret. The trust
// framework's specification spells the care relation "care_relation";
// HelseID's schema "care_relationship": both are read, and an attest with
// both is refused (which one the issuer meant would be a guess). "toa" is
// the time of the attest (a NumericDate).
type Attest struct {
	Type             string                 `json:"type"`
	Practitioner     AttestPractitioner     `json:"practitioner"`
	CareRelationship AttestCareRelationship `json:"care_relationship"`
	Patients         []AttestPatient        `json:"patients"`

	toa time.Time
}

// Coding is a code with its code system.
type Coding struct {
	Code   string `json:"code"`
	System string `json:"system"`
	Text   string `json:"text,omitempty"`
}

// Ident identifies an organisation, unit or person in a register.
type Ident struct {
	ID     string `json:"id"`
	System string `json:"system"`
	Name   string `json:"name,omitempty"`
}

// AttestPractitioner describes the health professional.
type AttestPractitioner struct {
	Authorization Coding `json:"authorization"`
	LegalEntity   Ident  `json:"legal_entity"`
	PointOfCare   Ident  `json:"point_of_care"`
	Department    Ident  `json:"department"`
}

// AttestCareRelationship describes why the professional needs access.
type AttestCareRelationship struct {
	HealthcareService   Coding      `json:"healthcare_service"`
	PurposeOfUse        Coding      `json:"purpose_of_use"`
	PurposeOfUseDetails Coding      `json:"purpose_of_use_details"`
	DecisionRef         DecisionRef `json:"decision_ref"`
}

// DecisionRef points at the access decision in the consumer's system.
type DecisionRef struct {
	ID           string `json:"id"`
	UserSelected bool   `json:"user_selected"`
}

// AttestPatient is one patient the attest covers.
type AttestPatient struct {
	Identifier  Ident `json:"identifier"`
	PointOfCare Ident `json:"point_of_care"`
	Department  Ident `json:"department"`
}

// claims is the payload of an access token.
type claims struct {
	Iss      string       `json:"iss"`
	Sub      string       `json:"sub"`
	Aud      stringList   `json:"aud"`
	Exp      *numericDate `json:"exp"`
	Nbf      *numericDate `json:"nbf"`
	Iat      *numericDate `json:"iat"`
	Jti      string       `json:"jti"`
	ClientID string       `json:"client_id"`
	// HelseID issues scope as a JSON array, RFC 9068 as a string.
	Scope     stringList `json:"scope"`
	Patient   string     `json:"patient"`
	Encounter string     `json:"encounter"`
	FHIRUser  string     `json:"fhirUser"`
	Name      string     `json:"name"`

	HPR       flexString `json:"helseid://claims/hpr/hpr_number"`
	PID       flexString `json:"helseid://claims/identity/pid"`
	SecLevel  flexString `json:"helseid://claims/identity/security_level"`
	OrgParent flexString `json:"helseid://claims/client/claims/orgnr_parent"`
	OrgChild  flexString `json:"helseid://claims/client/claims/orgnr_child"`
	Role      string     `json:"kjernejournal://claims/role"`

	AuthorizationDetails json.RawMessage `json:"authorization_details"`

	Cnf *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// stringList accepts a string or an array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*l = ss
	return nil
}

// flexString accepts a string or a number: HelseID sends security_level as
// "4", other issuers have sent 4.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

// numericDate is a JWT NumericDate (seconds, possibly fractional).
type numericDate struct{ t time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("not a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

func (d *numericDate) time() time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.t
}

// parseAttest finds the single trust-framework attest in
// authorization_details, which RFC 9396 makes an array but HelseID has also
// issued as a lone object.
func parseAttest(raw json.RawMessage) (*Attest, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var items []json.RawMessage
	switch raw[0] {
	case '[':
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("authorization_details: %w", err)
		}
	case '{':
		items = []json.RawMessage{raw}
	default:
		return nil, errors.New("authorization_details: neither array nor object")
	}
	var found *Attest
	for _, it := range items {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(it, &head); err != nil {
			return nil, fmt.Errorf("authorization_details: %w", err)
		}
		if head.Type != AttestType {
			continue
		}
		if found != nil {
			// Two attests could disagree on purpose or patient; picking one
			// would be guessing which the issuer meant.
			return nil, errors.New("authorization_details: more than one trust-framework attest")
		}
		var a Attest
		if err := json.Unmarshal(it, &a); err != nil {
			return nil, fmt.Errorf("authorization_details: trust-framework attest: %w", err)
		}
		var extra struct {
			CareRelation     *AttestCareRelationship `json:"care_relation"`
			CareRelationship json.RawMessage         `json:"care_relationship"`
			TOA              *numericDate            `json:"toa"`
		}
		if err := json.Unmarshal(it, &extra); err != nil {
			return nil, fmt.Errorf("authorization_details: trust-framework attest: %w", err)
		}
		if extra.CareRelation != nil {
			if len(extra.CareRelationship) > 0 {
				return nil, errors.New("authorization_details: trust-framework attest has both care_relation and care_relationship")
			}
			a.CareRelationship = *extra.CareRelation
		}
		a.toa = extra.TOA.time()
		found = &a
	}
	return found, nil
}

// principalFromClaims builds the Principal; c is already verified.
func principalFromClaims(c *claims) (*Principal, error) {
	p := &Principal{
		Subject:   c.Sub,
		Issuer:    c.Iss,
		Audience:  c.Aud,
		ClientID:  c.ClientID,
		TokenID:   c.Jti,
		IssuedAt:  c.Iat.time(),
		ExpiresAt: c.Exp.time(),
		Patient:   c.Patient,
		Encounter: c.Encounter,
		FHIRUser:  c.FHIRUser,
		Name:      c.Name,
		HPR:       string(c.HPR),
		PID:       string(c.PID),
		OrgParent: string(c.OrgParent),
		OrgChild:  string(c.OrgChild),
		Role:      c.Role,
	}
	if c.Cnf != nil {
		p.DPoPThumbprint = c.Cnf.JKT
	}
	if c.SecLevel != "" {
		if n, err := strconv.Atoi(string(c.SecLevel)); err == nil && n >= 0 {
			p.SecurityLevel = n
		}
	}
	p.Scopes, p.ScopeErrors = ParseScopes(strings.Join(c.Scope, " "))
	a, err := parseAttest(c.AuthorizationDetails)
	if err != nil {
		return nil, err
	}
	if a != nil {
		p.Attest = a
		p.AttestTime = a.toa
		if a.Practitioner.Authorization.System == domain.SystemHPCategory {
			p.HPCategory = a.Practitioner.Authorization.Code
		}
		if a.CareRelationship.PurposeOfUse.System == domain.SystemPurposeOfUse {
			p.PurposeOfUse = a.CareRelationship.PurposeOfUse.Code
		}
		for _, pt := range a.Patients {
			if pt.Identifier.ID != "" {
				p.Patients = append(p.Patients, pt.Identifier.ID)
			}
		}
	}
	p.kind = classify(p)
	return p, nil
}
