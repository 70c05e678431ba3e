package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/webapp"
)

// browserServer is newSecured as `make run` starts it for browsers: CORS
// for loopback origins, the landing page and the app.
func browserServer(t *testing.T, cors *api.CORS) *secured {
	return newSecuredWith(t, engines()[0].open(t), func(base string, cfg *api.Config) {
		cfg.CORS = cors
		if cfg.Security != nil {
			cfg.Security.CORS = cors.Enabled()
		}
		site := webapp.Config{Base: base, AuthServer: true, DemoPatient: "sec-pat-0", DemoPractitioner: "hospital-doctor",
			FrameAncestors: cors.FrameAncestors()}
		cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: "/", Handler: webapp.Landing(site)}, api.Mount{Prefix: "/app/", Handler: webapp.App(site)})
	})
}

const appOrigin = "http://127.0.0.1:5173" // a SMART app's own dev server

// TestCORS: a SMART app on another origin can call every route a browser
// app needs — the discovery documents, the token endpoints, every FHIR
// route — and read the headers it needs; other origins get nothing.
func TestCORS(t *testing.T) {
	s := browserServer(t, &api.CORS{Loopback: true, Origins: []string{"https://app.example.no"}})
	p0 := s.patients[0]
	// As a browser sends it: lower case, sorted, comma-separated.
	asked := "authorization,content-type,dpop,if-match,if-none-exist,nhn-access-basis,prefer"
	for _, tc := range []struct{ method, path string }{
		{"GET", "/metadata"}, {"GET", "/.well-known/smart-configuration"},
		{"POST", "/auth/token"}, {"POST", "/auth/introspect"}, {"POST", "/auth/revoke"},
		{"GET", "/Flag?patient=" + p0}, {"GET", "/Flag/sec-flag-0"}, {"PUT", "/Flag/sec-flag-0"}, {"DELETE", "/Flag/sec-flag-0"},
		{"POST", "/Flag"}, {"POST", "/"}, {"GET", "/Patient/" + p0 + "/$kj-status"}, {"GET", "/Flag/sec-flag-0/_history"},
		{"POST", "/Flag/_search"}, {"GET", "/AuditEvent?patient=" + p0}, {"GET", "/documents/abc"}, {"GET", "/Practitioner/" + gpPersonaHPR},
	} {
		for _, origin := range []string{appOrigin, "http://localhost:3000", "https://app.example.no"} {
			r := s.do("OPTIONS", tc.path, nil, "Origin", origin, "Access-Control-Request-Method", tc.method,
				"Access-Control-Request-Headers", asked)
			require.Equal(t, http.StatusNoContent, r.status, "preflight of %s %s from %s: %s", tc.method, tc.path, origin, r.body)
			assert.Equal(t, origin, r.header.Get("Access-Control-Allow-Origin"), "%s %s", tc.method, tc.path)
			allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
			for _, h := range strings.Split(asked, ",") {
				assert.Contains(t, allowed, h, "%s %s", tc.method, tc.path)
			}
			assert.Contains(t, r.header.Get("Access-Control-Allow-Methods"), tc.method)
		}
		// Not an allowed origin: no CORS headers, so the browser blocks.
		for _, origin := range []string{"https://evil.example", "http://192.168.1.5:8080", "null"} {
			r := s.do("OPTIONS", tc.path, nil, "Origin", origin, "Access-Control-Request-Method", tc.method)
			assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "%s %s from %s", tc.method, tc.path, origin)
		}
	}

	// Real requests: the app reads the answer and the headers it needs,
	// refusals and challenges included.
	gp := s.token("gp", p0)
	r := s.do("GET", "/Flag/sec-flag-0", nil, "Origin", appOrigin, "Authorization", "Bearer "+gp, "nhn-access-basis", "UNNTAK")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, appOrigin, r.header.Get("Access-Control-Allow-Origin"))
	exposed := strings.ToLower(r.header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"etag", "location", "content-location", "last-modified", "www-authenticate", "x-request-id"} {
		assert.Contains(t, exposed, h)
	}
	r = s.do("GET", "/Flag/sec-flag-0", nil, "Origin", appOrigin)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, appOrigin, r.header.Get("Access-Control-Allow-Origin"), "the app can read why it was refused")
	assert.Empty(t, s.do("GET", "/metadata", nil, "Origin", "https://evil.example").header.Get("Access-Control-Allow-Origin"))

	cs := s.do("GET", "/metadata", nil).json(t)
	assert.Equal(t, true, cs["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)["cors"])

	// Without CORS the statement says so, and a browser gets no grant.
	off := browserServer(t, nil)
	cs = off.do("GET", "/metadata", nil).json(t)
	assert.Equal(t, false, cs["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)["cors"])
	r = off.do("OPTIONS", "/metadata", nil, "Origin", appOrigin, "Access-Control-Request-Method", "GET")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
}

// TestHealthDataHeaders: no cache keeps an answer, no browser sniffs its
// type and no other site frames it — on answers and refusals alike.
func TestHealthDataHeaders(t *testing.T) {
	s := browserServer(t, &api.CORS{Loopback: true})
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	for _, path := range []string{"/Flag/sec-flag-0", "/Flag?patient=" + p0, "/Patient/" + p0 + "/$kj-status", "/Flag/sec-flag-1", "/Flag/nope"} {
		for _, h := range [][]string{{"Authorization", "Bearer " + gp, "nhn-access-basis", "UNNTAK"}, nil} {
			r := s.do("GET", path, nil, h...)
			assert.Equal(t, "no-store", r.header.Get("Cache-Control"), "%s (%d)", path, r.status)
			assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), path)
			assert.Equal(t, "DENY", r.header.Get("X-Frame-Options"), path)
		}
	}
}

// TestFHIRUserResolves: the token's fhirUser (Practitioner/<HPR>) can be
// read by that practitioner, as SMART apps do to show who is signed in;
// nobody reads another practitioner's.
func TestFHIRUserResolves(t *testing.T) {
	s := browserServer(t, nil)
	gp := s.token("gp", s.patients[0])
	r := s.as_(gp, "", "GET", "/Practitioner/"+gpPersonaHPR, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p := r.json(t)
	assert.Equal(t, "Practitioner", p["resourceType"])
	assert.Equal(t, gpPersonaHPR, p["id"])
	assert.Contains(t, string(r.body), `"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"`+gpPersonaHPR+`"`)
	assert.Contains(t, string(r.body), "Gunvor Eriksen")

	assert.Equal(t, "not-own-user", reasonOf(t, s.as_(gp, "", "GET", "/Practitioner/990018265", nil)))
	assert.Equal(t, "not-own-user", reasonOf(t, s.as_(s.token("citizen", ""), "", "GET", "/Practitioner/"+gpPersonaHPR, nil)))
	assert.Equal(t, "insufficient-scope", reasonOf(t, s.as_(s.token("gp", s.patients[0], "patient/Flag.rs"), "", "GET", "/Practitioner/"+gpPersonaHPR, nil)))
	outcome(t, s.as_(gp, "", "GET", "/Practitioner?name=x", nil), http.StatusNotFound)
	outcome(t, s.as_(gp, "", "PUT", "/Practitioner/"+gpPersonaHPR, []byte(`{"resourceType":"Practitioner"}`)), http.StatusMethodNotAllowed)

	// The same read inside a batch, through the same route and rule.
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Practitioner/` + gpPersonaHPR +
		`"}},{"request":{"method":"GET","url":"Practitioner/990018265"}}]}`
	r = s.as_(gp, "", "POST", "/", []byte(batch))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	entries := r.json(t)["entry"].([]any)
	assert.True(t, strings.HasPrefix(entries[0].(map[string]any)["response"].(map[string]any)["status"].(string), "200"))
	assert.True(t, strings.HasPrefix(entries[1].(map[string]any)["response"].(map[string]any)["status"].(string), "403"))

	cs := s.do("GET", "/metadata", nil)
	assert.Contains(t, string(cs.body), `"type":"Practitioner","interaction":[{"code":"read"}]`)
}

// TestLandingAndApp: GET / is a page that starts the app (POST / stays the
// FHIR batch endpoint), and the app's files are served with a CSP that
// lets only the allowed EHRs frame them.
func TestLandingAndApp(t *testing.T) {
	s := browserServer(t, &api.CORS{Loopback: true})
	r := s.do("GET", "/", nil, "Accept", "text/html")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "text/html")
	page := string(r.body)
	assert.Contains(t, page, `lang="nb"`)
	assert.Contains(t, page, `/app/launch.html?iss=`+url.QueryEscape(s.base))
	assert.Contains(t, page, `/ehr?basis=SAMTYKKE&amp;client_id=kjernejournal-app&amp;go=1&amp;patient=sec-pat-0&amp;persona=hospital-doctor`)
	assert.Contains(t, page, s.base+"/metadata")

	r = s.do("GET", "/app/smart-style.json", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.header.Get("Content-Security-Policy"), "frame-ancestors 'self' http://127.0.0.1:*")
	assert.Empty(t, r.header.Get("X-Frame-Options"), "an EHR may frame the app")
	assert.Contains(t, r.json(t), "color_background")

	// The registered redirect URI answers itself, with the login's query.
	r = s.do("GET", "/app/index.html?code=abc&state=xyz", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `lang="nb"`)
	assert.Contains(t, r.header.Get("Content-Security-Policy"), "connect-src 'self' "+s.base)

	r = s.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"batch","entry":[]}`))
	assert.Equal(t, http.StatusUnauthorized, r.status, "POST / is the batch endpoint: %s", r.body)
	outcome(t, s.do("PUT", "/", nil), http.StatusMethodNotAllowed)
}
