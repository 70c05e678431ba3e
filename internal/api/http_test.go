package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// embeddedServer is enough for behaviour that does not touch the engine.
func embeddedServer(t *testing.T, cfg api.Config) *client {
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return newServer(t, st, cfg)
}

func TestFormats(t *testing.T) {
	c := embeddedServer(t, api.Config{})
	patient := createPatient(t, c, 10)
	path := "/Patient/" + patient

	r := c.do("GET", path, nil, "Accept", "application/json")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "application/json")

	r = c.do("GET", path, nil, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "application/fhir+json")

	outcome(t, c.do("GET", path+"?_format=xml", nil), http.StatusNotAcceptable)
	outcome(t, c.do("GET", path, nil, "Accept", "application/fhir+xml"), http.StatusNotAcceptable)
	outcome(t, c.do("GET", path+"?_format=yaml", nil), http.StatusNotAcceptable)

	r = c.do("GET", path+"?_pretty=true", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), "\n  \"resourceType\"")

	r = c.do("GET", path+"?_elements=name", nil)
	require.Equal(t, http.StatusOK, r.status)
	m := r.json(t)
	assert.Contains(t, m, "name")
	assert.NotContains(t, m, "birthDate")
	assert.Contains(t, string(r.body), "SUBSETTED")

	r = c.do("GET", path+"?_summary=true", nil)
	require.Equal(t, http.StatusOK, r.status)
	m = r.json(t)
	assert.Contains(t, m, "identifier")
	assert.Contains(t, string(r.body), "SUBSETTED")

	outcome(t, c.do("GET", path+"?_summary=bogus", nil), http.StatusBadRequest)
	outcome(t, c.do("GET", path+"?_elements=na$me", nil), http.StatusBadRequest)

	// conditional read
	r = c.do("GET", path, nil, "If-None-Match", `W/"1"`)
	assert.Equal(t, http.StatusNotModified, r.status)
}

func TestErrorsAreOperationOutcomes(t *testing.T) {
	c := embeddedServer(t, api.Config{})
	outcome(t, c.do("GET", "/Observation/1", nil), http.StatusNotFound)
	outcome(t, c.do("GET", "/Flag/unknown-id", nil), http.StatusNotFound)
	outcome(t, c.do("GET", "/Flag/bad$id", nil), http.StatusBadRequest)
	outcome(t, c.do("PATCH", "/Flag/1", []byte(`[]`)), http.StatusMethodNotAllowed)
	outcome(t, c.do("GET", "/Flag/1/_history/x", nil), http.StatusBadRequest)
	outcome(t, c.do("GET", "/Flag/1/_history/1/extra/x", nil), http.StatusNotFound)
	outcome(t, c.do("DELETE", "/Flag/never-existed", nil), http.StatusNotFound)
	// history-type is not offered, and the CapabilityStatement is read-only
	outcome(t, c.do("GET", "/Flag/_history", nil), http.StatusMethodNotAllowed)
	outcome(t, c.do("POST", "/metadata", []byte(`{"resourceType":"CapabilityStatement"}`)), http.StatusMethodNotAllowed)
	outcome(t, c.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"collection"}`)), http.StatusBadRequest)
	outcome(t, c.do("POST", "/Flag", []byte(`{}`), "If-None-Exist", "identifier=x"), http.StatusBadRequest)
}

func TestCapabilityStatementFollowsRoutes(t *testing.T) {
	c := embeddedServer(t, api.Config{})
	r := c.do("GET", "/metadata", nil)
	require.Equal(t, http.StatusOK, r.status)
	m := r.json(t)
	assert.Equal(t, "CapabilityStatement", m["resourceType"])
	assert.Equal(t, "4.0.1", m["fhirVersion"])
	rest := m["rest"].([]any)[0].(map[string]any)
	var types []string
	for _, res := range rest["resource"].([]any) {
		rm := res.(map[string]any)
		types = append(types, rm["type"].(string))
		var codes []string
		for _, i := range rm["interaction"].([]any) {
			codes = append(codes, i.(map[string]any)["code"].(string))
		}
		if access.IsConformanceType(rm["type"].(string)) {
			// the server's own conformance resources: read and search only
			assert.Equal(t, []string{"read", "search-type"}, codes, rm["type"])
			continue
		}
		for _, want := range []string{"read", "vread", "update", "delete", "history-instance", "create"} {
			if rm["type"] == "Consent" && want == "delete" {
				// privacy settings are lifted by an update, never deleted (405)
				assert.NotContains(t, codes, want)
				continue
			}
			assert.Contains(t, codes, want, rm["type"])
		}
	}
	assert.ElementsMatch(t, append(domain.RecordTypes(), access.ConformanceTypes...), types)
	// every advertised interaction is routed to that interaction
	svc := c.srv.Interactions()
	sample := map[string][2]string{
		"read": {"GET", "/%s/x"}, "vread": {"GET", "/%s/x/_history/1"}, "update": {"PUT", "/%s/x"}, "delete": {"DELETE", "/%s/x"},
		"history-instance": {"GET", "/%s/x/_history"}, "create": {"POST", "/%s"}, "search-type": {"GET", "/%s"},
	}
	for _, res := range rest["resource"].([]any) {
		rm := res.(map[string]any)
		for _, i := range rm["interaction"].([]any) {
			code := i.(map[string]any)["code"].(string)
			s, ok := sample[code]
			require.True(t, ok, "no sample request for %s", code)
			call, err := svc.ParseCall(s[0], fmt.Sprintf(s[1], rm["type"]), "")
			require.NoError(t, err, "%s %s", code, rm["type"])
			assert.Equal(t, code, string(call.Kind), "%s %s", code, rm["type"])
		}
	}
	for _, i := range rest["interaction"].([]any) {
		call, err := svc.ParseCall("POST", "/", "")
		require.NoError(t, err)
		assert.Equal(t, "transaction", string(call.Kind), i)
	}
	// the CapabilityStatement is itself valid FHIR
	validR4(t, r.body)
}

func TestOperationalEndpoints(t *testing.T) {
	c := embeddedServer(t, api.Config{})
	r := c.do("GET", "/healthz", nil)
	assert.Equal(t, http.StatusOK, r.status)
	r = c.do("GET", "/readyz", nil)
	assert.Equal(t, http.StatusOK, r.status)

	// The request id is the server's own: a caller's is a correlation id.
	r = c.do("GET", "/Flag/x", nil, "X-Request-Id", "abc-123")
	assert.NotEqual(t, "abc-123", r.header.Get("X-Request-Id"))
	assert.NotEmpty(t, r.header.Get("X-Request-Id"))

	// The metrics are the operators': on the admin handler, not here.
	outcome(t, c.do("GET", "/metrics", nil), http.StatusNotFound)
	admin := httptest.NewServer(c.srv.Admin())
	t.Cleanup(admin.Close)
	ac := &client{t: t, base: admin.URL}
	r = ac.do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `kj_http_requests_total{code="404",interaction="read",type="Flag"}`)
	assert.Contains(t, string(r.body), `kj_http_request_duration_seconds_bucket{interaction="read",type="Flag"`)
	assert.Equal(t, http.StatusOK, ac.do("GET", "/healthz", nil).status)
	assert.Equal(t, http.StatusOK, ac.do("GET", "/readyz", nil).status)
}

func TestReadyzFailsWhenStoreIsClosed(t *testing.T) {
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db")})
	require.NoError(t, err)
	c := newServer(t, st, api.Config{})
	require.Equal(t, http.StatusOK, c.do("GET", "/readyz", nil).status)
	require.NoError(t, st.Close())
	outcome(t, c.do("GET", "/readyz", nil), http.StatusServiceUnavailable)
	assert.Equal(t, http.StatusOK, c.do("GET", "/healthz", nil).status)
}

func TestCompartment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		p1 := createPatient(t, c, 11)
		p2 := createPatient(t, c, 12)
		for i := 0; i < 3; i++ {
			require.Equal(t, http.StatusCreated, c.do("POST", "/Flag", clinical("Flag", p1, "", "p1")).status)
		}
		require.Equal(t, http.StatusCreated, c.do("POST", "/Flag", clinical("Flag", p2, "", "p2")).status)
		r := c.do("GET", "/Patient/"+p1+"/Flag", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		b := r.json(t)
		assert.Equal(t, "searchset", b["type"])
		assert.EqualValues(t, 3, b["total"])
		assert.NotContains(t, string(r.body), `"p2"`)
		r = c.do("GET", "/Patient/"+p1+"/Flag?_summary=count", nil)
		b = r.json(t)
		assert.EqualValues(t, 3, b["total"])
		assert.NotContains(t, b, "entry")
		validR4(t, r.body)
	})
}

// validR4 checks a body with the FHIR R4 parser of google/fhir.
func validR4(t *testing.T, body []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	_, err = u.Unmarshal(body)
	require.NoError(t, err, "body: %s", body)
}
