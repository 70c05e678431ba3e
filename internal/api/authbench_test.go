package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
)

// BenchmarkAuthenticatedRead measures the server's own cost of a read
// (in process, no network, so the load generator does not blur it):
// without authentication, and with token validation, scopes and the access
// rules, with the token cache on and off. The "auth-overhead-%" metric is
// the added cost relative to the unauthenticated read.
func BenchmarkAuthenticatedRead(b *testing.B) {
	st := engines()[0].open(b)
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := seed.Load(context.Background(), st, codec, seed.LoadOptions{Seed: 11, Patients: 20, Preparer: preparer(b, codec)}); err != nil {
		b.Fatal(err)
	}
	patient := seed.PatientID(11, 0)
	path := "/Patient/" + patient
	const base = "http://kj.test"
	clients, _ := smart.LoadClients("../../testdata/smart/clients.json")
	personas, _ := smart.LoadPersonas("../../testdata/smart/personas.json")
	as, err := smart.New(smart.Config{Issuer: base, KeyFile: "../../testdata/smart/dev-signing-key.pem", Clients: clients, Personas: personas})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := as.IssueToken(context.Background(), smart.TokenRequest{Persona: "hospital-doctor", Patient: patient, Lifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	var hospitals []string
	for _, h := range seed.Hospitals() {
		hospitals = append(hospitals, h.Number)
	}
	validator := func(cacheSize int) *auth.Validator {
		v, err := auth.NewValidator(context.Background(), auth.Config{
			Issuers:        []auth.Issuer{{URL: base, JWKSURL: base + "/auth/jwks", KeySource: func(context.Context) (jwk.Set, error) { return as.PublicKeys(), nil }}},
			Audiences:      []string{base},
			TokenCacheSize: cacheSize,
		})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	var runPath func(b *testing.B, srv *api.Server, headers bool, path string) float64
	server := func(cacheSize int, withAuth bool) *api.Server {
		cfg := api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler), BaseURL: base}
		if withAuth {
			cfg.Auth, cfg.Policy = validator(cacheSize), &access.Policy{Orgs: access.Organisations{Hospitals: hospitals}}
		}
		srv, err := api.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return srv
	}
	run := func(b *testing.B, srv *api.Server, headers bool) float64 {
		return runPath(b, srv, headers, path)
	}
	runPath = func(b *testing.B, srv *api.Server, headers bool, path string) float64 {
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest(http.MethodGet, base+path, nil)
				if headers {
					req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
					req.Header.Set("nhn-access-basis", "UNNTAK")
				}
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
		return float64(time.Since(start).Nanoseconds()) / float64(b.N)
	}
	var plain float64
	b.Run("no-auth", func(b *testing.B) { plain = run(b, server(0, false), false) })
	// A patient-bound search, with and without the whole enforcement point
	// (token, scopes, policy): the policy's added latency on a search.
	searchPath := "/MedicationStatement?patient=" + patient + "&status=active"
	var plainSearch float64
	b.Run("search-no-auth", func(b *testing.B) { plainSearch = runPath(b, server(0, false), false, searchPath) })
	b.Run("search-authorised", func(b *testing.B) {
		ns := runPath(b, server(10000, true), true, searchPath)
		if plainSearch > 0 {
			b.ReportMetric((ns-plainSearch)/1000, "added-µs")
		}
	})
	// Authentication alone: what the token check adds to a read.
	for _, c := range []struct {
		name string
		size int
	}{{"validate-only-cache-on", 10000}, {"validate-only-cache-off", -1}} {
		b.Run(c.name, func(b *testing.B) {
			v := validator(c.size)
			req := httptest.NewRequest(http.MethodGet, base+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Validate(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			if plain > 0 {
				b.ReportMetric(100*ns/plain, "%-of-plain-read")
			}
		})
	}
	// The whole authorised read: token, scopes and access rules.
	for _, c := range []struct {
		name string
		size int
	}{{"token-cache-on", 10000}, {"token-cache-off", -1}} {
		b.Run(c.name, func(b *testing.B) {
			ns := run(b, server(c.size, true), true)
			if plain > 0 {
				b.ReportMetric(100*(ns-plain)/plain, "auth-overhead-%")
			}
		})
	}
}
