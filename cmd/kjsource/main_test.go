package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/source"
	"github.com/kjernejournal/kjernejournal/internal/syncbuf"
)

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"--help"}, &out, &errOut))
	help := errOut.String()
	for _, f := range []string{"addr", "base-url", "name", "org", "region", "patients", "seed", "docs-per-patient",
		"base-date", "large-doc-mb", "kj-issuer", "kj-jwks-url", "latency", "error-rate", "disconnect-after-bytes", "down",
		"chunked", "garbage", "huge-search-bytes"} {
		assert.Regexp(t, `(?m)^  -`+f+`( |$)`, help)
		assert.Contains(t, help, "["+newFlagSet("serve", io.Discard).Env(f)+"]", f)
	}
	assert.Contains(t, help, "kjsource generate")
	assert.Contains(t, help, "/lab")
}

func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--error-rate", "2"},
		{"--name", "Privatklinikken AS"}, // not a seed hospital, so --org is needed
		{"--base-date", "01.01.2026"},
		{"--huge-search-bytes", "-1"},
		{"--huge-search-bytes", "2000000000"},
		{"--garbage=maybe"},
		{"--nope"},
		{"serve", "extra"},
	} {
		var out, errOut bytes.Buffer
		assert.Equal(t, exitUsage, run(context.Background(), args, &out, &errOut), "%v", args)
		assert.NotEmpty(t, errOut.String())
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("KJ_SOURCE_PATIENTS", "many")
		var out, errOut bytes.Buffer
		assert.Equal(t, exitUsage, run(context.Background(), nil, &out, &errOut))
		assert.Contains(t, errOut.String(), "KJ_SOURCE_PATIENTS")
	})
}

func TestConfigFromFlags(t *testing.T) {
	fs := newFlagSet("serve", &bytes.Buffer{})
	f := addServeFlags(fs)
	require.NoError(t, fs.Parse([]string{"--name", "Nordlandssykehuset HF", "--addr", ":8092", "--patients", "3", "--docs-per-patient", "2", "--large-doc-mb", "1", "--base-date", "2026-01-01"}))
	cfg, err := f.config(time.Now(), &bytes.Buffer{})
	require.NoError(t, err)
	want, _ := source.HospitalByName("Nordlandssykehuset HF")
	assert.Equal(t, want, cfg.Org)
	assert.Equal(t, "Helse Nord", cfg.Org.Region)
	assert.Equal(t, "http://127.0.0.1:8092", cfg.BaseURL)
	assert.Equal(t, "http://127.0.0.1:8080/jwks", cfg.JWKSURL)
	require.Len(t, cfg.Documents, (3+1)*2+1, "three demo patients and the demo citizen, two documents each, and the large one")
	assert.EqualValues(t, 1<<20, cfg.Documents[8].Size)

	// Lab results for the same patients, counted back from the same base.
	patients, err := source.SeedPatients(1, 3)
	require.NoError(t, err)
	assert.Equal(t, source.GenerateLab(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1, patients, want), cfg.LabResults)
	assert.Equal(t, source.Faults{}, cfg.Faults)
}

func TestFaultFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) source.Faults {
		t.Helper()
		fs := newFlagSet("serve", &bytes.Buffer{})
		f := addServeFlags(fs)
		require.NoError(t, fs.Parse(args))
		cfg, err := f.config(time.Now(), &bytes.Buffer{})
		require.NoError(t, err)
		return cfg.Faults
	}
	assert.Equal(t, source.Faults{Garbage: true, HugeSearchBytes: 5 << 20, Down: true, Chunked: true, Latency: 2 * time.Second, ErrorRate: 0.5, DisconnectAfterBytes: 100},
		parse(t, "--patients", "0", "--garbage", "--huge-search-bytes", "5242880", "--down", "--chunked", "--latency", "2s", "--error-rate", "0.5", "--disconnect-after-bytes", "100"))
	t.Run("environment", func(t *testing.T) {
		t.Setenv("KJ_SOURCE_GARBAGE", "true")
		t.Setenv("KJ_SOURCE_HUGE_SEARCH_BYTES", "1000000")
		assert.Equal(t, source.Faults{Garbage: true, HugeSearchBytes: 1000000}, parse(t, "--patients", "0"))
		assert.Equal(t, source.Faults{HugeSearchBytes: 1000000}, parse(t, "--patients", "0", "--garbage=false"), "the command line wins")
	})
}

func TestGenerateWritesTheSamples(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"generate", "-out", dir}, &out, &errOut), errOut.String())
	want, err := source.SampleListings()
	require.NoError(t, err)
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, string(b), string(got))
	}
}

// TestServe runs the command as `make run` does, configured through the
// environment, and talks to it over the loopback interface.
func TestServe(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := jwk.Import(&key.PublicKey)
	require.NoError(t, err)
	require.NoError(t, pub.Set(jwk.KeyIDKey, "kj-1"))
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer jwks.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	base := "http://" + addr

	t.Setenv("KJ_SOURCE_ADDR", addr)
	t.Setenv("KJ_SOURCE_PATIENTS", "2")
	t.Setenv("KJ_SOURCE_DOCS_PER_PATIENT", "11")
	t.Setenv("KJ_SOURCE_KJ_ISSUER", "http://kj.test")
	t.Setenv("KJ_SOURCE_KJ_JWKS_URL", jwks.URL)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	var wg sync.WaitGroup
	code := -1
	wg.Go(func() { code = run(ctx, []string{"serve", "--large-doc-mb", "2"}, &out, &errOut) })

	// Wait until it listens (bounded by attempts, not by time).
	ready := false
	for range 500 {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, ready, errOut.String())

	patients, err := source.SeedPatients(1, 2)
	require.NoError(t, err)
	pnr := patients[0].PersonNumber
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": "http://kj.test", "aud": base, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text(),
		"hpr": "9144889", "hp_category": "LE", "org": "300011268", "purpose_of_use": "TREAT", "access_basis": "UNNTAK", "patient": pnr,
	})
	h := jws.NewHeaders()
	require.NoError(t, h.Set(jws.TypeKey, source.AssertionType))
	require.NoError(t, h.Set(jws.KeyIDKey, "kj-1"))
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)

	req, _ := http.NewRequest(http.MethodGet, base+"/DocumentReference?patient.identifier="+url.QueryEscape(domain.SystemFNR+"|"+pnr), nil)
	req.Header.Set("Authorization", "Bearer "+string(tok))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var b struct{ Total int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 11+1, b.Total, "11 documents plus the large one")

	// The lab service of the same process, with an assertion for it.
	payload, _ = json.Marshal(map[string]any{
		"iss": "http://kj.test", "aud": base + "/lab", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text(),
		"hpr": "9144889", "hp_category": "LE", "org": "300011268", "purpose_of_use": "TREAT", "access_basis": "UNNTAK", "patient": pnr,
	})
	tok, err = jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	req, _ = http.NewRequest(http.MethodGet, base+"/lab/DiagnosticReport?_include=DiagnosticReport:result", nil)
	req.Header.Set("Authorization", "Bearer "+string(tok))
	req.Header.Set(source.HeaderPatientNIN, pnr)
	req.Header.Set(source.HeaderAccessBasis, "UNNTAK")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var lb struct {
		Total int
		Entry []struct{ Search struct{ Mode string } }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&lb))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, lb.Total, 2, "a recent and an old report at least")
	assert.Greater(t, len(lb.Entry), lb.Total, "with their Observations")

	cancel()
	wg.Wait()
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out.String(), "Oslo universitetssykehus HF (org 300010008, Helse Sør-Øst)")
	assert.Contains(t, out.String(), "large document dok-large-")
	assert.Contains(t, out.String(), "lab reports for the same patients at "+base+"/lab")
	assert.Contains(t, errOut.String(), `"msg":"lookup"`)
	assert.Contains(t, errOut.String(), `"hpr":"9144889"`)
	assert.Contains(t, errOut.String(), `"action":"lab-search"`)
}
