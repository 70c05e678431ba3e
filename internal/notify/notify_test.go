package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// ---- helpers ----

func subJSON(criteria, endpoint, payload string) []byte {
	return fmt.Appendf(nil, `{
  "resourceType": "Subscription",
  "status": "requested",
  "reason": "Varsel om endret kritisk informasjon",
  "criteria": %q,
  "channel": {
    "type": "rest-hook",
    "endpoint": %q,
    "payload": "application/fhir+json",
    "_payload": {"extension": [{"url": %q, "valueCode": %q}]},
    "header": ["Authorization: Bearer receiver-secret"]
  }
}`, criteria, endpoint, ExtPayloadContent, payload)
}

func validateFHIR(t *testing.T, body []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	_, err = u.Unmarshal(body)
	require.NoError(t, err, "not a valid R4 resource: %s", body)
}

func issuesOf(t *testing.T, err error) []Issue {
	t.Helper()
	var e *Error
	require.ErrorAs(t, err, &e)
	return e.Issues
}

func hasIssue(t *testing.T, err error, path, contains string) {
	t.Helper()
	for _, is := range issuesOf(t, err) {
		if is.Path == path && strings.Contains(is.Message, contains) {
			return
		}
	}
	t.Fatalf("no issue at %s containing %q in %v", path, contains, err)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, path string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), embedded.Options{Path: path, NoSync: true})
	require.NoError(t, err)
	return s
}

// receiver is a real HTTP receiver that fails the first `fail` requests.
type receiver struct {
	mu       sync.Mutex
	fail     int
	requests int
	bodies   [][]byte
	headers  []http.Header
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.requests <= r.fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	r.bodies = append(r.bodies, body)
	r.headers = append(r.headers, req.Header.Clone())
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) snapshot() (int, [][]byte, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([][]byte(nil), r.bodies...), append([]http.Header(nil), r.headers...)
}

// storeAllergy writes a real AllergyIntolerance with clinical content, so a
// leak of it into a notification would show.
func storeAllergy(t *testing.T, s store.Store, id, patient string) {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"AllergyIntolerance","id":%q,"patient":{"reference":"Patient/%s"},
"criticality":"high","code":{"text":"Peanøtt"},"reaction":[{"manifestation":[{"text":"Anafylaksi"}]}]}`, id, patient)
	_, err := s.Commit(context.Background(), store.Batch{Writes: []store.Write{{Type: "AllergyIntolerance", ID: id, Op: store.OpPut, Patient: patient,
		Render: func(int64, time.Time) ([]byte, error) { return []byte(body), nil }}}})
	require.NoError(t, err)
}

func addSubscription(t *testing.T, st State, id, criteria, endpoint, payload string) Subscription {
	t.Helper()
	sub, err := ParseSubscription(subJSON(criteria, endpoint, payload), true, nil)
	require.NoError(t, err)
	sub.ID = id
	require.NoError(t, st.PutSubscription(context.Background(), sub))
	return sub
}

// collectKeys gathers every object key and every string value of a JSON
// document.
func collectKeys(v any, keys map[string]bool, values map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			keys[k] = true
			collectKeys(e, keys, values)
		}
	case []any:
		for _, e := range x {
			collectKeys(e, keys, values)
		}
	case string:
		values[x] = true
	}
}

// ---- ParseSubscription ----

func TestParseSubscriptionAccepts(t *testing.T) {
	allow := []string{"sykehus.no", ".helsenett.no"}
	sub, err := ParseSubscription(subJSON("AllergyIntolerance?patient=p1", "https://ehr.sykehus.no/hook", "id-only"), false, allow)
	require.NoError(t, err)
	assert.Equal(t, StatusActive, sub.Status)
	assert.Equal(t, "AllergyIntolerance", sub.ResourceType)
	assert.Equal(t, "p1", sub.Patient)
	assert.Equal(t, PayloadIDOnly, sub.Payload)
	assert.Equal(t, []string{"Authorization: Bearer receiver-secret"}, sub.Headers)

	sub, err = ParseSubscription(subJSON("Flag?patient=Patient/p-2", "https://a.b.helsenett.no/x", "empty"), false, allow)
	require.NoError(t, err)
	assert.Equal(t, "Flag", sub.ResourceType)
	assert.Equal(t, "p-2", sub.Patient)
	assert.Equal(t, PayloadEmpty, sub.Payload)

	// Development: http on loopback.
	_, err = ParseSubscription(subJSON("Flag?patient=p1", "http://127.0.0.1:8080/hook", "id-only"), true, nil)
	require.NoError(t, err)
	_, err = ParseSubscription(subJSON("Flag?patient=p1", "http://localhost/hook", "id-only"), true, nil)
	require.NoError(t, err)

	// The stored form round-trips and is valid R4.
	sub.ID = "s1"
	sub.Failures, sub.Events, sub.Error, sub.Status = 3, 7, "delivery failed: the endpoint answered HTTP 503", StatusError
	body, err := sub.Resource(2, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, err)
	validateFHIR(t, body)
	back, err := decodeStored(body)
	require.NoError(t, err)
	assert.Equal(t, sub, back)
}

func TestParseSubscriptionRefusals(t *testing.T) {
	allow := []string{"sykehus.no"}
	cases := []struct {
		name      string
		body      []byte
		dev       bool
		path, msg string
	}{
		{"http endpoint in production", subJSON("Flag?patient=p1", "http://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.channel.endpoint", "must use https"},
		{"http loopback in production", subJSON("Flag?patient=p1", "http://127.0.0.1:9/hook", "id-only"), false,
			"Subscription.channel.endpoint", "must use https"},
		{"endpoint not in allow-list", subJSON("Flag?patient=p1", "https://evil.example.org/hook", "id-only"), false,
			"Subscription.channel.endpoint", "not on the server's allow-list"},
		{"suffix trick not in allow-list", subJSON("Flag?patient=p1", "https://notsykehus.no/hook", "id-only"), false,
			"Subscription.channel.endpoint", "not on the server's allow-list"},
		{"non-loopback http in dev", subJSON("Flag?patient=p1", "http://ehr.sykehus.no/hook", "id-only"), true,
			"Subscription.channel.endpoint", "must use https"},
		{"full-resource payload", subJSON("Flag?patient=p1", "https://ehr.sykehus.no/hook", "full-resource"), false,
			"Subscription.channel.payload.extension", "notifications carry no health data"},
		{"criteria without patient", subJSON("AllergyIntolerance", "https://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.criteria", "exactly one patient"},
		{"criteria with another parameter", subJSON("Flag?category=x", "https://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.criteria", `parameter "category"`},
		{"criteria with two patients", subJSON("Flag?patient=p1,p2", "https://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.criteria", "exactly one patient"},
		{"criteria with extra parameter", subJSON("Flag?patient=p1&status=active", "https://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.criteria", "only the patient parameter"},
		{"criteria for another type", subJSON("Observation?patient=p1", "https://ehr.sykehus.no/hook", "id-only"), false,
			"Subscription.criteria", "only offered on critical information"},
		{"unknown payload content", subJSON("Flag?patient=p1", "https://ehr.sykehus.no/hook", "everything"), false,
			"Subscription.channel.payload.extension", "unknown payload content"},
		{"websocket channel", []byte(`{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"Flag?patient=p1",
			"channel":{"type":"websocket"}}`), false, "Subscription.channel.type", "only channel type rest-hook"},
		{"payload content missing", []byte(`{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"Flag?patient=p1",
			"channel":{"type":"rest-hook","endpoint":"https://ehr.sykehus.no/h","payload":"application/fhir+json"}}`), false,
			"Subscription.channel.payload.extension", "payload content is required"},
		{"content-type header", []byte(`{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"Flag?patient=p1",
			"channel":{"type":"rest-hook","endpoint":"https://ehr.sykehus.no/h","header":["Content-Type: text/plain"]}}`), false,
			"Subscription.channel.header[0]", "set by the server"},
		{"status error from a client", []byte(`{"resourceType":"Subscription","status":"error","reason":"r","criteria":"Flag?patient=p1",
			"channel":{"type":"rest-hook","endpoint":"https://ehr.sykehus.no/h"}}`), false,
			"Subscription.status", "set by the server"},
		{"not a Subscription", []byte(`{"resourceType":"Flag"}`), false, "Subscription.resourceType", "must be Subscription"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSubscription(c.body, c.dev, allow)
			require.Error(t, err)
			hasIssue(t, err, c.path, c.msg)
		})
	}

	// Every problem is reported, each with its path.
	_, err := ParseSubscription(subJSON("Observation", "http://evil.example.org", "full-resource"), false, allow)
	paths := map[string]bool{}
	for _, is := range issuesOf(t, err) {
		paths[is.Path] = true
	}
	assert.Equal(t, map[string]bool{"Subscription.criteria": true, "Subscription.channel.endpoint": true,
		"Subscription.channel.payload.extension": true}, paths)

	_, err = ParseSubscription([]byte("not json"), false, allow)
	hasIssue(t, err, "Subscription", "not a JSON object")
}

// ---- Notification ----

func TestNotificationBundles(t *testing.T) {
	events := []Event{
		{ResourceType: "AllergyIntolerance", ID: "a1", Patient: "p1", Seq: 4},
		{ResourceType: "AllergyIntolerance", ID: "a2", Patient: "p1", Seq: 5},
	}
	for _, base := range []string{"", "https://kj.example.no/fhir"} {
		for _, payload := range []string{PayloadIDOnly, PayloadEmpty} {
			sub := Subscription{ID: "s1", Status: StatusActive, Payload: payload, ResourceType: "AllergyIntolerance",
				Patient: "p1", ServerBase: base}
			body := Notification(sub, events)
			validateFHIR(t, body)

			var b map[string]any
			require.NoError(t, json.Unmarshal(body, &b))
			assert.Equal(t, "history", b["type"])
			entries := b["entry"].([]any)
			first := entries[0].(map[string]any)["resource"].(map[string]any)
			assert.Equal(t, "Parameters", first["resourceType"])
			params := map[string][]map[string]any{}
			for _, p := range first["parameter"].([]any) {
				pm := p.(map[string]any)
				params[pm["name"].(string)] = append(params[pm["name"].(string)], pm)
			}
			assert.Equal(t, "event-notification", params["type"][0]["valueCode"])
			assert.Equal(t, "5", params["events-since-subscription-start"][0]["valueString"])
			assert.Equal(t, base+map[bool]string{true: "", false: "/"}[base == ""]+"Subscription/s1",
				params["subscription"][0]["valueReference"].(map[string]any)["reference"])

			if payload == PayloadEmpty {
				assert.Len(t, entries, 1)
				assert.Empty(t, params["notification-event"])
				assert.NotContains(t, string(body), "a1")
				assert.NotContains(t, string(body), "Patient/")
				continue
			}
			assert.Len(t, entries, 3)
			require.Len(t, params["notification-event"], 2)
			assert.Contains(t, string(body), "AllergyIntolerance/a1")
			assert.Contains(t, string(body), "AllergyIntolerance/a2")
			assert.Contains(t, string(body), "Patient/p1")
			for _, e := range entries[1:] {
				assert.NotContains(t, e.(map[string]any), "resource")
			}
		}
	}
}

// ---- Dispatcher ----

// The notification arrives at a real HTTP receiver, as FHIR JSON, with the
// ids and the patient reference only.
func TestDeliveryCarriesNoHealthData(t *testing.T) {
	ctx := context.Background()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "AllergyIntolerance?patient=p1", srv.URL+"/hook", PayloadIDOnly)
	addSubscription(t, st, "s-flag", "Flag?patient=p1", srv.URL+"/flags", PayloadIDOnly)
	addSubscription(t, st, "s-other", "AllergyIntolerance?patient=p2", srv.URL+"/other", PayloadIDOnly)
	storeAllergy(t, s, "a1", "p1")

	clock := &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	d := NewDispatcher(st, Options{Now: clock.Now, ServerBase: "https://kj.example.no/fhir",
		Sleep: func(context.Context, time.Duration) error { t.Error("no retry expected"); return nil }})
	dels, err := d.Publish(ctx, Event{ResourceType: "AllergyIntolerance", ID: "a1", Patient: "p1"})
	require.NoError(t, err)
	require.Len(t, dels, 1, "only the subscription on that type and patient")
	require.NoError(t, d.Flush(ctx))

	n, bodies, headers := rcv.snapshot()
	require.Equal(t, 1, n)
	require.Len(t, bodies, 1)
	body := bodies[0]
	assert.Equal(t, "application/fhir+json", headers[0].Get("Content-Type"))
	assert.Equal(t, "Bearer receiver-secret", headers[0].Get("Authorization"))
	validateFHIR(t, body)

	for _, word := range []string{"Peanøtt", "Anafylaksi", "criticality", "high"} {
		assert.NotContains(t, string(body), word)
	}
	keys, values := map[string]bool{}, map[string]bool{}
	var doc any
	require.NoError(t, json.Unmarshal(body, &doc))
	collectKeys(doc, keys, values)
	for _, clinical := range []string{"code", "reaction", "manifestation", "substance", "criticality", "note",
		"category", "onsetDateTime", "clinicalStatus", "verificationStatus", "text", "period", "recorder"} {
		assert.NotContains(t, keys, clinical)
	}
	allowedKeys := map[string]bool{"resourceType": true, "type": true, "entry": true, "resource": true, "meta": true,
		"profile": true, "parameter": true, "name": true, "valueReference": true, "reference": true, "valueCode": true,
		"valueString": true, "part": true, "request": true, "method": true, "url": true, "response": true,
		"status": true, "fullUrl": true}
	for k := range keys {
		assert.True(t, allowedKeys[k], "unexpected key %q", k)
	}
	refs := []string{}
	for v := range values {
		if strings.HasPrefix(v, "https://kj.example.no/fhir/") {
			refs = append(refs, strings.TrimPrefix(v, "https://kj.example.no/fhir/"))
		}
	}
	assert.ElementsMatch(t, []string{"Subscription/s1", "AllergyIntolerance/a1", "Patient/p1"}, refs,
		"the only references: the subscription, the changed resource and the patient")

	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
	sub, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusActive, sub.Status)
	assert.Equal(t, int64(1), sub.Events)
}

// A receiver that fails twice gets the notification on the third attempt,
// after backoffs of 1 and 2 (fake) seconds; meanwhile the subscription is in
// status error with the last error and the failure count.
func TestRetryWithBackoffAndStatus(t *testing.T) {
	ctx := context.Background()
	rcv := &receiver{fail: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "Flag?patient=p1", srv.URL+"/hook", PayloadIDOnly)

	clock := &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var slept []time.Duration
	var during []Subscription
	var pendingDuring [][]Delivery
	d := NewDispatcher(st, Options{Now: clock.Now, BaseDelay: time.Second, MaxAttempts: 5,
		Sleep: func(ctx context.Context, dur time.Duration) error {
			sub, err := st.Subscription(ctx, "s1")
			if err != nil {
				return err
			}
			p, err := st.Pending(ctx)
			if err != nil {
				return err
			}
			mu.Lock()
			slept = append(slept, dur)
			during = append(during, sub)
			pendingDuring = append(pendingDuring, p)
			mu.Unlock()
			clock.advance(dur)
			return nil
		}})
	_, err := d.Publish(ctx, Event{ResourceType: "Flag", ID: "f1", Patient: "p1"})
	require.NoError(t, err)
	require.NoError(t, d.Flush(ctx))

	n, bodies, _ := rcv.snapshot()
	assert.Equal(t, 3, n, "delivered on the third attempt")
	require.Len(t, bodies, 1)
	assert.Contains(t, string(bodies[0]), "Flag/f1")
	validateFHIR(t, bodies[0])

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, slept)
	require.Len(t, during, 2)
	for i, sub := range during {
		assert.Equal(t, StatusError, sub.Status)
		assert.Equal(t, i+1, sub.Failures)
		assert.Equal(t, "delivery failed: the endpoint answered HTTP 503", sub.Error)
		require.Len(t, pendingDuring[i], 1)
		assert.Equal(t, i+1, pendingDuring[i][0].Attempts)
	}
	// The status as the REST layer would serve it, meanwhile: valid R4.
	body, err := during[0].Resource(1, clock.Now())
	require.NoError(t, err)
	validateFHIR(t, body)
	assert.Contains(t, string(body), `"status":"error"`)

	sub, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusActive, sub.Status)
	assert.Zero(t, sub.Failures)
	assert.Empty(t, sub.Error)
	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// A delivery that is given up leaves the subscription in error.
func TestGiveUpAfterMaxAttempts(t *testing.T) {
	ctx := context.Background()
	rcv := &receiver{fail: 100}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "Flag?patient=p1", srv.URL, PayloadEmpty)
	clock := &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var slept []time.Duration
	d := NewDispatcher(st, Options{Now: clock.Now, BaseDelay: time.Second, MaxDelay: 3 * time.Second, MaxAttempts: 4,
		Sleep: func(_ context.Context, dur time.Duration) error {
			slept = append(slept, dur)
			clock.advance(dur)
			return nil
		}})
	_, err := d.Publish(ctx, Event{ResourceType: "Flag", ID: "f1", Patient: "p1"})
	require.NoError(t, err)
	require.NoError(t, d.Flush(ctx))
	n, _, _ := rcv.snapshot()
	assert.Equal(t, 4, n)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, slept)
	sub, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusError, sub.Status)
	assert.Equal(t, 4, sub.Failures)
	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

var errShutdown = errors.New("shutting down")

// Pending deliveries survive a restart: the first server queues one
// notification without sending and fails another once, then stops; a new
// Dispatcher over the same file delivers both, in order.
func TestPendingSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kj.db")
	rcv := &receiver{fail: 1}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	clock := &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	s := openStore(t, path)
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "AllergyIntolerance?patient=p1", srv.URL+"/hook", PayloadIDOnly)
	d := NewDispatcher(st, Options{Now: clock.Now, BaseDelay: time.Minute,
		Sleep: func(context.Context, time.Duration) error { return errShutdown }})
	_, err := d.Publish(ctx, Event{ResourceType: "AllergyIntolerance", ID: "a1", Patient: "p1"})
	require.NoError(t, err)
	require.NoError(t, d.Flush(ctx)) // one attempt fails, the backoff is cut short by the shutdown
	_, err = d.Publish(ctx, Event{ResourceType: "AllergyIntolerance", ID: "a2", Patient: "p1"})
	require.NoError(t, err)
	n, bodies, _ := rcv.snapshot()
	assert.Equal(t, 1, n)
	assert.Empty(t, bodies)
	require.NoError(t, s.Close())

	// Restart.
	s2 := openStore(t, path)
	defer s2.Close()
	st2 := NewStoreState(s2)
	pending, err := st2.Pending(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 2)
	sub, err := st2.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusError, sub.Status)
	assert.Equal(t, 1, sub.Failures)

	var slept []time.Duration
	d2 := NewDispatcher(st2, Options{Now: clock.Now, BaseDelay: time.Minute,
		Sleep: func(_ context.Context, dur time.Duration) error {
			slept = append(slept, dur)
			clock.advance(dur)
			return nil
		}})
	require.NoError(t, d2.Flush(ctx))

	n, bodies, _ = rcv.snapshot()
	assert.Equal(t, 3, n)
	require.Len(t, bodies, 2)
	assert.Contains(t, string(bodies[0]), "AllergyIntolerance/a1", "delivered in order")
	assert.Contains(t, string(bodies[1]), "AllergyIntolerance/a2")
	assert.Equal(t, []time.Duration{time.Minute}, slept, "the saved next attempt is honoured")
	for _, b := range bodies {
		validateFHIR(t, b)
	}
	pending, err = st2.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
	sub, err = st2.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusActive, sub.Status)
	assert.Equal(t, int64(2), sub.Events)
}

// Run delivers what Publish queues while it runs, and stops with its context.
func TestRunDeliversPublished(t *testing.T) {
	rcv := &receiver{}
	got := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rcv.ServeHTTP(w, r)
		close(got)
	}))
	defer srv.Close()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "Flag?patient=p1", srv.URL, PayloadIDOnly)

	ctx, cancel := context.WithCancel(context.Background())
	d := NewDispatcher(st, Options{})
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	_, err := d.Publish(ctx, Event{ResourceType: "Flag", ID: "f9", Patient: "p1"})
	require.NoError(t, err)
	<-got
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	_, bodies, _ := rcv.snapshot()
	require.Len(t, bodies, 1)
	assert.Contains(t, string(bodies[0]), "Flag/f9")
}

// Updates by the REST layer keep the server's counters and status.
func TestPutSubscriptionKeepsServerState(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	sub := addSubscription(t, st, "s1", "Flag?patient=p1", "http://127.0.0.1:1/h", PayloadIDOnly)
	_, err := st.Record(ctx, "s1", errors.New("delivery failed: x"))
	require.NoError(t, err)
	sub.Reason = "changed"
	require.NoError(t, st.PutSubscription(ctx, sub))
	got, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, "changed", got.Reason)
	assert.Equal(t, StatusError, got.Status)
	assert.Equal(t, 1, got.Failures)

	other := sub
	other.Patient, other.Criteria = "p2", "Flag?patient=p2"
	assert.Error(t, st.PutSubscription(ctx, other), "a subscription cannot move to another patient")
}

// The validator used above is not vacuous: it refuses what R4 refuses.
func TestValidatorRefusesInvalid(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	for _, bad := range []string{
		`{"resourceType":"Bundle","type":"history","entry":[{"request":{"method":"FETCH","url":"x"}}]}`,
		`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"a","valueFoo":"b"}]}}]}`,
		`{"resourceType":"Bundle","type":"history","entry":[{"request":{"method":"GET"}}]}`,
	} {
		_, err := u.Unmarshal([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// A change committed with its outbox item is notified even when the
// process dies before queueing the notification: the next dispatcher over
// the same store queues and delivers it, once, and empties the outbox. A
// change whose notification was queued right away leaves no outbox item.
func TestOutboxSurvivesCrashBeforeQueueing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kj.db")
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	s := openStore(t, path)
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "AllergyIntolerance?patient=p1", srv.URL+"/hook", PayloadIDOnly)
	commitWithOutbox := func(id string) []store.QueueOp {
		body := fmt.Sprintf(`{"resourceType":"AllergyIntolerance","id":%q,"patient":{"reference":"Patient/p1"}}`, id)
		b := store.Batch{
			Writes: []store.Write{{Type: "AllergyIntolerance", ID: id, Op: store.OpPut, Patient: "p1",
				Render: func(int64, time.Time) ([]byte, error) { return []byte(body), nil }}},
			Queue: OutboxOps([]Event{{ResourceType: "AllergyIntolerance", ID: id, Patient: "p1"}}),
		}
		_, err := s.Commit(ctx, b)
		require.NoError(t, err)
		return b.Queue
	}
	d := NewDispatcher(st, Options{})
	// queued at once, as the REST layer does after its commit
	require.NoError(t, d.Published(ctx, commitWithOutbox("a1")))
	// committed, then the process dies before Published
	commitWithOutbox("a2")
	unqueued, err := st.Unqueued(ctx)
	require.NoError(t, err)
	require.Len(t, unqueued, 1, "only the change that was never queued is in the outbox")
	assert.Equal(t, "a2", unqueued[0].Events[0].ID)
	require.NoError(t, s.Close())

	s2 := openStore(t, path)
	defer s2.Close()
	st2 := NewStoreState(s2)
	require.NoError(t, NewDispatcher(st2, Options{}).Flush(ctx))
	_, bodies, _ := rcv.snapshot()
	require.Len(t, bodies, 2)
	assert.Contains(t, string(bodies[0]), "AllergyIntolerance/a1")
	assert.Contains(t, string(bodies[1]), "AllergyIntolerance/a2", "the change committed before the crash is notified after it")
	unqueued, err = st2.Unqueued(ctx)
	require.NoError(t, err)
	assert.Empty(t, unqueued)
	pending, err := st2.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)

	// A second restart sends nothing again.
	require.NoError(t, NewDispatcher(st2, Options{}).Flush(ctx))
	n, _, _ := rcv.snapshot()
	assert.Equal(t, 2, n)
}
