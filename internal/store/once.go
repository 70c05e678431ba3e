package store

import (
	"context"
	"strings"
	"time"
)

// Once is an optional capability of an engine: keys that may be used
// once until they expire, shared by every server process on the same
// store and kept across restarts. The token validator uses it to refuse a
// replayed DPoP proof (RFC 9449 §11.1): a proof's jti remembered only in
// memory would be accepted again after a restart, or by the next server
// behind the same load balancer, within its acceptance window.
//
// Both engines implement it; it is not part of Store so that code that
// wraps a Store (tests) need not. Users declare the interface they need
// where they use it (auth.ReplayStore has this method).
type Once interface {
	// ClaimOnce records key until expires and reports true, atomically,
	// unless key is already recorded with an expiry after now: then it
	// changes nothing and reports false. now is the caller's clock, the
	// one that computed expires (and judges a DPoP proof's age), so that
	// what counts as expired agrees with it. Of any number of
	// concurrent claims of one key, on one process or many, exactly one
	// reports true. A true result is durable when ClaimOnce returns.
	// Expired keys are removed by the engine in the background of later
	// claims (or by the database's TTL index), and count as absent until
	// then. An invalid key (ValidOnceKey) is an error.
	ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error)
}

// MaxOnceKeyLen bounds a ClaimOnce key: callers hash what they remember.
const MaxOnceKeyLen = 256

// ValidOnceKey reports whether key may be claimed: not empty, at most
// MaxOnceKeyLen bytes, without '/' or NUL (the engines' name rules).
func ValidOnceKey(key string) bool {
	return key != "" && len(key) <= MaxOnceKeyLen && !strings.ContainsAny(key, "/\x00")
}
