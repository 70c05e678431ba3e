package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/loopback"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// authFlags configure token validation, the built-in authorisation server
// and the access policy.
type authFlags struct {
	builtin     *bool
	keyFile     *string
	clients     *string
	personas    *string
	trusted     *string
	audience    *string
	noAuth      *bool
	hospitals   *string
	specialists *string
	tokenCache  *int
	helseID     helseIDFlags
}

func addAuthFlags(fs *flagSet) authFlags {
	return authFlags{
		builtin:     fs.Bool("auth-server", false, "run the built-in SMART authorisation server under /auth (development and tests; off in production)"),
		keyFile:     fs.String("smart-key-file", smart.DefaultKeyFile, "signing key of the built-in authorisation server (the default is a development key)"),
		clients:     fs.String("smart-clients", smart.DefaultClientsFile, "client registry of the built-in authorisation server"),
		personas:    fs.String("smart-personas", smart.DefaultPersonasFile, "synthetic users of the built-in authorisation server"),
		trusted:     fs.String("trusted-issuers", "", "other token issuers to trust, as comma-separated issuer|jwks-url pairs (e.g. HelseID)"),
		audience:    fs.String("audience", "", "required token audience (default: the base URL)"),
		noAuth:      fs.Bool("insecure-no-auth", false, "switch authentication and the access rules off (loopback addresses only; for development)"),
		hospitals:   fs.String("hospitals", "", "organisation numbers of legal entities that are hospitals, comma-separated (default with --auth-server: the synthetic hospitals)"),
		specialists: fs.String("contract-specialists", "", "organisation numbers of contract specialists (avtalespesialister), comma-separated (default with --auth-server: the personas marked contract_specialist)"),
		tokenCache:  fs.Int("token-cache-size", 10000, "verified tokens kept until they expire, so a token's signature is checked once; -1 switches the cache off"),
		helseID:     addHelseIDFlags(fs),
	}
}

// security is what serve needs from the auth flags.
type security struct {
	validator *auth.Validator
	builtin   *smart.Server
	policy    *access.Policy
	cap       *interaction.Security
}

// setup builds the token validation, the policy and, with --auth-server,
// the built-in authorisation server; patients lists the patients its
// development pages offer (nil: none); st, if not nil, remembers used DPoP
// proofs.
func (f authFlags) setup(ctx context.Context, addr, base string, patients func(context.Context) []smart.PatientChoice, st store.Store) (*security, error) {
	if *f.noAuth {
		if !loopback.Addr(addr) {
			return nil, fmt.Errorf("--insecure-no-auth is allowed on loopback addresses only, not %s", addr)
		}
		return &security{}, nil
	}
	audience := *f.audience
	if audience == "" {
		audience = base
	}
	sec := &security{policy: &access.Policy{Orgs: access.Organisations{
		Hospitals: splitList(*f.hospitals), ContractSpecialists: splitList(*f.specialists)}}}
	var issuers []auth.Issuer
	if *f.builtin {
		clients, err := smart.LoadClients(*f.clients)
		if err != nil {
			return nil, err
		}
		personas, err := smart.LoadPersonas(*f.personas)
		if err != nil {
			return nil, err
		}
		srv, err := smart.New(smart.Config{Issuer: base, Audience: audience, KeyFile: *f.keyFile, Clients: clients, Personas: personas,
			Patients: patients, StyleURL: base + "/app/smart-style.json"})
		if err != nil {
			return nil, fmt.Errorf("built-in authorisation server: %w", err)
		}
		sec.builtin = srv
		issuers = append(issuers, auth.Issuer{URL: srv.Issuer(), JWKSURL: srv.Endpoints().JWKS,
			KeySource: func(context.Context) (jwk.Set, error) { return srv.PublicKeys(), nil }})
		ep := srv.Endpoints()
		sec.cap = &interaction.Security{Authorize: ep.Authorize, Token: ep.Token, Introspect: ep.Introspect, Revoke: ep.Revoke, Manage: ep.Manage}
		if len(sec.policy.Orgs.Hospitals) == 0 {
			for _, h := range seed.Hospitals() {
				sec.policy.Orgs.Hospitals = append(sec.policy.Orgs.Hospitals, h.Number)
			}
		}
		// Likewise the personas' contract specialists, so that the
		// development avtalespesialist can use UNNTAK as rule 2 allows.
		if len(sec.policy.Orgs.ContractSpecialists) == 0 {
			for _, p := range personas {
				if p.ContractSpecialist && p.LegalEntity != nil && !slices.Contains(sec.policy.Orgs.ContractSpecialists, p.LegalEntity.ID) {
					sec.policy.Orgs.ContractSpecialists = append(sec.policy.Orgs.ContractSpecialists, p.LegalEntity.ID)
				}
			}
		}
	}
	for _, pair := range splitList(*f.trusted) {
		iss, jwks, ok := strings.Cut(pair, "|")
		if !ok {
			return nil, fmt.Errorf("--trusted-issuers: %q is not issuer|jwks-url", pair)
		}
		issuers = append(issuers, auth.Issuer{URL: iss, JWKSURL: jwks})
	}
	if len(issuers) == 0 {
		return nil, errors.New("no token issuer: use --auth-server, --trusted-issuers, or --insecure-no-auth on loopback")
	}
	vcfg := auth.Config{Issuers: issuers, Audiences: []string{audience}, ExternalBaseURL: base,
		TokenCacheSize: *f.tokenCache}
	if err := f.helseID.apply(&vcfg, st); err != nil {
		return nil, err
	}
	v, err := auth.NewValidator(ctx, vcfg)
	if err != nil {
		return nil, err
	}
	sec.validator = v
	return sec, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
