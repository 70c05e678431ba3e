package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/ratelimit"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/syncbuf"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// limited is a secured server with the given rate limits, its store
// measured as serve measures it.
func limited(t *testing.T, l api.Limits, logger *slog.Logger) *secured {
	t.Helper()
	st, err := embedded.Open(context.Background(), embedded.Options{Path: t.TempDir() + "/kj.db"})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return newSecuredWith(t, telemetry.Store(st, "embedded"), func(_ string, cfg *api.Config) {
		cfg.Limits = &l
		if logger != nil {
			cfg.Logger = logger
		}
	})
}

// postForm posts a form as an OAuth client does.
func (s *secured) postForm(path string, form url.Values) response {
	s.t.Helper()
	return s.do("POST", path, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

// rateLimitedRecords are the usage-log records of refusals by a rate
// limit, rendered.
func rateLimitedRecords(t *testing.T, st store.Store) []map[string]any {
	t.Helper()
	recs, err := st.SearchAudit(context.Background(), store.AuditQuery{})
	require.NoError(t, err)
	var out []map[string]any
	for _, r := range recs {
		ev := rendered(t, r)
		b, _ := json.Marshal(ev)
		if bytes.Contains(b, []byte(`"code":"rate-limited"`)) {
			out = append(out, ev)
		}
	}
	return out
}

// retryAfter checks a 429 and returns its Retry-After in seconds.
func retryAfter(t *testing.T, r response) int {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
	assert.Positive(t, n)
	assert.Equal(t, "rate-limited", reasonOf(t, r))
	return n
}

func TestTokenEndpointBruteForceGets429AndIsLogged(t *testing.T) {
	const budget = 5
	s := limited(t, api.Limits{FailedAuth: ratelimit.Spec{Burst: budget, Period: 10 * time.Minute}}, nil)
	guess := func(i int) response {
		return s.postForm("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"guess-" + strconv.Itoa(i)},
			"client_id": {"kj-demo-app"}, "redirect_uri": {"http://127.0.0.1/callback.html"}})
	}
	for i := 0; i < budget; i++ {
		r := guess(i)
		require.Equal(t, http.StatusBadRequest, r.status, "guess %d within the budget is answered: %s", i, r.body)
		assert.Contains(t, string(r.body), "invalid_grant")
	}
	const refused = 20
	for i := 0; i < refused; i++ {
		wait := retryAfter(t, guess(budget+i))
		// 5 per 10 minutes: the next failure is allowed after 2 minutes.
		assert.LessOrEqual(t, wait, 120)
	}
	// The address is refused on the FHIR API too, even with a good token:
	// a brute force from it stops there as well.
	tok := s.token("gp", s.patients[0])
	retryAfter(t, s.as_(tok, "UNNTAK", "GET", "/Flag?patient="+s.patients[0], nil))

	logged := rateLimitedRecords(t, s.st)
	require.Len(t, logged, refused+1, "every 429 is in the usage log")
	for _, ev := range logged {
		assert.Equal(t, "4", ev["outcome"], "logged as a refusal")
	}
	b, _ := json.Marshal(logged[len(logged)-1]) // SearchAudit is newest first: the first refused guess
	assert.Contains(t, string(b), "/auth/token")
}

func TestForgedTokensGet429AfterTheFailureBudget(t *testing.T) {
	s := limited(t, api.Limits{FailedAuth: ratelimit.Spec{Burst: 3, Period: time.Hour}}, nil)
	tok := s.token("gp", s.patients[0])
	forged := tok[:len(tok)-6] + "AAAAAA"
	path := "/Flag?patient=" + s.patients[0]
	for i := 0; i < 3; i++ {
		r := s.as_(forged, "", "GET", path, nil)
		require.Equal(t, http.StatusUnauthorized, r.status, "forged token %d: %s", i, r.body)
	}
	r := s.as_(forged, "", "GET", path, nil)
	retryAfter(t, r)
	assert.Empty(t, r.header.Get("WWW-Authenticate"), "a 429 is no challenge to try another token")
	// A request without a token is no guess: it spends no budget, and the
	// earlier ones are refused 401 while the budget lasts.
	logged := rateLimitedRecords(t, s.st)
	require.Len(t, logged, 1)
	b, _ := json.Marshal(logged[0])
	assert.Contains(t, string(b), s.patients[0], "logged under the patient the request named")
}

func TestClientRequestBudget(t *testing.T) {
	s := limited(t, api.Limits{Client: ratelimit.Spec{Burst: 4, Period: time.Hour}}, nil)
	tok := s.token("gp", s.patients[0])
	path := "/Flag?patient=" + s.patients[0]
	for i := 0; i < 4; i++ {
		require.Equal(t, http.StatusOK, s.as_(tok, "UNNTAK", "GET", path, nil).status)
	}
	wait := retryAfter(t, s.as_(tok, "UNNTAK", "GET", path, nil))
	assert.LessOrEqual(t, wait, 15*60, "4 per hour: one more after a quarter of an hour")
	require.Len(t, rateLimitedRecords(t, s.st), 1)
	// No limit for requests that need no token (the CapabilityStatement).
	assert.Equal(t, http.StatusOK, s.do("GET", "/metadata", nil).status)
}

func TestAuthServerRequestBudgetPerAddress(t *testing.T) {
	s := limited(t, api.Limits{AuthServer: ratelimit.Spec{Burst: 3, Period: time.Hour}}, nil)
	for i := 0; i < 3; i++ {
		assert.Equal(t, http.StatusOK, s.do("GET", "/auth/jwks", nil).status)
	}
	retryAfter(t, s.do("GET", "/auth/jwks", nil))
	// Discovery is not the authorisation server's endpoints.
	assert.Equal(t, http.StatusOK, s.do("GET", "/.well-known/smart-configuration", nil).status)
}

// requestLines are the access-log lines (msg "request") the server's
// JSON log holds so far.
func requestLines(t *testing.T, logs *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace([]byte(logs.String())), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m), "log line %s", l)
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

func TestAccessLogLinePerRequest(t *testing.T) {
	var logs syncbuf.Buffer
	s := limited(t, api.Limits{}, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	pnr := personNumber(t, 40) // the first secured patient's
	tok := s.token("gp", s.patients[0])
	var ids []string
	for _, r := range []response{
		s.as_(tok, "UNNTAK", "GET", "/Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|"+pnr, nil),
		s.as_(tok, "UNNTAK", "GET", "/Flag/sec-flag-0", nil),
		s.as_(tok, "UNNTAK", "GET", "/Flag?patient="+s.patients[1], nil),
		s.as_("not-a-token", "", "GET", "/Flag/sec-flag-0", nil),
		s.do("GET", "/metadata", nil),
		s.do("GET", "/metrics", nil),
	} {
		ids = append(ids, r.header.Get("X-Request-Id"))
	}
	lines := requestLines(t, &logs)
	require.Len(t, lines, len(ids), "one line per request, 2xx included")
	byID := map[string]map[string]any{}
	for _, l := range lines {
		byID[l["request_id"].(string)] = l
		assert.Equal(t, "INFO", l["level"])
		for _, k := range []string{"method", "route", "status", "duration_ms", "reason", "client_id"} {
			assert.Contains(t, l, k)
		}
	}
	read := byID[ids[1]]
	require.NotNil(t, read)
	assert.Equal(t, "Flag/{id}", read["route"])
	assert.EqualValues(t, 200, read["status"])
	assert.Equal(t, "ok", read["reason"])
	assert.NotEmpty(t, read["client_id"])
	assert.Equal(t, "GET", read["method"])
	refused := byID[ids[2]]
	assert.EqualValues(t, 403, refused["status"])
	assert.NotEqual(t, "ok", refused["reason"], "a refusal's reason code")
	assert.Equal(t, "not-authenticated", byID[ids[3]]["reason"])
	assert.EqualValues(t, 404, byID[ids[5]]["status"])

	all := logs.String()
	assert.NotContains(t, all, pnr, "no person number in the log")
	assert.NotContains(t, all, "implant", "no health data in the log")
	assert.NotContains(t, all, "identifier=", "no query string in the log")
}

func TestMetricsOnTheAdminHandlerOnly(t *testing.T) {
	s := limited(t, api.Limits{FailedAuth: ratelimit.Spec{Burst: 1, Period: time.Hour}}, nil)
	tok := s.token("gp", s.patients[0])
	require.Equal(t, http.StatusOK, s.as_(tok, "UNNTAK", "GET", "/Flag?patient="+s.patients[0], nil).status)
	require.Equal(t, http.StatusOK, s.as_(tok, "UNNTAK", "GET", "/Flag?patient="+s.patients[0], nil).status)
	s.as_(tok, "UNNTAK", "GET", "/Flag?patient="+s.patients[1], nil)
	s.as_("forged", "", "GET", "/Flag/x", nil)
	s.as_("forged", "", "GET", "/Flag/x", nil)

	r := s.do("GET", "/metrics", nil)
	outcome(t, r, http.StatusNotFound)
	assert.NotContains(t, string(r.body), "kj_http_requests_total")

	admin := httptest.NewServer(s.srv.Admin())
	t.Cleanup(admin.Close)
	res, err := http.Get(admin.URL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode)
	text := body.String()
	for _, name := range []string{
		"kj_http_requests_total", "kj_usage_log_append_seconds_bucket", `kj_store_commit_group_size_bucket{engine="embedded"`,
		`kj_store_operation_seconds_bucket{engine="embedded",op="compartment"`, `kj_store_operation_seconds_bucket{engine="embedded",op="append-audit"`,
		`kj_token_cache_requests_total{result="hit"}`, `kj_token_cache_requests_total{result="miss"}`,
		"kj_notification_queue_depth", "kj_notification_failures_total",
		`kj_rate_limited_total{limit="failed-auth"}`, `kj_refusals_total{reason="rate-limited"}`, `kj_refusals_total{reason="not-authenticated"}`,
	} {
		assert.True(t, strings.Contains(text, name), "admin /metrics shows %s", name)
	}
}

func TestBehindATrustedProxyEachClientAddressHasItsBudget(t *testing.T) {
	proxies, err := ratelimit.ParseProxies("127.0.0.1")
	require.NoError(t, err)
	s := limited(t, api.Limits{FailedAuth: ratelimit.Spec{Burst: 2, Period: time.Hour}, TrustedProxies: proxies}, nil)
	guess := func(from string) response {
		return s.do("POST", "/auth/token", []byte(url.Values{"grant_type": {"authorization_code"}, "code": {"wrong"},
			"client_id": {"kj-demo-app-" + from}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "X-Forwarded-For", from)
	}
	for i := 0; i < 2; i++ {
		require.NotEqual(t, http.StatusTooManyRequests, guess("203.0.113.5").status)
	}
	retryAfter(t, guess("203.0.113.5"))
	assert.NotEqual(t, http.StatusTooManyRequests, guess("198.51.100.7").status, "another user behind the same proxy is not refused")
}
