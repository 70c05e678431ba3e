package smart_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/kjernejournal/kjernejournal/internal/smart"
)

func TestEHRLaunch(t *testing.T) {
	f := newFixture(t)
	resp, body := f.createLaunch(`{"patient":"pas-0000000000000abc","patient_pid":"02898321285","practitioner":"hospital-doctor","encounter":"enc-42"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	launch, _ := body["launch"].(string)
	require.NotEmpty(t, launch)

	conf := f.oauthConfig("launch", "openid", "fhirUser", "patient/*.rs", "user/Flag.rs", "online_access", "not-allowed/scope")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", f.ts.URL), oauth2.SetAuthURLParam("launch", launch))
	q := f.redirected(f.get(authURL))
	assert.Equal(t, "st-1", q.Get("state"))
	assert.Equal(t, f.ts.URL, q.Get("iss"))
	require.NotEmpty(t, q.Get("code"))

	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.Equal(t, "pas-0000000000000abc", tok.Extra("patient"))
	assert.Equal(t, "enc-42", tok.Extra("encounter"))
	assert.Equal(t, false, tok.Extra("need_patient_banner"), "the EHR shows its own banner")
	assert.Equal(t, f.ts.URL+"/style.json", tok.Extra("smart_style_url"))
	assert.Equal(t, "launch openid fhirUser patient/*.rs user/Flag.rs online_access", tok.Extra("scope"), "unregistered scopes are dropped")
	assert.EqualValues(t, 600, tok.Extra("expires_in"))
	assert.NotEmpty(t, tok.RefreshToken, "online_access gives a refresh token")

	c := f.verified(tok.AccessToken)
	assert.Equal(t, f.ts.URL, c["iss"])
	assert.Equal(t, f.ts.URL, c["aud"])
	assert.Equal(t, demoClient, c["client_id"])
	assert.Equal(t, "persona:hospital-doctor", c["sub"])
	assert.Equal(t, "pas-0000000000000abc", c["patient"])
	assert.Equal(t, "Practitioner/990018265", c["fhirUser"])
	assert.Equal(t, "990018265", c["helseid://claims/hpr/hpr_number"])
	assert.Equal(t, "05866623300", c["helseid://claims/identity/pid"])
	assert.Equal(t, "4", c["helseid://claims/identity/security_level"])
	assert.Equal(t, "300010008", c["helseid://claims/client/claims/orgnr_parent"])
	assert.Equal(t, "300020062", c["helseid://claims/client/claims/orgnr_child"])
	assert.EqualValues(t, f.clock.Now().Unix(), c["iat"])
	assert.EqualValues(t, f.clock.Now().Add(10*time.Minute).Unix(), c["exp"])

	details, _ := c["authorization_details"].([]any)
	require.Len(t, details, 1)
	ad := details[0].(map[string]any)
	assert.Equal(t, "nhn:tillitsrammeverk:parameters", ad["type"])
	pr := ad["practitioner"].(map[string]any)
	assert.Equal(t, map[string]any{"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"}, pr["authorization"])
	assert.Equal(t, map[string]any{"id": "300010008", "system": "urn:oid:2.16.578.1.12.4.1.4.101", "name": "Oslo universitetssykehus HF"}, pr["legal_entity"])
	assert.Equal(t, "300020062", pr["point_of_care"].(map[string]any)["id"])
	assert.Equal(t, "urn:oid:2.16.578.1.12.4.1.4.102", pr["department"].(map[string]any)["system"])
	care := ad["care_relationship"].(map[string]any)
	assert.Equal(t, map[string]any{"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"}, care["purpose_of_use"])
	assert.NotEmpty(t, care["decision_ref"].(map[string]any)["id"])
	patients := ad["patients"].([]any)
	require.Len(t, patients, 1)
	assert.Equal(t, map[string]any{"id": "02898321285", "system": "urn:oid:2.16.578.1.12.4.1.4.1"},
		patients[0].(map[string]any)["identifier"])

	// The id_token names the user for the app.
	idt, _ := tok.Extra("id_token").(string)
	require.NotEmpty(t, idt)
	ic := payload(t, idt)
	assert.Equal(t, demoClient, ic["aud"])
	assert.Equal(t, "Practitioner/990018265", ic["fhirUser"])

	// A launch is used once.
	q = f.redirected(f.get(authURL))
	assert.Equal(t, "invalid_request", q.Get("error"))
	assert.Equal(t, "st-1", q.Get("state"))
}

func TestLaunchCreationRefused(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{
		`{"patient":"p1","practitioner":"citizen"}`,
		`{"patient":"p1","practitioner":"nobody"}`,
		`{"patient":"bad id!","practitioner":"gp"}`,
		`{"patient":"p1","practitioner":"gp","extra":1}`,
		`not json`,
	} {
		resp, m := f.createLaunch(body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		assert.Equal(t, "invalid_request", m["error"], body)
	}
}

func TestStandaloneLaunch(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "openid", "fhirUser", "profile", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("xyz", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL),
		oauth2.SetAuthURLParam("nonce", "n-0S6"))
	session, page := f.loginSession(authURL)
	assert.Contains(t, page, "Gunvor Eriksen")
	assert.Contains(t, page, `name="patient"`)
	assert.NotContains(t, page, "kj-feeder", "system personas cannot log in")

	// The form as the user submits it.
	form := url.Values{"session": {session}, "persona": {"gp"}, "patient": {"pas-00000000000000ff"}, "action": {"allow"}}
	q := f.redirected(f.postForm(f.ts.URL+"/auth/login", form))
	assert.Equal(t, "xyz", q.Get("state"))
	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "pas-00000000000000ff", tok.Extra("patient"))
	assert.Equal(t, true, tok.Extra("need_patient_banner"))
	assert.NotEmpty(t, tok.RefreshToken)

	c := f.verified(tok.AccessToken)
	assert.Equal(t, "990010000", c["helseid://claims/hpr/hpr_number"])
	assert.Equal(t, "pas-00000000000000ff", c["patient"])
	ic := payload(t, tok.Extra("id_token").(string))
	assert.Equal(t, "n-0S6", ic["nonce"])
	assert.Equal(t, "Gunvor Eriksen", ic["name"])

	// The session is spent.
	resp := f.postForm(f.ts.URL+"/auth/login", form)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestStandaloneCitizenAndPatientList(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "openid", "fhirUser", "patient/*.rs")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL))

	// A practitioner without a patient is sent back to the form.
	session, _ := f.loginSession(authURL)
	resp := f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {"nurse"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, readAll(t, resp), "Helsepersonell må velge en pasient")

	// A citizen always gets themselves, whatever the form says.
	q := f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {"citizen"}, "patient": {"someone-else"}}))
	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "pas-citizen-demo", tok.Extra("patient"))
	c := f.verified(tok.AccessToken)
	assert.Equal(t, "Patient/pas-citizen-demo", c["fhirUser"])
	assert.Equal(t, "02898321285", c["helseid://claims/identity/pid"])
	assert.Equal(t, "4", c["helseid://claims/identity/security_level"])
	assert.NotContains(t, c, "helseid://claims/hpr/hpr_number")
	assert.NotContains(t, c, "authorization_details")
	assert.Empty(t, tok.RefreshToken, "no offline_access or online_access, no refresh token")

	// Deny goes back to the app with access_denied.
	session, _ = f.loginSession(authURL)
	q = f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "action": {"deny"}}))
	assert.Equal(t, "access_denied", q.Get("error"))
	assert.Equal(t, "s", q.Get("state"))
}

func TestStandalonePatientsCallback(t *testing.T) {
	f := newFixture(t, func(c *smart.Config) {
		c.Patients = func(context.Context) []smart.PatientChoice {
			return []smart.PatientChoice{{ID: "pas-1", Name: "Ola <b>Nordmann</b>", PID: "14837120188"}}
		}
	})
	conf := f.oauthConfig("launch/patient", "patient/*.rs")
	verifier := oauth2.GenerateVerifier()
	session, page := f.loginSession(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL)))
	assert.Contains(t, page, "Ola &lt;b&gt;Nordmann&lt;/b&gt;, fødselsnummer 14837120188 (pas-1)", "names are escaped")
	q := f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {"emergency"}, "patient": {"pas-1"}}))
	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	c := f.verified(tok.AccessToken)
	ad := c["authorization_details"].([]any)[0].(map[string]any)
	assert.Equal(t, "ETREAT", ad["care_relationship"].(map[string]any)["purpose_of_use"].(map[string]any)["code"])
	assert.Equal(t, "14837120188", ad["patients"].([]any)[0].(map[string]any)["identifier"].(map[string]any)["id"])
}

func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "offline_access")
	tok := f.standaloneToken(conf, "gp", "pas-7")
	first := tok.RefreshToken
	require.NotEmpty(t, first)

	f.clock.Advance(11 * time.Minute) // the access token has expired
	refreshed, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: first}).Token()
	require.NoError(t, err)
	assert.NotEqual(t, first, refreshed.RefreshToken, "refresh tokens rotate")
	c := f.verified(refreshed.AccessToken)
	assert.Equal(t, "pas-7", c["patient"])
	assert.Equal(t, "launch/patient patient/*.rs offline_access", c["scope"])

	// Narrowing the scope on refresh is allowed, widening is not.
	narrow := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {demoClient},
		"refresh_token": {refreshed.RefreshToken}, "scope": {"patient/*.rs user/*.cruds"}})
	assert.Equal(t, http.StatusBadRequest, narrow.StatusCode)
	assert.Equal(t, "invalid_scope", decodeJSON(t, narrow)["error"])

	// Another client cannot use it.
	other := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"kjernejournal-dev"},
		"refresh_token": {refreshed.RefreshToken}})
	assert.Equal(t, "invalid_grant", decodeJSON(t, other)["error"])

	// Replaying the rotated-out token kills the family, the newest
	// refresh token included.
	_, err = conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: first}).Token()
	requireOAuthError(t, err, "invalid_grant")
	_, err = conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")
}

// A refresh asking for less narrows the access token, not the grant: the
// rotated refresh token keeps the original scope (RFC 6749 6), so the
// next refresh without scope gets all of it back.
func TestRefreshNarrowedKeepsGrant(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "offline_access")
	tok := f.standaloneToken(conf, "gp", "pas-9")
	narrow := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {demoClient},
		"refresh_token": {tok.RefreshToken}, "scope": {"patient/*.rs"}})
	require.Equal(t, http.StatusOK, narrow.StatusCode)
	body := decodeJSON(t, narrow)
	assert.Equal(t, "patient/*.rs", body["scope"])
	next, _ := body["refresh_token"].(string)
	require.NotEmpty(t, next, "the grant survives a narrowed refresh")
	again, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: next}).Token()
	require.NoError(t, err)
	assert.Equal(t, "launch/patient patient/*.rs offline_access", again.Extra("scope"))
}

func TestRefreshTokenExpires(t *testing.T) {
	f := newFixture(t, func(c *smart.Config) { c.OnlineRefreshLifetime = time.Hour })
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "online_access")
	tok := f.standaloneToken(conf, "nurse", "pas-8")
	f.clock.Advance(59 * time.Minute)
	next, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	f.clock.Advance(2 * time.Minute) // past the original grant's end
	_, err = conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")
}

// standaloneToken runs a standalone launch for persona and patient.
func (f *fixture) standaloneToken(conf *oauth2.Config, persona, patient string) *oauth2.Token {
	f.t.Helper()
	verifier := oauth2.GenerateVerifier()
	session, _ := f.loginSession(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL)))
	q := f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {persona}, "patient": {patient}}))
	tok, err := conf.Exchange(f.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(f.t, err)
	return tok
}

func requireOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "want an OAuth error %s, got %v", code, err)
	assert.Equal(t, code, re.ErrorCode, re.ErrorDescription)
}

func TestAuthorizeRefusals(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "patient/*.rs")
	verifier := oauth2.GenerateVerifier()
	aud := oauth2.SetAuthURLParam("aud", f.ts.URL)

	t.Run("plain PKCE", func(t *testing.T) {
		u := conf.AuthCodeURL("s1", aud, oauth2.SetAuthURLParam("code_challenge", verifier),
			oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		q := f.redirected(f.get(u))
		assert.Equal(t, "invalid_request", q.Get("error"))
		assert.Contains(t, q.Get("error_description"), "S256")
		assert.Equal(t, "s1", q.Get("state"))
		assert.Empty(t, q.Get("code"))
	})
	t.Run("challenge without method means plain", func(t *testing.T) {
		u := conf.AuthCodeURL("s2", aud, oauth2.SetAuthURLParam("code_challenge", oauth2.S256ChallengeFromVerifier(verifier)))
		assert.Equal(t, "invalid_request", f.redirected(f.get(u)).Get("error"))
	})
	t.Run("missing challenge", func(t *testing.T) {
		q := f.redirected(f.get(conf.AuthCodeURL("s3", aud)))
		assert.Equal(t, "invalid_request", q.Get("error"))
		assert.Contains(t, q.Get("error_description"), "PKCE")
	})
	t.Run("wrong aud", func(t *testing.T) {
		u := conf.AuthCodeURL("s4", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", "https://elsewhere.example/fhir"))
		assert.Equal(t, "invalid_request", f.redirected(f.get(u)).Get("error"))
	})
	t.Run("no allowed scope", func(t *testing.T) {
		c := f.oauthConfig("system/Flag.rs")
		q := f.redirected(f.get(c.AuthCodeURL("s5", aud, oauth2.S256ChallengeOption(verifier))))
		assert.Equal(t, "invalid_scope", q.Get("error"))
	})
	t.Run("unknown launch", func(t *testing.T) {
		c := f.oauthConfig("launch", "patient/*.rs")
		q := f.redirected(f.get(c.AuthCodeURL("s6", aud, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("launch", "nope"))))
		assert.Equal(t, "invalid_request", q.Get("error"))
	})
	t.Run("response_type token", func(t *testing.T) {
		u := strings.Replace(conf.AuthCodeURL("s7", aud, oauth2.S256ChallengeOption(verifier)), "response_type=code", "response_type=token", 1)
		assert.Equal(t, "unsupported_response_type", f.redirected(f.get(u)).Get("error"))
	})
	t.Run("redirect_uri mismatch is not followed", func(t *testing.T) {
		c := f.oauthConfig("patient/*.rs")
		c.RedirectURL = demoRedirect + "/../evil"
		resp := f.get(c.AuthCodeURL("s8", aud, oauth2.S256ChallengeOption(verifier)))
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"))
	})
	t.Run("unknown client", func(t *testing.T) {
		c := f.oauthConfig("patient/*.rs")
		c.ClientID = "who"
		resp := f.get(c.AuthCodeURL("s9", aud, oauth2.S256ChallengeOption(verifier)))
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("repeated parameter", func(t *testing.T) {
		resp := f.get(conf.AuthCodeURL("s10", aud, oauth2.S256ChallengeOption(verifier)) + "&scope=user/*.cruds")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("authorize by POST", func(t *testing.T) {
		u, err := url.Parse(conf.AuthCodeURL("s11", aud, oauth2.S256ChallengeOption(verifier)))
		require.NoError(t, err)
		resp := f.postForm(f.ts.URL+"/auth/authorize", u.Query())
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, readAll(t, resp), `name="session"`)
	})
}

func TestCodeExchangeRefusals(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("launch/patient", "patient/*.rs", "offline_access")
	code := func(verifier string) string {
		session, _ := f.loginSession(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.ts.URL)))
		return f.redirected(f.postForm(f.ts.URL+"/auth/login", url.Values{"session": {session}, "persona": {"gp"}, "patient": {"p-1"}})).Get("code")
	}

	t.Run("missing verifier", func(t *testing.T) {
		_, err := conf.Exchange(f.ctx, code(oauth2.GenerateVerifier()))
		requireOAuthError(t, err, "invalid_request")
	})
	t.Run("wrong verifier", func(t *testing.T) {
		c := code(oauth2.GenerateVerifier())
		_, err := conf.Exchange(f.ctx, c, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		requireOAuthError(t, err, "invalid_grant")
	})
	t.Run("code reuse revokes what it bought", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		c := code(v)
		tok, err := conf.Exchange(f.ctx, c, oauth2.VerifierOption(v))
		require.NoError(t, err)
		assert.True(t, f.introspect(tok.AccessToken)["active"].(bool))
		_, err = conf.Exchange(f.ctx, c, oauth2.VerifierOption(v))
		requireOAuthError(t, err, "invalid_grant")
		assert.False(t, f.introspect(tok.AccessToken)["active"].(bool), "the first token is revoked")
		_, err = conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		requireOAuthError(t, err, "invalid_grant")
	})
	t.Run("redirect_uri mismatch", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		c := code(v)
		other := *conf
		other.RedirectURL = "http://localhost:3000/callback" // registered, but not the one authorised
		_, err := other.Exchange(f.ctx, c, oauth2.VerifierOption(v))
		requireOAuthError(t, err, "invalid_grant")
	})
	t.Run("another client", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		c := code(v)
		other := *conf
		other.ClientID = "kjernejournal-dev"
		_, err := other.Exchange(f.ctx, c, oauth2.VerifierOption(v))
		requireOAuthError(t, err, "invalid_grant")
	})
	t.Run("expired code", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		c := code(v)
		f.clock.Advance(61 * time.Second)
		_, err := conf.Exchange(f.ctx, c, oauth2.VerifierOption(v))
		requireOAuthError(t, err, "invalid_grant")
	})
	t.Run("client secret refused", func(t *testing.T) {
		resp := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {demoClient}, "code": {"x"}})
		assert.Equal(t, "invalid_grant", decodeJSON(t, resp)["error"])
		req, err := http.NewRequest(http.MethodPost, f.ts.URL+"/auth/token", strings.NewReader("grant_type=authorization_code&code=x"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(demoClient, "secret")
		r2, err := f.noFollow.Do(req)
		require.NoError(t, err)
		defer r2.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, r2.StatusCode)
		assert.Equal(t, "invalid_client", decodeJSON(t, r2)["error"])
	})
	t.Run("unsupported grant", func(t *testing.T) {
		resp := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"password"}, "client_id": {demoClient}})
		assert.Equal(t, "unsupported_grant_type", decodeJSON(t, resp)["error"])
	})
	t.Run("public client has no client_credentials", func(t *testing.T) {
		resp := f.postForm(f.ts.URL+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {demoClient}, "scope": {"system/Flag.rs"}})
		assert.Equal(t, "unauthorized_client", decodeJSON(t, resp)["error"])
	})
}
