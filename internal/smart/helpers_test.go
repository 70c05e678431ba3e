package smart_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/kjernejournal/kjernejournal/internal/smart"
)

const (
	testdata     = "../../testdata/smart/"
	demoClient   = "kj-demo-app"
	demoRedirect = "http://127.0.0.1:8080/callback.html"
)

// clock is the injectable test clock; tests move it by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	clock *clock
	srv   *smart.Server
	ts    *httptest.Server
	ctx   context.Context // carries the loopback HTTP client for oauth2
	// noFollow is a client that stops at redirects, as the browser's
	// address bar would show them.
	noFollow *http.Client
}

type option func(*smart.Config)

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{t: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)}}
	var h http.Handler
	f.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.ts.Close)
	clients, err := smart.LoadClients(testdata + "clients.json")
	require.NoError(t, err)
	personas, err := smart.LoadPersonas(testdata + "personas.json")
	require.NoError(t, err)
	cfg := smart.Config{
		Issuer:   f.ts.URL,
		Audience: f.ts.URL + "/",
		Clients:  clients,
		Personas: personas,
		Clock:    f.clock.Now,
		StyleURL: f.ts.URL + "/style.json",
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.srv, err = smart.New(cfg)
	require.NoError(t, err)
	h = f.srv
	f.ctx = context.WithValue(context.Background(), oauth2.HTTPClient, f.ts.Client())
	f.noFollow = &http.Client{
		Transport:     f.ts.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return f
}

func (f *fixture) oauthConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    demoClient,
		RedirectURL: demoRedirect,
		Scopes:      scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.ts.URL + "/auth/authorize",
			TokenURL:  f.ts.URL + "/auth/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// get fetches u without following redirects.
func (f *fixture) get(u string) *http.Response {
	f.t.Helper()
	resp, err := f.noFollow.Get(u)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (f *fixture) postForm(u string, v url.Values) *http.Response {
	f.t.Helper()
	resp, err := f.noFollow.PostForm(u, v)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// redirected returns the query of a 303 to the demo app's redirect URI.
func (f *fixture) redirected(resp *http.Response) url.Values {
	f.t.Helper()
	require.Equal(f.t, http.StatusSeeOther, resp.StatusCode, "expected a redirect, got body %s", readAll(f.t, resp))
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(f.t, err)
	require.Equal(f.t, demoRedirect, loc.Scheme+"://"+loc.Host+loc.Path)
	return loc.Query()
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func decodeJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

// createLaunch plays the EHR: it binds a launch to a patient, a
// practitioner and an encounter.
func (f *fixture) createLaunch(body string) (*http.Response, map[string]any) {
	f.t.Helper()
	resp, err := f.noFollow.Post(f.ts.URL+"/auth/launch", "application/json", strings.NewReader(body))
	require.NoError(f.t, err)
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp, decodeJSON(f.t, resp)
}

var sessionField = regexp.MustCompile(`name="session" value="([^"]+)"`)

// loginSession starts a standalone authorisation and returns the login
// page's session id.
func (f *fixture) loginSession(authURL string) (string, string) {
	f.t.Helper()
	resp := f.get(authURL)
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	require.Contains(f.t, resp.Header.Get("Content-Type"), "text/html")
	page := readAll(f.t, resp)
	m := sessionField.FindStringSubmatch(page)
	require.NotNil(f.t, m, "no session field in the login page")
	return m[1], page
}

// verified checks an access token against the JWKS endpoint with jwx, as a
// resource server would, and returns its claims.
func (f *fixture) verified(token string) map[string]any {
	f.t.Helper()
	set, err := jwk.Fetch(context.Background(), f.ts.URL+"/auth/jwks", jwk.WithHTTPClient(f.ts.Client()))
	require.NoError(f.t, err)
	msg, err := jws.Parse([]byte(token))
	require.NoError(f.t, err)
	typ, _ := msg.Signatures()[0].ProtectedHeaders().Type()
	require.Equal(f.t, "at+jwt", typ)
	alg, _ := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	require.Contains(f.t, []jwa.SignatureAlgorithm{jwa.ES256(), jwa.RS256()}, alg)
	_, err = jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(f.clock.Now)), jwt.WithIssuer(f.ts.URL), jwt.WithAudience(f.ts.URL),
		jwt.WithRequiredClaim("jti"), jwt.WithRequiredClaim("iat"), jwt.WithRequiredClaim("nbf"))
	require.NoError(f.t, err)
	return payload(f.t, token)
}

// payload decodes a JWS payload (after verification elsewhere).
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(msg.Payload(), &m))
	return m
}

func loadKey(t *testing.T, file string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		require.NotNil(t, b, "no key in %s", file)
		if b.Type == "PRIVATE KEY" {
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			require.NoError(t, err)
			return k.(crypto.Signer)
		}
	}
}

// assertion builds an RFC 7523 client assertion.
func (f *fixture) assertion(key crypto.Signer, alg jwa.SignatureAlgorithm, kid, clientID, aud, jti string, life time.Duration) string {
	f.t.Helper()
	now := f.clock.Now()
	tok, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{aud}).
		IssuedAt(now).Expiration(now.Add(life)).JwtID(jti).Build()
	require.NoError(f.t, err)
	h := jws.NewHeaders()
	require.NoError(f.t, h.Set(jws.KeyIDKey, kid))
	require.NoError(f.t, h.Set(jws.TypeKey, "JWT"))
	out, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	require.NoError(f.t, err)
	return string(out)
}

func kidOf(t *testing.T, key crypto.Signer) string {
	t.Helper()
	pub, err := jwk.Import(key.Public())
	require.NoError(t, err)
	tp, err := pub.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return b64(tp)
}

func publicJWKS(t *testing.T, key crypto.Signer, alg string) json.RawMessage {
	t.Helper()
	pub, err := jwk.Import(key.Public())
	require.NoError(t, err)
	require.NoError(t, pub.Set(jwk.KeyIDKey, kidOf(t, key)))
	require.NoError(t, pub.Set(jwk.AlgorithmKey, alg))
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	b, err := json.Marshal(set)
	require.NoError(t, err)
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
