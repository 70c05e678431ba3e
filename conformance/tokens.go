package conformance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/clientkey"
)

// Personas the suite acts as. Practitioners get their token through an
// EHR launch bound to one patient; the others log in standalone; the
// feeder uses SMART backend services.
var practitioners = []string{"gp", "hospital-doctor", "nurse", "emergency", "contract-specialist"}

const (
	PersonaGP             = "gp"
	PersonaHospitalDoctor = "hospital-doctor"
	PersonaNurse          = "nurse"
	PersonaEmergency      = "emergency"
	PersonaCitizen        = "citizen"
	PersonaSupport        = "citizen-support"
	PersonaAuditor        = "auditor"
	PersonaFeeder         = "feeder"
)

// scopes asked for per kind of persona; the server grants what the client
// and persona allow.
var personaScopes = map[string]string{
	"practitioner": "launch openid fhirUser patient/*.rs patient/AllergyIntolerance.cud patient/Flag.cud",
	PersonaCitizen: "openid fhirUser patient/*.rs patient/Consent.cud",
	PersonaSupport: "openid fhirUser user/Consent.cruds user/Patient.rs",
	PersonaAuditor: "openid fhirUser user/AuditEvent.rs",
	PersonaFeeder:  "system/Patient.cu system/MedicationStatement.cud system/Encounter.cud",
}

type smartConfig struct {
	Issuer       string   `json:"issuer"`
	Authorize    string   `json:"authorization_endpoint"`
	Token        string   `json:"token_endpoint"`
	Introspect   string   `json:"introspection_endpoint"`
	Capabilities []string `json:"capabilities"`
	Raw          map[string]any
	launchURL    string // the development EHR's launch endpoint, when present
}

type tokenKey struct{ persona, patient, scope string }

// discover reads /.well-known/smart-configuration; a server without it is
// tested with configured tokens only.
func (e *env) discover(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return err
	}
	res, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("conformance: cannot reach %s: %w", e.base, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return nil
	}
	var c smartConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil
	}
	_ = json.Unmarshal(raw, &c.Raw)
	if c.Issuer != "" {
		c.launchURL = strings.TrimRight(c.Issuer, "/") + "/auth/launch"
	}
	e.smart = &c
	return nil
}

// SMART is the server's SMART configuration, or nil; a check that needs it
// is skipped when it is missing.
func (t *T) SMART() map[string]any {
	if t.env.smart == nil {
		t.Skipf("the server publishes no /.well-known/smart-configuration")
	}
	return t.env.smart.Raw
}

// Token returns a bearer token for persona; for practitioners it is bound
// to patient through an EHR launch. Tokens are cached for the run.
func (t *T) Token(persona, patient string) string {
	return t.TokenWithScope(persona, patient, "")
}

// TokenWithScope is Token with explicit scopes instead of the persona's.
func (t *T) TokenWithScope(persona, patient, scope string) string {
	if tok := t.env.cfg.Tokens[persona]; tok != "" && scope == "" {
		return tok
	}
	k := tokenKey{persona, patient, scope}
	t.env.mu.Lock()
	tok, ok := t.env.tokens[k]
	t.env.mu.Unlock()
	if ok {
		return tok
	}
	if t.env.smart == nil {
		t.Skipf("no token for persona %q: none configured, and the server publishes no SMART configuration", persona)
	}
	if patient == "" && slices.Contains(practitioners, persona) {
		t.Fatalf("a %s token needs a patient in context", persona)
	}
	tok, _ = t.TokenResponse(persona, patient, scope)["access_token"].(string)
	if tok == "" {
		t.Fatalf("token response for %s has no access_token", persona)
	}
	t.env.mu.Lock()
	t.env.tokens[k] = tok
	t.env.mu.Unlock()
	return tok
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TokenResponse runs a fresh authorisation (no cache) and returns the
// whole token response, for the SMART checks.
func (t *T) TokenResponse(persona, patient, scope string) map[string]any {
	t.SMART()
	var err error
	var resp map[string]any
	switch {
	case slices.Contains(practitioners, persona):
		resp, err = t.env.ehrLaunch(t.ctx, persona, patient, or(scope, personaScopes["practitioner"]))
	case persona == PersonaFeeder:
		resp, err = t.env.backendToken(t.ctx, or(scope, personaScopes[PersonaFeeder]))
	default:
		resp, err = t.env.standalone(t.ctx, persona, or(scope, personaScopes[persona]))
	}
	if err != nil {
		t.Fatalf("get a token for %s: %v", persona, err)
	}
	return resp
}

// PKCE is a code verifier and its S256 challenge.
type PKCE struct{ Verifier, Challenge string }

// NewPKCE makes a fresh verifier.
func NewPKCE() PKCE {
	b := make([]byte, 32)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return PKCE{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

// CreateLaunch asks the development EHR stand-in for a launch id binding
// persona to patient.
func (t *T) CreateLaunch(persona, patient string) string {
	t.SMART()
	id, err := t.env.createLaunch(t.ctx, persona, patient)
	if err != nil {
		t.Skipf("the server has no development EHR launch endpoint: %v", err)
	}
	return id
}

func (e *env) createLaunch(ctx context.Context, persona, patient string) (string, error) {
	body, _ := json.Marshal(map[string]string{"patient": patient, "practitioner": persona, "client_id": e.cfg.ClientID})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.smart.launchURL, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		Launch string `json:"launch"`
	}
	if err := e.jsonCall(req, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("POST %s: %w", e.smart.launchURL, err)
	}
	return out.Launch, nil
}

func (e *env) ehrLaunch(ctx context.Context, persona, patient, scope string) (map[string]any, error) {
	launch, err := e.createLaunch(ctx, persona, patient)
	if err != nil {
		return nil, err
	}
	pk := NewPKCE()
	q := e.authorizeQuery(scope, pk)
	q.Set("launch", launch)
	code, err := e.followForCode(ctx, e.smart.Authorize+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	return e.exchange(ctx, code, pk)
}

// AuthorizationCode runs an EHR launch for persona and patient up to the
// authorisation code, for checks of the token endpoint itself.
func (t *T) AuthorizationCode(persona, patient, scope string, pk PKCE) string {
	launch := t.CreateLaunch(persona, patient)
	q := t.env.authorizeQuery(scope, pk)
	q.Set("launch", launch)
	code, err := t.env.followForCode(t.ctx, t.env.smart.Authorize+"?"+q.Encode())
	if err != nil {
		t.Fatalf("EHR launch of %s for Patient/%s: %v", persona, patient, err)
	}
	return code
}

// CodeExchange is the token request of the suite's public client for code.
func (t *T) CodeExchange(code string, pk PKCE) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {t.env.cfg.RedirectURI},
		"client_id":     {t.env.cfg.ClientID},
		"code_verifier": {pk.Verifier},
	}
}

// AuthorizeQuery is the query of an authorisation request for the suite's
// client.
func (t *T) AuthorizeQuery(scope string, pk PKCE) url.Values { return t.env.authorizeQuery(scope, pk) }

func (e *env) authorizeQuery(scope string, pk PKCE) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {e.cfg.ClientID},
		"redirect_uri":          {e.cfg.RedirectURI},
		"scope":                 {scope},
		"state":                 {randomState()},
		"aud":                   {e.base},
		"code_challenge":        {pk.Challenge},
		"code_challenge_method": {"S256"},
	}
}

func randomState() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var sessionField = regexp.MustCompile(`name="session" value="([^"]+)"`)

// standalone logs in on the development login page as persona.
func (e *env) standalone(ctx context.Context, persona, scope string) (map[string]any, error) {
	pk := NewPKCE()
	q := e.authorizeQuery(scope, pk)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.smart.Authorize+"?"+q.Encode(), nil)
	res, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	m := sessionField.FindSubmatch(page)
	if res.StatusCode != http.StatusOK || m == nil {
		return nil, fmt.Errorf("authorize: status %d without a development login form", res.StatusCode)
	}
	form := url.Values{"session": {string(m[1])}, "persona": {persona}}
	login := strings.Replace(e.smart.Authorize, "/authorize", "/login", 1)
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, login, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, err := e.codeFrom(req)
	if err != nil {
		return nil, err
	}
	return e.exchange(ctx, code, pk)
}

func (e *env) followForCode(ctx context.Context, u string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	return e.codeFrom(req)
}

// codeFrom sends req and reads the code from the redirect to the client.
func (e *env) codeFrom(req *http.Request) (string, error) {
	res, err := e.http.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode/100 != 3 || err != nil {
		return "", fmt.Errorf("%s %s: status %d, no redirect to the client", req.Method, req.URL.Path, res.StatusCode)
	}
	if code := loc.Query().Get("code"); code != "" {
		return code, nil
	}
	return "", fmt.Errorf("redirected without a code: error=%s %s", loc.Query().Get("error"), loc.Query().Get("error_description"))
}

func (e *env) exchange(ctx context.Context, code string, pk PKCE) (map[string]any, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {e.cfg.RedirectURI},
		"client_id":     {e.cfg.ClientID},
		"code_verifier": {pk.Verifier},
	}
	return e.tokenCall(ctx, form)
}

// TokenCall posts form to the token endpoint and returns the JSON answer
// and the status.
func (t *T) TokenCall(form url.Values) (int, map[string]any) {
	t.SMART()
	req, _ := http.NewRequestWithContext(t.ctx, http.MethodPost, t.env.smart.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := t.env.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", t.env.smart.Token, err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&out)
	return res.StatusCode, out
}

func (e *env) tokenCall(ctx context.Context, form url.Values) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.smart.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out map[string]any
	if err := e.jsonCall(req, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	return out, nil
}

func (e *env) jsonCall(req *http.Request, want int, out any) error {
	res, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != want {
		return fmt.Errorf("status %d: %s", res.StatusCode, strings.TrimSpace(string(raw)))
	}
	return json.Unmarshal(raw, out)
}

// ClientAssertion signs an RFC 7523 assertion as the feeder client for
// audience aud (the token endpoint).
func (t *T) ClientAssertion(aud string) string {
	a, err := t.env.clientAssertion(aud)
	if err != nil {
		t.Skipf("no backend-services key: %v", err)
	}
	return a
}

func (e *env) clientAssertion(aud string) (string, error) {
	return signAssertion(e.cfg.FeederClientID, e.cfg.FeederKeyFile, aud)
}

// ResourceServerAssertion signs an RFC 7523 assertion as the confidential
// client that may introspect every token, for audience aud.
func (t *T) ResourceServerAssertion(aud string) string {
	a, err := signAssertion(t.env.cfg.ResourceServerClientID, t.env.cfg.ResourceServerKeyFile, aud)
	if err != nil {
		t.Skipf("no key for the introspecting client %s: %v", t.env.cfg.ResourceServerClientID, err)
	}
	return a
}

// signAssertion signs a fresh client assertion (new jti, four minutes to
// live) as clientID with the PEM private key in keyFile.
func signAssertion(clientID, keyFile, aud string) (string, error) {
	key, alg, err := clientkey.Load(keyFile)
	if err != nil {
		return "", err
	}
	return clientkey.Sign(key, alg, "", clientkey.Claims(clientID, aud, time.Now()))
}

func (e *env) backendToken(ctx context.Context, scope string) (map[string]any, error) {
	a, err := e.clientAssertion(e.smart.Token)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {a},
	}
	return e.tokenCall(ctx, form)
}
