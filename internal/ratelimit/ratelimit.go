// Package ratelimit keeps token buckets (golang.org/x/time/rate) per key:
// a remote address, a client id. A bucket holds Burst tokens and refills
// at Burst per Period, so "20/10m" lets 20 happen at once and 20 more
// over every ten minutes after. The state is this process's own.
package ratelimit

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Spec is a budget: Burst events, refilled over Period. The zero Spec is
// off (no limit).
type Spec struct {
	Burst  int
	Period time.Duration
}

// Off reports whether the spec limits nothing.
func (s Spec) Off() bool { return s.Burst <= 0 || s.Period <= 0 }

func (s Spec) String() string {
	if s.Off() {
		return "off"
	}
	return strconv.Itoa(s.Burst) + "/" + s.Period.String()
}

// ParseSpec reads "N/duration" ("60/1m", "20/10m"), or "off" or "0".
func ParseSpec(v string) (Spec, error) {
	v = strings.TrimSpace(v)
	if v == "off" || v == "0" || v == "" {
		return Spec{}, nil
	}
	n, d, ok := strings.Cut(v, "/")
	if !ok {
		return Spec{}, fmt.Errorf("rate %q: want N/duration (e.g. 60/1m) or off", v)
	}
	burst, err := strconv.Atoi(n)
	if err != nil || burst <= 0 {
		return Spec{}, fmt.Errorf("rate %q: %q is not a positive whole number", v, n)
	}
	period, err := time.ParseDuration(d)
	if err != nil || period <= 0 {
		return Spec{}, fmt.Errorf("rate %q: %q is not a positive duration (e.g. 1m, 10s)", v, d)
	}
	return Spec{Burst: burst, Period: period}, nil
}

// Keyed is one bucket per key. Buckets that have refilled completely are
// forgotten (a new one is the same), so memory follows the keys active
// within one Period.
type Keyed struct {
	spec  Spec
	every rate.Limit
	now   func() time.Time

	mu        sync.Mutex
	m         map[string]*bucket
	nextSweep int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewKeyed makes the buckets of spec; nil if spec is off. now nil means
// time.Now.
func NewKeyed(spec Spec, now func() time.Time) *Keyed {
	if spec.Off() {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Keyed{spec: spec, every: rate.Limit(float64(spec.Burst) / spec.Period.Seconds()), now: now,
		m: map[string]*bucket{}, nextSweep: 1024}
}

// Spec is the budget of the buckets.
func (k *Keyed) Spec() Spec {
	if k == nil {
		return Spec{}
	}
	return k.spec
}

// Allow takes a token from key's bucket. When there is none it says how
// long until there is one.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	if k == nil {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	b := k.m[key]
	if b == nil {
		k.sweep(now)
		b = &bucket{lim: rate.NewLimiter(k.every, k.spec.Burst)}
		k.m[key] = b
	}
	b.seen = now
	k.mu.Unlock()
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, k.wait(b.lim.TokensAt(now))
}

// Exhausted reports, without taking a token, whether key's bucket is
// empty, and how long until it holds one again.
func (k *Keyed) Exhausted(key string) (bool, time.Duration) {
	if k == nil {
		return false, 0
	}
	k.mu.Lock()
	b := k.m[key]
	k.mu.Unlock()
	if b == nil {
		return false, 0
	}
	t := b.lim.TokensAt(k.now())
	if t >= 1 {
		return false, 0
	}
	return true, k.wait(t)
}

func (k *Keyed) wait(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / float64(k.every) * float64(time.Second))
}

// sweep forgets the buckets untouched for a Period (full again), once the
// map has doubled since the last sweep. k.mu is held.
func (k *Keyed) sweep(now time.Time) {
	if len(k.m) < k.nextSweep {
		return
	}
	for key, b := range k.m {
		if now.Sub(b.seen) >= k.spec.Period {
			delete(k.m, key)
		}
	}
	k.nextSweep = max(1024, 2*len(k.m))
}

// Len is the number of buckets kept.
func (k *Keyed) Len() int {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// RetryAfter is the Retry-After value of a wait: whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// AddrKey is the bucket key of a remote address (host:port or host): the
// host, or for IPv6 its /64 network, which one subscriber usually holds
// whole.
func AddrKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	return hostKey(host)
}

// hostKey is AddrKey of a host without port.
func hostKey(host string) string {
	if strings.IndexByte(host, ':') < 0 {
		return host // IPv4 (or a name): no allocation on the request path
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Is4In6() {
		return host
	}
	p, err := a.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}
