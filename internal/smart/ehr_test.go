package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/kjernejournal/kjernejournal/internal/smart"
)

func withPatients(cs ...smart.PatientChoice) option {
	return func(c *smart.Config) {
		c.Patients = func(context.Context) []smart.PatientChoice { return cs }
	}
}

// TestDevelopmentEHR is the EHR stand-in: a clinician picks a patient by
// person number and an access basis, and the registered app is launched
// with them; the basis reaches the app in the token response.
func TestDevelopmentEHR(t *testing.T) {
	f := newFixture(t, withPatients(smart.PatientChoice{ID: "pas-1", Name: "Kari Nordmann", PID: "02898321285"}))

	page := f.get(f.ts.URL + "/ehr?persona=hospital-doctor&client_id=kj-demo-app")
	require.Equal(t, http.StatusOK, page.StatusCode)
	body := readAll(t, page)
	assert.Contains(t, body, `<html lang="nb">`)
	assert.Contains(t, body, "02898321285", "the patient list offers person numbers")
	assert.Contains(t, body, "FORHOYET_AKUTT")
	csp := page.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "form-action 'self' http://127.0.0.1:*", "the form may end in a redirect to a registered loopback app")

	// Launch by person number, to the demo app on a port of its own.
	appLaunch := "http://127.0.0.1:47123/launch.html"
	resp := f.postForm(f.ts.URL+"/ehr", url.Values{"persona": {"hospital-doctor"}, "patient": {"02898321285"},
		"basis": {"FORHOYET_AKUTT"}, "app_choice": {"kj-demo-app " + appLaunch}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, readAll(t, resp))
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, appLaunch, loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Equal(t, f.ts.URL, loc.Query().Get("iss"), "iss is the FHIR base")
	launch := loc.Query().Get("launch")
	require.NotEmpty(t, launch)

	conf := f.oauthConfig("launch", "openid", "fhirUser", "patient/*.rs")
	conf.RedirectURL = "http://127.0.0.1:47123/callback.html" // registered port-less: any loopback port
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", f.ts.URL), oauth2.SetAuthURLParam("launch", launch))
	cb := f.get(authURL)
	require.Equal(t, http.StatusSeeOther, cb.StatusCode, readAll(t, cb))
	code, err := url.Parse(cb.Header.Get("Location"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(code.String(), "http://127.0.0.1:47123/callback.html?"), code.String())
	tok, err := conf.Exchange(f.ctx, code.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "pas-1", tok.Extra("patient"))
	assert.Equal(t, "FORHOYET_AKUTT", tok.Extra("nhn_access_basis"), "the basis the clinician chose in the EHR")
	claims := f.verified(tok.AccessToken)
	details := claims["authorization_details"].([]any)[0].(map[string]any)
	patients, _ := details["patients"].([]any)
	require.Len(t, patients, 1, "the person number goes into the attest")

	// One step from a link (go=1), and refusals that name what is wrong.
	one := f.get(f.ts.URL + "/ehr?go=1&persona=gp&patient=pas-1&basis=SAMTYKKE&client_id=kj-demo-app")
	require.Equal(t, http.StatusSeeOther, one.StatusCode)
	assert.True(t, strings.HasPrefix(one.Header.Get("Location"), "http://127.0.0.1/launch.html?"), one.Header.Get("Location"))
	for name, q := range map[string]string{
		"unregistered launch URI":  "persona=gp&patient=pas-1&basis=SAMTYKKE&client_id=kj-demo-app&launch_uri=https://evil.example/launch.html",
		"unknown person number":    "persona=gp&patient=17837054321&basis=SAMTYKKE&client_id=kj-demo-app",
		"a citizen is no EHR user": "persona=citizen&patient=pas-1&basis=SAMTYKKE&client_id=kj-demo-app",
		"no basis":                 "persona=gp&patient=pas-1&client_id=kj-demo-app&basis=",
		"unknown basis":            "persona=gp&patient=pas-1&client_id=kj-demo-app&basis=BECAUSE",
	} {
		r := f.get(f.ts.URL + "/ehr?go=1&" + q)
		assert.Equal(t, http.StatusBadRequest, r.StatusCode, name)
		assert.Empty(t, r.Header.Get("Location"), name)
		assert.Contains(t, readAll(t, r), `role="alert"`, name)
	}
}

// TestLoopbackRedirectAnyPort: a port-less loopback redirect URI matches
// any port (RFC 8252 7.3); any other redirect must match exactly.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	f := newFixture(t)
	try := func(redirect string) *http.Response {
		conf := f.oauthConfig("openid", "fhirUser", "patient/*.rs")
		conf.RedirectURL = redirect
		return f.get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", f.ts.URL)))
	}
	for _, ok := range []string{"http://127.0.0.1:1234/callback.html", "http://localhost:5173/callback.html", "http://localhost:3000/callback"} {
		resp := try(ok)
		require.Equal(t, http.StatusOK, resp.StatusCode, ok)
		// The login page's form-action lets its 303 reach the app.
		csp := resp.Header.Get("Content-Security-Policy")
		u, _ := url.Parse(ok)
		assert.Contains(t, csp, "form-action 'self' http://"+u.Host, ok)
	}
	for _, bad := range []string{"http://127.0.0.1:1234/other.html", "http://evil.example:1234/callback.html",
		"https://127.0.0.1:1234/callback.html", "http://localhost:3001/callback"} {
		resp := try(bad)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
		assert.Empty(t, resp.Header.Get("Location"), bad)
	}
}

// TestServerPathClients: a redirect or launch URI given as a path is a
// page of the server itself, wherever it runs.
func TestServerPathClients(t *testing.T) {
	f := newFixture(t)
	conf := f.oauthConfig("openid", "fhirUser", "patient/*.rs")
	conf.ClientID = "kjernejournal-app"
	conf.RedirectURL = f.ts.URL + "/app/index.html"
	resp := f.get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", f.ts.URL)))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	launch := f.get(f.ts.URL + "/ehr?go=1&persona=gp&patient=pas-1&basis=SAMTYKKE&client_id=kjernejournal-app")
	require.Equal(t, http.StatusSeeOther, launch.StatusCode)
	assert.True(t, strings.HasPrefix(launch.Header.Get("Location"), f.ts.URL+"/app/launch.html?"), launch.Header.Get("Location"))
}
