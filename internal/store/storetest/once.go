package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// onceTests are the contract of store.Once, which every engine offers: the
// server's DPoP replay check depends on it across restarts and processes.
var onceTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"OnceClaimsOnce", testOnceClaimsOnce},
	{"OnceExpiredIsClaimableAgain", testOnceExpiredIsClaimableAgain},
	{"OnceConcurrentOneWinner", testOnceConcurrentOneWinner},
	{"OnceInvalidKeyRefused", testOnceInvalidKeyRefused},
	{"OnceExpiryByCallersClock", testOnceExpiryByCallersClock},
}

func onceOf(t *testing.T, s store.Store) store.Once {
	t.Helper()
	o, ok := s.(store.Once)
	require.True(t, ok, "%T does not implement store.Once", s)
	return o
}

func claim(t *testing.T, o store.Once, key string, expires time.Time) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := o.ClaimOnce(ctx, key, time.Now(), expires)
	require.NoError(t, err)
	return ok
}

func testOnceClaimsOnce(t *testing.T, s store.Store) {
	o := onceOf(t, s)
	exp := time.Now().Add(time.Minute)
	assert.True(t, claim(t, o, "dpop:a", exp), "a new key is claimed")
	assert.False(t, claim(t, o, "dpop:a", exp), "a key claimed before is refused while it lives")
	assert.False(t, claim(t, o, "dpop:a", exp.Add(time.Hour)), "a later expiry does not reopen it")
	assert.True(t, claim(t, o, "dpop:b", exp), "keys are independent")
	// The claim changed no resource and wrote no usage-log record.
	recs := scanAll(t, s, 0)
	assert.Empty(t, recs)
}

func testOnceExpiredIsClaimableAgain(t *testing.T, s store.Store) {
	o := onceOf(t, s)
	past := time.Now().Add(-time.Second)
	assert.True(t, claim(t, o, "dpop:old", past))
	// Expired keys count as absent whether or not a sweep removed them.
	assert.True(t, claim(t, o, "dpop:old", time.Now().Add(time.Minute)), "an expired key is claimable again")
	assert.False(t, claim(t, o, "dpop:old", time.Now().Add(time.Minute)), "and then refused while the new claim lives")
	// Many expired keys: later claims sweep them without disturbing live ones.
	for i := range 300 {
		assert.True(t, claim(t, o, "dpop:gone-"+string(rune('a'+i%26))+time.Duration(i).String(), past))
	}
	assert.True(t, claim(t, o, "dpop:fresh", time.Now().Add(time.Minute)))
	assert.False(t, claim(t, o, "dpop:old", time.Now().Add(time.Minute)), "a sweep keeps live keys")
}

func testOnceConcurrentOneWinner(t *testing.T, s store.Store) {
	o := onceOf(t, s)
	const n = 16
	var won atomic.Int32
	var wg sync.WaitGroup
	exp := time.Now().Add(time.Minute)
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ok, err := o.ClaimOnce(ctx, "dpop:race", time.Now(), exp)
			assert.NoError(t, err)
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), won.Load(), "exactly one of %d concurrent claims wins", n)
}

func testOnceInvalidKeyRefused(t *testing.T, s store.Store) {
	o := onceOf(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range []string{"", "a/b", "a\x00b", string(make([]byte, store.MaxOnceKeyLen+1))} {
		_, err := o.ClaimOnce(ctx, k, time.Now(), time.Now().Add(time.Minute))
		assert.Error(t, err, "key %.20q", k)
	}
}

// testOnceExpiryByCallersClock: expiry is judged by the caller's clock (the
// one that computed it), not the engine's.
func testOnceExpiryByCallersClock(t *testing.T, s store.Store) {
	o := onceOf(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // long past for the engine
	ok, err := o.ClaimOnce(ctx, "dpop:clock", t0, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = o.ClaimOnce(ctx, "dpop:clock", t0.Add(30*time.Second), t0.Add(2*time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "still live by the caller's clock")
	ok, err = o.ClaimOnce(ctx, "dpop:clock", t0.Add(3*time.Minute), t0.Add(4*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok, "expired by the caller's clock")
}
