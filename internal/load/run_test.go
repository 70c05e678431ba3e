package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is a real loopback HTTP server that counts every request
// by path and answers by path prefix: /ok -> 200, /fail -> 500, /created ->
// 201, POST /{Type} -> 201 after checking the body is FHIR JSON.
type countingServer struct {
	*httptest.Server
	total atomic.Int64
	mu    sync.Mutex
	byKey map[string]int64
}

const okBody = `{"resourceType":"Patient","id":"p1"}`

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	cs := &countingServer{byKey: map[string]int64{}}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.total.Add(1)
		cs.mu.Lock()
		cs.byKey[r.Method+" "+r.URL.Path]++
		cs.mu.Unlock()
		w.Header().Set("Content-Type", FHIRJSON)
		switch {
		case r.Method == http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			var v struct{ ResourceType string }
			if r.Header.Get("Content-Type") != FHIRJSON || json.Unmarshal(b, &v) != nil || "/"+v.ResourceType != r.URL.Path {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"resourceType":"OperationOutcome"}`)
				return
			}
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, string(b))
		case strings.HasPrefix(r.URL.Path, "/fail"):
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
		case strings.HasPrefix(r.URL.Path, "/created"):
			w.WriteHeader(http.StatusCreated)
		default:
			io.WriteString(w, okBody)
		}
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) count(key string) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byKey[key]
}

func cfg(url string) Config {
	// Duration is a safety bound here; MaxRequests ends these runs.
	return Config{BaseURL: url, Concurrency: 8, Duration: time.Minute, Seed: 42}
}

func TestRunCountsMatchServer(t *testing.T) {
	srv := newCountingServer(t)
	c := cfg(srv.URL)
	c.MaxRequests = 500
	res, err := Run(context.Background(), c, ReadScenario([]string{"ok/1", "/ok/2", "ok/3"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 || srv.total.Load() != 500 {
		t.Fatalf("generator counted %d, server %d, want 500 each", res.Requests, srv.total.Load())
	}
	if res.Errors() != 0 || res.Succeeded() != 500 || res.Statuses[200] != 500 {
		t.Fatalf("errors %d, succeeded %d, statuses %v; samples %q", res.Errors(), res.Succeeded(), res.Statuses, res.ErrorSamples)
	}
	if res.BytesReceived != 500*int64(len(okBody)) {
		t.Errorf("bytes received %d, want %d", res.BytesReceived, 500*len(okBody))
	}
	if res.Latency.Count() != 500 || res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max {
		t.Errorf("latency count %d p50 %v p90 %v p99 %v max %v", res.Latency.Count(), res.P50, res.P90, res.P99, res.Max)
	}
	if res.Duration <= 0 || res.Throughput <= 0 {
		t.Errorf("duration %v throughput %v", res.Duration, res.Throughput)
	}
	for _, p := range []string{"/ok/1", "/ok/2", "/ok/3"} {
		if srv.count("GET "+p) == 0 {
			t.Errorf("%s never requested", p)
		}
	}
}

func TestRunCountsUnexpectedStatuses(t *testing.T) {
	srv := newCountingServer(t)
	c := cfg(srv.URL)
	c.MaxRequests = 400
	sc := func(r *rand.Rand) Request {
		switch r.IntN(4) {
		case 0:
			return Request{Path: "/fail"} // 500, expected 200
		case 1:
			return Request{Path: "/created/wrong", Expect: []int{200}} // 201, expected 200
		case 2:
			return Request{Path: "/ok", Expect: []int{200, 404}}
		default:
			return Request{Path: "/created/right", Expect: []int{201}}
		}
	}
	res, err := Run(context.Background(), c, sc)
	if err != nil {
		t.Fatal(err)
	}
	fails, wrong, right, ok := srv.count("GET /fail"), srv.count("GET /created/wrong"), srv.count("GET /created/right"), srv.count("GET /ok")
	created := wrong + right
	if fails+created+ok != 400 || res.Requests != 400 {
		t.Fatalf("server saw %d, generator %d, want 400", fails+created+ok, res.Requests)
	}
	if res.TransportErrors != 0 {
		t.Fatalf("transport errors %d: %q", res.TransportErrors, res.ErrorSamples)
	}
	if res.Statuses[500] != fails || res.Statuses[200] != ok || res.Statuses[201] != created {
		t.Errorf("statuses %v, server fail/ok/created %d/%d/%d", res.Statuses, fails, ok, created)
	}
	if res.StatusErrors != fails+wrong || wrong == 0 || fails == 0 {
		t.Errorf("status errors %d, want %d 500s + %d unexpected 201s", res.StatusErrors, fails, wrong)
	}
	if res.Latency.Count() != uint64(res.Succeeded()) {
		t.Errorf("latency covers %d requests, want only the %d successes", res.Latency.Count(), res.Succeeded())
	}
	if len(res.ErrorSamples) == 0 || len(res.ErrorSamples) > MaxErrorSamples {
		t.Fatalf("%d error samples", len(res.ErrorSamples))
	}
	var saw500 bool
	for _, s := range res.ErrorSamples {
		if strings.Contains(s, "status 500") && strings.Contains(s, "OperationOutcome") {
			saw500 = true
		}
	}
	if !saw500 {
		t.Errorf("no sample shows the 500 with its body: %q", res.ErrorSamples)
	}
}

func TestRunCreateScenario(t *testing.T) {
	srv := newCountingServer(t)
	c := cfg(srv.URL)
	c.MaxRequests = 200
	for _, typ := range SyntheticTypes {
		bodies, err := SyntheticBodies(typ, []string{"a", "Patient/b"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), c, CreateScenario(bodies, typ))
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 200 || res.Errors() != 0 || srv.count("POST /"+typ) != 200 {
			t.Fatalf("%s: %d requests, %d errors, server %d; %q", typ, res.Requests, res.Errors(), srv.count("POST /"+typ), res.ErrorSamples)
		}
	}
	// A server answering 200 to a create is wrong and must show as errors.
	res, err := Run(context.Background(), c, CreateScenario(func(*rand.Rand) []byte { return []byte(`{}`) }, "ok"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusErrors != 200 {
		t.Errorf("status errors %d, want 200", res.StatusErrors)
	}
}

func TestRunStopsAtMaxRequestsBelowConcurrency(t *testing.T) {
	srv := newCountingServer(t)
	c := cfg(srv.URL)
	c.Concurrency = 16
	c.MaxRequests = 3
	res, err := Run(context.Background(), c, ReadScenario([]string{"ok"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 3 || srv.total.Load() != 3 {
		t.Fatalf("generator %d, server %d, want 3", res.Requests, srv.total.Load())
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := newCountingServer(t)
	c := cfg(srv.URL)
	c.Duration = 200 * time.Millisecond
	c.Warmup = 50 * time.Millisecond
	c.Concurrency = 4
	// No MaxRequests: only Duration can end this; if it did not, the test
	// binary's timeout would.
	res, err := Run(context.Background(), c, ReadScenario([]string{"ok"}))
	if err != nil {
		t.Fatal(err)
	}
	// How many requests fit in the window depends on the machine, so only
	// their accounting is checked.
	if res.Errors() != 0 {
		t.Fatalf("%d errors: %q", res.Errors(), res.ErrorSamples)
	}
	if got := srv.total.Load(); got != res.Requests+res.WarmupRequests {
		t.Errorf("server saw %d, generator measured %d + warmup %d", got, res.Requests, res.WarmupRequests)
	}
	t.Logf("%d warmup + %d measured requests in %v", res.WarmupRequests, res.Requests, res.Duration)
}

func TestRunStopsWhenServerHangs(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	// Duration is far away: only the per-request timeout can end these
	// requests, and the run must end with them.
	c := Config{BaseURL: srv.URL, Concurrency: 4, Duration: time.Hour, MaxRequests: 4, Timeout: 200 * time.Millisecond}
	res, err := Run(context.Background(), c, ReadScenario([]string{"hang"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4 || res.TransportErrors != 4 || hits.Load() > 4 || res.Latency.Count() != 0 {
		t.Fatalf("requests %d, transport errors %d, server hits %d", res.Requests, res.TransportErrors, hits.Load())
	}
	if !strings.Contains(strings.Join(res.ErrorSamples, "\n"), "Timeout") {
		t.Errorf("samples do not mention the timeout: %q", res.ErrorSamples)
	}

	// Bounded by Duration alone, requests in flight at the deadline are
	// waited for (up to Timeout) and counted.
	before := hits.Load()
	c = Config{BaseURL: srv.URL, Concurrency: 4, Duration: 50 * time.Millisecond, Timeout: 200 * time.Millisecond}
	if res, err = Run(context.Background(), c, ReadScenario([]string{"hang"})); err != nil {
		t.Fatal(err)
	}
	if res.TransportErrors != res.Requests || hits.Load()-before > res.Requests || res.Succeeded() != 0 {
		t.Fatalf("requests %d, transport errors %d, server hits %d", res.Requests, res.TransportErrors, hits.Load()-before)
	}
}

func TestRunCancelReturnsPartialResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 100 {
			cancel()
		}
	}))
	t.Cleanup(srv.Close)
	c := Config{BaseURL: srv.URL, Concurrency: 4, Duration: time.Hour}
	res, err := Run(ctx, c, ReadScenario([]string{"x"}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Requests == 0 || res.Requests > hits.Load() || res.TransportErrors != 0 {
		t.Fatalf("requests %d (server %d), transport errors %d: %q", res.Requests, hits.Load(), res.TransportErrors, res.ErrorSamples)
	}
}

func TestRunSendsHeaders(t *testing.T) {
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" || r.Header.Get("Accept") != FHIRJSON || r.Header.Get("Accept-Encoding") != "" {
			bad.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	c := Config{BaseURL: srv.URL + "/", Concurrency: 2, Duration: time.Minute, MaxRequests: 20,
		Header: http.Header{"Authorization": {"Bearer t"}}}
	res, err := Run(context.Background(), c, ReadScenario([]string{"Patient/1"}))
	if err != nil || res.Requests != 20 || bad.Load() != 0 || res.Errors() != 0 {
		t.Fatalf("err %v, requests %d, bad headers %d, errors %d", err, res.Requests, bad.Load(), res.Errors())
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{
		"http://10.0.0.1:8080", "http://192.168.1.10", "http://example.com", "http://localhost.example.com",
		"http://127.0.0.1.nip.io", "http://[2001:db8::1]:80", "http://0.0.0.0:8080", "http://[::ffff:10.0.0.1]",
	} {
		_, err := Run(context.Background(), Config{BaseURL: u, Concurrency: 1, Duration: time.Second, MaxRequests: 1},
			ReadScenario([]string{"x"}))
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: err = %v, want ErrNotLoopback", u, err)
		}
		if _, err := CheckBaseURL(u, true); err != nil {
			t.Errorf("%s with AllowRemote: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:8080", "http://localhost:1", "HTTP://LocalHost", "http://[::ffff:127.0.0.1]:80"} {
		if _, err := CheckBaseURL(u, false); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"ftp://127.0.0.1", "127.0.0.1:8080", "http://127.0.0.1/?a=b", "http://"} {
		if _, err := CheckBaseURL(u, false); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestRunRejectsUnboundedOrInvalidConfig(t *testing.T) {
	sc := ReadScenario([]string{"x"})
	for i, c := range []Config{
		{BaseURL: "http://127.0.0.1:1", Concurrency: 1},                                              // no Duration
		{BaseURL: "http://127.0.0.1:1", Concurrency: 0, Duration: time.Second},                       // no workers
		{BaseURL: "http://127.0.0.1:1", Concurrency: 1, Duration: time.Second, MaxRequests: -1},      //
		{BaseURL: "http://127.0.0.1:1", Concurrency: MaxConcurrency + 1, Duration: time.Second},      //
		{BaseURL: "http://127.0.0.1:1", Concurrency: 1, Duration: time.Second, Warmup: -time.Second}, //
	} {
		if _, err := Run(context.Background(), c, sc); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	if _, err := Run(context.Background(), Config{BaseURL: "http://127.0.0.1:1", Concurrency: 1, Duration: time.Second}, nil); err == nil {
		t.Error("nil scenario accepted")
	}
	bad := func(*rand.Rand) Request { return Request{Method: "BAD METHOD", Path: "/x"} }
	if _, err := Run(context.Background(), Config{BaseURL: "http://127.0.0.1:1", Concurrency: 1, Duration: time.Second}, bad); err == nil {
		t.Error("unbuildable request accepted")
	}
}

func TestScenarios(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	seen := map[string]bool{}
	rd := ReadScenario([]string{"Patient/1", "/Flag/2"})
	for range 100 {
		q := rd(r)
		if q.Method != http.MethodGet || q.Body != nil || !q.expected(200) {
			t.Fatalf("read request %+v", q)
		}
		seen[q.Path] = true
	}
	if len(seen) != 2 || !seen["/Patient/1"] || !seen["/Flag/2"] {
		t.Errorf("read paths %v", seen)
	}
	clear(seen)
	cp := CompartmentScenario([]string{"1", "Patient/2"}, []string{"Flag", "Encounter"})
	for range 200 {
		seen[cp(r).Path] = true
	}
	for _, p := range []string{"/Patient/1/Flag", "/Patient/1/Encounter", "/Patient/2/Flag", "/Patient/2/Encounter"} {
		if !seen[p] {
			t.Errorf("compartment path %s never drawn; saw %v", p, seen)
		}
	}
	cr := CreateScenario(func(*rand.Rand) []byte { return []byte("{}") }, "Flag")(r)
	if cr.Method != http.MethodPost || cr.Path != "/Flag" || cr.expected(200) || !cr.expected(201) || cr.ContentType != FHIRJSON {
		t.Errorf("create request %+v", cr)
	}
}

func TestSyntheticBodies(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	ids := []string{"p-1", "Patient/p-2"}
	for _, typ := range SyntheticTypes {
		gen, err := SyntheticBodies(typ, ids)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			var m map[string]any
			b := gen(r)
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v: %s", typ, err, b)
			}
			if m["resourceType"] != typ || m["id"] != nil {
				t.Fatalf("%s body: %s", typ, b)
			}
			var ref string
			switch typ {
			case "Flag":
				// R4 Flag: status, code and subject are 1..1.
				if m["status"] != "active" || m["code"] == nil {
					t.Fatalf("Flag lacks required elements: %s", b)
				}
				ref = m["subject"].(map[string]any)["reference"].(string)
			case "AllergyIntolerance":
				if m["clinicalStatus"] == nil || m["verificationStatus"] == nil || m["code"] == nil {
					t.Fatalf("AllergyIntolerance incomplete: %s", b)
				}
				ref = m["patient"].(map[string]any)["reference"].(string)
			}
			if ref != "Patient/p-1" && ref != "Patient/p-2" {
				t.Fatalf("%s references %q", typ, ref)
			}
		}
	}
	if _, err := SyntheticBodies("Observation", ids); err == nil {
		t.Error("unknown type accepted")
	}
	if _, err := SyntheticBodies("Flag", nil); err == nil {
		t.Error("no patients accepted")
	}
}

func TestReport(t *testing.T) {
	h := NewHistogram()
	h.Record(2 * time.Millisecond)
	rep := Report{
		Name:   "read",
		Config: Config{BaseURL: "http://127.0.0.1:8080", Concurrency: 32, Duration: 10 * time.Second, Header: http.Header{"Authorization": {"Bearer secret"}}},
		Result: Result{Requests: 1000, StatusErrors: 2, Statuses: map[int]int64{200: 998, 500: 2}, Duration: 2 * time.Second,
			Throughput: 500, P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 4 * time.Millisecond,
			Latency: h, BytesReceived: 3 << 20},
		PeakRSS: 100 << 20,
	}
	line := rep.String()
	for _, want := range []string{"read c=32", "1000 req", "2 err", "500.0 req/s", "p50 1.500ms", "p99 3.000ms", "3.0 MiB", "peak RSS 100.0 MiB"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "\n") {
		t.Errorf("summary is not one line: %q", line)
	}
	hdr := strings.Split(MarkdownHeader(), "\n")
	row := rep.MarkdownRow()
	if len(hdr) != 2 || strings.Count(hdr[0], "|") != strings.Count(row, "|") || strings.Count(hdr[1], "|") != strings.Count(row, "|") {
		t.Errorf("markdown header/row mismatch:\n%s\n%s", MarkdownHeader(), row)
	}
	var buf strings.Builder
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "secret") {
		t.Fatal("JSON report leaks the Authorization header")
	}
	var j JSONReport
	if err := json.Unmarshal([]byte(buf.String()), &j); err != nil {
		t.Fatal(err)
	}
	if j.Requests != 1000 || j.StatusErrors != 2 || j.P50MS != 1.5 || j.Statuses["500"] != 2 || j.PeakRSS != 100<<20 || j.Throughput != 500 {
		t.Errorf("JSON report %+v", j)
	}
}

func ExampleReport_MarkdownRow() {
	rep := Report{Name: "read", Config: Config{Concurrency: 32}, Result: Result{Requests: 10, Throughput: 5, P50: time.Millisecond}}
	fmt.Println(MarkdownHeader())
	fmt.Println(rep.MarkdownRow())
	// Output:
	// | run | c | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | MiB recv | peak RSS MiB |
	// |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
	// | read | 32 | 10 | 0 | 5.0 | 1.000 | 0.000 | 0.000 | 0.000 | 0.0 | – |
}
