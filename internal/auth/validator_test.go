package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const flagURL = testBase + "/Flag"

func asAuthError(t *testing.T, err error) *Error {
	t.Helper()
	require.Error(t, err)
	var ae *Error
	require.True(t, errors.As(err, &ae), "error %v is not *auth.Error", err)
	return ae
}

func TestValidateAcceptsGoodTokens(t *testing.T) {
	f := newFixture(t, nil)
	for _, s := range []signer{f.rsa1, f.ec1} {
		t.Run(s.alg.String(), func(t *testing.T) {
			tok := f.token(s, f.claims())
			p, err := f.v.Validate(context.Background(), request("GET", flagURL+"?patient=pat-1", "Bearer "+tok, ""))
			require.NoError(t, err)
			assert.Equal(t, SchemeBearer, p.Scheme)
			assert.Equal(t, "hp-123", p.Subject)
			assert.Equal(t, f.is.issuer(), p.Issuer)
			assert.Equal(t, "ehr-client", p.ClientID)
			assert.Equal(t, "pat-1", p.Patient)
			assert.Equal(t, "565501872", p.HPR)
			assert.Equal(t, "13116900216", p.PID)
			assert.Equal(t, 4, p.SecurityLevel)
			assert.Equal(t, "983658725", p.OrgParent)
			assert.Equal(t, "974589095", p.OrgChild)
			assert.Equal(t, "LE", p.HPCategory)
			assert.Equal(t, "TREAT", p.PurposeOfUse)
			assert.Equal(t, []string{"13116900216"}, p.Patients)
			require.NotNil(t, p.Attest)
			assert.Equal(t, "Helse Vest HF", p.Attest.Practitioner.LegalEntity.Name)
			assert.Equal(t, "109765", p.Attest.Practitioner.Department.ID)
			assert.Equal(t, "S03", p.Attest.CareRelationship.HealthcareService.Code)
			assert.True(t, p.Attest.CareRelationship.DecisionRef.UserSelected)
			assert.Equal(t, KindPractitioner, p.Kind())
			assert.True(t, p.Scopes.Has("launch/patient"))
			assert.True(t, p.Scopes.Permits(ContextPatient, "Flag", Search).Allowed)
			assert.False(t, p.Scopes.Permits(ContextPatient, "Flag", Create).Allowed)
			assert.Empty(t, p.ScopeErrors)
		})
	}
}

func TestValidateTypAndSkewVariants(t *testing.T) {
	f := newFixture(t, nil)
	for _, typ := range []string{"at+jwt", "AT+JWT", "application/at+jwt", "JWT", "jwt"} {
		tok := sign(t, f.rsa1, f.claims(), map[string]any{"typ": typ})
		_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+tok, ""))
		assert.NoError(t, err, typ)
	}
	// Within the 30 s skew an expired-by-20s token and a 20 s-early nbf pass.
	c := f.claims()
	c["exp"] = f.clock.Now().Unix() - 20
	c["jti"] = "skew-exp"
	_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.rsa1, c), ""))
	assert.NoError(t, err)
	c = f.claims()
	c["nbf"] = f.clock.Now().Unix() + 20
	c["iat"] = f.clock.Now().Unix() + 20
	_, err = f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.rsa1, c), ""))
	assert.NoError(t, err)
	// scope as a JSON array (HelseID) and aud as an array.
	c = f.claims()
	c["scope"] = []string{"openid", "patient/Flag.rs"}
	c["aud"] = []string{"other", testAudience}
	p, err := f.v.Validate(context.Background(), request("GET", flagURL, "bearer "+f.token(f.rsa1, c), ""))
	require.NoError(t, err)
	assert.True(t, p.Scopes.Permits(ContextPatient, "Flag", Read).Allowed)
}

type attackCase struct {
	name   string
	req    func(t *testing.T, f *fixture) *http.Request
	status int
	scheme string
	code   string
}

func bearer(tok string) *http.Request { return request("GET", flagURL, "Bearer "+tok, "") }

func TestTokenAttacksRefused(t *testing.T) {
	now := func(f *fixture) int64 { return f.clock.Now().Unix() }
	bound := func(f *fixture) map[string]any {
		c := f.claims()
		c["cnf"] = map[string]any{"jkt": jkt(t, f.client)}
		return c
	}
	dpopReq := func(f *fixture, method, target string, mod func(c, h map[string]any)) *http.Request {
		tok := f.token(f.rsa1, bound(f))
		htu := strings.SplitN(target, "?", 2)[0]
		return request(method, target, "DPoP "+tok, f.proof(f.client, method, htu, tok, mod))
	}
	cases := []attackCase{
		{"no credentials", func(t *testing.T, f *fixture) *http.Request {
			return request("GET", flagURL, "", "")
		}, 401, SchemeBearer, ""},
		{"alg none, empty signature", func(t *testing.T, f *fixture) *http.Request {
			return bearer(rawJWS(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, f.claims(), nil))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"alg none, junk signature", func(t *testing.T, f *fixture) *http.Request {
			return bearer(rawJWS(t, map[string]any{"alg": "none", "typ": "at+jwt"}, f.claims(), func([]byte) []byte { return []byte("x") }))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"alg NONE", func(t *testing.T, f *fixture) *http.Request {
			return bearer(rawJWS(t, map[string]any{"alg": "NONE", "typ": "at+jwt"}, f.claims(), func([]byte) []byte { return []byte("x") }))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"HS256 signed with the RSA public key (PEM)", func(t *testing.T, f *fixture) *http.Request {
			return bearer(rawJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, f.claims(), hs256(publicPEM(t, &rsaKey1.PublicKey))))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"HS256 signed with the EC public key (PEM)", func(t *testing.T, f *fixture) *http.Request {
			return bearer(rawJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "ec-1"}, f.claims(), hs256(publicPEM(t, &ecKey1.PublicKey))))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"RS512 outside the allow-list", func(t *testing.T, f *fixture) *http.Request {
			return bearer(f.token(signer{"rsa-1", jwa.RS512(), rsaKey1}, f.claims()))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"alg RS256 but EC key kid", func(t *testing.T, f *fixture) *http.Request {
			return bearer(f.token(signer{"ec-1", jwa.RS256(), rsaKey1}, f.claims()))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"unknown kid", func(t *testing.T, f *fixture) *http.Request {
			return bearer(f.token(f.rsa2, f.claims()))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"known kid, attacker key", func(t *testing.T, f *fixture) *http.Request {
			return bearer(f.token(signer{"rsa-1", jwa.RS256(), rsaKey2}, f.claims()))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"self-signed with embedded jwk", func(t *testing.T, f *fixture) *http.Request {
			pub, err := jwk.PublicKeyOf(ecK3)
			require.NoError(t, err)
			return bearer(sign(t, signer{"ec-1", jwa.ES256(), ecK3}, f.claims(), map[string]any{"jwk": pub}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"jku pointing elsewhere", func(t *testing.T, f *fixture) *http.Request {
			return bearer(sign(t, signer{"x", jwa.ES256(), ecK3}, f.claims(), map[string]any{"jku": "https://attacker.example/jwks"}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"x5u pointing elsewhere", func(t *testing.T, f *fixture) *http.Request {
			return bearer(sign(t, signer{"x", jwa.ES256(), ecK3}, f.claims(), map[string]any{"x5u": "https://attacker.example/cert"}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"wrong issuer", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["iss"] = "https://helseid-sts.attacker.example"
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"wrong audience", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["aud"] = "https://other-api.example"
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"no audience", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			delete(c, "aud")
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"expired", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["exp"] = now(f) - 31
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"no exp", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			delete(c, "exp")
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"exp as string", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["exp"] = "9999999999"
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"not yet valid", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["nbf"] = now(f) + 120
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"iat in the future", func(t *testing.T, f *fixture) *http.Request {
			c := f.claims()
			c["iat"] = now(f) + 120
			delete(c, "nbf")
			return bearer(f.token(f.rsa1, c))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"tampered payload", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, f.claims())
			c := f.claims()
			c["patient"] = "pat-2"
			forged := rawJWS(t, map[string]any{}, c, nil)
			parts := strings.Split(tok, ".")
			return bearer(parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2])
		}, 401, SchemeBearer, CodeInvalidToken},
		{"tampered header (kid swap)", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, f.claims())
			parts := strings.Split(tok, ".")
			h := rawJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1", "x": 1}, map[string]any{}, nil)
			return bearer(strings.Split(h, ".")[0] + "." + parts[1] + "." + parts[2])
		}, 401, SchemeBearer, CodeInvalidToken},
		{"wrong typ (DPoP proof as token)", func(t *testing.T, f *fixture) *http.Request {
			return bearer(sign(t, f.rsa1, f.claims(), map[string]any{"typ": "dpop+jwt"}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"missing typ", func(t *testing.T, f *fixture) *http.Request {
			return bearer(sign(t, f.rsa1, f.claims(), map[string]any{"typ": nil}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"crit header", func(t *testing.T, f *fixture) *http.Request {
			return bearer(sign(t, f.rsa1, f.claims(), map[string]any{"crit": []string{"exp"}}))
		}, 401, SchemeBearer, CodeInvalidToken},
		{"garbage token", func(t *testing.T, f *fixture) *http.Request {
			return bearer("not-a-jwt")
		}, 401, SchemeBearer, CodeInvalidToken},
		{"two Authorization headers", func(t *testing.T, f *fixture) *http.Request {
			r := bearer(f.token(f.rsa1, f.claims()))
			r.Header.Add("Authorization", "Bearer x")
			return r
		}, 400, SchemeBearer, CodeInvalidRequest},
		{"empty bearer", func(t *testing.T, f *fixture) *http.Request {
			return request("GET", flagURL, "Bearer ", "")
		}, 400, SchemeBearer, CodeInvalidRequest},
		{"basic auth", func(t *testing.T, f *fixture) *http.Request {
			return request("GET", flagURL, "Basic dXNlcjpwYXNz", "")
		}, 401, SchemeBearer, ""},

		// DPoP (RFC 9449)
		{"DPoP-bound token sent as Bearer", func(t *testing.T, f *fixture) *http.Request {
			return bearer(f.token(f.rsa1, bound(f)))
		}, 401, SchemeDPoP, CodeInvalidToken},
		{"unbound token sent as DPoP", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, f.claims())
			return request("GET", flagURL, "DPoP "+tok, f.proof(f.client, "GET", flagURL, tok, nil))
		}, 401, SchemeDPoP, CodeInvalidToken},
		{"DPoP proof missing", func(t *testing.T, f *fixture) *http.Request {
			return request("GET", flagURL, "DPoP "+f.token(f.rsa1, bound(f)), "")
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"two DPoP headers", func(t *testing.T, f *fixture) *http.Request {
			r := dpopReq(f, "GET", flagURL, nil)
			r.Header.Add("DPoP", r.Header.Get("DPoP"))
			return r
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof for another URL", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["htu"] = testBase + "/AllergyIntolerance" })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof for another host", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["htu"] = "https://evil.example/Flag" })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof for another method", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["htm"] = "POST" })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof htm lower case", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["htm"] = "get" })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"replayed DPoP jti", func(t *testing.T, f *fixture) *http.Request {
			r := dpopReq(f, "GET", flagURL, nil)
			_, err := f.v.Validate(context.Background(), r)
			require.NoError(t, err, "first use of the proof must pass")
			return request("GET", flagURL, r.Header.Get("Authorization"), r.Header.Get("DPoP"))
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof missing ath", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["ath"] = nil })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof wrong ath", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["ath"] = ath("another token") })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof key not matching cnf.jkt", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, bound(f))
			return request("GET", flagURL, "DPoP "+tok, f.proof(f.other, "GET", flagURL, tok, nil))
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof signed by another key than its jwk", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, bound(f))
			pub, err := jwk.PublicKeyOf(f.client.key)
			require.NoError(t, err)
			return request("GET", flagURL, "DPoP "+tok, f.proof(f.other, "GET", flagURL, tok, func(c, h map[string]any) { h["jwk"] = pub }))
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof with private jwk", func(t *testing.T, f *fixture) *http.Request {
			priv, err := jwk.Import(f.client.key)
			require.NoError(t, err)
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { h["jwk"] = priv })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof too old", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["iat"] = now(f) - 120 })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof from the future", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["iat"] = now(f) + 120 })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof wrong typ", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { h["typ"] = "JWT" })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof without jti", func(t *testing.T, f *fixture) *http.Request {
			return dpopReq(f, "GET", flagURL, func(c, h map[string]any) { c["jti"] = nil })
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof HS256", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, bound(f))
			pub, err := jwk.PublicKeyOf(f.client.key)
			require.NoError(t, err)
			p := rawJWS(t, map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": pub},
				map[string]any{"jti": "h", "htm": "GET", "htu": flagURL, "iat": now(f), "ath": ath(tok)}, hs256([]byte("k")))
			return request("GET", flagURL, "DPoP "+tok, p)
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
		{"DPoP proof alg none", func(t *testing.T, f *fixture) *http.Request {
			tok := f.token(f.rsa1, bound(f))
			pub, err := jwk.PublicKeyOf(f.client.key)
			require.NoError(t, err)
			p := rawJWS(t, map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": pub},
				map[string]any{"jti": "n", "htm": "GET", "htu": flagURL, "iat": now(f), "ath": ath(tok)}, func([]byte) []byte { return []byte{0} })
			return request("GET", flagURL, "DPoP "+tok, p)
		}, 401, SchemeDPoP, CodeInvalidDPoPProof},
	}
	f := newFixture(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case gets a moment of its own so jtis never collide.
			f.clock.Advance(time.Second)
			r := tc.req(t, f)
			p, err := f.v.Validate(context.Background(), r)
			require.Nil(t, p)
			ae := asAuthError(t, err)
			t.Log(ae.WWWAuthenticate())
			assert.Equal(t, tc.status, ae.Status, ae.Description)
			assert.Equal(t, tc.scheme, ae.Scheme, ae.Description)
			assert.Equal(t, tc.code, ae.Code, ae.Description)
			wa := ae.WWWAuthenticate()
			assert.True(t, strings.HasPrefix(wa, tc.scheme+" "), wa)
			assert.Contains(t, wa, `realm="kjernejournal"`)
			if tc.code != "" {
				assert.Contains(t, wa, `error="`+tc.code+`"`)
				assert.Contains(t, wa, `error_description="`)
			} else {
				assert.NotContains(t, wa, "error=")
				assert.Len(t, ae.Challenges(), 2)
			}
			if tc.scheme == SchemeDPoP {
				assert.Contains(t, wa, `algs="ES256 ES384 PS256 RS256 RS384"`)
			}
		})
	}
}

func TestDPoPBoundTokenAccepted(t *testing.T) {
	f := newFixture(t, nil)
	c := f.claims()
	c["cnf"] = map[string]any{"jkt": jkt(t, f.client)}
	tok := f.token(f.ec1, c)
	for i, method := range []string{"GET", "POST", "GET"} {
		f.clock.Advance(time.Second)
		// Query strings are ignored; scheme and host are compared
		// case-insensitively with the default port dropped.
		htu := "HTTPS://FHIR.kj.test:443/Flag"
		r := request(method, flagURL+"?patient=pat-1&_count=5", "DPoP "+tok, f.proof(f.client, method, htu, tok, nil))
		p, err := f.v.Validate(context.Background(), r)
		require.NoError(t, err, "request %d", i)
		assert.Equal(t, SchemeDPoP, p.Scheme)
		assert.Equal(t, jkt(t, f.client), p.DPoPThumbprint)
	}
	// The token is now cached; a bad proof on a cache hit is still refused.
	r := request("GET", flagURL, "DPoP "+tok, f.proof(f.client, "GET", testBase+"/Patient", tok, nil))
	_, err := f.v.Validate(context.Background(), r)
	assert.Equal(t, CodeInvalidDPoPProof, asAuthError(t, err).Code)
	r = request("GET", flagURL, "DPoP "+tok, "")
	_, err = f.v.Validate(context.Background(), r)
	assert.Equal(t, CodeInvalidDPoPProof, asAuthError(t, err).Code)
}

func TestDPoPHTUWithoutExternalBase(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ExternalBaseURL = "" })
	c := f.claims()
	c["cnf"] = map[string]any{"jkt": jkt(t, f.client)}
	tok := f.token(f.rsa1, c)
	r := request("GET", "http://127.0.0.1:8080/Flag/1", "DPoP "+tok, f.proof(f.client, "GET", "http://127.0.0.1:8080/Flag/1", tok, nil))
	_, err := f.v.Validate(context.Background(), r)
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	r = request("GET", "http://127.0.0.1:8080/Flag/1", "DPoP "+tok, f.proof(f.client, "GET", "https://127.0.0.1:8080/Flag/1", tok, nil))
	_, err = f.v.Validate(context.Background(), r)
	assert.Equal(t, CodeInvalidDPoPProof, asAuthError(t, err).Code)
}

func TestJWKSRotationOnUnknownKID(t *testing.T) {
	f := newFixture(t, nil)
	require.EqualValues(t, 1, f.is.fetches.Load(), "NewValidator fetches once")

	rotated := f.token(f.rsa2, f.claims())
	// The issuer rotates after our last fetch. Within the rate-limit window
	// no amount of unknown kids makes us refetch.
	f.is.setKeys(f.rsa2.publicJWK(t), f.ec1.publicJWK(t))
	for range 20 {
		_, err := f.v.Validate(context.Background(), bearer(rotated))
		assert.Equal(t, CodeInvalidToken, asAuthError(t, err).Code)
	}
	assert.EqualValues(t, 1, f.is.fetches.Load(), "unknown kids within the window must not refetch")

	// After the window, the unknown kid triggers one refresh that picks up
	// the rotated key.
	f.clock.Advance(61 * time.Second)
	c := f.claims()
	c["jti"] = "after-rotation"
	rotated = f.token(f.rsa2, c)
	p, err := f.v.Validate(context.Background(), bearer(rotated))
	require.NoError(t, err)
	assert.Equal(t, "hp-123", p.Subject)
	assert.EqualValues(t, 2, f.is.fetches.Load())

	// The retired key is gone with the refresh.
	c["jti"] = "old-key"
	_, err = f.v.Validate(context.Background(), bearer(f.token(f.rsa1, c)))
	assert.Equal(t, CodeInvalidToken, asAuthError(t, err).Code)

	// Attackers with invented kids still get at most one fetch per window.
	for i := range 50 {
		_, err := f.v.Validate(context.Background(), bearer(f.token(signer{"invented-" + string(rune('a'+i%26)), jwa.RS256(), rsaKey1}, c)))
		require.Error(t, err)
	}
	assert.EqualValues(t, 2, f.is.fetches.Load())
}

func TestKeyFromAnotherTrustedIssuerRefused(t *testing.T) {
	testKeys(t)
	clock := newTestClock()
	a := newIssuerServer(t, signer{"a-1", jwa.ES256(), ecKey1}.publicJWK(t))
	b := newIssuerServer(t, signer{"b-1", jwa.RS256(), rsaKey1}.publicJWK(t))
	v, err := NewValidator(context.Background(), Config{
		Issuers:   []Issuer{{URL: a.issuer(), JWKSURL: a.jwksURL()}, {URL: b.issuer(), JWKSURL: b.jwksURL()}},
		Audiences: []string{testAudience},
		Now:       clock.Now,
	})
	require.NoError(t, err)
	c := map[string]any{"iss": a.issuer(), "aud": testAudience, "sub": "x", "exp": clock.Now().Unix() + 60}
	// Issuer A's claim, signed with issuer B's key and kid.
	_, err = v.Validate(context.Background(), bearer(sign(t, signer{"b-1", jwa.RS256(), rsaKey1}, c, nil)))
	assert.Equal(t, CodeInvalidToken, asAuthError(t, err).Code)
	// The same with A's own key passes.
	_, err = v.Validate(context.Background(), bearer(sign(t, signer{"a-1", jwa.ES256(), ecKey1}, c, nil)))
	assert.NoError(t, err)
}

func TestTokenCache(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(f.rsa1, f.claims())
	p1, err := f.v.Validate(context.Background(), bearer(tok))
	require.NoError(t, err)
	require.Len(t, f.v.tokens.m, 1)
	p2, err := f.v.Validate(context.Background(), bearer(tok))
	require.NoError(t, err)
	assert.NotSame(t, p1, p2, "callers get their own copy")
	assert.Equal(t, p1.Subject, p2.Subject)
	// Expiry still applies to cached tokens.
	f.clock.Advance(300*time.Second + 31*time.Second)
	_, err = f.v.Validate(context.Background(), bearer(tok))
	assert.Equal(t, "token expired", asAuthError(t, err).Description)

	// Bounded.
	small := newFixture(t, func(c *Config) { c.TokenCacheSize = 4 })
	for i := range 10 {
		c := small.claims()
		c["jti"] = string(rune('a' + i))
		_, err := small.v.Validate(context.Background(), bearer(small.token(small.ec1, c)))
		require.NoError(t, err)
		assert.LessOrEqual(t, len(small.v.tokens.m), 4)
	}
	off := newFixture(t, func(c *Config) { c.TokenCacheSize = -1 })
	_, err = off.v.Validate(context.Background(), bearer(off.token(off.rsa1, off.claims())))
	require.NoError(t, err)
	assert.Nil(t, off.v.tokens)
}

func TestReplayCacheFullFailsClosed(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DPoP.ReplayCacheSize = 2 })
	c := f.claims()
	c["cnf"] = map[string]any{"jkt": jkt(t, f.client)}
	tok := f.token(f.rsa1, c)
	for i := range 3 {
		p := f.proof(f.client, "GET", flagURL, tok, func(c, h map[string]any) { c["jti"] = string(rune('a' + i)) })
		_, err := f.v.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, p))
		if i < 2 {
			require.NoError(t, err)
		} else {
			assert.Contains(t, asAuthError(t, err).Description, "replay cache full")
		}
	}
	// Once the remembered proofs are too old to be replayed, room is made.
	f.clock.Advance(3 * time.Minute)
	c["exp"] = f.clock.Now().Unix() + 60
	tok = f.token(f.rsa1, c)
	p := f.proof(f.client, "GET", flagURL, tok, nil)
	_, err := f.v.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, p))
	assert.NoError(t, err)
}

func TestNewValidatorRefusesBadConfig(t *testing.T) {
	f := newFixture(t, nil)
	closed := newIssuerServer(t)
	closedURL := closed.jwksURL()
	closed.srv.Close()
	base := func() Config {
		return Config{Issuers: []Issuer{{URL: f.is.issuer(), JWKSURL: f.is.jwksURL()}}, Audiences: []string{testAudience}}
	}
	for name, mod := range map[string]func(*Config){
		"HS256 allowed":   func(c *Config) { c.Algorithms = []string{"RS256", "HS256"} },
		"none allowed":    func(c *Config) { c.Algorithms = []string{"none"} },
		"DPoP HS256":      func(c *Config) { c.DPoP.Algorithms = []string{"HS256"} },
		"no issuers":      func(c *Config) { c.Issuers = nil },
		"no audience":     func(c *Config) { c.Audiences = nil },
		"plain http JWKS": func(c *Config) { c.Issuers[0].JWKSURL = "http://helseid.example/jwks" },
		"JWKS source down": func(c *Config) {
			c.Issuers[0].KeySource = func(context.Context) (jwk.Set, error) { return nil, errors.New("down") }
		},
		"JWKS unreachable": func(c *Config) { c.Issuers[0].JWKSURL = closedURL },
		"JWKS without keys": func(c *Config) {
			c.Issuers[0].KeySource = func(context.Context) (jwk.Set, error) { return jwk.NewSet(), nil }
		},
		"bad external base": func(c *Config) { c.ExternalBaseURL = "fhir.example" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			mod(&cfg)
			_, err := NewValidator(context.Background(), cfg)
			assert.Error(t, err)
		})
	}
}

func TestErrorRendering(t *testing.T) {
	e := &Error{Status: 401, Scheme: SchemeBearer, Code: CodeInvalidToken, Description: "bad \"quote\"\r\nX-Injected: 1", realm: "kj"}
	assert.Equal(t, `Bearer realm="kj", error="invalid_token", error_description="bad 'quote'??X-Injected: 1"`, e.WWWAuthenticate())
	d := &Error{Status: 401, Scheme: SchemeDPoP, Code: CodeInvalidDPoPProof, Description: "replayed", algs: "ES256 PS256"}
	assert.Equal(t, `DPoP algs="ES256 PS256", error="invalid_dpop_proof", error_description="replayed"`, d.WWWAuthenticate())
	is := InsufficientScope(SchemeBearer, "needs Flag read", "patient/Flag.rs")
	assert.Equal(t, 403, is.Status)
	assert.Equal(t, `Bearer error="insufficient_scope", error_description="needs Flag read", scope="patient/Flag.rs"`, is.WWWAuthenticate())
	h := http.Header{}
	(&Error{Status: 401, Scheme: SchemeBearer, realm: "kj", algs: "ES256"}).SetHeader(h)
	assert.Equal(t, []string{`Bearer realm="kj"`, `DPoP realm="kj", algs="ES256"`}, h.Values("WWW-Authenticate"))
}

func TestKeySourceInProcess(t *testing.T) {
	testKeys(t)
	clock := newTestClock()
	s := signer{"local-1", jwa.ES256(), ecKey1}
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(s.publicJWK(t)))
	v, err := NewValidator(context.Background(), Config{
		Issuers: []Issuer{{URL: "http://127.0.0.1:8080", KeySource: func(context.Context) (jwk.Set, error) {
			return set, nil
		}}},
		Audiences: []string{testAudience},
		Now:       clock.Now,
	})
	require.NoError(t, err)
	c := map[string]any{"iss": "http://127.0.0.1:8080", "aud": testAudience, "sub": "feeder", "exp": clock.Now().Unix() + 60,
		"scope": "system/MedicationStatement.cu"}
	p, err := v.Validate(context.Background(), bearer(sign(t, s, c, nil)))
	require.NoError(t, err)
	assert.Equal(t, KindSystem, p.Kind())
}

// TestValidateConcurrent exercises the caches and the key store from many
// goroutines; its value is under -race.
func TestValidateConcurrent(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TokenCacheSize = 8 })
	c := f.claims()
	c["cnf"] = map[string]any{"jkt": jkt(t, f.client)}
	bound := f.token(f.ec1, c)
	type job struct {
		r    *http.Request
		okay bool
	}
	var jobs []job
	for i := range 40 {
		cl := f.claims()
		cl["jti"] = strings.Repeat("j", i+1)
		s := f.rsa1
		if i%2 == 1 {
			s = f.ec1
		}
		jobs = append(jobs, job{bearer(f.token(s, cl)), true})
		jobs = append(jobs, job{bearer(f.token(f.rsa2, cl)), false})
		p := f.proof(f.client, "GET", flagURL, bound, func(c, h map[string]any) { c["jti"] = strings.Repeat("p", i+1) })
		jobs = append(jobs, job{request("GET", flagURL, "DPoP "+bound, p), true})
	}
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		go func() {
			_, err := f.v.Validate(context.Background(), j.r)
			if (err == nil) != j.okay {
				errs <- fmt.Errorf("%s: okay=%v err=%v", j.r.Header.Get("Authorization")[:20], j.okay, err)
				return
			}
			errs <- nil
		}()
	}
	for range jobs {
		assert.NoError(t, <-errs)
	}
}
