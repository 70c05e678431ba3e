package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/lease"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// processHeader names the process a notification came from, so the
// receiver can drop what a process sent as it died.
const processHeader = "X-Test-Process"

type tagged struct {
	process string
	next    http.RoundTripper
}

func (t tagged) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(processHeader, t.process)
	return t.next.RoundTrip(r)
}

// arrival is one event of a notification as the receiver got it.
type arrival struct {
	seq   int64
	focus string
}

// gatedReceiver is a real HTTP receiver that records each notification's
// events per subscription. While closed it holds requests; a request
// from a dead process is answered 503 and not recorded (its sender gave
// up on it).
type gatedReceiver struct {
	mu      sync.Mutex
	got     map[string][]arrival
	held    int
	open    chan struct{}
	dead    string
	opened  bool
	badBody []string
}

func newGatedReceiver() *gatedReceiver {
	return &gatedReceiver{got: map[string][]arrival{}, open: make(chan struct{})}
}

func (g *gatedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	open := g.open
	if !g.opened {
		g.held++
	}
	g.mu.Unlock()
	select {
	case <-open:
	case <-r.Context().Done():
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Header.Get(processHeader) == g.dead {
		http.Error(w, "gone", http.StatusServiceUnavailable)
		return
	}
	var b bundle
	if err := json.Unmarshal(body, &b); err != nil || len(b.Entry) == 0 || b.Entry[0].Resource == nil {
		g.badBody = append(g.badBody, string(body))
		w.WriteHeader(http.StatusOK)
		return
	}
	var sub string
	for _, p := range b.Entry[0].Resource.Parameter {
		switch p.Name {
		case "subscription":
			sub = strings.TrimPrefix(p.ValueReference.Reference, "Subscription/")
		case "notification-event":
			var a arrival
			for _, part := range p.Part {
				switch part.Name {
				case "event-number":
					a.seq, _ = strconv.ParseInt(part.ValueString, 10, 64)
				case "focus":
					a.focus = part.ValueReference.Reference
				}
			}
			g.got[sub] = append(g.got[sub], a)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (g *gatedReceiver) closeGate() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open, g.opened, g.held = make(chan struct{}), false, 0
}

// openGate lets held and further requests through, dropping those of the
// dead process.
func (g *gatedReceiver) openGate(dead string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dead, g.opened = dead, true
	close(g.open)
}

func (g *gatedReceiver) heldRequests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *gatedReceiver) arrivals() map[string][]arrival {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]arrival{}
	for k, v := range g.got {
		out[k] = append([]arrival(nil), v...)
	}
	return out
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Three processes on one MongoDB database, each with its dispatcher (as
// `kjernejournal serve` runs it, with the lease): every notification
// reaches its subscriber once, in order per subscription, whichever
// process queued it; and when the delivering process dies with
// notifications pending, another takes over and still every one arrives
// once, with the change a dead process committed but did not queue.
func TestDispatchersOnOneDatabaseDeliverOnce(t *testing.T) {
	rcv := newGatedReceiver()
	rcv.openGate("")
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	uri, db := mongotest.URI(t), mongotest.Database(t)
	const n = 3
	type process struct {
		d      *Dispatcher
		l      *lease.Lease
		cancel context.CancelFunc
		done   chan error
	}
	procs := make([]*process, n)
	var stores []*mongodb.Store
	for i := range procs {
		s, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db})
		require.NoError(t, err)
		defer s.Close()
		stores = append(stores, s)
		l, err := lease.New(s, "notify", lease.Options{TTL: 400 * time.Millisecond, Skew: 60 * time.Millisecond})
		require.NoError(t, err)
		client := &http.Client{Timeout: 10 * time.Second, Transport: tagged{process: strconv.Itoa(i), next: http.DefaultTransport}}
		d := NewDispatcher(&StoreState{S: s, Numbers: s}, Options{Client: client, Lease: l, Poll: 50 * time.Millisecond})
		procs[i] = &process{d: d, l: l, done: make(chan error, 1)}
	}
	st := procs[0].d.state
	addSubscription(t, st, "s1", "Flag?patient=p1", srv.URL, PayloadIDOnly)
	addSubscription(t, st, "s2", "Flag?patient=p1", srv.URL, PayloadIDOnly)
	addSubscription(t, st, "s3", "Flag?patient=p2", srv.URL, PayloadIDOnly)

	want := map[string][]string{}
	published := 0
	// publish queues events k in [from, to) round robin through the
	// processes, one at a time, as requests spread over the processes.
	publish := func(from, to int, alive ...int) {
		for k := from; k < to; k++ {
			p, subs := "p1", []string{"s1", "s2"}
			if k%3 == 2 {
				p, subs = "p2", []string{"s3"}
			}
			id := fmt.Sprintf("f%d", k)
			dels, err := procs[alive[k%len(alive)]].d.Publish(context.Background(), Event{ResourceType: "Flag", ID: id, Patient: p})
			require.NoError(t, err)
			require.Len(t, dels, len(subs))
			for _, s := range subs {
				want[s] = append(want[s], "Flag/"+id)
			}
			published = to
		}
	}
	arrived := func() bool {
		got := rcv.arrivals()
		for s, w := range want {
			if len(got[s]) < len(w) {
				return false
			}
		}
		return true
	}
	check := func(phase string) {
		t.Helper()
		got := rcv.arrivals()
		for s, w := range want {
			var focus []string
			for i, a := range got[s] {
				focus = append(focus, a.focus)
				assert.Equal(t, int64(i+1), a.seq, "%s: event number of the %d. notification on %s", phase, i+1, s)
			}
			assert.Equal(t, w, focus, "%s: every notification once, in order, on %s", phase, s)
		}
		assert.Empty(t, rcv.badBody)
	}

	// Pending before any dispatcher runs: each would deliver all of it
	// without the lease.
	publish(0, 12, 0, 1, 2)
	for _, p := range procs {
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		defer cancel()
		go func() { p.done <- p.d.Run(ctx) }()
	}
	waitUntil(t, 20*time.Second, "the pending notifications arrive", arrived)
	// Queued by every process while they run: the holder finds the others'
	// by polling.
	publish(12, 24, 0, 1, 2)
	waitUntil(t, 20*time.Second, "the notifications queued while running arrive", arrived)
	check("three processes")

	// The holder dies while its sends are held by the receiver. Another
	// process died earlier between a commit and the queueing of its
	// notifications: its outbox item is a minute old.
	rcv.closeGate()
	publish(24, 33, 0, 1, 2)
	left := OutboxOps([]Event{{ResourceType: "Flag", ID: "left", Patient: "p2"}})
	var rec outboxRecord
	require.NoError(t, json.Unmarshal(left[0].Body, &rec))
	rec.At = time.Now().Add(-OutboxAge)
	left[0].Body, _ = json.Marshal(rec)
	_, err := stores[2].Commit(context.Background(), store.Batch{Queue: left})
	require.NoError(t, err)
	want["s3"] = append(want["s3"], "Flag/left")
	waitUntil(t, 20*time.Second, "a send is under way", func() bool { return rcv.heldRequests() > 0 })
	dead := -1
	for i, p := range procs {
		if p.l.Held() {
			dead = i
		}
	}
	require.GreaterOrEqual(t, dead, 0, "a process holds the lease while it sends")
	procs[dead].cancel()
	assert.ErrorIs(t, <-procs[dead].done, context.Canceled)
	rcv.openGate(strconv.Itoa(dead))
	var alive []int
	for i := range procs {
		if i != dead {
			alive = append(alive, i)
		}
	}
	waitUntil(t, 20*time.Second, "the others take over and deliver what was pending", arrived)
	check("after a process died")
	publish(published, 39, alive...)
	waitUntil(t, 20*time.Second, "the living processes deliver what they queue", arrived)
	check("after the takeover")
	// The last sends are taken off the queue once they are answered.
	waitUntil(t, 20*time.Second, "nothing stays queued", func() bool {
		pending, err := st.Pending(context.Background())
		require.NoError(t, err)
		return len(pending) == 0
	})
	check("in the end")
}

// Processes queueing for one subscription at the same instant give every
// event its own number.
func TestConcurrentPublishOnProcessesNumbersOnce(t *testing.T) {
	uri, db := mongotest.URI(t), mongotest.Database(t)
	var states []*StoreState
	for range 3 {
		s, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db})
		require.NoError(t, err)
		defer s.Close()
		states = append(states, &StoreState{S: s, Numbers: s})
	}
	addSubscription(t, states[0], "s1", "Flag?patient=p1", "http://127.0.0.1:1/h", PayloadIDOnly)
	const each = 8
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for i, st := range states {
		wg.Go(func() {
			for k := range each {
				del, err := st.Enqueue(context.Background(), "s1", []Event{{ResourceType: "Flag", ID: fmt.Sprintf("f%d-%d", i, k), Patient: "p1"}}, time.Now())
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				seen[del.Events[0].Seq]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, seen, 3*each, "distinct event numbers")
	for n, c := range seen {
		assert.Equal(t, 1, c, "event number %d given %d times", n, c)
	}
}
