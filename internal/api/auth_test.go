package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

const gpPersonaHPR = "990010000" // the "gp" persona in testdata/smart/personas.json

// secured is a server with the built-in authorisation server, token
// validation and the access rules, as `make run` starts it.
type secured struct {
	*client
	as       *smart.Server
	st       store.Store
	patients []string     // ids of stored patients; patients[0] has the gp persona as GP
	offset   atomic.Int64 // added to the server's clock (the usage log's time)
}

// advance moves the server's clock (not the token issuer's) forward.
func (s *secured) advance(d time.Duration) { s.offset.Add(int64(d)) }

func newSecured(t *testing.T, st store.Store) *secured { return newSecuredWith(t, st, nil) }

// newSecuredWith lets a test add to the server's configuration (its base
// URL is known only once the listener is up).
func newSecuredWith(t *testing.T, st store.Store, more func(base string, cfg *api.Config)) *secured {
	t.Helper()
	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	clients, err := smart.LoadClients("../../testdata/smart/clients.json")
	require.NoError(t, err)
	personas, err := smart.LoadPersonas("../../testdata/smart/personas.json")
	require.NoError(t, err)
	as, err := smart.New(smart.Config{Issuer: ts.URL, KeyFile: "../../testdata/smart/dev-signing-key.pem", Clients: clients, Personas: personas})
	require.NoError(t, err)
	v, err := auth.NewValidator(context.Background(), auth.Config{
		Issuers: []auth.Issuer{{URL: ts.URL, JWKSURL: ts.URL + "/auth/jwks",
			KeySource: func(context.Context) (jwk.Set, error) { return as.PublicKeys(), nil }}},
		Audiences: []string{ts.URL},
	})
	require.NoError(t, err)
	var hospitals []string
	for _, h := range seed.Hospitals() {
		hospitals = append(hospitals, h.Number)
	}
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	s := &secured{as: as, st: st}
	cfg := api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler), BaseURL: ts.URL,
		Auth: v, Policy: &access.Policy{Orgs: access.Organisations{Hospitals: hospitals}},
		Security: &interaction.Security{Authorize: as.Endpoints().Authorize, Token: as.Endpoints().Token},
		Audit:    true, Now: func() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }}
	if more != nil {
		more(ts.URL, &cfg)
	}
	cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: "/auth/", Handler: as, AuthServer: true}, api.Mount{Prefix: "/.well-known/", Handler: as},
		api.Mount{Prefix: "/ehr", Handler: as, Methods: []string{http.MethodPost}, AuthServer: true})
	srv, err := api.New(cfg)
	require.NoError(t, err)
	handler = srv

	s.client = &client{t: t, base: ts.URL, srv: srv}
	// Patients are stored directly: health personnel do not create them.
	for i := 0; i < 2; i++ {
		body := patientJSON(t, 40+i, fmt.Sprintf("sec-pat-%d", i))
		if i == 0 {
			body = bytes.Replace(body, []byte("565501872"), []byte(gpPersonaHPR), 1)
		}
		s.put(t, codec, body)
		s.patients = append(s.patients, fmt.Sprintf("sec-pat-%d", i))
		s.put(t, codec, clinical("Flag", s.patients[i], fmt.Sprintf("sec-flag-%d", i), "implant"))
		s.put(t, codec, clinical("MedicationStatement", s.patients[i], fmt.Sprintf("sec-med-%d", i), "metoprolol"))
	}
	return s
}

// put stores a resource as the bulk loader does (package ingest: the
// stored JSON, search index and identifiers), bypassing the access rules.
func (s *secured) put(t *testing.T, codec *fhir.Codec, body []byte) {
	res, err := codec.Parse(body)
	require.NoError(t, err)
	reg, err := search.Load(codec.Types())
	require.NoError(t, err)
	w, err := (&ingest.Preparer{Codec: codec, Search: reg}).Write(res, 0, false)
	require.NoError(t, err)
	_, err = s.st.Commit(context.Background(), store.Batch{Writes: []store.Write{w}})
	require.NoError(t, err)
}

// token mints a token for a persona with the patient in context.
func (s *secured) token(persona, patient string, scopes ...string) string {
	s.t.Helper()
	tok, err := s.as.IssueToken(context.Background(), smart.TokenRequest{Persona: persona, Patient: patient, Scopes: scopes})
	require.NoError(s.t, err)
	return tok.AccessToken
}

func (s *secured) as_(tok, basis, method, path string, body []byte) response {
	h := []string{"Authorization", "Bearer " + tok}
	if basis != "" {
		h = append(h, "nhn-access-basis", basis)
	}
	return s.do(method, path, body, h...)
}

func reasonOf(t *testing.T, r response) string {
	t.Helper()
	issue := outcome(t, r, r.status)
	d, _ := issue["details"].(map[string]any)
	if d == nil {
		return ""
	}
	return d["coding"].([]any)[0].(map[string]any)["code"].(string)
}

func TestTokensAreRequired(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	r := s.do("GET", "/Flag/sec-flag-0", nil)
	outcome(t, r, http.StatusUnauthorized)
	assert.Contains(t, strings.Join(r.header.Values("WWW-Authenticate"), " "), "Bearer")
	for _, bad := range []string{"garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", s.token("gp", s.patients[0]) + "x"} {
		r = s.do("GET", "/Flag/sec-flag-0", nil, "Authorization", "Bearer "+bad)
		outcome(t, r, http.StatusUnauthorized)
		assert.Contains(t, strings.Join(r.header.Values("WWW-Authenticate"), " "), `error="invalid_token"`)
	}
	// public endpoints
	assert.Equal(t, http.StatusOK, s.do("GET", "/metadata", nil).status)
	assert.Equal(t, http.StatusOK, s.do("GET", "/.well-known/smart-configuration", nil).status)
	m := s.do("GET", "/metadata", nil).json(t)
	sec := m["rest"].([]any)[0].(map[string]any)["security"]
	assert.Contains(t, fmt.Sprint(sec), "SMART-on-FHIR")
	assert.Contains(t, fmt.Sprint(sec), s.base+"/auth/token")
}

func TestScopesAndPatientContext(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		p0, p1 := s.patients[0], s.patients[1]
		doc := s.token("hospital-doctor", p0)
		// own patient in context: allowed
		r := s.as_(doc, "UNNTAK", "GET", "/Flag/sec-flag-0", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		// another patient: directly, by compartment search, by history, inside a batch
		assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/Flag/sec-flag-1", nil)))
		assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/Patient/"+p1+"/Flag", nil)))
		assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/Flag/sec-flag-1/_history", nil)))
		assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/Patient/"+p1, nil)))
		batch := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Flag/sec-flag-0"}},{"request":{"method":"GET","url":"Flag/sec-flag-1"}}]}`)
		r = s.as_(doc, "UNNTAK", "POST", "/", []byte(batch))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		entries := r.json(t)["entry"].([]any)
		assert.True(t, strings.HasPrefix(entries[0].(map[string]any)["response"].(map[string]any)["status"].(string), "200"))
		assert.True(t, strings.HasPrefix(entries[1].(map[string]any)["response"].(map[string]any)["status"].(string), "403"))
		assert.NotContains(t, string(r.body), `"id":"sec-flag-1"`, "no data of the other patient")

		// a nurse has read scopes only: writing critical information is refused
		nurse := s.token("nurse", p0)
		r = s.as_(nurse, "UNNTAK", "POST", "/Flag", clinical("Flag", p0, "", "new"))
		assert.Equal(t, "insufficient-scope", reasonOf(t, r))
		// RFC 6750 3.1: a token that does not enable the access is told so
		// in the challenge, next to the OperationOutcome.
		assert.Contains(t, r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
		// a GP with write scopes may report critical information for the patient in context
		gp := s.token("gp", p0)
		r = s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", p0, "", "new"))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		r = s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", p1, "", "new"))
		assert.Equal(t, "patient-not-in-context", reasonOf(t, r))
		// v1 and v2 scope forms
		v1 := s.token("hospital-doctor", p0, "patient/Flag.read")
		assert.Equal(t, http.StatusOK, s.as_(v1, "UNNTAK", "GET", "/Flag/sec-flag-0", nil).status)
		assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(v1, "UNNTAK", "GET", "/MedicationStatement/sec-med-0", nil)))
		// granular scope: only Flags of another category are visible
		gran := s.token("hospital-doctor", p0, "patient/Flag.rs?category=https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type|smitte")
		assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(gran, "UNNTAK", "GET", "/Flag/sec-flag-0", nil)))
		r = s.as_(gran, "UNNTAK", "GET", "/Patient/"+p0+"/Flag", nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.EqualValues(t, 0, r.json(t)["total"])
		gran = s.token("hospital-doctor", p0, "patient/Flag.rs?category=implantat")
		r = s.as_(gran, "UNNTAK", "GET", "/Patient/"+p0+"/Flag", nil)
		assert.EqualValues(t, 2, r.json(t)["total"], "body: %s", r.body)
	})
}

func TestAccessRulesOverHTTP(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) { accessRulesOverHTTP(t, st) })
}

func accessRulesOverHTTP(t *testing.T, st store.Store) {
	s := newSecured(t, st)
	p0 := s.patients[0]
	gp, doc, emerg := s.token("gp", p0), s.token("hospital-doctor", p0), s.token("emergency", p0)
	other := s.token("contract-specialist", s.patients[1]) // not this patient's GP, not a hospital
	cases := []struct {
		name, tok, basis, path string
		status                 int
		reason                 string
	}{
		{"no basis", gp, "", "/MedicationStatement/sec-med-0", 403, "access-basis-missing"},
		{"unknown basis", gp, "MAYBE", "/MedicationStatement/sec-med-0", 403, "access-basis-unknown"},
		{"own GP with UNNTAK", gp, "UNNTAK", "/MedicationStatement/sec-med-0", 200, ""},
		{"hospital doctor with UNNTAK", doc, "UNNTAK", "/MedicationStatement/sec-med-0", 200, ""},
		{"emergency with AKUTT", emerg, "AKUTT", "/MedicationStatement/sec-med-0", 200, ""},
		{"GP with AKUTT but no emergency purpose", gp, "AKUTT", "/MedicationStatement/sec-med-0", 403, "akutt-not-supported"},
		{"not GP, not hospital: UNNTAK refused", other, "UNNTAK", "/MedicationStatement/sec-med-1", 403, "unntak-not-supported"},
		{"not GP with SAMTYKKE", other, "SAMTYKKE", "/MedicationStatement/sec-med-1", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.as_(tc.tok, tc.basis, "GET", tc.path, nil)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			if tc.reason != "" {
				assert.Equal(t, tc.reason, reasonOf(t, r))
				// An access rule is no OAuth matter: no scope challenge.
				assert.Empty(t, r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// feeders write medications but read nothing
	feeder := s.token("feeder", "")
	r := s.as_(feeder, "", "POST", "/MedicationStatement", clinical("MedicationStatement", p0, "", "from e-resept"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(feeder, "", "GET", "/MedicationStatement/sec-med-0", nil)))
}

// TestEHRLaunchThenFHIR runs a full EHR launch with golang.org/x/oauth2 as
// the client and then reads the record with the token it got.
func TestEHRLaunchThenFHIR(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	r := s.do("POST", "/auth/launch", []byte(fmt.Sprintf(`{"patient":%q,"practitioner":"hospital-doctor","encounter":"enc-1"}`, p0)),
		"Content-Type", "application/json")
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	launch := r.json(t)["launch"].(string)

	conf := &oauth2.Config{ClientID: "kj-demo-app", RedirectURL: "http://localhost:3000/callback",
		Scopes:   []string{"launch", "openid", "fhirUser", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: s.base + "/auth/authorize", TokenURL: s.base + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", s.base), oauth2.SetAuthURLParam("launch", launch))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(authURL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "state-1", loc.Query().Get("state"))
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.Equal(t, p0, tok.Extra("patient"))

	r = s.as_(tok.AccessToken, "UNNTAK", "GET", "/Patient/"+p0+"/MedicationStatement", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.EqualValues(t, 1, r.json(t)["total"])
	assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(tok.AccessToken, "UNNTAK", "GET", "/Flag/sec-flag-1", nil)))
}

// TestStandaloneLaunchThenFHIR logs in on the built-in login page as a user
// would, with golang.org/x/oauth2 as the client, and reads the record.
func TestStandaloneLaunchThenFHIR(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	conf := &oauth2.Config{ClientID: "kj-demo-app", RedirectURL: "http://localhost:3000/callback",
		Scopes:   []string{"launch/patient", "openid", "fhirUser", "patient/*.rs", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.base + "/auth/authorize", TokenURL: s.base + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base)))
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="session" value="([^"]+)"`).FindSubmatch(page)
	require.NotNil(t, m, "login page: %s", page)
	res, err = noFollow.PostForm(s.base+"/auth/login", url.Values{"session": {string(m[1])}, "persona": {"gp"}, "patient": {p0}, "action": {"allow"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)

	r := s.as_(tok.AccessToken, "UNNTAK", "GET", "/MedicationStatement/sec-med-0", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	// the refreshed token works too
	fresh, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	require.NotEqual(t, tok.AccessToken, fresh.AccessToken)
	assert.Equal(t, http.StatusOK, s.as_(fresh.AccessToken, "UNNTAK", "GET", "/Flag/sec-flag-0", nil).status)
}

// TestBackendServicesThenFHIR: a feeder system gets a token with a signed
// client assertion (SMART backend services) and writes a medication, but
// cannot read health data.
func TestBackendServicesThenFHIR(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	pemBytes, err := os.ReadFile("../../testdata/smart/feeder-dev-key.pem")
	require.NoError(t, err)
	key, err := jwk.ParseKey(pemBytes, jwk.WithPEM(true))
	require.NoError(t, err)
	require.NoError(t, key.Set(jwk.KeyIDKey, "INHb-XarbSU0_NtghT67Wi2oYmUxve9s9gBRBPitz1U"))
	assertion := func(jti string) string {
		now := time.Now()
		tok, err := jwt.NewBuilder().Issuer("kj-feeder").Subject("kj-feeder").Audience([]string{s.base + "/auth/token"}).
			IssuedAt(now).Expiration(now.Add(2 * time.Minute)).JwtID(jti).Build()
		require.NoError(t, err)
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))
		require.NoError(t, err)
		return string(signed)
	}
	getToken := func(a string) (int, map[string]any) {
		res, err := http.PostForm(s.base+"/auth/token", url.Values{
			"grant_type": {"client_credentials"}, "scope": {"system/MedicationStatement.cu"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
		require.NoError(t, err)
		defer res.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&m))
		return res.StatusCode, m
	}
	a := assertion("feeder-1")
	status, body := getToken(a)
	require.Equal(t, http.StatusOK, status, "%v", body)
	tok := body["access_token"].(string)
	status, _ = getToken(a)
	assert.Equal(t, http.StatusUnauthorized, status, "a replayed assertion is refused")

	r := s.as_(tok, "", "POST", "/MedicationStatement", clinical("MedicationStatement", s.patients[0], "", "from e-resept"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(tok, "", "GET", "/MedicationStatement/sec-med-0", nil)))
	assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(tok, "", "POST", "/Flag", clinical("Flag", s.patients[0], "", "x"))))
}

func TestKjStatus(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	// no access basis is needed: the answer holds no health data
	r := s.as_(gp, "", "GET", "/Patient/"+p0+"/$kj-status", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	validR4(t, r.body)
	params := map[string]any{}
	for _, p := range r.json(t)["parameter"].([]any) {
		pm := p.(map[string]any)
		for k, v := range pm {
			if k != "name" {
				params[pm["name"].(string)] = v
			}
		}
	}
	assert.Equal(t, true, params["hasCriticalInformation"])
	assert.NotEmpty(t, params["criticalInformationLastChanged"])
	assert.Equal(t, false, params["restricted"])
	assert.Equal(t, false, params["blocked"])
	assert.NotContains(t, string(r.body), "implant", "no health data in the status")
	// another patient's status is refused
	assert.Equal(t, "patient-not-in-context", reasonOf(t, s.as_(gp, "", "GET", "/Patient/"+s.patients[1]+"/$kj-status", nil)))
	// the operation is advertised
	assert.Contains(t, string(s.do("GET", "/metadata", nil).body), `"name":"kj-status"`)
}
