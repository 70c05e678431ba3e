package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

type proofClaims struct {
	Jti string       `json:"jti"`
	Htm string       `json:"htm"`
	Htu string       `json:"htu"`
	Iat *numericDate `json:"iat"`
	Ath string       `json:"ath"`
}

const maxJTILen = 256

// checkProof validates the DPoP header of r per RFC 9449 §4.3 for an access
// token whose SHA-256 is tokenHash and whose cnf.jkt is jkt.
func (v *Validator) checkProof(ctx context.Context, r *http.Request, tokenHash [32]byte, jkt string, now time.Time) *Error {
	vals := r.Header.Values("DPoP")
	if len(vals) == 0 {
		return v.invalidProof("DPoP proof missing")
	}
	if len(vals) > 1 {
		return v.invalidProof("more than one DPoP header")
	}
	proof := vals[0]
	if len(proof) > maxProofLen {
		return v.invalidProof("DPoP proof too large")
	}
	hseg, pseg, sseg, ok := splitJWS(proof)
	if !ok {
		return v.invalidProof("DPoP proof is not a compact JWS")
	}
	hdr, err := decodeHeader(hseg)
	if err != nil {
		return v.invalidProof("DPoP proof %v", err)
	}
	typ, _, err := headerString(hdr, "typ")
	if err != nil || !strings.EqualFold(typ, "dpop+jwt") {
		return v.invalidProof("DPoP proof typ must be dpop+jwt")
	}
	alg, _, err := headerString(hdr, "alg")
	if err != nil {
		return v.invalidProof("DPoP proof alg is not a string")
	}
	algObj, ok := v.dpopAlgs[alg]
	if !ok {
		return v.invalidProof("DPoP proof algorithm %q not allowed", alg)
	}
	for _, h := range []string{"jku", "x5u", "x5c", "crit", "b64"} {
		if _, ok := hdr[h]; ok {
			return v.invalidProof("DPoP proof header %q not accepted", h)
		}
	}
	rawJWK, ok := hdr["jwk"]
	if !ok {
		return v.invalidProof("DPoP proof has no jwk header")
	}
	key, err := jwk.ParseKey(rawJWK)
	if err != nil {
		return v.invalidProof("DPoP proof jwk is not a key")
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return v.invalidProof("DPoP proof jwk is not usable")
	}
	switch raw.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		// Private keys (a client leaking its own key) and symmetric keys
		// are refused alike: neither proves possession of anything.
		return v.invalidProof("DPoP proof jwk must be a public asymmetric key")
	}
	if !rawKeyFitsAlg(raw, alg) {
		return v.invalidProof("DPoP proof jwk does not fit algorithm %q", alg)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil || !constantEq(base64.RawURLEncoding.EncodeToString(tp), jkt) {
		return v.invalidProof("DPoP proof key does not match the token's cnf.jkt")
	}
	if _, err := b64.DecodeString(sseg); err != nil {
		return v.invalidProof("DPoP proof signature is not base64url")
	}
	payload, err := b64.DecodeString(pseg)
	if err != nil {
		return v.invalidProof("DPoP proof payload is not base64url")
	}
	if _, err := jws.VerifyCompactFast(raw, []byte(proof), algObj); err != nil {
		return v.invalidProof("DPoP proof signature verification failed")
	}
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return v.invalidProof("DPoP proof claims malformed")
	}
	if c.Jti == "" || len(c.Jti) > maxJTILen || c.Htm == "" || c.Htu == "" || c.Iat == nil {
		return v.invalidProof("DPoP proof lacks jti, htm, htu or iat")
	}
	if c.Htm != r.Method {
		return v.invalidProof("DPoP proof htm does not match the request method")
	}
	if !v.htuMatches(c.Htu, r) {
		return v.invalidProof("DPoP proof htu does not match the request URL")
	}
	if c.Iat.t.After(now.Add(v.skew)) || c.Iat.t.Before(now.Add(-v.cfg.DPoP.ProofWindow-v.skew)) {
		return v.invalidProof("DPoP proof iat outside the accepted window")
	}
	if c.Ath == "" {
		return v.invalidProof("DPoP proof lacks ath")
	}
	if !constantEq(c.Ath, base64.RawURLEncoding.EncodeToString(tokenHash[:])) {
		return v.invalidProof("DPoP proof ath does not match the access token")
	}
	// Checked last so that only proofs that are valid in every other respect
	// take a slot: an attacker without the key cannot fill the cache.
	replayKey := sha256.Sum256([]byte(jkt + "\x00" + c.Jti))
	expires := c.Iat.t.Add(v.cfg.DPoP.ProofWindow + 2*v.skew)
	if v.cfg.DPoP.Replay != nil {
		return v.claimProof(ctx, replayKey, now, expires)
	}
	switch v.replay.add(replayKey, expires, now) {
	case replaySeen:
		return v.invalidProof("DPoP proof replayed")
	case replayFull:
		return v.invalidProof("DPoP replay cache full, retry later")
	}
	return nil
}

// htuMatches compares htu with the request URL, ignoring query and fragment
// (RFC 9449 §4.3 step 9), after syntax- and scheme-based normalisation:
// case-insensitive scheme and host, default ports dropped, empty path = "/".
func (v *Validator) htuMatches(htu string, r *http.Request) bool {
	u, err := url.Parse(htu)
	if err != nil || u.User != nil || u.Opaque != "" {
		return false
	}
	gs, gh, ok := normScheme(u.Scheme, u.Host)
	if !ok {
		return false
	}
	var ws, wh, wp string
	if v.base != nil {
		ws, wh, ok = normScheme(v.base.Scheme, v.base.Host)
		wp = v.base.Path + r.URL.Path
	} else {
		s := "http"
		if r.TLS != nil {
			s = "https"
		}
		ws, wh, ok = normScheme(s, r.Host)
		wp = r.URL.Path
	}
	if !ok {
		return false
	}
	if wp == "" {
		wp = "/"
	}
	gp := u.Path
	if gp == "" {
		gp = "/"
	}
	return gs == ws && gh == wh && gp == wp
}

func normScheme(scheme, host string) (string, string, bool) {
	scheme = strings.ToLower(scheme)
	host = strings.ToLower(host)
	if host == "" {
		return "", "", false
	}
	var def string
	switch scheme {
	case "https":
		def = "443"
	case "http":
		def = "80"
	default:
		return "", "", false
	}
	if h, p, err := net.SplitHostPort(host); err == nil && p == def {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme, host, true
}
