package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// AssertionType is the JWS header typ of kjernejournal's source assertion.
// A dedicated type keeps an access token or any other JWT kjernejournal
// signs from being replayed to a source as an assertion.
const AssertionType = "kj-source-assertion+jwt"

// MaxAssertionLifetime bounds exp - iat: assertions are minted per call.
const MaxAssertionLifetime = 5 * time.Minute

// clockSkew tolerated between kjernejournal's clock and ours.
const clockSkew = 30 * time.Second

// minJWKSRefresh limits how often an unknown kid makes the source fetch the
// JWKS again: often enough to pick up a rotated key, rarely enough that
// garbage tokens cannot turn the source into a load generator against
// kjernejournal's JWKS endpoint.
const minJWKSRefresh = 10 * time.Second

// Assertion is the verified identity kjernejournal passed with a call.
type Assertion struct {
	Issuer       string    `json:"iss"`
	JTI          string    `json:"jti"`
	IssuedAt     time.Time `json:"iat"`
	Expires      time.Time `json:"exp"`
	HPR          string    `json:"hpr"`
	HPCategory   string    `json:"hp_category"`
	Org          string    `json:"org"`
	PurposeOfUse string    `json:"purpose_of_use"`
	AccessBasis  string    `json:"access_basis"`
	Patient      string    `json:"patient"`
	Document     string    `json:"document,omitempty"`
	// Role "citizen" marks a citizen reading their own lab results: PID
	// is then the citizen's person number (equal to Patient) and the
	// health-personnel claims are absent.
	Role string `json:"role,omitempty"`
	PID  string `json:"pid,omitempty"`
}

// errAssertion is a refusal whose text is safe to return to the caller.
type errAssertion struct{ msg string }

func (e *errAssertion) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &errAssertion{fmt.Sprintf(format, args...)} }

// verifier checks assertions against kjernejournal's JWKS, which it keeps
// in a jwk.Cache (refreshed in the background by httprc).
type verifier struct {
	issuer  string
	jwksURL string
	orgNr   string
	now     func() time.Time
	cache   *jwk.Cache
	cancel  context.CancelFunc

	mu          sync.Mutex
	lastRefresh time.Time
	seen        map[string]time.Time // iss + " " + jti -> exp, for replay detection
}

func newVerifier(issuer, jwksURL, orgNr string, client *http.Client, now func() time.Time) (*verifier, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("source: JWKS cache: %w", err)
	}
	opts := []jwk.RegisterOption{
		// kjernejournal may start after its sources (make run starts them
		// together): do not block start-up on the first fetch, fetch on
		// the first call instead.
		jwk.WithWaitReady(false),
		jwk.WithMinInterval(time.Minute),
	}
	if client != nil {
		opts = append(opts, jwk.WithHTTPClient(client))
	}
	if err := cache.Register(ctx, jwksURL, opts...); err != nil {
		cancel()
		return nil, fmt.Errorf("source: JWKS %s: %w", jwksURL, err)
	}
	return &verifier{issuer: issuer, jwksURL: jwksURL, orgNr: orgNr, now: now, cache: cache, cancel: cancel, seen: map[string]time.Time{}}, nil
}

func (v *verifier) close() { v.cancel() }

// keySet returns the cached JWKS, fetching it now if it never arrived or if
// forced (an unknown kid) and the last fetch is not too recent.
func (v *verifier) keySet(ctx context.Context, force bool) (jwk.Set, error) {
	set, err := v.cache.Lookup(ctx, v.jwksURL)
	if err == nil && !force {
		return set, nil
	}
	v.mu.Lock()
	recent := v.now().Sub(v.lastRefresh) < minJWKSRefresh
	if !recent {
		v.lastRefresh = v.now()
	}
	v.mu.Unlock()
	if recent {
		if err != nil {
			return nil, errors.New("kjernejournal's JWKS is not available")
		}
		return set, nil
	}
	fresh, ferr := v.cache.Refresh(ctx, v.jwksURL)
	if ferr != nil {
		if err == nil {
			return set, nil // keep using the keys we have
		}
		return nil, fmt.Errorf("kjernejournal's JWKS is not available: %w", ferr)
	}
	return fresh, nil
}

// verify checks the bearer assertion and returns its claims. base is this
// source's base URL for the aud check. Binding to the request (patient,
// document) is the caller's job; the jti is only spent by spend, after
// those checks, so a refused call does not use up a valid assertion.
func (v *verifier) verify(ctx context.Context, token, base string) (*Assertion, error) {
	if token == "" {
		return nil, refuse("missing assertion: send Authorization: Bearer <kjernejournal source assertion>")
	}
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, refuse("assertion is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	typ, _ := hdr.Type()
	if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), AssertionType) {
		return nil, refuse("assertion typ must be %q", AssertionType)
	}
	alg, _ := hdr.Algorithm()
	var kty string
	switch alg {
	case jwa.ES256():
		kty = "EC"
	case jwa.RS256():
		kty = "RSA"
	default:
		return nil, refuse("assertion alg must be ES256 or RS256")
	}
	kid, _ := hdr.KeyID()

	key, err := v.findKey(ctx, kid, kty, false)
	if err != nil {
		return nil, err
	}
	if key == nil {
		if key, err = v.findKey(ctx, kid, kty, true); err != nil {
			return nil, err
		}
	}
	if key == nil {
		return nil, refuse("assertion is not signed by a key in kjernejournal's JWKS")
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.issuer),
		jwt.WithAcceptableSkew(clockSkew),
		jwt.WithClock(jwt.ClockFunc(v.now)),
	)
	if err != nil {
		return nil, refuse("invalid assertion: %v", err)
	}
	a := &Assertion{}
	a.Issuer, _ = tok.Issuer()
	a.JTI, _ = tok.JwtID()
	var okIat, okExp bool
	a.IssuedAt, okIat = tok.IssuedAt()
	a.Expires, okExp = tok.Expiration()
	if !okIat || !okExp {
		return nil, refuse("assertion must carry iat and exp")
	}
	if a.Expires.Sub(a.IssuedAt) > MaxAssertionLifetime || a.Expires.Sub(v.now()) > MaxAssertionLifetime+clockSkew {
		return nil, refuse("assertion lives longer than %s", MaxAssertionLifetime)
	}
	if a.JTI == "" {
		return nil, refuse("assertion must carry jti")
	}
	aud, _ := tok.Audience()
	if !audienceOK(aud, base, v.orgNr) {
		return nil, refuse("assertion audience must be this source (%s or organisation number %s)", base, v.orgNr)
	}
	claims := []struct {
		name string
		dst  *string
	}{
		{"hpr", &a.HPR}, {"hp_category", &a.HPCategory}, {"org", &a.Org},
		{"purpose_of_use", &a.PurposeOfUse}, {"access_basis", &a.AccessBasis}, {"patient", &a.Patient},
	}
	if tok.Has("role") {
		if err := tok.Get("role", &a.Role); err != nil || a.Role != "citizen" {
			return nil, refuse("assertion claim \"role\" must be \"citizen\" when present")
		}
		// A citizen reading their own record: no health personnel, and
		// the patient is the person logged in.
		claims = []struct {
			name string
			dst  *string
		}{{"pid", &a.PID}, {"patient", &a.Patient}}
	}
	for _, c := range claims {
		if err := tok.Get(c.name, c.dst); err != nil || *c.dst == "" {
			return nil, refuse("assertion must carry the claim %q (a string)", c.name)
		}
	}
	var doc string
	if tok.Has("document") {
		if err := tok.Get("document", &doc); err != nil {
			return nil, refuse("assertion claim \"document\" must be a string")
		}
	}
	a.Document = doc
	if a.Role == "citizen" && a.PID != a.Patient {
		return nil, refuse("a citizen's assertion must name the citizen as the patient (pid equal to patient)")
	}
	return a, nil
}

// spend records the assertion's jti; false if it was seen before.
func (v *verifier) spend(a *Assertion) bool {
	now := v.now()
	key := a.Issuer + " " + a.JTI
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, exp := range v.seen {
		if now.After(exp.Add(clockSkew)) {
			delete(v.seen, k) // expired assertions are refused anyway
		}
	}
	if _, dup := v.seen[key]; dup {
		return false
	}
	v.seen[key] = a.Expires
	return true
}

func (v *verifier) findKey(ctx context.Context, kid, kty string, force bool) (jwk.Key, error) {
	set, err := v.keySet(ctx, force)
	if err != nil {
		return nil, err
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if kid != "" {
			if id, _ := k.KeyID(); id != kid {
				continue
			}
		}
		if k.KeyType().String() != kty {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "" && use != "sig" {
			continue
		}
		return k, nil
	}
	return nil, nil
}

// audienceOK accepts the source's base URL (trailing slash ignored) or its
// organisation number: kjernejournal's source registry knows both, and the
// organisation number survives a source moving to another URL.
func audienceOK(aud []string, base, orgNr string) bool {
	base = strings.TrimSuffix(base, "/")
	for _, a := range aud {
		if (base != "" && strings.TrimSuffix(a, "/") == base) || (orgNr != "" && a == orgNr) {
			return true
		}
	}
	return false
}
