package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// recordOf lists every resource of a patient's record with its version,
// and the Subscription's whole history: what a notification must not
// change.
func recordOf(t *testing.T, s store.Store, patient string, subs ...string) []string {
	t.Helper()
	ctx := context.Background()
	vs, err := s.Compartment(ctx, patient, "")
	require.NoError(t, err)
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s/%s v%d", v.Type, v.ID, v.VersionID))
	}
	for _, id := range subs {
		h, err := s.History(ctx, SubscriptionType, id, store.HistoryQuery{})
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("history of Subscription/%s: %d versions", id, len(h)))
	}
	for _, typ := range []string{legacyDeliveryType, legacyOutboxType} {
		require.NoError(t, s.ScanType(ctx, typ, func(v store.Version) error {
			out = append(out, "private resource "+v.Type+"/"+v.ID)
			return nil
		}))
	}
	return out
}

// Notifications queued, tried, retried, delivered and done change no
// resource: the Subscription keeps its one version and the record its
// resources, while what GET /Subscription serves follows the delivery.
func TestNotificationsAddNoVersions(t *testing.T) {
	ctx := context.Background()
	rcv := &receiver{fail: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "Flag?patient=p1", srv.URL+"/hook", PayloadIDOnly)
	storeAllergy(t, s, "a1", "p1")
	before := recordOf(t, s, "p1", "s1")
	require.Contains(t, before, "history of Subscription/s1: 1 versions")

	clock := &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var during []store.Version
	d := NewDispatcher(st, Options{Now: clock.Now, BaseDelay: time.Second, MaxAttempts: 5,
		Sleep: func(ctx context.Context, dur time.Duration) error {
			v, err := st.Served(ctx, "s1")
			if err != nil {
				return err
			}
			mu.Lock()
			during = append(during, v)
			mu.Unlock()
			clock.advance(dur)
			return nil
		}})

	// A change committed with its outbox item, as the REST layer does,
	// and two published directly.
	ops := OutboxOps([]Event{{ResourceType: "Flag", ID: "f1", Patient: "p1"}})
	_, err := s.Commit(ctx, store.Batch{
		Writes: []store.Write{{Type: "Flag", ID: "f1", Op: store.OpPut, Patient: "p1",
			Render: func(int64, time.Time) ([]byte, error) { return []byte(`{"resourceType":"Flag","id":"f1"}`), nil }}},
		Queue: ops,
	})
	require.NoError(t, err)
	want := append(before[:len(before):len(before)], "Flag/f1 v1")
	sort.Strings(want)
	require.NoError(t, d.Published(ctx, ops))
	for _, id := range []string{"f2", "f3"} {
		_, err := d.Publish(ctx, Event{ResourceType: "Flag", ID: id, Patient: "p1"})
		require.NoError(t, err)
	}
	require.NoError(t, d.Flush(ctx))

	n, bodies, _ := rcv.snapshot()
	assert.Equal(t, 5, n, "two failed attempts, then three deliveries")
	require.Len(t, bodies, 3)
	after := recordOf(t, s, "p1", "s1")
	sort.Strings(after)
	assert.Equal(t, want, after, "only the Flag the change wrote is new; the Subscription has its one version")

	mu.Lock()
	require.Len(t, during, 2)
	for i, v := range during {
		assert.Equal(t, int64(1), v.VersionID, "the served version does not move with the delivery state")
		assert.Contains(t, string(v.Body), `"status":"error"`)
		assert.Contains(t, string(v.Body), `HTTP 503`)
		assert.Contains(t, string(v.Body), fmt.Sprintf(`"valueInteger":%d`, i+1), "failure count")
		validateFHIR(t, v.Body)
	}
	mu.Unlock()
	v, err := st.Served(ctx, "s1")
	require.NoError(t, err)
	assert.Contains(t, string(v.Body), `"status":"active"`)
	assert.Contains(t, string(v.Body), `"valueString":"3"`, "events-since-subscription-start")
	assert.NotContains(t, string(v.Body), `"error"`)
	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
	unqueued, err := st.Unqueued(ctx)
	require.NoError(t, err)
	assert.Empty(t, unqueued)
}

// What GET /Subscription/{id} serves: the stored Subscription with its
// delivery state and without channel.header, whose values are the
// receiver's credentials.
func TestServedSubscription(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	sub := addSubscription(t, st, "s1", "AllergyIntolerance?patient=p1", "http://127.0.0.1:1/hook", PayloadIDOnly)
	stored, err := s.Read(ctx, SubscriptionType, "s1")
	require.NoError(t, err)
	assert.Contains(t, string(stored.Body), "receiver-secret", "the store keeps the header to send it")

	_, err = st.Record(ctx, "s1", errors.New("delivery failed: the endpoint answered HTTP 500"))
	require.NoError(t, err)
	v, err := st.Served(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, "p1", v.Patient)
	assert.Equal(t, stored.VersionID, v.VersionID)
	assert.True(t, stored.LastUpdated.Equal(v.LastUpdated))
	validateFHIR(t, v.Body)
	for _, secret := range []string{"receiver-secret", "Authorization", `"header"`} {
		assert.NotContains(t, string(v.Body), secret)
	}
	var doc struct {
		Status  string `json:"status"`
		Error   string `json:"error"`
		Meta    struct{ VersionID, LastUpdated string }
		Channel map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(v.Body, &doc))
	assert.Equal(t, StatusError, doc.Status)
	assert.Equal(t, "delivery failed: the endpoint answered HTTP 500", doc.Error)
	assert.Equal(t, "1", doc.Meta.VersionID)
	assert.Contains(t, doc.Channel, "endpoint")

	// An update by the client keeps the delivery state and the secret
	// stays hidden.
	sub.Reason = "changed"
	require.NoError(t, st.PutSubscription(ctx, sub))
	v, err = st.Served(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v.VersionID)
	assert.Contains(t, string(v.Body), `"reason":"changed"`)
	assert.Contains(t, string(v.Body), `"status":"error"`)
	assert.NotContains(t, string(v.Body), "receiver-secret")

	// A client turning it off wins over the delivery state.
	sub.Status = StatusOff
	require.NoError(t, st.PutSubscription(ctx, sub))
	v, err = st.Served(ctx, "s1")
	require.NoError(t, err)
	assert.Contains(t, string(v.Body), `"status":"off"`)

	_, err = st.Served(ctx, "nope")
	assert.ErrorIs(t, err, ErrNoSubscription)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{{Type: SubscriptionType, ID: "s1", Op: store.OpDelete}}})
	require.NoError(t, err)
	_, err = st.Served(ctx, "s1")
	assert.ErrorIs(t, err, ErrNoSubscription, "a deleted subscription is not served")
}

// Changes published at once for one subscription each get their own
// event number: the read-modify-write of the count is serialised.
func TestConcurrentPublishNumbersEventsOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	addSubscription(t, st, "s1", "Flag?patient=p1", "http://127.0.0.1:1/hook", PayloadIDOnly)
	d := NewDispatcher(st, Options{})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := d.Publish(ctx, Event{ResourceType: "Flag", ID: fmt.Sprint("f", i), Patient: "p1"})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	require.Len(t, pending, n)
	seen := map[int64]bool{}
	for _, p := range pending {
		require.Len(t, p.Events, 1)
		seen[p.Events[0].Seq] = true
	}
	for i := int64(1); i <= n; i++ {
		assert.True(t, seen[i], "event number %d", i)
	}
	sub, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, int64(n), sub.Events)
}

// A reservation's Purge with PurgeTypes takes the patient's subscriptions
// and every notification item about the patient, and nothing of others.
func TestPurgeRemovesNotifications(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	for _, p := range []string{"p1", "p2"} {
		addSubscription(t, st, "s-"+p, "Flag?patient="+p, "http://127.0.0.1:1/hook", PayloadIDOnly)
		_, err := st.Record(ctx, "s-"+p, errors.New("delivery failed"))
		require.NoError(t, err)
		d := NewDispatcher(st, Options{})
		_, err = d.Publish(ctx, Event{ResourceType: "Flag", ID: "f", Patient: p})
		require.NoError(t, err)
		_, err = s.Commit(ctx, store.Batch{Queue: OutboxOps([]Event{{ResourceType: "Flag", ID: "g", Patient: p}})})
		require.NoError(t, err)
	}
	n, err := s.Purge(ctx, "p1", PurgeTypes)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the Subscription")

	_, err = st.Subscription(ctx, "s-p1")
	assert.ErrorIs(t, err, ErrNoSubscription)
	items := 0
	require.NoError(t, s.ScanQueue(ctx, statusQueue("s-p1"), func(store.QueueItem) error { items++; return nil }))
	assert.Zero(t, items, "the delivery state goes with it")
	pending, err := st.Pending(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, "p2", pending[0].Patient)
	unqueued, err := st.Unqueued(ctx)
	require.NoError(t, err)
	require.Len(t, unqueued, 1)
	assert.Equal(t, "p2", unqueued[0].Patient)
	sub, err := st.Subscription(ctx, "s-p2")
	require.NoError(t, err)
	assert.Equal(t, StatusError, sub.Status)
	assert.Equal(t, 1, sub.Failures)
}

// A store written by an earlier version, with the delivery state in the
// Subscription resource and the pending delivery and outbox record as
// resources of private types, goes on where it stopped: the state is
// kept, both notifications are delivered, in order and numbered on, and
// the private resources are gone without a trace.
func TestEarlierStoredStateIsMoved(t *testing.T) {
	ctx := context.Background()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)

	sub, err := ParseSubscription(subJSON("AllergyIntolerance?patient=p1", srv.URL+"/hook", PayloadIDOnly), true, nil)
	require.NoError(t, err)
	sub.ID, sub.Status, sub.Events, sub.Failures, sub.Error = "s1", StatusError, 7, 2, "delivery failed: earlier"
	old := Delivery{ID: "d7", Subscription: "s1", Patient: "p1", Events: []Event{{ResourceType: "AllergyIntolerance", ID: "a7", Patient: "p1", Seq: 7}}, Attempts: 2}
	oldBody, err := json.Marshal(old)
	require.NoError(t, err)
	write := func(typ, id string, body func(int64, time.Time) ([]byte, error)) store.Write {
		return store.Write{Type: typ, ID: id, Op: store.OpPut, Patient: "p1", Render: body}
	}
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{
		write(SubscriptionType, "s1", sub.Resource),
		write(legacyDeliveryType, "d7", func(int64, time.Time) ([]byte, error) { return oldBody, nil }),
		write(legacyOutboxType, "o8", func(int64, time.Time) ([]byte, error) {
			return []byte(`{"events":[{"ResourceType":"AllergyIntolerance","ID":"a8","Patient":"p1"}]}`), nil
		}),
	}})
	require.NoError(t, err)

	got, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, int64(7), got.Events, "the state in the resource is read")
	assert.Equal(t, StatusError, got.Status)

	require.NoError(t, NewDispatcher(st, Options{}).Flush(ctx))
	_, bodies, _ := rcv.snapshot()
	require.Len(t, bodies, 2)
	assert.Contains(t, string(bodies[0]), "AllergyIntolerance/a7")
	assert.Contains(t, string(bodies[1]), "AllergyIntolerance/a8")
	assert.Contains(t, string(bodies[1]), `"valueString":"8"`, "numbered on from the stored count")
	for _, typ := range []string{legacyDeliveryType, legacyOutboxType} {
		require.NoError(t, s.ScanType(ctx, typ, func(v store.Version) error {
			t.Errorf("%s/%s is still there", v.Type, v.ID)
			return nil
		}))
	}
	got, err = st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, int64(8), got.Events)
	assert.Equal(t, StatusActive, got.Status)
	assert.Zero(t, got.Failures)

	// The client's next update stores the resource without the state,
	// which stays.
	require.NoError(t, st.PutSubscription(ctx, sub))
	v, err := s.Read(ctx, SubscriptionType, "s1")
	require.NoError(t, err)
	assert.False(t, strings.Contains(string(v.Body), ExtEventCount), "the stored resource no longer carries the state: %s", v.Body)
	got, err = st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, int64(8), got.Events)

	// A reservation's purge leaves nothing of them either, and nothing of the subscription.
	_, err = s.Purge(ctx, "p1", PurgeTypes)
	require.NoError(t, err)
	for _, r := range [][2]string{{legacyDeliveryType, "d7"}, {legacyOutboxType, "o8"}} {
		_, err := s.History(ctx, r[0], r[1], store.HistoryQuery{})
		assert.ErrorIs(t, err, store.ErrNotFound, "%s/%s after the purge", r[0], r[1])
	}
	_, err = st.Subscription(ctx, "s1")
	assert.ErrorIs(t, err, ErrNoSubscription)
}

// An update of a Subscription stored by an earlier version, before any
// notification: its state moves into the queue item with the update.
func TestEarlierSubscriptionStateSurvivesUpdate(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	sub, err := ParseSubscription(subJSON("Flag?patient=p1", "http://127.0.0.1:1/hook", PayloadEmpty), true, nil)
	require.NoError(t, err)
	sub.ID = "s1"
	legacy := sub
	legacy.Events, legacy.Failures, legacy.Error, legacy.Status = 12, 3, "delivery failed: x", StatusError
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{{Type: SubscriptionType, ID: "s1", Op: store.OpPut, Patient: "p1", Render: legacy.Resource}}})
	require.NoError(t, err)

	sub.Reason = "updated"
	require.NoError(t, st.PutSubscription(ctx, sub))
	got, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, "updated", got.Reason)
	assert.Equal(t, int64(12), got.Events)
	assert.Equal(t, 3, got.Failures)
	assert.Equal(t, StatusError, got.Status)
}

// The REST layer creates a subscription in its own batch, with the
// usage-log record of the request: CreateWrite is that write.
func TestCreateWriteInTheCallersBatch(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "kj.db"))
	defer s.Close()
	st := NewStoreState(s)
	sub, err := ParseSubscription(subJSON("Flag?patient=p1", "http://127.0.0.1:1/hook", PayloadIDOnly), true, nil)
	require.NoError(t, err)
	sub.ID = "s1"
	link := func(prev string, body []byte) ([]byte, string, error) { return body, prev + "x", nil }
	audit := store.AuditEntry{Patient: "p1", Outcome: "0", Recorded: time.Now(), Body: []byte(`{"resourceType":"AuditEvent"}`)}
	vs, err := s.Commit(ctx, store.Batch{Writes: []store.Write{st.CreateWrite(sub)}, Audit: []store.AuditEntry{audit}, Link: link})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.Equal(t, "p1", vs[0].Patient, "in the watched patient's compartment")
	assert.NotContains(t, string(vs[0].Body), ExtEventCount, "no delivery state in the stored resource")

	got, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, StatusActive, got.Status)
	assert.Equal(t, sub.Headers, got.Headers, "stored with the header, to send it")
	v, err := st.Served(ctx, "s1")
	require.NoError(t, err)
	validateFHIR(t, v.Body)
	assert.NotContains(t, string(v.Body), "receiver-secret")

	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{st.CreateWrite(sub)}})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce, "an id clash never overwrites")
	assert.Equal(t, store.ConflictExists, ce.Reason)
}
