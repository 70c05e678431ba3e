package smart_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
)

// The personas use synthetic identities only, and gp and hospital-doctor
// are the seed's first GP and hospital doctor so seeded patients have them.
func TestPersonasAreSyntheticAndMatchTheSeed(t *testing.T) {
	ps, err := smart.LoadPersonas(testdata + "personas.json")
	require.NoError(t, err)
	byID := map[string]smart.Persona{}
	for _, p := range ps {
		byID[p.ID] = p
		if p.PID != "" {
			assert.True(t, domain.ValidPersonNumber(p.PID), "%s: pid %s", p.ID, p.PID)
			assert.Contains(t, "89", string(p.PID[2]), "%s: synthetic person numbers carry the Tenor month offset", p.ID)
		}
		if p.HPR != "" {
			assert.True(t, strings.HasPrefix(p.HPR, "99"), "%s: HPR %s outside the synthetic range", p.ID, p.HPR)
		}
		for _, r := range []*smart.Ref{p.LegalEntity, p.PointOfCare} {
			if r != nil {
				assert.True(t, domain.ValidOrgNumber(r.ID) && r.ID[0] == '3', "%s: org %s", p.ID, r.ID)
			}
		}
	}
	for _, id := range []string{"gp", "hospital-doctor", "nurse", "emergency", "contract-specialist", "citizen", "citizen-support", "auditor", "feeder"} {
		assert.Contains(t, byID, id)
	}
	assert.Equal(t, seed.GeneralPractitioners()[0].HPR, byID["gp"].HPR)
	assert.Equal(t, seed.GeneralPractitioners()[0].Name, byID["gp"].Name)
	doc := seed.HospitalDoctors()[0]
	assert.Equal(t, doc.HPR, byID["hospital-doctor"].HPR)
	assert.Equal(t, doc.Organisation, byID["hospital-doctor"].LegalEntity.ID)
	assert.Equal(t, "SP", byID["nurse"].Authorization)
	assert.Equal(t, "ETREAT", byID["emergency"].PurposeOfUse)
}

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--as", "gp", "--patient", "pas-42", "--patient-pid", "14837120188",
		"--key-file", testdata + "dev-signing-key.pem", "--personas", testdata + "personas.json",
		"--clients", testdata + "clients.json", "--issuer", "http://127.0.0.1:8080", "--lifetime", "30m"}
	require.NoError(t, smart.TokenCommand(context.Background(), args, &out, &errOut), errOut.String())
	token := strings.TrimSpace(out.String())
	require.Equal(t, 2, strings.Count(token, "."))

	// A server with the same key accepts it.
	srv, err := smart.New(smart.Config{Issuer: "http://127.0.0.1:8080", KeyFile: testdata + "dev-signing-key.pem"})
	require.NoError(t, err)
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(srv.PublicKeys()), jwt.WithValidate(true),
		jwt.WithIssuer("http://127.0.0.1:8080"), jwt.WithAudience("http://127.0.0.1:8080"))
	require.NoError(t, err)
	exp, _ := tok.Expiration()
	iat, _ := tok.IssuedAt()
	assert.Equal(t, 30*time.Minute, exp.Sub(iat))
	c := payload(t, token)
	assert.Equal(t, "990010000", c[smart.ClaimHPRNumber])
	assert.Equal(t, "pas-42", c["patient"])
	assert.Equal(t, "kjernejournal-dev", c["client_id"])
	assert.Equal(t, "openid fhirUser launch/patient patient/*.rs patient/AllergyIntolerance.cud patient/Flag.cud patient/Condition.cud patient/Procedure.cud patient/Consent.cud", c["scope"])

	out.Reset()
	require.NoError(t, smart.TokenCommand(context.Background(), []string{"--as", "feeder", "--scope", "system/Encounter.cud",
		"--key-file", testdata + "dev-signing-key.pem", "--personas", testdata + "personas.json", "--clients", testdata + "clients.json"}, &out, &errOut))
	c = payload(t, strings.TrimSpace(out.String()))
	assert.Equal(t, "kj-feeder", c["sub"])
	assert.Equal(t, "system/Encounter.cud", c["scope"])
	assert.Equal(t, "300020186", c[smart.ClaimOrgNrParent])
	assert.NotContains(t, c, "patient")

	out.Reset()
	require.NoError(t, smart.TokenCommand(context.Background(), []string{"--as", "citizen", "--claims",
		"--key-file", testdata + "dev-signing-key.pem", "--personas", testdata + "personas.json", "--clients", ""}, &out, &errOut))
	c = payload(t, strings.TrimSpace(out.String()))
	assert.Equal(t, "pas-citizen-demo", c["patient"])
	assert.Equal(t, "Patient/pas-citizen-demo", c["fhirUser"])
	assert.Contains(t, errOut.String(), `"helseid://claims/identity/pid": "02898321285"`)

	assert.Error(t, smart.TokenCommand(context.Background(), []string{"--personas", testdata + "personas.json"}, &out, &errOut), "--as is required")
	assert.ErrorContains(t, smart.TokenCommand(context.Background(), []string{"--as", "nobody", "--key-file", testdata + "dev-signing-key.pem",
		"--personas", testdata + "personas.json", "--clients", ""}, &out, &errOut), "unknown persona")
}

func TestIssueTokenRoles(t *testing.T) {
	f := newFixture(t)
	for persona, role := range map[string]string{"citizen-support": "citizen-support", "auditor": "auditor"} {
		tok, err := f.srv.IssueToken(context.Background(), smart.TokenRequest{Persona: persona})
		require.NoError(t, err)
		c := f.verified(tok.AccessToken)
		assert.Equal(t, role, c[smart.ClaimRole])
		assert.Equal(t, "4", c[smart.ClaimSecurityLevel])
		assert.True(t, strings.HasPrefix(c["fhirUser"].(string), "Person/"))
		assert.NotContains(t, c, smart.ClaimHPRNumber)
	}
}

func TestSigningKeys(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaFile := filepath.Join(dir, "rsa.pem")
	require.NoError(t, os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600))

	f := newFixture(t, func(c *smart.Config) { c.KeyFile = rsaFile })
	tok, err := f.srv.IssueToken(context.Background(), smart.TokenRequest{Persona: "nurse", Patient: "p"})
	require.NoError(t, err)
	f.verified(tok.AccessToken)
	set := decodeJSON(t, f.get(f.ts.URL+"/auth/jwks"))
	keys := set["keys"].([]any)
	require.Len(t, keys, 1)
	k := keys[0].(map[string]any)
	assert.Equal(t, "RS256", k["alg"])
	assert.Equal(t, "RSA", k["kty"])
	assert.NotContains(t, k, "d", "the JWKS holds the public key only")

	eph := newFixture(t, func(c *smart.Config) { c.Algorithm = "RS256" })
	tok, err = eph.srv.IssueToken(context.Background(), smart.TokenRequest{Persona: "gp"})
	require.NoError(t, err)
	eph.verified(tok.AccessToken)
	// A token from one server is not valid at another (different keys).
	assert.Equal(t, map[string]any{"active": false}, f.introspect(tok.AccessToken))

	for name, body := range map[string]string{
		"empty.pem": "nothing here",
		"cert.pem":  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		_, err := smart.New(smart.Config{Issuer: "http://x", KeyFile: p})
		assert.Error(t, err, name)
	}
	_, err = smart.New(smart.Config{Issuer: "http://x", Algorithm: "HS256"})
	assert.Error(t, err)
}

func TestConfigValidation(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	private, err := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}}})
	require.NoError(t, err)
	for name, c := range map[string]smart.Client{
		"public with private_key_jwt": {ID: "a", Type: "public", AuthMethod: "private_key_jwt"},
		"confidential without keys":   {ID: "a", Type: "confidential"},
		"symmetric key":               {ID: "a", Type: "confidential", JWKS: private},
		"both jwks and uri":           {ID: "a", Type: "confidential", JWKS: publicJWKS(t, rk, "RS384"), JWKSURI: "https://x/jwks"},
		"relative redirect":           {ID: "a", Type: "public", RedirectURIs: []string{"cb"}},
		"scheme-relative redirect":    {ID: "a", Type: "public", RedirectURIs: []string{"//evil.example/cb"}},
		"bad type":                    {ID: "a", Type: "secret"},
		"no id":                       {Type: "public"},
	} {
		_, err := smart.New(smart.Config{Issuer: "http://x", Clients: []smart.Client{c}})
		assert.Error(t, err, name)
	}
	_, err = smart.New(smart.Config{Issuer: "http://x", Personas: []smart.Persona{{ID: "p", Kind: "practitioner", HPR: "990000001"}}})
	assert.ErrorContains(t, err, "needs")
	_, err = smart.New(smart.Config{})
	assert.Error(t, err)
}
