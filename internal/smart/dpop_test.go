package smart_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// dpopKey is a client's DPoP key.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	pub  jwk.Key
	jkt  string
}

func newDPoPKey(t *testing.T) dpopKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := jwk.PublicKeyOf(&priv.PublicKey)
	require.NoError(t, err)
	tp, err := pub.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return dpopKey{priv: priv, pub: pub, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

func (k dpopKey) proof(t *testing.T, htm, htu string, iat time.Time) string {
	claims, err := json.Marshal(map[string]any{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": iat.Unix()})
	require.NoError(t, err)
	hdr := jws.NewHeaders()
	require.NoError(t, hdr.Set(jws.TypeKey, "dpop+jwt"))
	require.NoError(t, hdr.Set(jws.JWKKey, k.pub))
	out, err := jws.Sign(claims, jws.WithKey(jwa.ES256(), k.priv, jws.WithProtectedHeaders(hdr)))
	require.NoError(t, err)
	return string(out)
}

// tokenWithProof posts to the token endpoint with a DPoP header.
func (f *fixture) tokenWithProof(form url.Values, proof string) (int, map[string]any) {
	req, err := http.NewRequest(http.MethodPost, f.ts.URL+"/auth/token", strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	res, err := f.ts.Client().Do(req)
	require.NoError(f.t, err)
	return res.StatusCode, decodeJSON(f.t, res)
}

// TestDPoPBoundTokens: a client that proves a DPoP key at the token
// endpoint gets a token bound to it (cnf.jkt, token_type DPoP), and its
// refresh token can be used only with a proof by the same key.
func TestDPoPBoundTokens(t *testing.T) {
	f := newFixture(t)
	key := newDPoPKey(t)
	tokenURL := f.ts.URL + "/auth/token"
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	session, _ := f.loginSession(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL)))
	q := f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {"citizen"}}))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "code_verifier": {verifier},
		"redirect_uri": {demoRedirect}, "client_id": {demoClient}}

	status, body := f.tokenWithProof(form, key.proof(t, "POST", tokenURL, f.clock.Now()))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "DPoP", body["token_type"])
	c := f.verified(body["access_token"].(string))
	assert.Equal(t, map[string]any{"jkt": key.jkt}, c["cnf"])
	refresh, _ := body["refresh_token"].(string)
	require.NotEmpty(t, refresh)

	rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {demoClient}}
	status, body = f.tokenWithProof(rf, "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_dpop_proof", body["error"], "a bound refresh token without a proof")
	status, body = f.tokenWithProof(rf, newDPoPKey(t).proof(t, "POST", tokenURL, f.clock.Now()))
	assert.Equal(t, "invalid_dpop_proof", body["error"], "a bound refresh token with another key's proof: %d", status)
	status, body = f.tokenWithProof(rf, key.proof(t, "POST", tokenURL, f.clock.Now()))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, map[string]any{"jkt": key.jkt}, f.verified(body["access_token"].(string))["cnf"])

	// Proofs the token endpoint refuses.
	for what, proof := range map[string]string{
		"another URL":  key.proof(t, "POST", f.ts.URL+"/auth/authorize", f.clock.Now()),
		"GET":          key.proof(t, "GET", tokenURL, f.clock.Now()),
		"an hour old":  key.proof(t, "POST", tokenURL, f.clock.Now().Add(-time.Hour)),
		"not a JWS":    "nonsense",
		"bearer token": body["access_token"].(string),
	} {
		status, body := f.tokenWithProof(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {demoClient}}, proof)
		assert.Equal(t, http.StatusBadRequest, status, what)
		assert.Equal(t, "invalid_dpop_proof", body["error"], what)
	}
	replayed := key.proof(t, "POST", tokenURL, f.clock.Now())
	f.tokenWithProof(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {demoClient}}, replayed)
	_, body = f.tokenWithProof(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {demoClient}}, replayed)
	assert.Equal(t, "invalid_dpop_proof", body["error"])
	assert.Contains(t, body["error_description"], "replayed")
}
