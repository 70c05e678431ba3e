package lease

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// Short slots so that takeovers happen within a test; the skew is far
// above the clock differences of one machine.
var testOpt = Options{TTL: 400 * time.Millisecond, Skew: 60 * time.Millisecond}

// processes opens n stores on one MongoDB database, as n server
// processes would.
func processes(t *testing.T, n int) []*mongodb.Store {
	t.Helper()
	uri, db := mongotest.URI(t), mongotest.Database(t)
	out := make([]*mongodb.Store, n)
	for i := range out {
		s, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	s, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	_, err = New(s, "a/b", Options{})
	assert.ErrorContains(t, err, "invalid name")
	_, err = New(s, "notify", Options{TTL: time.Second, Skew: 500 * time.Millisecond})
	assert.ErrorContains(t, err, "quarter")
	_, err = New(s, "notify", Options{TTL: time.Second, Skew: 100 * time.Millisecond, RenewAhead: 150 * time.Millisecond})
	assert.ErrorContains(t, err, "twice the clock skew")
}

// The only process wins the lease at once and keeps it across slots: its
// work is started once and never interrupted while it lives.
func TestOneProcessKeepsTheLease(t *testing.T) {
	s, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	l, err := New(s, "notify", testOpt)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	var starts atomic.Int32
	interrupted := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(held context.Context) {
			starts.Add(1)
			<-held.Done()
			if ctx.Err() == nil {
				interrupted <- struct{}{}
			}
		})
	}()
	waitFor(t, 5*time.Second, "the only process holds the lease", l.Held)
	first := l.slot(time.Now())
	waitFor(t, 10*time.Second, "four slots pass", func() bool { return l.slot(time.Now()) >= first+4 })
	assert.True(t, l.Held())
	assert.Equal(t, int32(1), starts.Load(), "work started once")
	select {
	case <-interrupted:
		t.Fatal("the holder's work was stopped while it lived")
	default:
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.False(t, l.Held())
}

// Three processes on one database: one holds the lease; when it dies
// (its context ends, nothing released) another takes over, and at no
// observation do two hold it.
func TestTakeoverWhenTheHolderDies(t *testing.T) {
	stores := processes(t, 3)
	type proc struct {
		l      *Lease
		cancel context.CancelFunc
		done   chan error
	}
	var procs []proc
	var running atomic.Int32
	var overlap atomic.Bool
	for _, s := range stores {
		l, err := New(s, "notify", testOpt)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		p := proc{l: l, cancel: cancel, done: make(chan error, 1)}
		go func() {
			p.done <- l.Run(ctx, func(held context.Context) {
				if running.Add(1) > 1 {
					overlap.Store(true)
				}
				<-held.Done()
				running.Add(-1)
			})
		}()
		procs = append(procs, p)
		defer cancel()
	}
	holder := func(skip int) int {
		h := -1
		for i, p := range procs {
			if i != skip && p.l.Held() {
				if h >= 0 {
					t.Fatalf("processes %d and %d both hold the lease", h, i)
				}
				h = i
			}
		}
		return h
	}
	waitFor(t, 5*time.Second, "one process holds the lease", func() bool { return holder(-1) >= 0 })
	dead := holder(-1)
	procs[dead].cancel()
	assert.ErrorIs(t, <-procs[dead].done, context.Canceled)
	waitFor(t, 3*testOpt.TTL+time.Second, "another process takes over", func() bool { return holder(dead) >= 0 })
	assert.False(t, overlap.Load(), "two processes worked under the lease at once")
}

// Each: of three processes, one runs the job per slot.
func TestEachRunsOncePerSlot(t *testing.T) {
	stores := processes(t, 3)
	var mu sync.Mutex
	runs := map[int64]int{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range stores {
		l, err := New(s, "purge", testOpt)
		require.NoError(t, err)
		wg.Go(func() {
			_ = l.Each(ctx, func(run context.Context) {
				slot := l.slot(time.Now())
				_, ok := run.Deadline()
				assert.True(t, ok, "a run ends before its slot does")
				mu.Lock()
				runs[slot]++
				mu.Unlock()
			})
		})
	}
	waitFor(t, 10*time.Second, "runs in five slots", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) >= 5
	})
	cancel()
	wg.Wait()
	for slot, n := range runs {
		assert.Equal(t, 1, n, "runs in slot %d", slot)
	}
}
