package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// helseIDFlags configure token validation as the national APIs use HelseID:
// DPoP required, proofs remembered in the store, limits on token lifetime
// and clock leeway, HelseID API scopes mapped onto SMART scopes.
type helseIDFlags struct {
	requireDPoP *bool
	maxLifetime *time.Duration
	leeway      *time.Duration
	scopeMap    *string
}

func addHelseIDFlags(fs *flagSet) helseIDFlags {
	return helseIDFlags{
		requireDPoP: fs.Bool("require-dpop", false, "accept DPoP-bound tokens only (RFC 9449), as the national APIs do: a Bearer token gets 401"),
		maxLifetime: fs.Duration("max-token-lifetime", time.Hour, "refuse access tokens whose lifetime (exp - iat) is longer than this; 0: no limit"),
		leeway:      fs.Duration("clock-leeway", 10*time.Second, "clock difference tolerated on exp, nbf and iat of tokens and DPoP proofs; 0: none (at most 5m)"),
		scopeMap:    fs.String("scope-map", "", "JSON file mapping HelseID API scopes (nhn:kjernejournal/...) onto SMART scopes, with extra audiences (sample: testdata/helseid/scope-map.json)"),
	}
}

// apply sets the HelseID options of cfg. st is the store: every engine
// remembers DPoP proofs (store.Once), so that a proof is refused when
// replayed after a restart or to another server process on the store.
func (f helseIDFlags) apply(cfg *auth.Config, st store.Store) error {
	cfg.RequireDPoP = *f.requireDPoP
	if *f.maxLifetime < 0 {
		return errors.New("--max-token-lifetime must not be negative")
	}
	cfg.MaxTokenLifetime = *f.maxLifetime
	switch l := *f.leeway; {
	case l < 0 || l > 5*time.Minute:
		// A large leeway stretches every token's and proof's validity:
		// clocks that far apart need fixing, not tolerating.
		return fmt.Errorf("--clock-leeway %s: must be between 0 and 5m", l)
	case l == 0:
		cfg.ClockSkew = -1 // auth.Config: negative means none
	default:
		cfg.ClockSkew = l
	}
	if *f.scopeMap != "" {
		m, err := auth.LoadScopeMap(*f.scopeMap)
		if err != nil {
			return fmt.Errorf("--scope-map: %w", err)
		}
		cfg.ScopeMap = m.Scopes
		cfg.Audiences = append(cfg.Audiences, m.Audiences...)
	}
	if st != nil {
		once, ok := st.(store.Once)
		if !ok {
			return fmt.Errorf("the store %T cannot remember DPoP proofs (store.Once)", st)
		}
		cfg.DPoP.Replay = once
	}
	return nil
}
