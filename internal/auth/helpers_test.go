package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

const (
	testAudience = "https://fhir.kj.test"
	testBase     = "https://fhir.kj.test"
)

// testClock is an injectable clock; tests move it explicitly, never sleep.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// signer is a private key with its kid and algorithm.
type signer struct {
	kid string
	alg jwa.SignatureAlgorithm
	key crypto.Signer
}

func (s signer) publicJWK(t testing.TB) jwk.Key {
	k, err := jwk.PublicKeyOf(s.key)
	require.NoError(t, err)
	require.NoError(t, k.Set(jwk.KeyIDKey, s.kid))
	require.NoError(t, k.Set(jwk.KeyUsageKey, "sig"))
	return k
}

var (
	keyOnce              sync.Once
	rsaKey1, rsaKey2     *rsa.PrivateKey
	ecKey1, ecKey2, ecK3 *ecdsa.PrivateKey
)

// keys are generated once per test binary: RSA generation dominates
// otherwise, and every test still uses fresh-per-run real keys.
func testKeys(t testing.TB) {
	keyOnce.Do(func() {
		var err error
		rsaKey1, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err == nil {
			ecKey1, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err == nil {
			ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err == nil {
			ecK3, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			panic(err)
		}
	})
}

// issuerServer is a real JWKS endpoint on loopback.
type issuerServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jwk.Key
	fetches atomic.Int64
	url     string
}

func newIssuerServer(t testing.TB, keys ...jwk.Key) *issuerServer {
	is := &issuerServer{keys: keys}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		set := jwk.NewSet()
		for _, k := range is.keys {
			if err := set.AddKey(k); err != nil {
				is.mu.Unlock()
				http.Error(w, err.Error(), 500)
				return
			}
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(is.srv.Close)
	is.url = is.srv.URL
	return is
}

func (is *issuerServer) setKeys(keys ...jwk.Key) {
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
}

func (is *issuerServer) issuer() string  { return is.url + "/issuer" }
func (is *issuerServer) jwksURL() string { return is.url + "/jwks" }

// fixture is a validator trusting one issuer that publishes rsa1 and ec1.
type fixture struct {
	t      testing.TB
	clock  *testClock
	is     *issuerServer
	v      *Validator
	rsa1   signer
	rsa2   signer // not published until a test rotates it in
	ec1    signer
	client signer // DPoP key of the client
	other  signer // another client's DPoP key
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	testKeys(t)
	f := &fixture{
		t:      t,
		clock:  newTestClock(),
		rsa1:   signer{"rsa-1", jwa.RS256(), rsaKey1},
		rsa2:   signer{"rsa-2", jwa.RS256(), rsaKey2},
		ec1:    signer{"ec-1", jwa.ES256(), ecKey1},
		client: signer{"", jwa.ES256(), ecKey2},
		other:  signer{"", jwa.ES256(), ecK3},
	}
	f.is = newIssuerServer(t, f.rsa1.publicJWK(t), f.ec1.publicJWK(t))
	cfg := Config{
		Issuers:         []Issuer{{URL: f.is.issuer(), JWKSURL: f.is.jwksURL()}},
		Audiences:       []string{testAudience},
		Now:             f.clock.Now,
		ExternalBaseURL: testBase,
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewValidator(context.Background(), cfg)
	require.NoError(t, err)
	f.v = v
	return f
}

// claims returns a practitioner token's claims, valid at the fixture clock.
func (f *fixture) claims() map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{
		"iss":                   f.is.issuer(),
		"sub":                   "hp-123",
		"aud":                   testAudience,
		"client_id":             "ehr-client",
		"jti":                   fmt.Sprintf("jti-%d", now),
		"iat":                   now - 10,
		"nbf":                   now - 10,
		"exp":                   now + 300,
		"scope":                 "openid fhirUser launch/patient patient/Flag.rs patient/AllergyIntolerance.rs",
		"patient":               "pat-1",
		"fhirUser":              "Practitioner/hp-123",
		ClaimHPRNumber:          "565501872",
		ClaimPID:                "13116900216",
		ClaimSecurityLevel:      "4",
		ClaimOrgParent:          "983658725",
		ClaimOrgChild:           "974589095",
		"authorization_details": []any{map[string]any{"type": "helseid_authorization"}, sampleAttest()},
	}
}

func sampleAttest() map[string]any {
	return map[string]any{
		"type": AttestType,
		"practitioner": map[string]any{
			"authorization": map[string]any{"code": "LE", "system": domain.SystemHPCategory},
			"legal_entity":  map[string]any{"id": "983658725", "system": "urn:oid:2.16.578.1.12.4.1.4.101", "name": "Helse Vest HF"},
			"point_of_care": map[string]any{"id": "974589095", "system": "urn:oid:2.16.578.1.12.4.1.4.101"},
			"department":    map[string]any{"id": "109765", "system": "urn:oid:2.16.578.1.12.4.1.4.102"},
		},
		"care_relationship": map[string]any{
			"healthcare_service":     map[string]any{"code": "S03", "system": "urn:oid:2.16.578.1.12.4.1.1.8655"},
			"purpose_of_use":         map[string]any{"code": "TREAT", "system": domain.SystemPurposeOfUse},
			"purpose_of_use_details": map[string]any{"code": "15", "system": "urn:oid:2.16.578.1.12.4.1.1.8650"},
			"decision_ref":           map[string]any{"id": "d-1", "user_selected": true},
		},
		"patients": []any{map[string]any{
			"identifier":    map[string]any{"id": "13116900216", "system": "urn:oid:2.16.578.1.12.4.1.4.1"},
			"point_of_care": map[string]any{"id": "974589095", "system": "urn:oid:2.16.578.1.12.4.1.4.101"},
			"department":    map[string]any{"id": "109765", "system": "urn:oid:2.16.578.1.12.4.1.4.102"},
		}},
	}
}

// sign produces a compact JWS with the given extra protected headers.
func sign(t testing.TB, s signer, payload any, hdrs map[string]any) string {
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	h := jws.NewHeaders()
	if s.kid != "" {
		require.NoError(t, h.Set(jws.KeyIDKey, s.kid))
	}
	if _, ok := hdrs["typ"]; !ok {
		require.NoError(t, h.Set(jws.TypeKey, "at+jwt"))
	}
	for k, v := range hdrs {
		if v == nil {
			continue
		}
		require.NoError(t, h.Set(k, v))
	}
	out, err := jws.Sign(b, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return string(out)
}

func (f *fixture) token(s signer, c map[string]any) string {
	return sign(f.t, s, c, nil)
}

// rawJWS assembles a JWS by hand, for tokens no library would sign.
func rawJWS(t testing.TB, hdr, payload any, sig func(input []byte) []byte) string {
	hb, err := json.Marshal(hdr)
	require.NoError(t, err)
	pb, err := json.Marshal(payload)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	var s []byte
	if sig != nil {
		s = sig([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(s)
}

func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

func publicPEM(t testing.TB, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func jkt(t testing.TB, s signer) string {
	k, err := jwk.PublicKeyOf(s.key)
	require.NoError(t, err)
	tp, err := k.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(tp)
}

func ath(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// proof builds a DPoP proof with the client key; mod may change claims and
// headers (nil header value deletes).
func (f *fixture) proof(s signer, method, htu, token string, mod func(c map[string]any, h map[string]any)) string {
	pub, err := jwk.PublicKeyOf(s.key)
	require.NoError(f.t, err)
	c := map[string]any{
		"jti": fmt.Sprintf("p-%d-%s", f.clock.Now().UnixNano(), strings.ToLower(method)),
		"htm": method,
		"htu": htu,
		"iat": f.clock.Now().Unix(),
		"ath": ath(token),
	}
	h := map[string]any{"typ": "dpop+jwt", "jwk": pub}
	if mod != nil {
		mod(c, h)
	}
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return sign(f.t, s, c, h)
}

func request(method, target, authz, dpop string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	if dpop != "" {
		r.Header.Set("DPoP", dpop)
	}
	return r
}
