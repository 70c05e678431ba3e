package auth

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// openReplayStore opens a real embedded store at path (the same file on
// every call, so a test can restart it).
func openReplayStore(t *testing.T, path string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), embedded.Options{Path: path, NoSync: true, MinFreeBytes: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// boundToken is a DPoP-bound practitioner token for the fixture's client key.
func (f *fixture) boundToken(mod func(c map[string]any)) string {
	c := f.claims()
	c["cnf"] = map[string]any{"jkt": jkt(f.t, f.client)}
	if mod != nil {
		mod(c)
	}
	return f.token(f.ec1, c)
}

func TestRequireDPoP(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RequireDPoP = true })
	// A perfectly valid Bearer token is refused, with a DPoP challenge only.
	_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, f.claims()), ""))
	ae := asAuthError(t, err)
	assert.Equal(t, http.StatusUnauthorized, ae.Status)
	assert.Equal(t, CodeInvalidToken, ae.Code)
	assert.Contains(t, ae.Description, "DPoP-bound tokens only")
	h := http.Header{}
	ae.SetHeader(h)
	require.Len(t, h.Values("WWW-Authenticate"), 1)
	assert.True(t, strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP "), h.Get("WWW-Authenticate"))
	assert.Contains(t, h.Get("WWW-Authenticate"), `error="invalid_token"`)

	// No credentials: told about DPoP only, not invited to send Bearer.
	_, err = f.v.Validate(context.Background(), request("GET", flagURL, "", ""))
	h = http.Header{}
	asAuthError(t, err).SetHeader(h)
	require.Len(t, h.Values("WWW-Authenticate"), 1)
	assert.True(t, strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP "))

	// A DPoP-bound token with its proof passes.
	tok := f.boundToken(nil)
	p, err := f.v.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, f.proof(f.client, "GET", flagURL, tok, nil)))
	require.NoError(t, err)
	assert.Equal(t, SchemeDPoP, p.Scheme)
	assert.True(t, f.v.RequiresDPoP())
}

// TestDPoPReplayAcrossRestart: a proof used once is refused after the
// server restarts (the store closed and reopened, a new validator) and by
// another validator on the same store, because the store remembers it.
func TestDPoPReplayAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kj.db")
	st := openReplayStore(t, path)
	f := newFixture(t, func(c *Config) { c.DPoP.Replay = st })
	tok := f.boundToken(nil)
	proof := f.proof(f.client, "GET", flagURL, tok, nil)
	_, err := f.v.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, proof))
	require.NoError(t, err)
	_, err = f.v.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, proof))
	assert.Contains(t, asAuthError(t, err).Description, "replayed")

	// Restart: the store is closed and opened again, the validator is new
	// (empty memory), the clock has moved on but the proof is in its window.
	require.NoError(t, st.Close())
	st2 := openReplayStore(t, path)
	f.clock.Advance(20 * time.Second)
	cfg := f.v.cfg
	cfg.DPoP.Replay = st2
	v2, err := NewValidator(context.Background(), cfg)
	require.NoError(t, err)
	_, err = v2.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, proof))
	ae := asAuthError(t, err)
	assert.Equal(t, CodeInvalidDPoPProof, ae.Code)
	assert.Contains(t, ae.Description, "replayed")
	// A second validator on the same store (another server process) refuses
	// it as well, and both accept a fresh proof once.
	v3, err := NewValidator(context.Background(), cfg)
	require.NoError(t, err)
	_, err = v3.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, proof))
	assert.Contains(t, asAuthError(t, err).Description, "replayed")
	fresh := f.proof(f.client, "GET", flagURL, tok, func(c, _ map[string]any) { c["jti"] = "fresh-one" })
	_, err = v3.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, fresh))
	require.NoError(t, err)
	_, err = v2.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, fresh))
	assert.Contains(t, asAuthError(t, err).Description, "replayed")

	// A store that cannot answer refuses the request (fail closed).
	require.NoError(t, st2.Close())
	other := f.proof(f.client, "GET", flagURL, tok, func(c, _ map[string]any) { c["jti"] = "while-down" })
	_, err = v2.Validate(context.Background(), request("GET", flagURL, "DPoP "+tok, other))
	ae = asAuthError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, ae.Status)
	assert.Equal(t, CodeTemporarilyUnavailable, ae.Code)
}

func TestMaxTokenLifetime(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxTokenLifetime = time.Hour })
	now := f.clock.Now().Unix()
	for _, tc := range []struct {
		name string
		mod  func(c map[string]any)
		want string
	}{
		{"an hour", func(c map[string]any) { c["iat"], c["exp"] = now, now+3600 }, ""},
		{"over an hour", func(c map[string]any) { c["iat"], c["exp"] = now, now+3601 }, "lifetime 1h0m1s exceeds"},
		{"a day, backdated iat", func(c map[string]any) { c["iat"], c["nbf"], c["exp"] = now-86000, now-86000, now+400 }, "exceeds"},
		{"nbf when no iat", func(c map[string]any) { delete(c, "iat"); c["nbf"], c["exp"] = now, now+7200 }, "exceeds"},
		{"neither iat nor nbf", func(c map[string]any) { delete(c, "iat"); delete(c, "nbf") }, "neither iat nor nbf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.claims()
			c["jti"] = tc.name
			tc.mod(c)
			_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			ae := asAuthError(t, err)
			assert.Equal(t, http.StatusUnauthorized, ae.Status)
			assert.Contains(t, ae.Description, tc.want)
		})
	}
	_, err := NewValidator(context.Background(), Config{Issuers: f.v.cfg.Issuers, Audiences: []string{testAudience}, MaxTokenLifetime: -time.Second})
	assert.Error(t, err)
}

func TestClockSkewConfigurable(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ClockSkew = 5 * time.Second })
	c := f.claims()
	c["exp"] = f.clock.Now().Add(-6 * time.Second).Unix()
	_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
	assert.Contains(t, asAuthError(t, err).Description, "expired")
	c["exp"] = f.clock.Now().Add(-4 * time.Second).Unix()
	c["jti"] = "within-leeway"
	_, err = f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
	assert.NoError(t, err)
}

func TestAttestAge(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ClockSkew = 5 * time.Second })
	withTOA := func(toa time.Time) string {
		c := f.claims()
		a := sampleAttest()
		a["toa"] = toa.Unix()
		c["jti"] = toa.String()
		c["authorization_details"] = []any{a}
		return f.token(f.ec1, c)
	}
	validate := func(tok string) error {
		_, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+tok, ""))
		return err
	}
	now := f.clock.Now()
	fresh := withTOA(now.Add(-59 * time.Minute))
	require.NoError(t, validate(fresh))
	p, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+fresh, ""))
	require.NoError(t, err)
	assert.Equal(t, now.Add(-59*time.Minute).Unix(), p.AttestTime.Unix())

	ae := asAuthError(t, validate(withTOA(now.Add(-61*time.Minute))))
	assert.Equal(t, CodeInvalidToken, ae.Code)
	assert.Contains(t, ae.Description, "attest is 1h1m0s old")
	assert.Contains(t, asAuthError(t, validate(withTOA(now.Add(time.Minute)))).Description, "future")

	// The cached token's attest ages: two minutes later it is refused.
	f.clock.Advance(2 * time.Minute)
	assert.Contains(t, asAuthError(t, validate(fresh)).Description, "attest is")
}

func TestCareRelationSpelling(t *testing.T) {
	f := newFixture(t, nil)
	a := sampleAttest()
	a["care_relation"] = a["care_relationship"]
	delete(a, "care_relationship")
	c := f.claims()
	c["authorization_details"] = []any{a}
	p, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
	require.NoError(t, err)
	assert.Equal(t, "TREAT", p.PurposeOfUse)
	assert.Equal(t, "S03", p.Attest.CareRelationship.HealthcareService.Code)

	// Both spellings: the issuer's meaning is unclear, the token refused.
	b := sampleAttest()
	b["care_relation"] = map[string]any{"purpose_of_use": map[string]any{"code": "ETREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"}}
	c = f.claims()
	c["jti"] = "both"
	c["authorization_details"] = []any{b}
	_, err = f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
	assert.Contains(t, asAuthError(t, err).Description, "both care_relation and care_relationship")
}

func TestScopeMap(t *testing.T) {
	m, err := LoadScopeMap(filepath.Join("..", "..", "testdata", "helseid", "scope-map.json"))
	require.NoError(t, err)
	assert.Equal(t, []string{"nhn:kjernejournal"}, m.Audiences)
	f := newFixture(t, func(c *Config) {
		c.ScopeMap = m.Scopes
		c.Audiences = append(c.Audiences, m.Audiences...)
	})
	c := f.claims()
	c["aud"] = "nhn:kjernejournal"
	c["scope"] = []string{"openid", "nhn:kjernejournal/api"} // HelseID sends an array
	p, err := f.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+f.token(f.ec1, c), ""))
	require.NoError(t, err)
	assert.True(t, p.Scopes.Has("nhn:kjernejournal/api"), "the token's own scope stays")
	assert.True(t, p.Scopes.Permits(ContextUser, "Flag", Create).Allowed)
	assert.True(t, p.Scopes.Permits(ContextUser, "MedicationStatement", Search).Allowed)
	assert.False(t, p.Scopes.Permits(ContextUser, "MedicationStatement", Create).Allowed)
	assert.False(t, p.Scopes.Permits(ContextUser, "AuditEvent", Search).Allowed)

	// Without the mapping the API scope grants nothing.
	g := newFixture(t, func(c *Config) { c.Audiences = append(c.Audiences, "nhn:kjernejournal") })
	c = g.claims()
	c["aud"] = "nhn:kjernejournal"
	c["scope"] = []string{"nhn:kjernejournal/api"}
	p, err = g.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+g.token(g.ec1, c), ""))
	require.NoError(t, err)
	assert.False(t, p.Scopes.Permits(ContextUser, "Flag", Read).Allowed)

	bad := filepath.Join(t.TempDir(), "bad.json")
	for _, body := range []string{`{"scopes":{"nhn:kjernejournal/api":["user/Flag.rx"]}}`, `{"scopes":{}}`, `{"scope":{}}`, `{"scopes":{"a":[]}}`} {
		require.NoError(t, writeFile(bad, body))
		_, err := LoadScopeMap(bad)
		assert.Error(t, err, body)
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
