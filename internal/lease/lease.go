// Package lease lets one of several server processes on one database do a
// background job (deliver change notifications, purge reserved records)
// while the others stand by, and lets another take over when that process
// dies. The database decides who holds a lease, with nothing but inserts
// of unique keys (store.Once): on FerretDB only those are atomic (see
// internal/store/mongodb/DESIGN.md), so no lease is ever updated, extended
// or released in place.
//
// Time is cut into slots of TTL, numbered floor(unix time / TTL). The
// holder of slot s is whoever inserted the key "lease:NAME:s" first;
// exactly one process does, whatever the number of processes and
// however their claims interleave. A holder renews by claiming slot s+1
// ahead of time (RenewAhead before the end of s), while the others only
// claim a slot once their clock says it has begun, so a live holder wins
// its renewal and keeps the lease for as long as it lives. A holder that
// dies has claimed at most the slot after the current one, so another
// process takes over at most TTL + RenewAhead after the death.
//
// Assumption: the clocks of the processes on one database differ by less
// than Skew (NTP keeps them within milliseconds; the default Skew is a
// second). A holder stops working Skew before the end of the last slot it
// holds by its own clock; the next holder starts when the slot begins by
// its clock; so their work never overlaps in real time as long as the
// clocks differ by less than Skew. Every process on a database must use
// the same TTL for a lease name, or slot numbers mean different times.
//
// A process that is paused (a stopped VM, a long GC pause) past the end of
// its slot learns it on resuming, when its timer fires; work in flight at
// that instant (one send) may overlap the next holder's.
//
// A claim whose insert succeeded but whose answer was lost (a timeout)
// counts as lost: nobody holds that slot then, and the job waits for the
// next one. That costs time, never a second holder.
package lease

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// Claimer inserts a key unless it is there and unexpired (store.Once;
// both storage engines implement it).
type Claimer interface {
	ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error)
}

// Options configure a Lease. Zero values take the defaults.
type Options struct {
	// TTL is the slot length (default 10 s): a process that dies loses
	// the lease within TTL + RenewAhead.
	TTL time.Duration
	// Skew is the largest difference assumed between the clocks of two
	// processes (default 1 s, at most TTL/4): a holder stops this long
	// before its last slot ends.
	Skew time.Duration
	// RenewAhead is how long before the end of its slot the holder claims
	// the next one (default 3 × Skew; more than 2 × Skew, less than TTL).
	// Its claim must reach the database within RenewAhead - 2 × Skew, or
	// a waiting process may win the slot (a handover, never an overlap).
	RenewAhead time.Duration
	// Now is the clock (default time.Now). Real time, never the
	// development clock: every process must agree on it.
	Now func() time.Time
	// Log receives when claims start to fail and work again (default
	// slog.Default()).
	Log *slog.Logger
}

// Lease is one named lease over a Claimer. Its methods may be called by
// one goroutine at a time.
type Lease struct {
	name    string
	claim   Claimer
	opt     Options
	held    atomic.Bool
	failing atomic.Bool // the last claim failed
	gauge   interface{ Set(float64) }
}

// New returns the lease name (letters, digits, '-' and '.') over c.
func New(c Claimer, name string, opt Options) (*Lease, error) {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) {
		return nil, fmt.Errorf("lease: invalid name %q", name)
	}
	if opt.TTL <= 0 {
		opt.TTL = 10 * time.Second
	}
	if opt.Skew <= 0 {
		opt.Skew = min(time.Second, opt.TTL/4)
	}
	if opt.Skew > opt.TTL/4 {
		return nil, fmt.Errorf("lease %s: clock skew %s is more than a quarter of the slot %s", name, opt.Skew, opt.TTL)
	}
	if opt.RenewAhead <= 0 {
		opt.RenewAhead = 3 * opt.Skew
	}
	if opt.RenewAhead <= 2*opt.Skew || opt.RenewAhead >= opt.TTL {
		return nil, fmt.Errorf("lease %s: renewal %s before the end of a slot must be more than twice the clock skew %s and less than the slot %s", name, opt.RenewAhead, opt.Skew, opt.TTL)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Lease{name: name, claim: c, opt: opt, gauge: telemetry.LeaseHeld.WithLabelValues(name)}, nil
}

// TTL returns the slot length.
func (l *Lease) TTL() time.Duration { return l.opt.TTL }

// Held reports whether this process holds the lease now (work of Run is
// running).
func (l *Lease) Held() bool { return l.held.Load() }

func (l *Lease) slot(t time.Time) int64 { return t.UnixNano() / int64(l.opt.TTL) }

func (l *Lease) start(s int64) time.Time { return time.Unix(0, s*int64(l.opt.TTL)) }

func (l *Lease) end(s int64) time.Time { return l.start(s + 1) }

// tryClaim claims slot s. The key outlives the slot by a TTL so that no
// engine sweeps it while a process whose clock is behind may still claim
// the slot; claims are only made before the slot's end, so the stored
// expiry is always ahead of the claimer's now and a present key is never
// taken over.
func (l *Lease) tryClaim(ctx context.Context, s int64) (bool, error) {
	key := "lease:" + l.name + ":" + strconv.FormatInt(s, 10)
	ok, err := l.claim.ClaimOnce(ctx, key, l.opt.Now(), l.end(s).Add(l.opt.TTL))
	if err != nil {
		err = fmt.Errorf("lease %s: claim slot %d: %w", l.name, s, err)
		// Claims are retried every few hundred milliseconds: one line
		// when they start failing, one when they work again.
		if ctx.Err() == nil && !l.failing.Swap(true) {
			l.opt.Log.Warn("lease claims fail; retrying", "lease", l.name, "error", err)
		}
		return false, err
	}
	if l.failing.Swap(false) {
		l.opt.Log.Info("lease claims work again", "lease", l.name)
	}
	return ok, nil
}

// sleepUntil waits until the clock reads t, or ctx or stop ends.
func (l *Lease) sleepUntil(ctx context.Context, stop <-chan struct{}, t time.Time) bool {
	d := t.Sub(l.opt.Now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// retryPause is the wait after a failed claim.
func (l *Lease) retryPause() time.Duration { return max(l.opt.Skew/2, 10*time.Millisecond) }

// Run calls work each time this process wins the lease, with a context
// that ends before any other process can hold it, and waits for work to
// return before it competes again. work should run until its context
// ends; if it returns earlier, the lease lapses at the end of the slots
// held. Run returns ctx's error once ctx ends and work has returned.
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context)) error {
	for {
		s, err := l.acquire(ctx)
		if err != nil {
			return err
		}
		l.hold(ctx, s, work)
	}
}

// acquire waits until this process holds a slot that has begun by its
// clock and returns it, or returns ctx's error.
func (l *Lease) acquire(ctx context.Context) (int64, error) {
	for {
		now := l.opt.Now()
		s := l.slot(now)
		// Too late in the slot to work in it: wait for the next one.
		if now.Before(l.end(s).Add(-l.opt.Skew)) {
			ok, err := l.tryClaim(ctx, s)
			if ok {
				return s, nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				if !l.sleepUntil(ctx, nil, l.opt.Now().Add(l.retryPause())) {
					return 0, ctx.Err()
				}
				continue
			}
		}
		if !l.sleepUntil(ctx, nil, l.end(s)) {
			return 0, ctx.Err()
		}
	}
}

// hold runs work while this process holds slot s and the slots it
// renews, and returns once work has returned.
func (l *Lease) hold(ctx context.Context, s int64, work func(ctx context.Context)) {
	held, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.held.Store(true)
	l.gauge.Set(1)
	go func() {
		defer close(done)
		work(held)
	}()
	defer func() {
		cancel()
		<-done
		l.held.Store(false)
		l.gauge.Set(0)
	}()
	for {
		stopAt := l.end(s).Add(-l.opt.Skew)
		if !l.sleepUntil(ctx, done, l.end(s).Add(-l.opt.RenewAhead)) {
			return
		}
		renewed := false
		for l.opt.Now().Before(stopAt) {
			ok, err := l.tryClaim(ctx, s+1)
			if err == nil {
				renewed = ok
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !l.sleepUntil(ctx, done, l.opt.Now().Add(l.retryPause())) {
				return
			}
		}
		if !renewed {
			// Another process holds the next slot (or nobody, after an
			// error): stop in time for it.
			l.sleepUntil(ctx, done, stopAt)
			return
		}
		s++
	}
}

// Each calls work once per slot in which this process wins the lease,
// with a context that ends Skew before the slot does, until ctx ends: of
// all processes, one runs work per slot. A process starting within a
// slot that nobody claimed yet runs at once.
func (l *Lease) Each(ctx context.Context, work func(ctx context.Context)) error {
	for {
		now := l.opt.Now()
		s := l.slot(now)
		if stop := l.end(s).Add(-l.opt.Skew); now.Before(stop) {
			ok, err := l.tryClaim(ctx, s)
			switch {
			case ok:
				run, cancel := context.WithDeadline(ctx, l.deadline(stop))
				l.held.Store(true)
				l.gauge.Set(1)
				work(run)
				cancel()
				l.held.Store(false)
				l.gauge.Set(0)
			case err != nil && ctx.Err() == nil:
				if l.sleepUntil(ctx, nil, l.opt.Now().Add(l.retryPause())) {
					continue
				}
			}
		}
		if !l.sleepUntil(ctx, nil, l.end(s)) {
			return ctx.Err()
		}
	}
}

// deadline turns a time of the lease's clock into one of the real clock
// (context deadlines go by the real clock; they differ only in tests).
func (l *Lease) deadline(t time.Time) time.Time {
	return time.Now().Add(t.Sub(l.opt.Now()))
}
