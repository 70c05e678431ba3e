package smart_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/kjernejournal/kjernejournal/internal/smart"
)

// backend registers a backend-services client with an RSA key (RS384, as
// SMART requires servers to accept) and one with a jwks_uri.
type backend struct {
	*fixture
	key    crypto.Signer
	uriKey crypto.Signer
}

func newBackend(t *testing.T) *backend {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	b := &backend{key: rsaKey, uriKey: ecKey}
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(publicJWKS(t, ecKey, "ES384"))
	}))
	t.Cleanup(jwksServer.Close)
	b.fixture = newFixture(t, func(c *smart.Config) {
		c.Clients = append(c.Clients,
			smart.Client{ID: "backend", Type: "confidential", AuthMethod: "private_key_jwt",
				JWKS: publicJWKS(t, rsaKey, "RS384"), Scopes: []string{"system/*"}, OrgNrParent: "300020240"},
			smart.Client{ID: "backend-uri", Type: "confidential", JWKSURI: jwksServer.URL + "/jwks.json",
				Scopes: []string{"system/Encounter.cud"}},
		)
	})
	return b
}

func (b *backend) clientCredentials(assertion, scope string) *http.Response {
	return b.postForm(b.ts.URL+"/auth/token", url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	})
}

func TestBackendServices(t *testing.T) {
	b := newBackend(t)
	tokenURL := b.ts.URL + "/auth/token"
	a := b.assertion(b.key, jwa.RS384(), kidOf(t, b.key), "backend", tokenURL, "jti-1", 4*time.Minute)

	resp := b.clientCredentials(a, "system/MedicationStatement.cud patient/Flag.rs system/Encounter.cud")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body := decodeJSON(t, resp)
	assert.Equal(t, "Bearer", body["token_type"])
	assert.Equal(t, "system/MedicationStatement.cud system/Encounter.cud", body["scope"], "only system/ scopes")
	assert.NotContains(t, body, "refresh_token")
	assert.NotContains(t, body, "id_token")
	c := b.verified(body["access_token"].(string))
	assert.Equal(t, "backend", c["sub"])
	assert.Equal(t, "backend", c["client_id"])
	assert.Equal(t, "300020240", c["helseid://claims/client/claims/orgnr_parent"])
	assert.NotContains(t, c, "helseid://claims/hpr/hpr_number")
	assert.NotContains(t, c, "helseid://claims/identity/security_level", "a system has no assurance level")

	t.Run("replayed assertion", func(t *testing.T) {
		resp := b.clientCredentials(a, "system/Encounter.cud")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		m := decodeJSON(t, resp)
		assert.Equal(t, "invalid_client", m["error"])
		assert.Contains(t, m["error_description"], "replay")
	})
	t.Run("wrong aud", func(t *testing.T) {
		a := b.assertion(b.key, jwa.RS384(), kidOf(t, b.key), "backend", b.ts.URL+"/auth/authorize", "jti-2", time.Minute)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(a, "system/Encounter.cud").StatusCode)
	})
	t.Run("unknown key", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		a := b.assertion(other, jwa.RS384(), kidOf(t, other), "backend", tokenURL, "jti-3", time.Minute)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(a, "system/Encounter.cud").StatusCode)
	})
	t.Run("registered kid, other key", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		a := b.assertion(other, jwa.RS384(), kidOf(t, b.key), "backend", tokenURL, "jti-4", time.Minute)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(a, "system/Encounter.cud").StatusCode)
	})
	t.Run("HMAC", func(t *testing.T) {
		tok, err := jwt.NewBuilder().Issuer("backend").Subject("backend").Audience([]string{tokenURL}).
			Expiration(b.clock.Now().Add(time.Minute)).JwtID("jti-5").Build()
		require.NoError(t, err)
		h := jws.NewHeaders()
		require.NoError(t, h.Set(jws.KeyIDKey, kidOf(t, b.key)))
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), []byte("a shared secret of enough length!"), jws.WithProtectedHeaders(h)))
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(string(signed), "system/Encounter.cud").StatusCode)
	})
	t.Run("expired", func(t *testing.T) {
		a := b.assertion(b.key, jwa.RS384(), kidOf(t, b.key), "backend", tokenURL, "jti-6", time.Minute)
		b.clock.Advance(2 * time.Minute)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(a, "system/Encounter.cud").StatusCode)
	})
	t.Run("exp too far ahead", func(t *testing.T) {
		a := b.assertion(b.key, jwa.RS384(), kidOf(t, b.key), "backend", tokenURL, "jti-7", time.Hour)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(a, "system/Encounter.cud").StatusCode)
	})
	t.Run("sub differs from iss", func(t *testing.T) {
		tok, err := jwt.NewBuilder().Issuer("backend").Subject("someone").Audience([]string{tokenURL}).
			Expiration(b.clock.Now().Add(time.Minute)).JwtID("jti-8").Build()
		require.NoError(t, err)
		h := jws.NewHeaders()
		require.NoError(t, h.Set(jws.KeyIDKey, kidOf(t, b.key)))
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS384(), b.key, jws.WithProtectedHeaders(h)))
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, b.clientCredentials(string(signed), "system/Encounter.cud").StatusCode)
	})
	t.Run("no system scope", func(t *testing.T) {
		a := b.assertion(b.key, jwa.RS384(), kidOf(t, b.key), "backend", tokenURL, "jti-9", time.Minute)
		resp := b.clientCredentials(a, "patient/*.rs")
		assert.Equal(t, "invalid_scope", decodeJSON(t, resp)["error"])
	})
	t.Run("jwks_uri client", func(t *testing.T) {
		a := b.assertion(b.uriKey, jwa.ES384(), kidOf(t, b.uriKey), "backend-uri", tokenURL, "jti-10", time.Minute)
		resp := b.clientCredentials(a, "system/Encounter.cud")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "system/Encounter.cud", decodeJSON(t, resp)["scope"])
	})
}

// The feeder client in testdata/smart/clients.json accepts assertions made
// with testdata/smart/feeder-dev-key.pem: the dev files agree.
func TestFeederDevKey(t *testing.T) {
	f := newFixture(t)
	key := loadKey(t, testdata+"feeder-dev-key.pem")
	a := f.assertion(key, jwa.ES256(), kidOf(t, key), "kj-feeder", f.ts.URL+"/auth/token", "feeder-1", time.Minute)
	resp := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/MedicationStatement.cud"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}, "client_id": {"kj-feeder"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c := f.verified(decodeJSON(t, resp)["access_token"].(string))
	assert.Equal(t, "kj-feeder", c["sub"])
}

// introspect asks as the resource server (kj-resource-server and its dev
// key).
func (f *fixture) introspect(token string) map[string]any {
	f.t.Helper()
	key := loadKey(f.t, testdata+"resource-server-dev-key.pem")
	a := f.assertion(key, jwa.ES256(), kidOf(f.t, key), "kj-resource-server", f.ts.URL+"/auth/introspect", rand.Text(), time.Minute)
	resp := f.postForm(f.ts.URL+"/auth/introspect", url.Values{"token": {token},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	return decodeJSON(f.t, resp)
}

func TestIntrospection(t *testing.T) {
	f := newFixture(t)
	tok, err := f.srv.IssueToken(context.Background(), smart.TokenRequest{Persona: "gp", Patient: "pas-9", PatientPID: "14837120188"})
	require.NoError(t, err)

	active := f.introspect(tok.AccessToken)
	assert.Equal(t, true, active["active"])
	assert.Equal(t, "Bearer", active["token_type"])
	assert.Equal(t, "990010000", active["helseid://claims/hpr/hpr_number"])
	assert.Equal(t, "pas-9", active["patient"])
	assert.EqualValues(t, tok.ExpiresAt.Unix(), active["exp"])
	assert.NotEmpty(t, active["authorization_details"])

	assert.Equal(t, map[string]any{"active": false}, f.introspect("garbage.not.a-token"))
	assert.Equal(t, map[string]any{"active": false}, f.introspect(tok.AccessToken+"x"), "tampered signature")

	f.clock.Advance(10*time.Minute + time.Second)
	assert.Equal(t, map[string]any{"active": false}, f.introspect(tok.AccessToken), "expired")

	t.Run("unauthenticated", func(t *testing.T) {
		resp := f.postForm(f.ts.URL+"/auth/introspect", url.Values{"token": {tok.AccessToken}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		resp = f.postForm(f.ts.URL+"/auth/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {demoClient}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "public clients cannot introspect")
	})
	t.Run("other client's token", func(t *testing.T) {
		fresh, err := f.srv.IssueToken(context.Background(), smart.TokenRequest{Persona: "nurse", Patient: "pas-9"})
		require.NoError(t, err)
		key := loadKey(t, testdata+"feeder-dev-key.pem")
		a := f.assertion(key, jwa.ES256(), kidOf(t, key), "kj-feeder", f.ts.URL+"/auth/introspect", "feeder-introspect", time.Minute)
		resp := f.postForm(f.ts.URL+"/auth/introspect", url.Values{"token": {fresh.AccessToken},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
		assert.Equal(t, map[string]any{"active": false}, decodeJSON(t, resp))
	})
}

func TestRevocation(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "offline_access")
	tok := f.standaloneToken(conf, "gp", "pas-3")
	assert.Equal(t, true, f.introspect(tok.RefreshToken)["active"])

	// The management page lists the grant.
	page := readAll(t, f.get(f.ts.URL+"/auth/manage"))
	assert.Contains(t, page, "pas-3")

	resp := f.postForm(f.ts.URL+"/auth/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {demoClient}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, false, f.introspect(tok.RefreshToken)["active"])
	assert.Equal(t, false, f.introspect(tok.AccessToken)["active"], "the family goes together")
	_, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")
	assert.NotContains(t, readAll(t, f.get(f.ts.URL+"/auth/manage")), "pas-3")
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	resp := f.get(f.ts.URL + "/.well-known/smart-configuration")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	doc := decodeJSON(t, resp)
	for _, field := range []string{
		"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "introspection_endpoint",
		"revocation_endpoint", "management_endpoint", "grant_types_supported",
		"token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported",
		"scopes_supported", "response_types_supported", "capabilities", "code_challenge_methods_supported",
		"user_access_brand_bundle", "user_access_brand_identifier",
	} {
		assert.Contains(t, doc, field)
	}
	strs := func(k string) []string {
		var out []string
		for _, v := range doc[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	assert.Equal(t, f.ts.URL, doc["issuer"])
	assert.Equal(t, f.ts.URL+"/auth/token", doc["token_endpoint"])
	assert.Equal(t, []string{"S256"}, strs("code_challenge_methods_supported"))
	assert.ElementsMatch(t, []string{"authorization_code", "refresh_token", "client_credentials"}, strs("grant_types_supported"))
	assert.Contains(t, strs("token_endpoint_auth_methods_supported"), "private_key_jwt")
	assert.Subset(t, strs("token_endpoint_auth_signing_alg_values_supported"), []string{"RS384", "ES384"})
	assert.Contains(t, strs("response_types_supported"), "code")
	assert.Subset(t, strs("scopes_supported"), []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access"})
	assert.Subset(t, strs("capabilities"), []string{
		"launch-ehr", "launch-standalone", "client-public", "client-confidential-asymmetric",
		"context-ehr-patient", "context-standalone-patient", "permission-offline", "permission-patient",
		"permission-user", "permission-v1", "permission-v2", "sso-openid-connect", "authorize-post",
	})

	// Every endpoint named is served.
	for _, k := range []string{"jwks_uri", "user_access_brand_bundle", "management_endpoint"} {
		r := f.get(doc[k].(string))
		assert.Equal(t, http.StatusOK, r.StatusCode, k)
	}
	oidc := decodeJSON(t, f.get(f.ts.URL+"/.well-known/openid-configuration"))
	assert.Equal(t, f.ts.URL, oidc["issuer"])
	assert.Equal(t, doc["jwks_uri"], oidc["jwks_uri"])
	assert.True(t, slices.Contains(oidc["id_token_signing_alg_values_supported"].([]any), any("ES256")))
}
