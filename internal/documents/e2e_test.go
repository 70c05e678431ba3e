package documents

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/source"
)

// These tests run the colleague's development source hospital
// (internal/source, the handler behind cmd/kjsource) on real loopback HTTP
// servers, with kjernejournal's JWKS served over HTTP as well.

var (
	orgOUS  = source.Organisation{Number: "300010008", Name: "Oslo universitetssykehus HF", Region: "Helse Sør-Øst"}
	orgNLSH = source.Organisation{Number: "300011268", Name: "Nordlandssykehuset HF", Region: "Helse Nord"}
	patA    = source.Patient{ID: "pas-a", PersonNumber: patientA}
)

type realSource struct {
	name string
	org  source.Organisation
	src  *source.Server
	ts   *httptest.Server
	docs []source.Document
	// binaryWriteFailed receives the bytes the source had written when a
	// Binary response failed on its side (the reader went away).
	binaryWriteFailed chan int64
	requests          atomic.Int64
}

// observingWriter lets the test see the source's write errors; Unwrap
// keeps http.ResponseController (flush, hijack) working for the source.
type observingWriter struct {
	http.ResponseWriter
	n   int64
	err error
}

func (o *observingWriter) Write(p []byte) (int, error) {
	n, err := o.ResponseWriter.Write(p)
	o.n += int64(n)
	if err != nil && o.err == nil {
		o.err = err
	}
	return n, err
}

func (o *observingWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// serveJWKS publishes the signer's key the way kjernejournal's JWKS
// endpoint does.
func serveJWKS(t testing.TB, signer *Signer) string {
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(signer.PublicKey()))
	body, err := json.Marshal(set)
	require.NoError(t, err)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/jwks"
}

func startSource(t testing.TB, signer *Signer, jwksURL, name string, org source.Organisation, docs []source.Document) *realSource {
	rs := &realSource{name: name, org: org, docs: docs, binaryWriteFailed: make(chan int64, 4)}
	rs.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.requests.Add(1)
		ow := &observingWriter{ResponseWriter: w}
		rs.src.ServeHTTP(ow, r)
		if strings.Contains(r.URL.Path, "/Binary/") && (ow.err != nil || r.Context().Err() != nil) && ow.n > 0 {
			rs.binaryWriteFailed <- ow.n
		}
	}))
	rs.ts.Start()
	t.Cleanup(rs.ts.Close)
	// Every source also runs its lab service under /lab, with patient A's
	// results counted back from the rule tests' today.
	src, err := source.New(source.Config{Org: org, BaseURL: rs.ts.URL, Issuer: signer.Issuer(), JWKSURL: jwksURL,
		Documents: docs, LabResults: source.GenerateLab(testNow, 7, []source.Patient{patA}, org), Log: io.Discard})
	require.NoError(t, err)
	t.Cleanup(src.Close)
	rs.src = src
	return rs
}

func (rs *realSource) registry(shared, orgs, regions []string) Source {
	return Source{Name: rs.name, DisplayName: rs.org.Name, Organisation: rs.org.Number, Region: rs.org.Region,
		BaseURL: rs.ts.URL, SharedTypes: shared, SharesWith: SharesWith{Organisations: orgs, Regions: regions}}
}

var allGroups = []string{"A00", "C00", "D00", "E00", "I00"}

// twoSources starts OUS (Helse Sør-Øst, shares everything with every
// region) and NLSH (Helse Nord, shares everything with Helse Nord), each
// with the generator's fixed plan for patient A: per group one recent
// document (0-4), one 6-10 years old (5-9), and one NORS (10).
func twoSources(t testing.TB, signer *Signer) (ous, nlsh *realSource, regs []Source) {
	jwks := serveJWKS(t, signer)
	ous = startSource(t, signer, jwks, "ous", orgOUS, source.GenerateAt(testNow, 7, []source.Patient{patA}, orgOUS, 11))
	nlsh = startSource(t, signer, jwks, "nlsh", orgNLSH, source.GenerateAt(testNow, 7, []source.Patient{patA}, orgNLSH, 11))
	return ous, nlsh, []Source{
		ous.registry(allGroups, nil, Regions),
		nlsh.registry(allGroups, nil, []string{"Helse Nord"}),
	}
}

// visible are the documents the rules let through from the fixed plan:
// the five recent ones and the old A00 (unlimited).
func visible(rs *realSource) []string {
	var out []string
	for _, d := range rs.docs[:6] {
		out = append(out, rs.name+"/"+d.ID)
	}
	return out
}

func TestE2E_TwoSourcesMergedNewestFirst(t *testing.T) {
	signer := newSigner(t)
	ous, nlsh, regs := twoSources(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs)

	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	assert.ElementsMatch(t, append(visible(ous), visible(nlsh)...), entryIDs(res))
	assert.True(t, slices.IsSortedFunc(res.Entries, func(a, b Entry) int { return b.Date.Compare(a.Date) }), "newest first")
	assert.Equal(t, 12, res.Total)
	assert.Nil(t, res.Outcome(), "all sources answered")
	require.Len(t, res.Documents, 12)
	assert.Contains(t, res.Documents, res.Documents[0])
	for _, e := range res.Entries {
		assert.NotContains(t, string(e.Resource), "127.0.0.1", "no source URL leaks into the result")
		for _, u := range attachmentURLs(t, e.Resource) {
			assert.True(t, strings.HasPrefix(u, kjBase+"/documents/"), u)
		}
		assert.True(t, strings.HasPrefix(string(e.Resource), `{"resourceType":"DocumentReference",`))
	}
	// The Bundle entries the REST layer renders.
	be := res.BundleEntries()
	require.Len(t, be, 12)
	assert.Equal(t, "match", be[0].SearchMode)
}

func TestE2E_SourceDownOrSlow(t *testing.T) {
	signer := newSigner(t)
	ous, nlsh, regs := twoSources(t, signer)

	t.Run("slow", func(t *testing.T) {
		require.NoError(t, nlsh.src.SetFaults(source.Faults{Latency: time.Minute}))
		defer func() { _ = nlsh.src.SetFaults(source.Faults{}) }()
		f := newFederation(t, signer, newClock(testNow), regs, func(c *Config) { c.SourceTimeout = 300 * time.Millisecond })
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.ElementsMatch(t, visible(ous), entryIDs(res), "the other source's results come back")
		oo := string(res.Outcome())
		assert.Contains(t, oo, `"code":"timeout"`)
		assert.Contains(t, oo, "Nordlandssykehuset HF (nlsh)")
		assert.Contains(t, oo, `"code":"source-timeout"`)
		assert.NotContains(t, oo, "(ous)")
		be := res.BundleEntries()
		assert.Equal(t, "outcome", be[len(be)-1].SearchMode)
		assert.Equal(t, "timeout", res.Sources[1].Status)
	})
	t.Run("answers 503", func(t *testing.T) {
		require.NoError(t, nlsh.src.SetFaults(source.Faults{Down: true}))
		defer func() { _ = nlsh.src.SetFaults(source.Faults{}) }()
		f := newFederation(t, signer, newClock(testNow), regs)
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.ElementsMatch(t, visible(ous), entryIDs(res))
		oo := string(res.Outcome())
		assert.Contains(t, oo, "Nordlandssykehuset HF (nlsh) failed (HTTP 503")
		assert.Contains(t, oo, `"code":"source-error"`)
	})
	t.Run("not listening", func(t *testing.T) {
		down := regs[1]
		l := httptest.NewServer(http.NotFoundHandler())
		down.BaseURL = l.URL
		l.Close() // the port is now refused
		f := newFederation(t, signer, newClock(testNow), []Source{regs[0], down})
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.ElementsMatch(t, visible(ous), entryIDs(res))
		assert.Contains(t, string(res.Outcome()), "Nordlandssykehuset HF (nlsh) failed")
		assert.Equal(t, "error", res.Sources[1].Status)
	})
}

func TestE2E_SourceVerifiesAssertion(t *testing.T) {
	signer := newSigner(t)
	ous, _, regs := twoSources(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs)
	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	require.Nil(t, res.Outcome())

	lookups := ous.src.Lookups()
	require.NotEmpty(t, lookups)
	l := lookups[len(lookups)-1]
	assert.Equal(t, "allowed", l.Outcome, l.Reason)
	assert.Equal(t, "search", l.Action)
	a := l.Assertion
	require.NotNil(t, a)
	assert.Equal(t, kjBase, a.Issuer)
	assert.Equal(t, requester.HPR, a.HPR)
	assert.Equal(t, requester.HPCategory, a.HPCategory)
	assert.Equal(t, requester.Org, a.Org)
	assert.Equal(t, requester.PurposeOfUse, a.PurposeOfUse)
	assert.Equal(t, requester.AccessBasis, a.AccessBasis)
	assert.Equal(t, patientA, a.Patient)
	assert.Empty(t, a.Document)
	assert.Equal(t, AssertionTTL, a.Expires.Sub(a.IssuedAt))

	// Retrieval: the document claim names the document.
	p := newProxyServer(t, f, requester)
	var first Entry
	for _, e := range res.Entries {
		if e.Source == "ous" {
			first = e
			break
		}
	}
	resp, err := p.get(context.Background(), attachmentURLs(t, first.Resource)[0], patientA)
	require.NoError(t, err)
	_, _ = drain(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lookups = ous.src.Lookups()
	l = lookups[len(lookups)-1]
	assert.Equal(t, "retrieve", l.Action)
	assert.Equal(t, "allowed", l.Outcome, l.Reason)
	assert.Equal(t, first.ID, l.Assertion.Document)
	assert.Equal(t, patientA, l.Assertion.Patient)
}

func TestE2E_ProxyStreamsDocument(t *testing.T) {
	signer := newSigner(t)
	ous, _, regs := twoSources(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs)
	res, err := f.Search(context.Background(), requester, patientA, Query{Types: []string{"A00"}})
	require.NoError(t, err)
	require.NotEmpty(t, res.Entries)
	e := res.Entries[0]
	p := newProxyServer(t, f, requester)
	resp, err := p.get(context.Background(), attachmentURLs(t, e.Resource)[0], patientA)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var doc source.Document
	for _, d := range ous.docs {
		if d.ID == e.ID || e.Source == "nlsh" {
			doc = d
		}
	}
	if e.Source == "ous" {
		var want strings.Builder
		_, err = doc.WriteBody(&want)
		require.NoError(t, err)
		assert.Equal(t, want.String(), string(body), "the bytes pass through unchanged")
		assert.Equal(t, doc.ContentType, resp.Header.Get("Content-Type"))
		assert.Equal(t, doc.Size, resp.ContentLength)
	}
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}

// largeSetup starts one source holding a 200 MB document for patient A
// and returns the proxied URL of it.
func largeSetup(t testing.TB, size int64, mod ...func(*Config)) (*realSource, *Federation, *proxyServer, string) {
	signer := newSigner(t)
	jwks := serveJWKS(t, signer)
	big, err := source.LargeDocument(testNow, orgOUS, patA, size)
	require.NoError(t, err)
	rs := startSource(t, signer, jwks, "ous", orgOUS, []source.Document{big})
	f := newFederation(t, signer, newClock(testNow), []Source{rs.registry(allGroups, nil, Regions)}, mod...)
	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	require.Len(t, res.Entries, 1, string(res.Outcome()))
	return rs, f, newProxyServer(t, f, requester), attachmentURLs(t, res.Entries[0].Resource)[0]
}

func TestE2E_Proxy200MBConstantMemory(t *testing.T) {
	const size = 200 << 20
	_, _, p, docURL := largeSetup(t, size)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base

	resp, err := p.get(context.Background(), docURL, patientA)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(size), resp.ContentLength)
	buf := make([]byte, 32<<10)
	var n, nextSample int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if n >= nextSample {
			// Sample the heap while all three parties (source, proxy,
			// client) are mid-transfer in this process.
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			nextSample += 8 << 20
		}
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.Equal(t, int64(size), n)
	growth := int64(peak) - int64(base)
	t.Logf("streamed %d MiB; HeapInuse base %.1f MiB, peak %.1f MiB, growth %.2f MiB",
		n>>20, float64(base)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20))
	assert.Less(t, growth, int64(32<<20), "heap growth while streaming 200 MB")
}

func TestE2E_ClientDisconnectStopsUpstream(t *testing.T) {
	const size = 200 << 20
	rs, _, p, docURL := largeSetup(t, size)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := p.get(ctx, docURL, patientA)
	require.NoError(t, err)
	_, err = io.CopyN(io.Discard, resp.Body, 1<<20)
	require.NoError(t, err)
	cancel() // the client goes away after 1 MiB
	resp.Body.Close()

	// The proxy's copy ends (the client is gone) and it cancels the
	// upstream request, so the source's writes fail well before 200 MB.
	var written int64
	select {
	case written = <-rs.binaryWriteFailed:
	case <-time.After(30 * time.Second):
		t.Fatal("the source never saw the transfer end")
	}
	t.Logf("source wrote %d MiB of %d MiB before its write failed", written>>20, size>>20)
	assert.Less(t, written, int64(size))
	select {
	case err := <-p.errs:
		assert.Error(t, err)
		var se *SourceError
		assert.False(t, errors.As(err, &se), "a client disconnect is not the source's fault: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy handler did not end")
	}
}

func TestE2E_SourceCutsTransfer(t *testing.T) {
	rs, _, p, docURL := largeSetup(t, 4<<20)
	require.NoError(t, rs.src.SetFaults(source.Faults{DisconnectAfterBytes: 1 << 20}))
	resp, err := p.get(context.Background(), docURL, patientA)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = drain(resp.Body)
	assert.Error(t, err, "the client must see a broken transfer, not a short document")
	got := <-p.errs
	assert.ErrorIs(t, got, ErrSourceUnavailable)
	var se *SourceError
	require.ErrorAs(t, got, &se)
	assert.True(t, se.HeaderWritten)
}

func TestE2E_TooLarge(t *testing.T) {
	_, _, p, docURL := largeSetup(t, 4<<20, func(c *Config) { c.MaxDocumentSize = 1 << 20 })
	resp, err := p.get(context.Background(), docURL, patientA)
	require.NoError(t, err)
	_, _ = drain(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	got := <-p.errs
	assert.ErrorIs(t, got, ErrTooLarge)
	assert.Contains(t, got.Error(), "4194304 bytes declared")
}

func TestE2E_OpenSourceDown(t *testing.T) {
	rs, _, p, docURL := largeSetup(t, 1<<20)
	require.NoError(t, rs.src.SetFaults(source.Faults{Down: true}))
	resp, err := p.get(context.Background(), docURL, patientA)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.ErrorIs(t, <-p.errs, ErrSourceUnavailable)
}
