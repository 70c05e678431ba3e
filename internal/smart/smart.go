// Package smart is the built-in SMART on FHIR authorisation server: for
// local use, demos and tests it issues the same kinds of tokens HelseID and
// the citizen portal issue in production (JWT access tokens, typ at+jwt,
// with the HelseID claims and the trust-framework attest), so the resource
// server can be exercised end to end without a network.
//
// Every user it knows is a synthetic persona from a JSON file; it has no
// passwords and must never face the internet in production.
package smart

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Claim names, spelled as HelseID spells them.
const (
	ClaimHPRNumber     = "helseid://claims/hpr/hpr_number"
	ClaimPID           = "helseid://claims/identity/pid"
	ClaimSecurityLevel = "helseid://claims/identity/security_level"
	ClaimOrgNrParent   = "helseid://claims/client/claims/orgnr_parent"
	ClaimOrgNrChild    = "helseid://claims/client/claims/orgnr_child"
	// ClaimRole carries the service roles HelseID has no claim for
	// (citizen-support, auditor). It is this project's own name.
	ClaimRole = "kjernejournal://claims/role"

	AuthorizationDetailsType = "nhn:tillitsrammeverk:parameters"
)

// TypeAccessToken is the typ header of access tokens (RFC 9068).
const TypeAccessToken = "at+jwt"

// PatientChoice is a patient offered on the standalone login page.
type PatientChoice struct {
	ID   string // FHIR Patient id
	Name string // shown on the page
	PID  string // national identity number, for the attest; may be empty
}

// Config configures the server.
type Config struct {
	// Issuer is the public base URL the handler is mounted at (for example
	// http://127.0.0.1:8080). It is the iss of every token and the prefix
	// of every endpoint URL (Issuer + "/auth/token", ...).
	Issuer string
	// Audience is the FHIR base URL, the aud of access tokens. Default:
	// Issuer.
	Audience string
	// KeyFile is a PEM private key (EC P-256 for ES256, RSA for RS256).
	// Empty: an ephemeral key of Algorithm is generated at start, so
	// tokens die with the process.
	KeyFile   string
	Algorithm string // "ES256" (default) or "RS256"; ephemeral keys only

	Clients  []Client
	Personas []Persona

	// Patients lists patients for the standalone login page; nil means a
	// free-text patient id only.
	Patients func(ctx context.Context) []PatientChoice

	AccessTokenLifetime    time.Duration // default 10 minutes
	OfflineRefreshLifetime time.Duration // offline_access; default 14 days
	OnlineRefreshLifetime  time.Duration // online_access; default 8 hours
	CodeLifetime           time.Duration // default 1 minute
	LaunchLifetime         time.Duration // EHR launch ids and login sessions; default 10 minutes
	// ClockSkew is allowed on client assertions. Default 30 seconds.
	ClockSkew time.Duration

	// StyleURL is returned as smart_style_url when set.
	StyleURL string
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
	// HTTPClient fetches clients' jwks_uri; nil means a client with a
	// 5-second timeout.
	HTTPClient *http.Client
}

// Server is the authorisation server. It is an http.Handler for the paths
// /auth/... and /.well-known/smart-configuration relative to where it is
// mounted.
type Server struct {
	cfg      Config
	issuer   string
	audience string
	signer   *signer
	clients  map[string]*Client
	personas map[string]*Persona
	order    []string // persona ids in file order, for the login page
	mux      *http.ServeMux
	now      func() time.Time

	mu       sync.Mutex
	launches map[string]*launch
	sessions map[string]*authRequest
	codes    map[string]*authCode
	refresh  map[string]*refreshGrant // by hash of the token
	spent    map[string]spentRefresh  // rotated refresh tokens, by hash
	families map[string]*family
	jtis     map[string]time.Time // client_id + " " + assertion jti -> exp
	revoked  map[string]time.Time // access token jti -> exp
	jwksURIs map[string]*remoteKeys
}

// grant is what an authorisation decided: who, for which client, with
// which scopes and launch context.
type grant struct {
	client     *Client
	persona    *Persona // nil for client_credentials
	patient    string
	patientPID string
	encounter  string
	// basis is the access basis the EHR chose at launch (nhn-access-basis),
	// handed to the app in the token response.
	basis    string
	scopes   []string
	banner   bool // need_patient_banner
	nonce    string
	authTime time.Time
	// For IssueToken only (development and test tokens): the DPoP key
	// thumbprint the token is bound to (cnf.jkt), when the attest was
	// made (toa; zero: when the token is issued) and the person numbers
	// its patients[] names instead of the patient in context (nil: that
	// patient).
	jkt        string
	attestTime time.Time
	attestPIDs []string
}

type launch struct {
	clientID   string
	persona    *Persona
	patient    string
	patientPID string
	encounter  string
	basis      string
	expires    time.Time
}

type authRequest struct {
	client      *Client
	redirectURI string
	state       string
	challenge   string
	nonce       string
	scopes      []string
	expires     time.Time
}

type authCode struct {
	grant
	redirectURI string
	challenge   string
	expires     time.Time
	used        bool
	family      string
}

type refreshGrant struct {
	grant
	family  string
	expires time.Time
}

type spentRefresh struct {
	family  string
	expires time.Time
}

// family ties together every token descending from one authorisation, so
// that a replayed code or refresh token can revoke them all (RFC 9700).
type family struct {
	client   string
	persona  string
	patient  string
	scopes   []string
	created  time.Time
	revoked  bool
	accesses map[string]time.Time // jti -> exp
}

// New builds a server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("smart: Config.Issuer is required")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || !u.IsAbs() || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("smart: Issuer %q must be an absolute URL", cfg.Issuer)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AccessTokenLifetime, 10*time.Minute)
	def(&cfg.OfflineRefreshLifetime, 14*24*time.Hour)
	def(&cfg.OnlineRefreshLifetime, 8*time.Hour)
	def(&cfg.CodeLifetime, time.Minute)
	def(&cfg.LaunchLifetime, 10*time.Minute)
	def(&cfg.ClockSkew, 30*time.Second)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	s := &Server{
		cfg:      cfg,
		issuer:   strings.TrimRight(cfg.Issuer, "/"),
		audience: strings.TrimRight(cfg.Audience, "/"),
		clients:  map[string]*Client{},
		personas: map[string]*Persona{},
		now:      cfg.Clock,
		launches: map[string]*launch{},
		sessions: map[string]*authRequest{},
		codes:    map[string]*authCode{},
		refresh:  map[string]*refreshGrant{},
		spent:    map[string]spentRefresh{},
		families: map[string]*family{},
		jtis:     map[string]time.Time{},
		revoked:  map[string]time.Time{},
		jwksURIs: map[string]*remoteKeys{},
	}
	if s.audience == "" {
		s.audience = s.issuer
	}
	if s.signer, err = newSigner(cfg.KeyFile, cfg.Algorithm); err != nil {
		return nil, err
	}
	for i := range cfg.Clients {
		c := cfg.Clients[i]
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("smart: %w", err)
		}
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("smart: client %s registered twice", c.ID)
		}
		// Paths ("/app/index.html") are the server's own pages, wherever
		// it is served from.
		c.RedirectURIs, c.LaunchURIs = slices.Clone(c.RedirectURIs), slices.Clone(c.LaunchURIs)
		for _, uris := range [][]string{c.RedirectURIs, c.LaunchURIs} {
			for j, u := range uris {
				if strings.HasPrefix(u, "/") {
					uris[j] = s.issuer + u
				}
			}
		}
		s.clients[c.ID] = &c
	}
	for i := range cfg.Personas {
		p := cfg.Personas[i]
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("smart: %w", err)
		}
		if _, dup := s.personas[p.ID]; dup {
			return nil, fmt.Errorf("smart: persona %s defined twice", p.ID)
		}
		s.personas[p.ID] = &p
		s.order = append(s.order, p.ID)
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/smart-configuration", s.smartConfiguration)
	m.HandleFunc("GET /.well-known/openid-configuration", s.openIDConfiguration)
	m.HandleFunc("GET /auth/authorize", s.authorize)
	m.HandleFunc("POST /auth/authorize", s.authorize)
	m.HandleFunc("POST /auth/login", s.login)
	m.HandleFunc("POST /auth/token", s.token)
	m.HandleFunc("POST /auth/introspect", s.introspect)
	m.HandleFunc("POST /auth/revoke", s.revoke)
	m.HandleFunc("GET /auth/jwks", s.jwks)
	m.HandleFunc("POST /auth/launch", s.createLaunch)
	m.HandleFunc("GET /auth/manage", s.manage)
	m.HandleFunc("POST /auth/manage", s.manage)
	m.HandleFunc("GET /auth/brands", s.brands)
	m.HandleFunc("GET /ehr", s.ehr)
	m.HandleFunc("POST /ehr", s.ehr)
	s.mux = m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	s.mux.ServeHTTP(w, r)
}

// Issuer is the iss of the tokens this server issues.
func (s *Server) Issuer() string { return s.issuer }

// Audience is the aud of the access tokens this server issues.
func (s *Server) Audience() string { return s.audience }

// PublicKeys is the server's JWKS, for a resource server in the same
// process.
func (s *Server) PublicKeys() jwk.Set { return s.signer.public }

// Endpoints are the absolute URLs of the server's endpoints, for the
// CapabilityStatement's rest.security oauth-uris extension.
type Endpoints struct {
	Authorize, Token, Introspect, Revoke, Manage, JWKS, Launch string
}

// Endpoints returns the server's endpoint URLs.
func (s *Server) Endpoints() Endpoints {
	return Endpoints{
		Authorize:  s.issuer + "/auth/authorize",
		Token:      s.issuer + "/auth/token",
		Introspect: s.issuer + "/auth/introspect",
		Revoke:     s.issuer + "/auth/revoke",
		Manage:     s.issuer + "/auth/manage",
		JWKS:       s.issuer + "/auth/jwks",
		Launch:     s.issuer + "/auth/launch",
	}
}

// Persona returns the persona with the given id.
func (s *Server) Persona(id string) (Persona, bool) {
	p, ok := s.personas[id]
	if !ok {
		return Persona{}, false
	}
	return *p, true
}

func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// prune drops expired state. Called with s.mu held, on every write, so the
// maps stay bounded by what is live.
func (s *Server) prune(now time.Time) {
	for k, v := range s.launches {
		if now.After(v.expires) {
			delete(s.launches, k)
		}
	}
	for k, v := range s.sessions {
		if now.After(v.expires) {
			delete(s.sessions, k)
		}
	}
	for k, v := range s.codes {
		// Used codes are kept until expiry so a replay is recognised.
		if now.After(v.expires) {
			delete(s.codes, k)
		}
	}
	for k, v := range s.refresh {
		if now.After(v.expires) {
			delete(s.refresh, k)
		}
	}
	for k, v := range s.spent {
		if now.After(v.expires) {
			delete(s.spent, k)
		}
	}
	for k, exp := range s.jtis {
		if now.After(exp.Add(s.cfg.ClockSkew)) {
			delete(s.jtis, k)
		}
	}
	for k, exp := range s.revoked {
		if now.After(exp) {
			delete(s.revoked, k)
		}
	}
	for k, f := range s.families {
		live := false
		for _, exp := range f.accesses {
			if !now.After(exp) {
				live = true
			}
		}
		for _, r := range s.refresh {
			if r.family == k {
				live = true
				break
			}
		}
		if !live && now.Sub(f.created) > s.cfg.CodeLifetime {
			delete(s.families, k)
		}
	}
}

// revokeFamily revokes every token of a family. Called with s.mu held.
func (s *Server) revokeFamily(id string) {
	f, ok := s.families[id]
	if !ok {
		return
	}
	f.revoked = true
	for jti, exp := range f.accesses {
		s.revoked[jti] = exp
	}
	for k, r := range s.refresh {
		if r.family == id {
			delete(s.refresh, k)
		}
	}
}
