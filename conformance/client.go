package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config says which server to test and how to get tokens for it.
type Config struct {
	// BaseURL is the FHIR base URL, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Tokens are bearer tokens by persona (gp, hospital-doctor, citizen,
	// citizen-support, auditor, feeder, ...) for a server whose
	// authorisation server the suite cannot drive. A persona without a
	// token is obtained from the server's own SMART endpoints, when it
	// advertises them; checks that need one that cannot be had are skipped.
	Tokens map[string]string
	// ClientID and RedirectURI are the public SMART client the suite
	// launches as. Defaults: kj-demo-app, http://localhost:3000/callback
	// (the suite reads the redirect; nothing has to listen there).
	ClientID    string
	RedirectURI string
	// FeederClientID and FeederKeyFile are the backend-services client
	// (private_key_jwt) that feeds fixture patients. Defaults: kj-feeder,
	// testdata/smart/feeder-dev-key.pem.
	FeederClientID string
	FeederKeyFile  string
	// ResourceServerClientID and ResourceServerKeyFile are the confidential
	// client (private_key_jwt) allowed to introspect every token, for the
	// introspection checks. Defaults: kj-resource-server,
	// testdata/smart/resource-server-dev-key.pem.
	ResourceServerClientID string
	ResourceServerKeyFile  string
	// IssuerKeyFile is the private signing key of a development
	// authorisation server (default testdata/smart/dev-signing-key.pem).
	// When its public half is in the server's JWKS, the token-attack
	// checks also mint well-signed tokens that are wrong in one claim
	// only, and DPoP-bound tokens; otherwise those variants are left out
	// (a production issuer's key is never available, nor needed).
	IssuerKeyFile string
	// SchemaFile is the HL7 FHIR R4 JSON Schema (fhir.schema.json) the
	// validity group validates served bodies against. Default
	// testdata/fhir/fhir.schema.json; when it is missing those checks are
	// skipped with the reason.
	SchemaFile string
	// FailingSource names a source hospital in the server's sources
	// registry that is known to be down or failing (registered on purpose,
	// e.g. at an address where nothing listens), for documents/
	// partial-failure. Empty: that check is skipped, since the suite
	// cannot make a foreign installation's source fail.
	FailingSource string
	// FailingLabSource is FailingSource for lab/partial-failure: a lab
	// source in the registry that is down on purpose.
	FailingLabSource string
	// Groups limits the run to these groups; Run to check ids matching
	// this regular expression.
	Groups []string
	Run    string
	// CheckTimeout bounds one check. Default 60 seconds.
	CheckTimeout time.Duration
	// Progress receives one line per finished check.
	Progress io.Writer
	// HTTPClient is used for every request; nil means a client with a
	// 30-second timeout that does not follow redirects.
	HTTPClient *http.Client
}

func (c Config) checkTimeout() time.Duration {
	if c.CheckTimeout > 0 {
		return c.CheckTimeout
	}
	return 60 * time.Second
}

// env is the state shared by the checks of one run.
type env struct {
	cfg   Config
	base  string
	http  *http.Client
	smart *smartConfig // nil when the server advertises no SMART endpoints

	mu     sync.Mutex
	tokens map[tokenKey]string
	seen   []Served
	hashes map[[32]byte]bool
}

// Served is a FHIR JSON body the server returned, kept for the validity
// group.
type Served struct {
	Check  string // the check that received it
	Method string
	Path   string
	Status int
	Body   []byte
}

// maxServed bounds what the validity group validates.
const maxServed = 5000

func newEnv(ctx context.Context, cfg Config) (*env, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("conformance: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "kj-demo-app"
	}
	if cfg.RedirectURI == "" {
		cfg.RedirectURI = "http://localhost:3000/callback"
	}
	if cfg.FeederClientID == "" {
		cfg.FeederClientID = "kj-feeder"
	}
	if cfg.FeederKeyFile == "" {
		cfg.FeederKeyFile = "testdata/smart/feeder-dev-key.pem"
	}
	if cfg.ResourceServerClientID == "" {
		cfg.ResourceServerClientID = "kj-resource-server"
	}
	if cfg.ResourceServerKeyFile == "" {
		cfg.ResourceServerKeyFile = "testdata/smart/resource-server-dev-key.pem"
	}
	if cfg.IssuerKeyFile == "" {
		cfg.IssuerKeyFile = "testdata/smart/dev-signing-key.pem"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	// Redirects are part of what is tested (SMART); never follow them.
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e := &env{cfg: cfg, base: base, http: &c, tokens: map[tokenKey]string{}, hashes: map[[32]byte]bool{}}
	if err := e.discover(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Request is one HTTP request of a check.
type Request struct {
	Method string // default GET
	// Path is relative to the base URL ("Patient/1", "/metadata") or an
	// absolute URL (a paging link, a document proxy URL).
	Path string
	// As names the persona whose token is sent; "" sends none. Patient is
	// the patient in the token's launch context (practitioners).
	As      string
	Patient string
	// Token is sent instead of a persona's token when set.
	Token string
	// Basis is the nhn-access-basis header (UNNTAK, SAMTYKKE, ...).
	Basis  string
	Header http.Header
	// Body is sent as is when []byte or string, else as JSON.
	Body any
	// ContentType of Body; default application/fhir+json when there is one.
	ContentType string
}

// Response is what came back, body read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	URL    string

	parsed map[string]any
	perr   error
}

// JSON is the body as a JSON object (nil when it is not one).
func (r *Response) JSON() map[string]any {
	if r.parsed == nil && r.perr == nil {
		r.perr = json.Unmarshal(r.Body, &r.parsed)
	}
	return r.parsed
}

// ResourceType is the body's resourceType, or "".
func (r *Response) ResourceType() string {
	s, _ := r.JSON()["resourceType"].(string)
	return s
}

// Do sends req and returns the response; a transport error ends the check.
func (t *T) Do(req Request) *Response {
	res, err := t.env.do(t, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method(req), req.Path, err)
	}
	return res
}

func method(req Request) string {
	if req.Method == "" {
		return http.MethodGet
	}
	return req.Method
}

// URL resolves a path against the base URL.
func (t *T) URL(path string) string { return t.env.url(path) }

func (e *env) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return e.base + "/" + strings.TrimLeft(path, "/")
}

func (e *env) do(t *T, req Request) (*Response, error) {
	var body io.Reader
	ctype := req.ContentType
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	if body != nil && ctype == "" {
		ctype = "application/fhir+json"
	}
	hr, err := http.NewRequestWithContext(t.ctx, method(req), e.url(req.Path), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	if hr.Header.Get("Accept") == "" {
		hr.Header.Set("Accept", "application/fhir+json")
	}
	if req.Basis != "" {
		hr.Header.Set("nhn-access-basis", req.Basis)
	}
	tok := req.Token
	if tok == "" && req.As != "" {
		tok = t.Token(req.As, req.Patient)
	}
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	hres, err := e.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer hres.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hres.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	res := &Response{Status: hres.StatusCode, Header: hres.Header, Body: raw, URL: hr.URL.String()}
	if strings.HasPrefix(hres.Header.Get("Content-Type"), "application/fhir+json") {
		e.keep(Served{Check: t.check.ID, Method: hr.Method, Path: hr.URL.RequestURI(), Status: res.Status, Body: raw})
	}
	return res, nil
}

// keep remembers a served FHIR body for the validity group (once per
// distinct body).
func (e *env) keep(s Served) {
	h := sha256.Sum256(s.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hashes[h] || len(e.seen) >= maxServed {
		return
	}
	e.hashes[h] = true
	e.seen = append(e.seen, s)
}

// Served returns the FHIR JSON bodies the server returned so far in this
// run, each distinct body once.
func (t *T) Served() []Served {
	t.env.mu.Lock()
	defer t.env.mu.Unlock()
	return append([]Served(nil), t.env.seen...)
}
