package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/smart"
)

// TestAdminListenerAndTokenEndpointLimit runs the server as a process with
// the built-in authorisation server, an admin listener and a small budget
// of failed authentications: /metrics is only on the admin listener, and a
// brute force of the token endpoint is answered 429 once the budget is
// spent.
func TestAdminListenerAndTokenEndpointLimit(t *testing.T) {
	dir := t.TempDir()
	// A source hospital that is never reached: its series exist from the
	// start, so that an alert on them has something to watch.
	sources := filepath.Join(dir, "sources.json")
	require.NoError(t, os.WriteFile(sources, []byte(fmt.Sprintf(`{"sources":[{"name":"ous","display_name":"Oslo universitetssykehus HF",
	  "organisation":"300010008","region":"helse-sor-ost","base_url":"http://%s","shared_types":["A00"],
	  "shares_with":{"regions":["helse-sor-ost"]}}]}`, freePort(t))), 0o600))
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	srv := startServer(t, filepath.Join(dir, "data"), "--auth-server", "--admin-addr", "127.0.0.1:0",
		"--rate-failed-auth", "4/10m", "--sources", sources, "--default-region", "helse-sor-ost",
		"--smart-key-file", filepath.Join(root, smart.DefaultKeyFile),
		"--smart-clients", filepath.Join(root, smart.DefaultClientsFile),
		"--smart-personas", filepath.Join(root, smart.DefaultPersonasFile))
	require.NotEmpty(t, srv.admin, "serve reports the admin listener's address")

	get := func(u string) (int, string, http.Header) {
		res, err := http.Get(u)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	status, body, _ := get(srv.base + "/metrics")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body, `"resourceType":"OperationOutcome"`)
	status, _, _ = get(srv.base + "/healthz")
	assert.Equal(t, http.StatusOK, status, "health stays on the public port for load balancers")

	guess := func(i int) (int, string, http.Header) {
		res, err := http.PostForm(srv.base+"/auth/token", url.Values{"grant_type": {"authorization_code"},
			"code": {fmt.Sprint("guess-", i)}, "client_id": {"kj-demo-app"}, "redirect_uri": {"http://127.0.0.1/callback.html"}})
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	for i := 0; i < 4; i++ {
		status, body, _ := guess(i)
		require.Equal(t, http.StatusBadRequest, status, body)
	}
	status, body, h := guess(4)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	assert.NotEmpty(t, h.Get("Retry-After"))
	var oo map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &oo))
	assert.Equal(t, "OperationOutcome", oo["resourceType"])
	assert.Contains(t, body, "rate-limited")

	status, metrics, _ := get(srv.admin + "/metrics")
	require.Equal(t, http.StatusOK, status)
	for _, name := range []string{"kj_http_requests_total", "kj_usage_log_append_seconds", "kj_store_commit_group_size",
		`kj_store_operation_seconds_bucket{engine="embedded",op="read"`, `kj_source_request_seconds_bucket{source="ous"`,
		`kj_source_failures_total{source="ous"}`, "kj_token_cache_requests_total", "kj_notification_queue_depth",
		"kj_notification_failures_total", `kj_rate_limited_total{limit="failed-auth"} 1`, `kj_refusals_total{reason="rate-limited"} 1`} {
		assert.True(t, strings.Contains(metrics, name), "admin /metrics shows %s", name)
	}
	status, _, _ = get(srv.admin + "/readyz")
	assert.Equal(t, http.StatusOK, status)
}
