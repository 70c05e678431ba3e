package ratelimit_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/ratelimit"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func openEmbedded(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// TestSharedBudgetHoldsAcrossCounters runs two counters, as two server
// processes would, on one store: failures of one address racing through
// both get one budget in all, and both then refuse without asking.
func TestSharedBudgetHoldsAcrossCounters(t *testing.T) {
	engines := map[string]func(t *testing.T) [2]ratelimit.Claimer{
		// The embedded store belongs to one process: both counters use it.
		"embedded": func(t *testing.T) [2]ratelimit.Claimer {
			st := openEmbedded(t)
			return [2]ratelimit.Claimer{st, st}
		},
		// Two connections to one FerretDB database, as two processes.
		"mongodb": func(t *testing.T) [2]ratelimit.Claimer {
			uri, db := mongotest.URI(t), mongotest.Database(t)
			var out [2]ratelimit.Claimer
			for i := range out {
				st, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db})
				require.NoError(t, err)
				t.Cleanup(func() { st.Close() })
				out[i] = st
			}
			return out
		},
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			stores := open(t)
			now := time.Date(2030, 1, 1, 10, 0, 20, 0, time.UTC) // 20 s into a minute
			clock := func() time.Time { return now }
			spec := ratelimit.Spec{Burst: 5, Period: time.Minute}
			counters := [2]*ratelimit.Shared{
				ratelimit.NewShared("addr", spec, stores[0], clock, nil),
				ratelimit.NewShared("addr", spec, stores[1], clock, nil),
			}
			const addr = "2001:db8:1:2::/64" // an IPv6 key: '/' is hashed away
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for k := range 20 {
				wg.Go(func() {
					ok, wait := counters[k%2].Fail(t.Context(), addr)
					if ok {
						allowed.Add(1)
					} else {
						assert.Equal(t, 40*time.Second, wait, "refused until the window ends")
					}
				})
			}
			wg.Wait()
			assert.EqualValues(t, 5, allowed.Load(), "20 failures racing through two counters: one budget of 5 in all")
			for i, c := range counters {
				spent, wait := c.Spent(addr)
				assert.True(t, spent, "counter %d knows the budget is spent", i+1)
				assert.Equal(t, 40*time.Second, wait)
			}

			// Another address, and a client id spelled like the address,
			// have budgets of their own.
			ok, _ := counters[0].Fail(t.Context(), "198.51.100.7")
			assert.True(t, ok)
			ok, _ = ratelimit.NewShared("client", spec, stores[1], clock, nil).Fail(t.Context(), addr)
			assert.True(t, ok, "the client kind counts apart from addresses")

			// Sequential failures of a fresh key alternate between the
			// counters, each climbing over the other's numbers.
			allowedSeq := 0
			for k := range 9 {
				if ok, _ := counters[k%2].Fail(t.Context(), "203.0.113.9"); ok {
					allowedSeq++
				}
			}
			assert.Equal(t, 5, allowedSeq)

			// The next window is a budget again.
			now = now.Add(time.Minute)
			spent, _ := counters[1].Spent(addr)
			assert.False(t, spent)
			ok, _ = counters[1].Fail(t.Context(), addr)
			assert.True(t, ok)
		})
	}
}

// TestSharedFailsOpenWhenTheStoreIsGone: with its database unreachable a
// counter lets failures pass (the local buckets still limit them) and
// says so once in the log, not once per failure.
func TestSharedFailsOpenWhenTheStoreIsGone(t *testing.T) {
	st := openEmbedded(t)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	c := ratelimit.NewShared("addr", ratelimit.Spec{Burst: 2, Period: time.Minute}, st, nil, log)
	ok, _ := c.Fail(t.Context(), "192.0.2.1")
	require.True(t, ok)
	require.NoError(t, st.Close())
	for range 5 {
		ok, _ := c.Fail(t.Context(), "192.0.2.1")
		assert.True(t, ok, "no database: the failure is not refused by the shared count")
	}
	spent, _ := c.Spent("192.0.2.1")
	assert.False(t, spent)
	assert.Equal(t, 1, strings.Count(logged.String(), "shared failed-authentication counts unavailable"), "logged once: %s", logged.String())
	assert.Nil(t, ratelimit.NewShared("addr", ratelimit.Spec{}, st, nil, nil), "off")
	ok, _ = (*ratelimit.Shared)(nil).Fail(t.Context(), "x")
	assert.True(t, ok)
}
