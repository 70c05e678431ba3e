package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// Client types and token endpoint authentication methods.
const (
	ClientPublic       = "public"
	ClientConfidential = "confidential"

	AuthNone          = "none"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// Client is one registered OAuth client.
type Client struct {
	ID   string `json:"client_id"`
	Name string `json:"client_name,omitempty"`
	// Type is "public" (a browser or native app, no credentials) or
	// "confidential" (authenticates with private_key_jwt).
	Type         string   `json:"type"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// LaunchURIs are where an EHR launch sends the browser (the app's
	// launch page); the development EHR page offers them.
	LaunchURIs []string `json:"launch_uris,omitempty"`
	// JWKS (inline) or JWKSURI holds the client's public keys for
	// private_key_jwt; exactly one is set for such clients.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI string          `json:"jwks_uri,omitempty"`
	// Scopes the client may be granted. An entry may be a pattern in
	// path.Match syntax ("patient/*.rs", "system/*"), so one line can
	// cover every resource type.
	Scopes []string `json:"scopes"`
	// Personas the client may log in as in the development login page and
	// use in EHR launches. Empty allows every persona: this server only
	// ever knows synthetic users.
	Personas []string `json:"personas,omitempty"`
	// Introspect lets a confidential client (a resource server) introspect
	// tokens issued to any client; without it a client may introspect
	// only its own tokens.
	Introspect bool `json:"introspect,omitempty"`
	// OrgNrParent and OrgNrChild are put in tokens the client gets with
	// client_credentials, as HelseID puts the client's organisation in
	// machine-to-machine tokens.
	OrgNrParent string `json:"orgnr_parent,omitempty"`
	OrgNrChild  string `json:"orgnr_child,omitempty"`

	keys jwk.Set // parsed JWKS
}

type clientsFile struct {
	Clients []Client `json:"clients"`
}

// LoadClients reads a client registry: {"clients": [ ... ]}.
func LoadClients(file string) ([]Client, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("smart: clients: %w", err)
	}
	var f clientsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("smart: clients %s: %w", file, err)
	}
	return f.Clients, nil
}

// validate checks a client and parses its JWKS.
func (c *Client) validate() error {
	if c.ID == "" {
		return errors.New("client_id is empty")
	}
	switch c.Type {
	case ClientPublic:
		if c.AuthMethod == "" {
			c.AuthMethod = AuthNone
		}
		if c.AuthMethod != AuthNone {
			return fmt.Errorf("client %s: a public client authenticates with %q", c.ID, AuthNone)
		}
	case ClientConfidential:
		if c.AuthMethod == "" {
			c.AuthMethod = AuthPrivateKeyJWT
		}
		if c.AuthMethod != AuthPrivateKeyJWT {
			return fmt.Errorf("client %s: confidential clients authenticate with %q only", c.ID, AuthPrivateKeyJWT)
		}
		if (len(c.JWKS) == 0) == (c.JWKSURI == "") {
			return fmt.Errorf("client %s: private_key_jwt needs exactly one of jwks and jwks_uri", c.ID)
		}
		if len(c.JWKS) > 0 {
			set, err := jwk.Parse(c.JWKS)
			if err != nil {
				return fmt.Errorf("client %s: jwks: %w", c.ID, err)
			}
			if err := checkPublicSet(set); err != nil {
				return fmt.Errorf("client %s: jwks: %w", c.ID, err)
			}
			c.keys = set
		} else if u, err := url.Parse(c.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("client %s: jwks_uri %q is not an http(s) URL", c.ID, c.JWKSURI)
		}
	default:
		return fmt.Errorf("client %s: type %q (want public or confidential)", c.ID, c.Type)
	}
	for _, r := range append(slices.Clone(c.RedirectURIs), c.LaunchURIs...) {
		// A path ("/app/index.html") is a page of this server, resolved
		// against its issuer by New.
		u, err := url.Parse(r)
		if err != nil || !(u.IsAbs() || strings.HasPrefix(r, "/") && u.Host == "") || u.Fragment != "" {
			return fmt.Errorf("client %s: redirect or launch URI %q must be an absolute URL or a path of this server, without fragment", c.ID, r)
		}
	}
	for _, s := range c.Scopes {
		if _, err := path.Match(s, ""); err != nil {
			return fmt.Errorf("client %s: scope pattern %q: %w", c.ID, s, err)
		}
	}
	return nil
}

// checkPublicSet refuses key sets that hold private or symmetric keys: a
// client registry is public configuration.
func checkPublicSet(set jwk.Set) error {
	if set.Len() == 0 {
		return errors.New("no keys")
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.KeyType().String() == "oct" {
			return errors.New("symmetric keys are not accepted")
		}
		if priv, err := jwk.IsPrivateKey(k); err == nil && priv {
			return errors.New("the registry must hold public keys only")
		}
	}
	return nil
}

func (c *Client) hasRedirect(uri string) bool { return matchURI(c.RedirectURIs, uri) }

func (c *Client) hasLaunch(uri string) bool { return matchURI(c.LaunchURIs, uri) }

// matchURI reports whether uri is one of the registered URIs. Matching is
// exact, except that a registered http URI on a loopback IP or localhost
// without a port matches any port (RFC 8252 7.3): a development app's
// local server takes whatever port is free.
func matchURI(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.Port() == "" || !loopback.Host(u.Hostname()) {
		return false
	}
	portless := *u
	portless.Host = u.Hostname()
	if strings.Contains(portless.Host, ":") {
		portless.Host = "[" + portless.Host + "]"
	}
	return slices.Contains(registered, portless.String())
}

func (c *Client) allowsPersona(id string) bool {
	return len(c.Personas) == 0 || slices.Contains(c.Personas, id)
}

// allowsScope reports whether s is covered by one of the client's scope
// patterns.
func (c *Client) allowsScope(s string) bool {
	for _, p := range c.Scopes {
		if p == s {
			return true
		}
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// grantable narrows requested scopes to what the client may have, in the
// requested order, without duplicates.
func (c *Client) grantable(requested []string) []string {
	var out []string
	for _, s := range requested {
		if c.allowsScope(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Persona kinds.
const (
	KindPractitioner   = "practitioner"
	KindCitizen        = "citizen"
	KindCitizenSupport = "citizen-support"
	KindAuditor        = "auditor"
	KindSystem         = "system"
)

// Ref is an organisation or unit reference in the trust-framework attest
// (id, system, name).
type Ref struct {
	ID     string `json:"id"`
	System string `json:"system,omitempty"`
	Name   string `json:"name,omitempty"`
}

// Code is a coded value in the trust-framework attest.
type Code struct {
	Code   string `json:"code"`
	System string `json:"system,omitempty"`
	Text   string `json:"text,omitempty"`
}

// Persona is a synthetic user this server can log in as.
type Persona struct {
	ID          string `json:"id"`   // "gp", "hospital-doctor", "citizen", ...
	Kind        string `json:"kind"` // practitioner, citizen, citizen-support, auditor, system
	Description string `json:"description,omitempty"`
	Name        string `json:"name,omitempty"`
	// PID is the person's (synthetic) national identity number.
	PID string `json:"pid,omitempty"`
	// HPR is the practitioner's (synthetic) HPR number.
	HPR string `json:"hpr,omitempty"`
	// FHIRID is the id behind fhirUser: Practitioner/<id>, Patient/<id>
	// or Person/<id>. For a citizen it is also the default patient.
	FHIRID string `json:"fhir_id,omitempty"`
	// Authorization is the HP category (LE doctor, SP nurse) in code
	// system 9060.
	Authorization       string `json:"authorization,omitempty"`
	LegalEntity         *Ref   `json:"legal_entity,omitempty"`
	PointOfCare         *Ref   `json:"point_of_care,omitempty"`
	Department          *Ref   `json:"department,omitempty"`
	HealthcareService   *Code  `json:"healthcare_service,omitempty"`
	PurposeOfUse        string `json:"purpose_of_use,omitempty"` // TREAT, ETREAT, COC, BTG
	PurposeOfUseDetails *Code  `json:"purpose_of_use_details,omitempty"`
	// ContractSpecialist marks a practitioner whose legal entity is a
	// contract specialist (avtalespesialist), who may use the access basis
	// UNNTAK; a server started with this registry and no configured
	// contract specialists takes theirs.
	ContractSpecialist bool `json:"contract_specialist,omitempty"`
	// ClientID is the client a system persona stands for.
	ClientID string `json:"client_id,omitempty"`
	// Scopes are the persona's default scopes when a development token is
	// minted without --scope.
	Scopes []string `json:"scopes,omitempty"`
}

type personasFile struct {
	Personas []Persona `json:"personas"`
}

// LoadPersonas reads a persona registry: {"personas": [ ... ]}.
func LoadPersonas(file string) ([]Persona, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("smart: personas: %w", err)
	}
	var f personasFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("smart: personas %s: %w", file, err)
	}
	return f.Personas, nil
}

func (p *Persona) validate() error {
	if p.ID == "" {
		return errors.New("persona id is empty")
	}
	switch p.Kind {
	case KindPractitioner:
		if p.HPR == "" || p.PID == "" || p.Authorization == "" || p.LegalEntity == nil || p.PointOfCare == nil || p.PurposeOfUse == "" {
			return fmt.Errorf("persona %s: a practitioner needs hpr, pid, authorization, legal_entity, point_of_care and purpose_of_use", p.ID)
		}
	case KindCitizen:
		if p.PID == "" || p.FHIRID == "" {
			return fmt.Errorf("persona %s: a citizen needs pid and fhir_id", p.ID)
		}
	case KindCitizenSupport, KindAuditor:
		if p.PID == "" {
			return fmt.Errorf("persona %s: needs pid", p.ID)
		}
	case KindSystem:
		if p.ClientID == "" {
			return fmt.Errorf("persona %s: a system persona needs client_id", p.ID)
		}
	default:
		return fmt.Errorf("persona %s: kind %q", p.ID, p.Kind)
	}
	if p.FHIRID == "" && p.Kind == KindPractitioner {
		p.FHIRID = p.HPR
	}
	return nil
}

// fhirUser is the persona's fhirUser claim, or "" for system personas.
func (p *Persona) fhirUser() string {
	switch p.Kind {
	case KindPractitioner:
		return "Practitioner/" + p.FHIRID
	case KindCitizen:
		return "Patient/" + p.FHIRID
	case KindCitizenSupport, KindAuditor:
		if p.FHIRID != "" {
			return "Person/" + p.FHIRID
		}
	}
	return ""
}

// isUser reports whether the persona is a person who logs in, as opposed
// to a system.
func (p *Persona) isUser() bool { return p.Kind != KindSystem }

func splitScope(s string) []string { return strings.Fields(s) }
