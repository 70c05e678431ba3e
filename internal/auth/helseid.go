package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// HelseID as the national APIs use it: DPoP required, proofs remembered in
// the store, the attest's age, API scopes mapped onto SMART scopes.

// missing is the 401 for a request without credentials we understand.
func (v *Validator) missing(desc string) *Error {
	return &Error{Status: http.StatusUnauthorized, Scheme: SchemeBearer, Description: desc,
		realm: v.cfg.Realm, algs: v.dpopAlgsParam, dpopOnly: v.cfg.RequireDPoP}
}

// RequiresDPoP reports whether Bearer tokens are refused.
func (v *Validator) RequiresDPoP() bool { return v.cfg.RequireDPoP }

// claimProof remembers a proof in the shared store: the first use anywhere
// wins, every later one is a replay. The call is bounded by the request's
// deadline and ReplayTimeout; a store that cannot answer refuses the
// request, since accepting an unchecked proof would accept replays.
func (v *Validator) claimProof(ctx context.Context, key [32]byte, now, expires time.Time) *Error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.DPoP.ReplayTimeout)
	defer cancel()
	fresh, err := v.cfg.DPoP.Replay.ClaimOnce(ctx, "dpop:"+base64.RawURLEncoding.EncodeToString(key[:]), now, expires)
	switch {
	case err != nil:
		e := v.errorf(http.StatusServiceUnavailable, SchemeDPoP, CodeTemporarilyUnavailable,
			"the DPoP replay check is unavailable; retry later with a new proof")
		return e
	case !fresh:
		return v.invalidProof("DPoP proof replayed")
	}
	return nil
}

// checkAttestAge refuses a token whose attest is older than MaxAttestAge
// (or made in the future). An attest without toa is judged by the token
// alone, whose lifetime MaxTokenLifetime bounds.
func (v *Validator) checkAttestAge(p *Principal, scheme string, now time.Time) *Error {
	if p.AttestTime.IsZero() || v.cfg.MaxAttestAge < 0 {
		return nil
	}
	if p.AttestTime.After(now.Add(v.skew)) {
		return v.invalidToken(scheme, "the trust-framework attest is dated in the future (toa)")
	}
	if age := now.Sub(p.AttestTime); age > v.cfg.MaxAttestAge+v.skew {
		return v.invalidToken(scheme, "the trust-framework attest is %s old (toa); at most %s is accepted: get a new token with a new attest",
			age.Round(time.Second), v.cfg.MaxAttestAge)
	}
	return nil
}

// mapScopes adds to scopes the SMART scopes that m grants for each of
// them, without repeats; the token's own scopes stay.
func mapScopes(scopes []string, m map[string][]string) []string {
	out := slices.Clone(scopes)
	for _, s := range scopes {
		for _, g := range m[s] {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// ScopeMapFile is the configuration of Config.ScopeMap and the audiences
// that go with it (testdata/helseid/scope-map.json is a sample).
type ScopeMapFile struct {
	// Audiences are token audiences accepted besides the server's own,
	// e.g. "nhn:kjernejournal", the audience of HelseID's kjernejournal
	// API.
	Audiences []string `json:"audiences"`
	// Scopes maps an issuer scope onto the SMART scopes it grants.
	Scopes map[string][]string `json:"scopes"`
}

// LoadScopeMap reads and checks a scope map file: every mapped-to scope
// must be a SMART scope this server understands, so that a typing error
// is found at start-up rather than as a refusal in production.
func LoadScopeMap(path string) (*ScopeMapFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var f ScopeMapFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("scope map %s: %w", path, err)
	}
	if len(f.Scopes) == 0 {
		return nil, fmt.Errorf("scope map %s: no scopes", path)
	}
	for from, to := range f.Scopes {
		if from == "" || len(to) == 0 {
			return nil, fmt.Errorf("scope map %s: scope %q maps to nothing", path, from)
		}
		for _, s := range to {
			sc, errs := ParseScopes(s)
			if len(errs) > 0 || len(sc) != 1 || !sc[0].IsResource() {
				return nil, fmt.Errorf("scope map %s: %q (for %q) is not a SMART resource scope", path, s, from)
			}
		}
	}
	for _, a := range f.Audiences {
		if a == "" {
			return nil, errors.New("scope map " + path + ": empty audience")
		}
	}
	return &f, nil
}
