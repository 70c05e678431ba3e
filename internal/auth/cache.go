package auth

import (
	"sync"
	"time"
)

// tokenCache remembers verified tokens until they expire, so the
// signature check (the dominant cost) is paid once per token rather than once
// per request. Only successes are cached: caching failures would let junk
// tokens evict good ones. Keys removed from a JWKS do not evict tokens they
// signed; those tokens stay valid until their exp, which is at most the
// issuer's token lifetime.
type tokenCache struct {
	mu  sync.RWMutex
	max int
	// Keyed by the token itself: an exact match, and cheaper than hashing
	// every request's token with SHA-256 (the map's own hash is a fraction
	// of that). The memory is the tokens' size, bounded by max.
	m map[string]*Principal
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[string]*Principal, min(max, 1024))}
}

// get returns the cached principal if it expires after notBefore (now minus
// the clock skew, matching the check on a fresh token).
func (c *tokenCache) get(h string, notBefore time.Time) *Principal {
	c.mu.RLock()
	p := c.m[h]
	c.mu.RUnlock()
	if p == nil || !p.ExpiresAt.After(notBefore) {
		return nil
	}
	return p
}

func (c *tokenCache) put(h string, p *Principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, q := range c.m {
			if !q.ExpiresAt.After(now) {
				delete(c.m, k)
			}
		}
	}
	if len(c.m) >= c.max {
		// Still full of live tokens: drop an arbitrary eighth (map order is
		// randomised). Evicted tokens are just verified again.
		n := max(c.max/8, 1)
		for k := range c.m {
			if n == 0 {
				break
			}
			delete(c.m, k)
			n--
		}
	}
	c.m[h] = p
}

type replayResult int

const (
	replayFresh replayResult = iota
	replaySeen
	replayFull
)

// replayCache remembers DPoP proof ids until the proof would be too old to be
// accepted anyway.
type replayCache struct {
	mu        sync.Mutex
	max       int
	m         map[[32]byte]time.Time
	lastSweep time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, m: make(map[[32]byte]time.Time, min(max, 1024))}
}

func (c *replayCache) add(k [32]byte, expires, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.m[k]; ok && exp.After(now) {
		return replaySeen
	}
	if len(c.m) >= c.max {
		// A full sweep is O(n); doing it at most once a second keeps a flood
		// of proofs from turning every request into one.
		if now.Sub(c.lastSweep) >= time.Second || now.Before(c.lastSweep) {
			c.lastSweep = now
			for key, exp := range c.m {
				if !exp.After(now) {
					delete(c.m, key)
				}
			}
		}
		if len(c.m) >= c.max {
			return replayFull
		}
	}
	c.m[k] = expires
	return replayFresh
}
