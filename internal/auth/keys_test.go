package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildSnapshotKeepsOnlySignatureKeys(t *testing.T) {
	testKeys(t)
	set := jwk.NewSet()
	add := func(raw any, kid, use string) {
		k, err := jwk.Import(raw)
		require.NoError(t, err)
		require.NoError(t, k.Set(jwk.KeyIDKey, kid))
		if use != "" {
			require.NoError(t, k.Set(jwk.KeyUsageKey, use))
		}
		require.NoError(t, set.AddKey(k))
	}
	add(&rsaKey1.PublicKey, "good-rsa", "sig")
	add(rsaKey2, "private-reduced", "") // a private key published by mistake is used as its public half
	add(&ecKey1.PublicKey, "enc", "enc")
	add([]byte("a shared secret that must never verify anything"), "oct", "sig")

	snap, err := buildSnapshot(set)
	require.NoError(t, err)
	var kids []string
	for _, k := range snap.all {
		kids = append(kids, k.kid)
		_, isPriv := k.key.(*rsa.PrivateKey)
		assert.False(t, isPriv)
	}
	assert.ElementsMatch(t, []string{"good-rsa", "private-reduced"}, kids)
	assert.Len(t, (&keyStore{}).findIn(snap, "", "RS256"), 0, "no kid and two candidates: refuse to guess")
	assert.Len(t, (&keyStore{}).findIn(snap, "good-rsa", "RS256"), 1)
	assert.Len(t, (&keyStore{}).findIn(snap, "good-rsa", "ES256"), 0)
}

// TestJWKSWithUnusableKeys: a weak RSA key, a symmetric key and an unknown
// key type in the issuer's JWKS are skipped; the good key still verifies.
func TestJWKSWithUnusableKeys(t *testing.T) {
	testKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsaJWK := func(k *rsa.PublicKey, kid string) string {
		return fmt.Sprintf(`{"kty":"RSA","use":"sig","kid":%q,"n":%q,"e":%q}`, kid,
			base64.RawURLEncoding.EncodeToString(k.N.Bytes()), base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()))
	}
	body := `{"keys":[` + rsaJWK(&weak.PublicKey, "weak") + `,{"kty":"oct","kid":"oct","k":"c2VjcmV0"},{"kty":"XYZ","kid":"odd"},` +
		rsaJWK(&rsaKey1.PublicKey, "rsa-1") + `]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	clock := newTestClock()
	v, err := NewValidator(context.Background(), Config{
		Issuers: []Issuer{{URL: "https://helseid.test", JWKSURL: srv.URL}}, Audiences: []string{testAudience}, Now: clock.Now,
	})
	require.NoError(t, err)
	c := map[string]any{"iss": "https://helseid.test", "aud": testAudience, "exp": clock.Now().Unix() + 60}
	_, err = v.Validate(context.Background(), bearer(sign(t, signer{"rsa-1", jwa.RS256(), rsaKey1}, c, nil)))
	assert.NoError(t, err)
	_, err = v.Validate(context.Background(), bearer(rawJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "oct"}, c, hs256([]byte("secret")))))
	assert.Equal(t, CodeInvalidToken, asAuthError(t, err).Code)
}
