package auth

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkValidate measures Validate per request for a practitioner token
// with the trust-framework attest (the realistic size), with the verified
// token cache on and off. Off is the cost of signature verification plus
// claim parsing; on is hashing and a map lookup.
func BenchmarkValidate(b *testing.B) {
	for _, cache := range []struct {
		name string
		size int
	}{{"cache", 0}, {"nocache", -1}} {
		f := newFixture(b, func(c *Config) { c.TokenCacheSize = cache.size })
		for _, s := range []signer{f.rsa1, f.ec1} {
			c := f.claims()
			// Valid for the whole run whatever the benchtime.
			c["exp"] = f.clock.Now().Add(24 * time.Hour).Unix()
			r := bearer(f.token(s, c))
			b.Run(s.alg.String()+"/"+cache.name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.v.Validate(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkValidateDPoP includes the per-request proof check (the token
// itself comes from the cache).
func BenchmarkValidateDPoP(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.DPoP.ReplayCacheSize = 1 << 22 })
	c := f.claims()
	c["exp"] = f.clock.Now().Add(24 * time.Hour).Unix()
	c["cnf"] = map[string]any{"jkt": jkt(b, f.client)}
	tok := f.token(f.rsa1, c)
	// Proofs are made up front so signing is not measured; each is used once.
	const n = 4096
	proofs := make([]string, n)
	for i := range proofs {
		proofs[i] = f.proof(f.client, "GET", flagURL, tok, func(c, h map[string]any) { c["jti"] = strconv.Itoa(i) })
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == n {
			// Fresh jtis for the next round: move the clock past the window.
			b.StopTimer()
			f.clock.Advance(3 * time.Minute)
			for j := range proofs {
				proofs[j] = f.proof(f.client, "GET", flagURL, tok, func(c, h map[string]any) { c["jti"] = strconv.Itoa(j) })
			}
			i = 0
			b.StartTimer()
		}
		if _, err := f.v.Validate(ctx, request("GET", flagURL, "DPoP "+tok, proofs[i])); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
