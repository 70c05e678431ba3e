package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Claimer inserts a key unless it is there and unexpired (store.Once;
// both storage engines implement it).
type Claimer interface {
	ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error)
}

// SharedTimeout bounds the claims of one Fail, within the caller's own
// deadline: a slow database must not hold a refused login for long.
const SharedTimeout = 2 * time.Second

// sharedKeep is how long a claimed number outlives its window: the
// processes' clocks differ by far less (README: under a second), so no
// process still counts in a window whose numbers have expired.
const sharedKeep = time.Minute

// Shared counts events per key in fixed windows of Period, shared by
// every process whose Claimer is the same database: the budget of a key
// is Burst events per window in all processes together. The database
// holds nothing but unique keys inserted once, "fail:KIND:BURST:PERIOD:
// HASH:WINDOW:N" for the Nth event of a key in a window (on FerretDB
// only such inserts are atomic), so counting is claiming the lowest free
// N; whoever would need N > Burst is refused. A process remembers the
// highest N it has seen per key, so it climbs over the others' numbers
// once, and remembers a spent key until its window ends, so that refusals
// then cost no database call.
//
// A window boundary resets the count: at most two budgets pass around
// one. Keyed's token bucket, kept beside it in each process, has no such
// edge for the events one process sees.
//
// When the database cannot be reached Fail lets the event pass (it logs
// once, and once more when claims work again): refusing every failing
// login while the database is away would refuse the ones that then
// succeed, too, and the local bucket still limits each process.
type Shared struct {
	spec   Spec
	prefix string // "fail:KIND:BURST:PERIOD:"
	claim  Claimer
	now    func() time.Time
	log    *slog.Logger

	failing atomic.Bool

	mu        sync.Mutex
	m         map[string]*window
	nextSweep int
}

// window is what this process knows of a key in one window.
type window struct {
	w     int64 // window number: unix nanoseconds / Period
	high  int   // highest number claimed, seen taken or being claimed
	spent bool  // number Burst+1 was reached: the budget is spent
}

// NewShared makes the shared counter of spec for kind ("addr", "client":
// keys of different kinds never meet); nil if spec is off or claim is nil.
// now nil means time.Now, log nil slog.Default(). Every process on a
// database must use the same spec (processes with different specs count
// apart).
func NewShared(kind string, spec Spec, claim Claimer, now func() time.Time, log *slog.Logger) *Shared {
	if spec.Off() || claim == nil {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Shared{spec: spec, claim: claim, now: now, log: log, m: map[string]*window{}, nextSweep: 1024,
		prefix: "fail:" + kind + ":" + strconv.Itoa(spec.Burst) + ":" + spec.Period.String() + ":"}
}

func (s *Shared) windowOf(now time.Time) (w int64, wait time.Duration) {
	p := int64(s.spec.Period)
	w = now.UnixNano() / p
	return w, time.Duration((w+1)*p - now.UnixNano())
}

// Spent reports, without a database call, whether this process has seen
// key's budget spent in the current window, and how long until the next.
func (s *Shared) Spent(key string) (bool, time.Duration) {
	if s == nil {
		return false, 0
	}
	w, wait := s.windowOf(s.now())
	s.mu.Lock()
	st := s.m[key]
	spent := st != nil && st.w == w && st.spent
	s.mu.Unlock()
	if !spent {
		return false, 0
	}
	return true, wait
}

// Fail counts one event of key in the database and reports whether it is
// within the budget; when not, how long until the next window. It fails
// open (true) when the database does not answer within ctx and
// SharedTimeout.
func (s *Shared) Fail(ctx context.Context, key string) (bool, time.Duration) {
	if s == nil {
		return true, 0
	}
	now := s.now()
	w, wait := s.windowOf(now)
	s.mu.Lock()
	st := s.m[key]
	if st == nil || st.w != w {
		s.sweep(w)
		st = &window{w: w}
		s.m[key] = st
	}
	s.mu.Unlock()

	// The key is hashed for the database's key rules (no '/', as in an
	// IPv6 prefix; bounded length), not for secrecy.
	sum := sha256.Sum256([]byte(key))
	base := s.prefix + base64.RawURLEncoding.EncodeToString(sum[:]) + ":" + strconv.FormatInt(w, 10) + ":"
	expires := now.Add(wait + sharedKeep)
	ctx, cancel := context.WithTimeout(ctx, SharedTimeout)
	defer cancel()
	for {
		// Numbers are taken locally first, so that this process's
		// concurrent failures of one key do not race for the same one.
		s.mu.Lock()
		if st.spent {
			s.mu.Unlock()
			return false, wait
		}
		if st.high >= s.spec.Burst {
			st.spent = true
			s.mu.Unlock()
			return false, wait
		}
		st.high++
		n := st.high
		s.mu.Unlock()
		ok, err := s.claim.ClaimOnce(ctx, base+strconv.Itoa(n), now, expires)
		if err != nil {
			s.mu.Lock()
			if st.high == n {
				st.high-- // not known to be stored: claim it again later (if it was, it is then seen taken)
			}
			s.mu.Unlock()
			// A caller that went away says nothing about the database.
			if !errors.Is(ctx.Err(), context.Canceled) {
				if !s.failing.Swap(true) {
					s.log.Warn("shared failed-authentication counts unavailable; each process counts its own until they work again",
						"error", err)
				}
			}
			return true, 0
		}
		if s.failing.Swap(false) {
			s.log.Info("shared failed-authentication counts work again")
		}
		if ok {
			return true, 0
		}
	}
}

// sweep forgets the keys of past windows once the map has doubled since
// the last sweep. s.mu is held.
func (s *Shared) sweep(w int64) {
	if len(s.m) < s.nextSweep {
		return
	}
	for k, st := range s.m {
		if st.w != w {
			delete(s.m, k)
		}
	}
	s.nextSweep = max(1024, 2*len(s.m))
}
