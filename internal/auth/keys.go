package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const minRSABits = 2048

// verifyKey is a public key from an issuer's JWKS, converted once so the hot
// path does no JWK work.
type verifyKey struct {
	kid string
	alg string // the JWK's own "alg", if it names one: the key is then usable for that alg only
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

type keySnapshot struct {
	byKID map[string][]verifyKey
	all   []verifyKey
}

// keyStore caches one issuer's JWKS. Reads are lock-free (atomic snapshot);
// refreshes are serialised by mu and rate-limited by lastAttempt so that
// tokens with invented kids cannot make us hammer the issuer.
type keyStore struct {
	issuer string
	source func(ctx context.Context) (jwk.Set, error)
	now    func() time.Time

	refreshEvery time.Duration
	minInterval  time.Duration

	snap atomic.Pointer[keySnapshot]

	mu          sync.Mutex
	lastAttempt atomic.Int64 // unix nanos; written under mu
	lastSuccess atomic.Int64 // unix nanos
	lastErr     error
	fetches     atomic.Int64
}

var errUnknownKey = errors.New("no matching key in the issuer's JWKS")

// lookup returns the candidate keys for kid (all keys usable with alg when
// kid is empty). On a miss it refreshes the JWKS once, if the rate limit
// allows, and retries. A stale set is refreshed in the background while the
// current keys keep serving.
func (ks *keyStore) lookup(ctx context.Context, kid, alg string) ([]verifyKey, error) {
	if keys := ks.find(kid, alg); len(keys) > 0 {
		if ks.stale() && ks.mayAttempt() {
			go ks.refresh(context.Background(), true)
		}
		return keys, nil
	}
	if err := ks.refresh(ctx, false); err != nil && ks.snap.Load() == nil {
		return nil, fmt.Errorf("JWKS unavailable: %w", err)
	}
	if keys := ks.find(kid, alg); len(keys) > 0 {
		return keys, nil
	}
	return nil, errUnknownKey
}

func (ks *keyStore) stale() bool {
	last := ks.lastSuccess.Load()
	return last == 0 || ks.now().Sub(time.Unix(0, last)) >= ks.refreshEvery
}

func (ks *keyStore) mayAttempt() bool {
	last := ks.lastAttempt.Load()
	return last == 0 || ks.now().Sub(time.Unix(0, last)) >= ks.minInterval
}

func (ks *keyStore) find(kid, alg string) []verifyKey {
	return ks.findIn(ks.snap.Load(), kid, alg)
}

func (ks *keyStore) findIn(s *keySnapshot, kid, alg string) []verifyKey {
	if s == nil {
		return nil
	}
	var cands []verifyKey
	if kid != "" {
		cands = s.byKID[kid]
	} else {
		cands = s.all
	}
	var out []verifyKey
	for _, k := range cands {
		if keyFitsAlg(k, alg) {
			out = append(out, k)
		}
	}
	// Without a kid we only proceed when exactly one key could have signed:
	// trying every key of the set would turn one request into N signature
	// checks.
	if kid == "" && len(out) != 1 {
		return nil
	}
	return out
}

// refresh fetches the JWKS unless another fetch happened within minInterval.
// background refreshes give up instead of queueing behind a running one.
func (ks *keyStore) refresh(ctx context.Context, background bool) error {
	if background {
		if !ks.mu.TryLock() {
			return nil
		}
	} else {
		ks.mu.Lock()
	}
	defer ks.mu.Unlock()
	if !ks.mayAttempt() {
		return ks.lastErr
	}
	now := ks.now()
	ks.lastAttempt.Store(now.UnixNano())
	// The request that triggered the refresh may be cancelled; the fetch
	// serves everyone, so it gets its own deadline instead.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ks.fetches.Add(1)
	set, err := ks.source(fctx)
	if err != nil {
		ks.lastErr = err
		return err
	}
	snap, err := buildSnapshot(set)
	if err != nil {
		ks.lastErr = err
		return err
	}
	ks.snap.Store(snap)
	ks.lastSuccess.Store(now.UnixNano())
	ks.lastErr = nil
	return nil
}

// buildSnapshot keeps the keys that can verify signatures: public (or
// private, reduced to public) RSA ≥ 2048 bits, EC P-256/384/521 and Ed25519,
// not marked for encryption. Symmetric keys are dropped outright: a JWKS
// that publishes one must never make HMAC tokens acceptable.
func buildSnapshot(set jwk.Set) (*keySnapshot, error) {
	s := &keySnapshot{byKID: map[string][]verifyKey{}}
	for i := 0; i < set.Len(); i++ {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		raw, err := jwk.PublicRawKeyOf(k)
		if err != nil {
			continue
		}
		if !usablePublicKey(raw) {
			continue
		}
		vk := verifyKey{key: raw}
		if kid, ok := k.KeyID(); ok {
			vk.kid = kid
		}
		if a, ok := k.Algorithm(); ok {
			vk.alg = a.String()
		}
		s.all = append(s.all, vk)
		if vk.kid != "" {
			s.byKID[vk.kid] = append(s.byKID[vk.kid], vk)
		}
	}
	if len(s.all) == 0 {
		return nil, errors.New("JWKS has no usable signature keys")
	}
	return s, nil
}

func usablePublicKey(raw any) bool {
	switch k := raw.(type) {
	case *rsa.PublicKey:
		return k.N != nil && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return true
		}
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize
	}
	return false
}

// keyFitsAlg checks the key family against the algorithm, so that, e.g., an
// RSA key is never handed to an EC verifier and the curve matches the hash.
func keyFitsAlg(k verifyKey, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	return rawKeyFitsAlg(k.key, alg)
}

func rawKeyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return k.N != nil && k.N.BitLen() >= minRSABits
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA" || alg == "Ed25519"
	}
	return false
}

// asymmetricAlgs are the algorithms Config.Algorithms may name.
var asymmetricAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}
