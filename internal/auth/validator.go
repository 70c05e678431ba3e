package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// Issuer is a trusted token issuer.
type Issuer struct {
	// URL must equal the tokens' iss exactly.
	URL string
	// JWKSURL is where the issuer's signing keys are published. It must be
	// https, except on loopback addresses (tests, the built-in server).
	JWKSURL string
	// KeySource, when set, replaces fetching JWKSURL: the in-process
	// authorisation server can hand over its key set without an HTTP round
	// trip to a listener that may not be up yet.
	KeySource func(ctx context.Context) (jwk.Set, error)
}

// DPoPConfig tunes RFC 9449 proof checking.
type DPoPConfig struct {
	// ProofWindow is how old a proof's iat may be (plus ClockSkew).
	// Default 60 s.
	ProofWindow time.Duration
	// ReplayCacheSize bounds the number of remembered proof jtis. When it is
	// full of unexpired entries new proofs are refused (fail closed: a
	// forgotten jti could be replayed). Default 100 000.
	ReplayCacheSize int
	// Algorithms allowed for proofs. Default: Config.Algorithms.
	Algorithms []string
	// Replay, when set, is where used proofs are remembered instead of
	// this process's memory: a store shared by every server process and
	// kept across restarts, so that a proof is accepted once, anywhere,
	// ever (RFC 9449 §11.1). Without it the in-memory cache forgets
	// every proof on a restart and knows nothing of other processes.
	Replay ReplayStore
	// ReplayTimeout bounds each call to Replay (within the request's own
	// deadline). Default 2 s: a store that does not answer refuses the
	// request (fail closed) rather than holding it.
	ReplayTimeout time.Duration
}

// ReplayStore remembers DPoP proofs across processes and restarts; both
// storage engines implement it (store.Once).
type ReplayStore interface {
	// ClaimOnce records key until expires and reports true, atomically,
	// unless key is recorded with an expiry after now.
	ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error)
}

// Config configures a Validator.
type Config struct {
	Issuers []Issuer
	// Audiences: a token's aud must contain at least one of them.
	Audiences []string
	// Algorithms allowed for access tokens. Default RS256, RS384, PS256,
	// ES256, ES384. Symmetric algorithms and "none" are refused at
	// construction.
	Algorithms []string
	// ClockSkew tolerated on exp, nbf and iat. 0 means the default of 30 s;
	// a negative value means none.
	ClockSkew time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKS; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// JWKSRefreshInterval: keys older than this are refreshed in the
	// background while still serving. Default 15 min.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval: at most one fetch per issuer per interval, so
	// tokens with unknown kids cannot make us hammer the issuer. Default 1 min.
	JWKSMinRefreshInterval time.Duration
	// ExternalBaseURL is the public URL of the server's root as clients see
	// it (behind TLS-terminating proxies), e.g. "https://fhir.kj.nhn.no".
	// DPoP htu is checked against it plus the request path. Empty: scheme
	// and host come from the request itself. X-Forwarded-* headers are
	// never trusted.
	ExternalBaseURL string
	// TokenCacheSize bounds the verified-token cache. 0 means 10 000; a
	// negative value disables caching.
	TokenCacheSize int
	// Realm for the WWW-Authenticate challenges; default "kjernejournal".
	Realm string
	DPoP  DPoPConfig
	// RequireDPoP refuses every token presented as Bearer: the national
	// APIs accept only DPoP-bound HelseID tokens, so a stolen token is
	// useless without the client's key. Challenges then name DPoP only.
	RequireDPoP bool
	// MaxTokenLifetime refuses tokens whose exp - iat (nbf when there is no
	// iat) exceeds it: a long-lived token is a long-lived theft. 0 means
	// no limit. With a limit, a token without iat and nbf is refused.
	MaxTokenLifetime time.Duration
	// MaxAttestAge refuses a token whose trust-framework attest was made
	// (its toa) longer ago than this, checked on every request, since a
	// token outlives the moment it was verified. Default 60 min (the
	// trust framework's limit); negative: no limit.
	MaxAttestAge time.Duration
	// ScopeMap maps issuer scopes (HelseID API scopes such as
	// nhn:kjernejournal/api) onto the SMART scopes they grant here; the
	// token keeps its own scopes as well. Nil: no mapping.
	ScopeMap map[string][]string
}

var defaultAlgorithms = []string{"RS256", "RS384", "PS256", "ES256", "ES384"}

const (
	maxTokenLen = 32 << 10
	maxProofLen = 8 << 10
)

// Validator verifies access tokens and DPoP proofs. It is safe for
// concurrent use.
type Validator struct {
	cfg           Config
	skew          time.Duration
	algs          map[string]jwa.SignatureAlgorithm
	dpopAlgs      map[string]jwa.SignatureAlgorithm
	dpopAlgsParam string
	audiences     map[string]bool
	issuers       map[string]*keyStore
	base          *url.URL
	tokens        *tokenCache
	replay        *replayCache
}

// NewValidator checks cfg and fetches every issuer's JWKS once, so that a
// wrong URL fails at start-up rather than on the first patient lookup.
func NewValidator(ctx context.Context, cfg Config) (*Validator, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("auth: no trusted issuers configured")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("auth: no audience configured")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultAlgorithms
	}
	if len(cfg.DPoP.Algorithms) == 0 {
		cfg.DPoP.Algorithms = cfg.Algorithms
	}
	if cfg.JWKSRefreshInterval <= 0 {
		cfg.JWKSRefreshInterval = 15 * time.Minute
	}
	if cfg.JWKSMinRefreshInterval <= 0 {
		cfg.JWKSMinRefreshInterval = time.Minute
	}
	if cfg.DPoP.ProofWindow <= 0 {
		cfg.DPoP.ProofWindow = 60 * time.Second
	}
	if cfg.DPoP.ReplayCacheSize <= 0 {
		cfg.DPoP.ReplayCacheSize = 100_000
	}
	if cfg.DPoP.ReplayTimeout <= 0 {
		cfg.DPoP.ReplayTimeout = 2 * time.Second
	}
	if cfg.MaxAttestAge == 0 {
		cfg.MaxAttestAge = 60 * time.Minute
	}
	if cfg.MaxTokenLifetime < 0 {
		return nil, errors.New("auth: MaxTokenLifetime must not be negative")
	}
	if cfg.Realm == "" {
		cfg.Realm = "kjernejournal"
	}
	v := &Validator{cfg: cfg, audiences: map[string]bool{}, issuers: map[string]*keyStore{}}
	switch {
	case cfg.ClockSkew == 0:
		v.skew = 30 * time.Second
	case cfg.ClockSkew > 0:
		v.skew = cfg.ClockSkew
	}
	var err error
	if v.algs, err = algSet(cfg.Algorithms); err != nil {
		return nil, err
	}
	if v.dpopAlgs, err = algSet(cfg.DPoP.Algorithms); err != nil {
		return nil, fmt.Errorf("DPoP: %w", err)
	}
	names := make([]string, 0, len(v.dpopAlgs))
	for n := range v.dpopAlgs {
		names = append(names, n)
	}
	slices.Sort(names)
	v.dpopAlgsParam = strings.Join(names, " ")
	for _, a := range cfg.Audiences {
		v.audiences[a] = true
	}
	if cfg.ExternalBaseURL != "" {
		u, err := url.Parse(cfg.ExternalBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("auth: ExternalBaseURL %q must be an absolute http(s) URL without query", cfg.ExternalBaseURL)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		v.base = u
	}
	if cfg.TokenCacheSize == 0 {
		cfg.TokenCacheSize = 10_000
	}
	if cfg.TokenCacheSize > 0 {
		v.tokens = newTokenCache(cfg.TokenCacheSize)
	}
	v.replay = newReplayCache(cfg.DPoP.ReplayCacheSize)

	for _, is := range cfg.Issuers {
		if is.URL == "" {
			return nil, errors.New("auth: issuer without URL")
		}
		if _, dup := v.issuers[is.URL]; dup {
			return nil, fmt.Errorf("auth: issuer %q configured twice", is.URL)
		}
		src := is.KeySource
		if src == nil {
			if err := checkJWKSURL(is.JWKSURL); err != nil {
				return nil, fmt.Errorf("auth: issuer %q: %w", is.URL, err)
			}
			jwksURL, client := is.JWKSURL, cfg.HTTPClient
			src = func(ctx context.Context) (jwk.Set, error) {
				return fetchJWKS(ctx, client, jwksURL)
			}
		}
		ks := &keyStore{
			issuer: is.URL, source: src, now: cfg.Now,
			refreshEvery: cfg.JWKSRefreshInterval, minInterval: cfg.JWKSMinRefreshInterval,
		}
		if err := ks.refresh(ctx, false); err != nil {
			return nil, fmt.Errorf("auth: issuer %q: fetching JWKS: %w", is.URL, err)
		}
		v.issuers[is.URL] = ks
	}
	return v, nil
}

// fetchJWKS is jwk.Fetch with one difference: a key we cannot use (a weak
// RSA key, an unknown kty) must not make the issuer's whole set unusable, so
// unparseable keys are skipped (jwk.Fetch has no way to pass that parse
// option). buildSnapshot then decides which of the rest count.
func fetchJWKS(ctx context.Context, client *http.Client, u string) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s: HTTP %d", u, res.StatusCode)
	}
	const maxJWKS = 1 << 20
	buf, err := io.ReadAll(io.LimitReader(res.Body, maxJWKS+1))
	if err != nil {
		return nil, err
	}
	if len(buf) > maxJWKS {
		return nil, fmt.Errorf("JWKS %s larger than %d bytes", u, maxJWKS)
	}
	return jwk.Parse(buf, jwk.WithIgnoreParseError(true))
}

func algSet(names []string) (map[string]jwa.SignatureAlgorithm, error) {
	m := map[string]jwa.SignatureAlgorithm{}
	for _, n := range names {
		a, ok := asymmetricAlgs[n]
		if !ok {
			return nil, fmt.Errorf("auth: algorithm %q not allowed (only asymmetric signature algorithms)", n)
		}
		m[n] = a
	}
	return m, nil
}

func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("JWKS URL %q is not an absolute URL", s)
	}
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("JWKS URL %q must be https (plain http only on loopback)", s)
}

// Validate authenticates r. It returns the Principal, or an *Error (always
// that type) telling the status and WWW-Authenticate challenge to answer
// with. A DPoP-bound token has its proof checked on every call, cached or not.
func (v *Validator) Validate(ctx context.Context, r *http.Request) (*Principal, error) {
	p, e := v.validate(ctx, r)
	if e != nil {
		return nil, e
	}
	return p, nil
}

func (v *Validator) validate(ctx context.Context, r *http.Request) (*Principal, *Error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return nil, v.missing("authentication required")
	}
	if len(hs) > 1 {
		return nil, v.errorf(http.StatusBadRequest, SchemeBearer, CodeInvalidRequest, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(hs[0], " ")
	switch {
	case strings.EqualFold(scheme, SchemeBearer):
		scheme = SchemeBearer
	case strings.EqualFold(scheme, SchemeDPoP):
		scheme = SchemeDPoP
	default:
		// Other schemes (Basic, …) are not credentials we understand: the
		// client is told which ones we do, as for a request without any.
		return nil, v.missing("unsupported authorization scheme")
	}
	if scheme == SchemeBearer && v.cfg.RequireDPoP {
		// Refused before the token is even verified: however valid, a
		// Bearer token is not what this server accepts, and the client
		// must learn to use DPoP rather than retry.
		return nil, v.invalidToken(SchemeDPoP, "this server accepts DPoP-bound tokens only (RFC 9449): present the token as Authorization: DPoP with a DPoP proof")
	}
	token = strings.TrimLeft(token, " ")
	if !ok || token == "" {
		return nil, v.errorf(http.StatusBadRequest, scheme, CodeInvalidRequest, "empty %s credentials", scheme)
	}
	if len(token) > maxTokenLen {
		return nil, v.invalidToken(scheme, "token too large")
	}

	now := v.cfg.Now()
	var p *Principal
	if v.tokens != nil {
		if p = v.tokens.get(token, now.Add(-v.skew)); p != nil {
			telemetry.TokenCacheHit.Inc()
		} else {
			telemetry.TokenCacheMiss.Inc()
		}
	}
	if p == nil {
		var e *Error
		p, e = v.verifyToken(ctx, token, scheme, now)
		if e != nil {
			return nil, e
		}
		if v.tokens != nil {
			v.tokens.put(token, p, now)
		}
	}

	// The attest ages while the token is cached, so its age is checked on
	// every request, not once at verification; before the proof, so that a
	// refused token does not use up the client's proof.
	if e := v.checkAttestAge(p, scheme, now); e != nil {
		return nil, e
	}
	switch {
	case p.DPoPThumbprint != "" && scheme != SchemeDPoP:
		// RFC 9449 §7.2: a bound token sent as Bearer is someone who has the
		// token but perhaps not the key.
		return nil, v.invalidToken(SchemeDPoP, "DPoP-bound token presented as Bearer")
	case p.DPoPThumbprint == "" && scheme == SchemeDPoP:
		return nil, v.invalidToken(SchemeDPoP, "token is not DPoP-bound")
	case scheme == SchemeDPoP:
		// The proof's ath binds it to this token's SHA-256; only DPoP pays
		// for the hash, Bearer requests find the cache by the token itself.
		if e := v.checkProof(ctx, r, sha256.Sum256([]byte(token)), p.DPoPThumbprint, now); e != nil {
			return nil, e
		}
	}
	out := *p
	out.Scheme = scheme
	return &out, nil
}

// b64 is strict: a token whose segments are not canonical base64url is not
// one an issuer produced, and strictness rules out signature malleability
// through the unused trailing bits.
var b64 = base64.RawURLEncoding.Strict()

func splitJWS(token string) (hdr, payload, sig string, ok bool) {
	hdr, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	// An empty signature is let through to be refused by the alg and
	// signature checks, which give the client a more useful description.
	if !ok1 || !ok2 || hdr == "" || payload == "" || strings.Contains(sig, ".") {
		return "", "", "", false
	}
	return hdr, payload, sig, true
}

// decodeHeader returns the protected header with exact (case-sensitive)
// member names; encoding/json struct decoding would match "ALG" to alg.
func decodeHeader(seg string) (map[string]json.RawMessage, error) {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return nil, errors.New("header is not base64url")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("header is not a JSON object")
	}
	return m, nil
}

func headerString(m map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("header %q is not a string", name)
	}
	return s, true, nil
}

// accessTokenTyp accepts RFC 9068's at+jwt (also spelled as the full media
// type) and the generic JWT that HelseID and older servers send.
func accessTokenTyp(typ string) bool {
	t := strings.ToLower(typ)
	t = strings.TrimPrefix(t, "application/")
	return t == "at+jwt" || t == "jwt"
}

func (v *Validator) verifyToken(ctx context.Context, token, scheme string, now time.Time) (*Principal, *Error) {
	hseg, pseg, sseg, ok := splitJWS(token)
	if !ok {
		return nil, v.invalidToken(scheme, "token is not a compact JWS")
	}
	hdr, err := decodeHeader(hseg)
	if err != nil {
		return nil, v.invalidToken(scheme, "%v", err)
	}
	alg, _, err := headerString(hdr, "alg")
	if err != nil {
		return nil, v.invalidToken(scheme, "%v", err)
	}
	algObj, ok := v.algs[alg]
	if !ok {
		if alg == "" || strings.EqualFold(alg, "none") {
			return nil, v.invalidToken(scheme, "unsigned token")
		}
		return nil, v.invalidToken(scheme, "algorithm %q not allowed", alg)
	}
	typ, _, err := headerString(hdr, "typ")
	if err != nil || !accessTokenTyp(typ) {
		return nil, v.invalidToken(scheme, "token type %q is not an access token", typ)
	}
	// Keys must come from the issuer's JWKS: keys or key URLs carried by the
	// token itself are an attacker's invitation to trust their key.
	for _, h := range []string{"jwk", "jku", "x5u", "x5c"} {
		if _, ok := hdr[h]; ok {
			return nil, v.invalidToken(scheme, "header %q not accepted: keys come from the issuer's JWKS", h)
		}
	}
	for _, h := range []string{"crit", "b64", "zip"} {
		if _, ok := hdr[h]; ok {
			return nil, v.invalidToken(scheme, "header %q not supported", h)
		}
	}
	kid, _, err := headerString(hdr, "kid")
	if err != nil {
		return nil, v.invalidToken(scheme, "%v", err)
	}
	if _, err := b64.DecodeString(sseg); err != nil {
		return nil, v.invalidToken(scheme, "signature is not base64url")
	}
	payload, err := b64.DecodeString(pseg)
	if err != nil {
		return nil, v.invalidToken(scheme, "payload is not base64url")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, v.invalidToken(scheme, "malformed claims")
	}
	// The issuer is read before the signature is checked only to choose
	// whose keys to verify with; a forged iss then fails the signature.
	ks, ok := v.issuers[c.Iss]
	if !ok {
		return nil, v.invalidToken(scheme, "untrusted issuer")
	}
	keys, err := ks.lookup(ctx, kid, alg)
	if err != nil {
		return nil, v.invalidToken(scheme, "signing key not found in the issuer's JWKS")
	}
	verified := false
	for _, k := range keys {
		got, err := jws.VerifyCompactFast(k.key, []byte(token), algObj)
		if err == nil && bytes.Equal(got, payload) {
			verified = true
			break
		}
	}
	if !verified {
		return nil, v.invalidToken(scheme, "signature verification failed")
	}

	if !v.audienceOK(c.Aud) {
		return nil, v.invalidToken(scheme, "token not issued for this audience")
	}
	if c.Exp == nil {
		return nil, v.invalidToken(scheme, "token has no exp")
	}
	if !now.Before(c.Exp.t.Add(v.skew)) {
		return nil, v.invalidToken(scheme, "token expired")
	}
	if c.Nbf != nil && now.Add(v.skew).Before(c.Nbf.t) {
		return nil, v.invalidToken(scheme, "token not yet valid")
	}
	if c.Iat != nil && c.Iat.t.After(now.Add(v.skew)) {
		return nil, v.invalidToken(scheme, "token issued in the future")
	}
	if v.cfg.MaxTokenLifetime > 0 {
		start := c.Iat
		if start == nil {
			start = c.Nbf
		}
		if start == nil {
			return nil, v.invalidToken(scheme, "token has neither iat nor nbf, so its lifetime cannot be checked")
		}
		if life := c.Exp.t.Sub(start.t); life > v.cfg.MaxTokenLifetime {
			return nil, v.invalidToken(scheme, "token lifetime %s exceeds the %s this server accepts", life.Round(time.Second), v.cfg.MaxTokenLifetime)
		}
	}
	if c.Cnf != nil && c.Cnf.JKT == "" {
		return nil, v.invalidToken(scheme, "cnf without jkt: unsupported confirmation method")
	}
	if len(v.cfg.ScopeMap) > 0 {
		c.Scope = mapScopes(c.Scope, v.cfg.ScopeMap)
	}
	p, err := principalFromClaims(&c)
	if err != nil {
		return nil, v.invalidToken(scheme, "%v", err)
	}
	return p, nil
}

func (v *Validator) audienceOK(aud []string) bool {
	for _, a := range aud {
		if v.audiences[a] {
			return true
		}
	}
	return false
}

// constantEq compares two strings without leaking where they differ.
func constantEq(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
