package cli

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// publicBase is the URL clients use for the servers of these tests, as
// behind a load balancer: every server process is started with it as
// --base-url, so a DPoP proof's htu and a token's iss and aud fit all of
// them, whichever port the request reaches.
const publicBase = "http://kj.test"

// helseIDClient is an EHR with a DPoP key and tokens signed by the
// development issuer's key (the built-in authorisation server's, which
// every test server publishes as its issuer publicBase).
type helseIDClient struct {
	t   *testing.T
	iss *smart.Server
	key *ecdsa.PrivateKey
	pub jwk.Key
	jkt string
}

func smartFiles(t *testing.T) (key, clients, personas string) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return filepath.Join(root, smart.DefaultKeyFile), filepath.Join(root, smart.DefaultClientsFile), filepath.Join(root, smart.DefaultPersonasFile)
}

func newHelseIDClient(t *testing.T) *helseIDClient {
	keyFile, clientsFile, personasFile := smartFiles(t)
	clients, err := smart.LoadClients(clientsFile)
	require.NoError(t, err)
	personas, err := smart.LoadPersonas(personasFile)
	require.NoError(t, err)
	iss, err := smart.New(smart.Config{Issuer: publicBase, Audience: publicBase, KeyFile: keyFile, Clients: clients, Personas: personas})
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := jwk.PublicKeyOf(&key.PublicKey)
	require.NoError(t, err)
	tp, err := pub.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return &helseIDClient{t: t, iss: iss, key: key, pub: pub, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

func (c *helseIDClient) token(req smart.TokenRequest) string {
	c.t.Helper()
	tok, err := c.iss.IssueToken(context.Background(), req)
	require.NoError(c.t, err)
	return tok.AccessToken
}

// proof is an RFC 9449 proof for GET of path on publicBase.
func (c *helseIDClient) proof(path, token string) string {
	c.t.Helper()
	sum := sha256.Sum256([]byte(token))
	claims, err := json.Marshal(map[string]any{"jti": rand.Text(), "htm": "GET", "htu": publicBase + path,
		"iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(sum[:])})
	require.NoError(c.t, err)
	hdr := jws.NewHeaders()
	require.NoError(c.t, hdr.Set(jws.TypeKey, "dpop+jwt"))
	require.NoError(c.t, hdr.Set(jws.JWKKey, c.pub))
	out, err := jws.Sign(claims, jws.WithKey(jwa.ES256(), c.key, jws.WithProtectedHeaders(hdr)))
	require.NoError(c.t, err)
	return string(out)
}

type answer struct {
	status int
	header http.Header
	body   string
}

// get reads path from the server at addr (its real address) with the
// given Authorization and DPoP headers.
func get(t *testing.T, addr, path, authz, proof string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", authz)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	req.Header.Set("nhn-access-basis", "SAMTYKKE")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return answer{res.StatusCode, res.Header, string(b)}
}

func requireReplayRefused(t *testing.T, a answer, what string) {
	t.Helper()
	assert.Equal(t, http.StatusUnauthorized, a.status, "%s: %s", what, a.body)
	assert.Contains(t, a.header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`, what)
	assert.Contains(t, a.body, "OperationOutcome", what)
	assert.Contains(t, a.body, "DPoP proof replayed", what)
	assert.NotContains(t, a.body, `"resourceType":"Patient"`, what)
}

func helseIDServerArgs(t *testing.T, extra ...string) []string {
	keyFile, clientsFile, personasFile := smartFiles(t)
	return append([]string{"--auth-server", "--base-url", publicBase, "--demo-patients", "1", "--require-dpop",
		"--smart-key-file", keyFile, "--smart-clients", clientsFile, "--smart-personas", personasFile}, extra...)
}

func stopServer(t *testing.T, c *child) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-c.done:
		require.NoError(t, c.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
}

// TestDPoPReplayRefusedAfterRestart: a proof used once is refused by the
// same server, and again after the server process stopped and a new one
// started on the same embedded store, within the proof's 60 s window.
// Under --require-dpop a Bearer token is refused with a DPoP challenge.
func TestDPoPReplayRefusedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, helseIDServerArgs(t)...)
	patient := seed.PatientID(1, 0)
	ehr := newHelseIDClient(t)
	tok := ehr.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient, DPoPJKT: ehr.jkt})
	path := "/Patient/" + patient
	proof := ehr.proof(path, tok)

	a := get(t, srv.base, path, "DPoP "+tok, proof)
	require.Equal(t, http.StatusOK, a.status, a.body)
	requireReplayRefused(t, get(t, srv.base, path, "DPoP "+tok, proof), "the same proof again")

	bearer := ehr.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient})
	a = get(t, srv.base, path, "Bearer "+bearer, "")
	assert.Equal(t, http.StatusUnauthorized, a.status, a.body)
	assert.Equal(t, []string{a.header.Get("WWW-Authenticate")}, a.header.Values("WWW-Authenticate"))
	assert.True(t, strings.HasPrefix(a.header.Get("WWW-Authenticate"), "DPoP "), a.header.Get("WWW-Authenticate"))
	assert.Contains(t, a.body, "DPoP-bound tokens only")
	assert.Contains(t, a.body, "OperationOutcome")

	stopServer(t, srv)
	srv2 := startServer(t, dir, helseIDServerArgs(t)...)
	requireReplayRefused(t, get(t, srv2.base, path, "DPoP "+tok, proof), "the same proof after a restart")
	a = get(t, srv2.base, path, "DPoP "+tok, ehr.proof(path, tok))
	assert.Equal(t, http.StatusOK, a.status, "a fresh proof after the restart: %s", a.body)
}

// TestDPoPReplayRefusedByAnotherProcess: two server processes on one
// MongoDB database (embedded FerretDB), as behind a load balancer: a proof
// used at one is refused at the other.
func TestDPoPReplayRefusedByAnotherProcess(t *testing.T) {
	uri, db := mongotest.URI(t), mongotest.Database(t)
	args := helseIDServerArgs(t, "--mongo-uri", uri, "--mongo-database", db)
	one := startServer(t, t.TempDir(), args...)
	two := startServer(t, t.TempDir(), args...)
	patient := seed.PatientID(1, 0)
	ehr := newHelseIDClient(t)
	tok := ehr.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient, DPoPJKT: ehr.jkt})
	path := "/Patient/" + patient

	proof := ehr.proof(path, tok)
	a := get(t, one.base, path, "DPoP "+tok, proof)
	require.Equal(t, http.StatusOK, a.status, a.body)
	requireReplayRefused(t, get(t, two.base, path, "DPoP "+tok, proof), "a proof used at server one, replayed at server two")

	// And the other way round, with a proof used at two first.
	proof = ehr.proof(path, tok)
	a = get(t, two.base, path, "DPoP "+tok, proof)
	require.Equal(t, http.StatusOK, a.status, a.body)
	requireReplayRefused(t, get(t, one.base, path, "DPoP "+tok, proof), "a proof used at server two, replayed at server one")
}

// TestHelseIDTokenRulesOverHTTP: a real server refuses an attest whose
// patients[] names another patient than the request's (403 with the
// reason, audited), an attest older than 60 minutes and a token living
// longer than --max-token-lifetime (401). Bearer tokens here: the server
// does not run with --require-dpop.
func TestHelseIDTokenRulesOverHTTP(t *testing.T) {
	keyFile, clientsFile, personasFile := smartFiles(t)
	srv := startServer(t, t.TempDir(), "--auth-server", "--base-url", publicBase, "--demo-patients", "1",
		"--smart-key-file", keyFile, "--smart-clients", clientsFile, "--smart-personas", personasFile,
		"--max-token-lifetime", "30m", "--clock-leeway", "5s")
	patient := seed.PatientID(1, 0)
	path := "/Patient/" + patient
	ehr := newHelseIDClient(t)
	bearer := func(req smart.TokenRequest) string {
		req.Persona, req.Patient = "hospital-doctor", patient
		return "Bearer " + ehr.token(req)
	}

	a := get(t, srv.base, path, bearer(smart.TokenRequest{Lifetime: 10 * time.Minute}), "")
	require.Equal(t, http.StatusOK, a.status, "control: %s", a.body)

	// patients[] = someone else, launch patient = this one: refused.
	a = get(t, srv.base, path, bearer(smart.TokenRequest{Lifetime: 10 * time.Minute, AttestPatientPIDs: []string{"13116900216"}}), "")
	assert.Equal(t, http.StatusForbidden, a.status, a.body)
	assert.Contains(t, a.body, `"code":"attest-patient-mismatch"`)
	assert.Contains(t, a.body, "OperationOutcome")
	assert.NotContains(t, a.body, `"resourceType":"Patient"`)
	a = get(t, srv.base, "/Flag?patient="+patient, bearer(smart.TokenRequest{Lifetime: 10 * time.Minute, AttestPatientPIDs: []string{"13116900216"}}), "")
	assert.Equal(t, http.StatusForbidden, a.status, "a search: %s", a.body)

	a = get(t, srv.base, path, bearer(smart.TokenRequest{Lifetime: 10 * time.Minute, AttestTime: time.Now().Add(-61 * time.Minute)}), "")
	assert.Equal(t, http.StatusUnauthorized, a.status, a.body)
	assert.Contains(t, a.body, "attest is 1h1m")
	assert.Contains(t, a.header.Get("WWW-Authenticate"), `error="invalid_token"`)

	a = get(t, srv.base, path, bearer(smart.TokenRequest{Lifetime: 31 * time.Minute}), "")
	assert.Equal(t, http.StatusUnauthorized, a.status, a.body)
	assert.Contains(t, a.body, "exceeds the 30m0s this server accepts")

	// The refusal is in the usage log like any other, with its reason.
	audit := get(t, srv.base, "/AuditEvent?patient="+patient, "Bearer "+ehr.token(smart.TokenRequest{Persona: "auditor"}), "")
	require.Equal(t, http.StatusOK, audit.status, audit.body)
	assert.Contains(t, audit.body, "attest-patient-mismatch")
}

// TestHelseIDFlags: the flags and their KJ_* variables reach the validator's
// configuration, and wrong values stop the server at start-up.
func TestHelseIDFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) (helseIDFlags, error) {
		var out strings.Builder
		fs := newFlagSet("serve", "", &out)
		f := addHelseIDFlags(fs)
		return f, fs.parse(args)
	}
	st, err := embeddedForTest(t)
	require.NoError(t, err)

	f, err := parse(t)
	require.NoError(t, err)
	var cfg auth.Config
	require.NoError(t, f.apply(&cfg, st))
	assert.False(t, cfg.RequireDPoP)
	assert.Equal(t, time.Hour, cfg.MaxTokenLifetime)
	assert.Equal(t, 10*time.Second, cfg.ClockSkew)
	assert.NotNil(t, cfg.DPoP.Replay, "proofs are remembered in the store")

	t.Setenv("KJ_REQUIRE_DPOP", "true")
	t.Setenv("KJ_MAX_TOKEN_LIFETIME", "5m")
	root, _ := filepath.Abs("../..")
	f, err = parse(t, "--clock-leeway", "0", "--scope-map", filepath.Join(root, "testdata/helseid/scope-map.json"))
	require.NoError(t, err)
	cfg = auth.Config{Audiences: []string{"http://kj.test"}}
	require.NoError(t, f.apply(&cfg, st))
	assert.True(t, cfg.RequireDPoP)
	assert.Equal(t, 5*time.Minute, cfg.MaxTokenLifetime)
	assert.Negative(t, cfg.ClockSkew, "0 is no leeway at all")
	assert.Equal(t, []string{"http://kj.test", "nhn:kjernejournal"}, cfg.Audiences)
	assert.NotEmpty(t, cfg.ScopeMap["nhn:kjernejournal/api"])

	for _, args := range [][]string{{"--clock-leeway", "10m"}, {"--clock-leeway", "-1s"}, {"--max-token-lifetime", "-1s"}, {"--scope-map", "/nonexistent.json"}} {
		f, err := parse(t, args...)
		require.NoError(t, err)
		assert.Error(t, f.apply(&auth.Config{}, st), "%v", args)
	}
}

func embeddedForTest(t *testing.T) (store.Store, error) {
	s, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true, MinFreeBytes: -1})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}
