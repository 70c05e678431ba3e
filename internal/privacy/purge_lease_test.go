package privacy

import (
	"context"
	"log/slog"
	"os"
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
	"github.com/kjernejournal/kjernejournal/internal/syncbuf"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// runCounter is a real store that notes the slot in which each purge run
// starts (a run starts with its scan of the privacy settings).
type runCounter struct {
	*mongodb.Store
	slot func() int64
	mu   *sync.Mutex
	runs map[int64]int
}

func (r runCounter) ScanType(ctx context.Context, typ string, fn func(store.Version) error) error {
	if typ == "Consent" {
		r.mu.Lock()
		r.runs[r.slot()]++
		r.mu.Unlock()
	}
	return r.Store.ScanType(ctx, typ, fn)
}

// Two processes on one MongoDB database, each running the purge with its
// lease: one purge runs per interval, and each due record is purged (and
// logged) once.
func TestPurgersOnOneDatabaseRunOncePerInterval(t *testing.T) {
	ctx := context.Background()
	uri, db := mongotest.URI(t), mongotest.Database(t)
	reservedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const every = 400 * time.Millisecond
	slot := func() int64 { return time.Now().UnixNano() / int64(every) }

	var mu sync.Mutex
	runs := map[int64]int{}
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var purgers []*Purger
	for range 2 {
		s, err := mongodb.Open(ctx, mongodb.Options{URI: uri, Database: db})
		require.NoError(t, err)
		defer s.Close()
		l, err := lease.New(s, "purge", lease.Options{TTL: every, Skew: 60 * time.Millisecond})
		require.NoError(t, err)
		purgers = append(purgers, &Purger{Store: runCounter{Store: s, slot: slot, mu: &mu, runs: runs}, Log: log, Slots: l,
			Now: func() time.Time { return reservedAt.Add(ReservationRetention) }})
	}
	st := purgers[0].Store.(runCounter).Store
	for _, p := range []string{"p1", "p2", "p3"} {
		_, err := st.Commit(ctx, store.Batch{Writes: []store.Write{
			{Type: "Patient", ID: p, Op: store.OpPut, Patient: p, Render: func(int64, time.Time) ([]byte, error) { return []byte(`{"resourceType":"Patient"}`), nil }},
			{Type: "Flag", ID: "f-" + p, Op: store.OpPut, Patient: p, Render: func(int64, time.Time) ([]byte, error) { return []byte(`{"resourceType":"Flag"}`), nil }},
			{Type: "Consent", ID: "c-" + p, Op: store.OpPut, Patient: p, Render: func(int64, time.Time) ([]byte, error) { return AutomaticReservation(p, reservedAt), nil }},
		}})
		require.NoError(t, err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range purgers {
		wg.Go(func() { p.Run(runCtx, every) })
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(runs)
		mu.Unlock()
		if n >= 4 {
			break
		}
		require.False(t, time.Now().After(deadline), "purges in four intervals within 20 s")
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	for s, n := range runs {
		assert.Equal(t, 1, n, "purge runs in interval %d", s)
	}
	for _, p := range []string{"p1", "p2", "p3"} {
		_, err := st.Read(ctx, "Flag", "f-"+p)
		assert.ErrorIs(t, err, store.ErrNotFound, "the record of %s is purged", p)
		assert.Equal(t, 1, strings.Count(logs.String(), "patient="+p+" "), "the purge of %s is logged once", p)
	}
}
