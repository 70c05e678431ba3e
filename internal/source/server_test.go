package source

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

func TestSearchReturnsThatPatientsDocumentsOnly(t *testing.T) {
	e := newEnv(t, nil)
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	for _, p := range e.patients {
		b := e.search(t, p.PersonNumber, nil)
		assert.Equal(t, "Bundle", b.ResourceType)
		assert.Equal(t, "searchset", b.Type)
		want := e.docsOf(p.PersonNumber)
		require.Len(t, want, 12)
		assert.Equal(t, len(want), b.Total)
		var got []string
		var last time.Time
		for i, r := range b.refs(t) {
			got = append(got, r.ID)
			assert.Equal(t, "current", r.Status)
			assert.Equal(t, domain.SystemFNR, r.Subject.Identifier.System)
			assert.Equal(t, p.PersonNumber, r.Subject.Identifier.Value)
			assert.Equal(t, domain.SystemDocumentType, r.Type.Coding[0].System)
			assert.Equal(t, r.Type.Coding[0].Code[:1]+"00", r.Category[0].Coding[0].Code)
			assert.Equal(t, domain.SystemOrgNr, r.Author[0].Identifier.System)
			assert.Equal(t, testOrg.Number, r.Author[0].Identifier.Value)
			assert.Equal(t, testOrg.Number, r.Custodian.Identifier.Value)
			assert.Equal(t, domain.SystemConfidentiality, r.SecurityLabel[0].Coding[0].System)
			assert.Equal(t, e.ts.URL+"/Binary/"+r.ID, r.Content[0].Attachment.URL)
			assert.Contains(t, []string{"application/pdf", "application/xml"}, r.Content[0].Attachment.ContentType)
			assert.Positive(t, r.Content[0].Attachment.Size)
			assert.Equal(t, e.ts.URL+"/DocumentReference/"+r.ID, b.Entry[i].FullURL)
			assert.Equal(t, "match", b.Entry[i].Search.Mode)
			if i > 0 {
				assert.False(t, r.Date.After(last), "newest first")
			}
			last = r.Date
			// Google's R4 parser checks cardinalities, bound codes and
			// primitive formats.
			_, err := u.Unmarshal(b.Entry[i].Resource)
			require.NoError(t, err, string(b.Entry[i].Resource))
		}
		var wantIDs []string
		for _, d := range want {
			wantIDs = append(wantIDs, d.ID)
		}
		assert.ElementsMatch(t, wantIDs, got)
	}

	// A person the source has nothing for gets an empty searchset.
	b := e.search(t, "01810112345", nil)
	assert.Zero(t, b.Total)
	assert.Empty(t, b.Entry)
}

func TestSearchFilters(t *testing.T) {
	e := newEnv(t, nil)
	p := e.patients[0]
	all := e.docsOf(p.PersonNumber)
	ids := func(b bundle) []string {
		var out []string
		for _, r := range b.refs(t) {
			out = append(out, r.ID)
		}
		return out
	}
	expect := func(keep func(Document) bool) []string {
		var out []string
		for _, d := range all {
			if keep(d) {
				out = append(out, d.ID)
			}
		}
		return out
	}
	some := all[1].Type.Code // a C00 type (plan slot 1)
	from := all[0].Date.AddDate(0, -3, 0)
	cases := []struct {
		name   string
		params url.Values
		keep   func(Document) bool
	}{
		{"type code with system", url.Values{"type": {domain.SystemDocumentType + "|" + some}}, func(d Document) bool { return d.Type.Code == some }},
		{"type code alone", url.Values{"type": {some}}, func(d Document) bool { return d.Type.Code == some }},
		{"type group", url.Values{"type": {"E00"}}, func(d Document) bool { return d.Type.Group == "E00" }},
		{"type list is OR", url.Values{"type": {"A00,I00"}}, func(d Document) bool { return d.Type.Group == "A00" || d.Type.Group == "I00" }},
		{"category", url.Values{"category": {domain.SystemDocumentType + "|D00"}}, func(d Document) bool { return d.Type.Group == "D00" }},
		{"date ge", url.Values{"date": {"ge" + from.Format(time.DateOnly)}}, func(d Document) bool {
			return !d.Date.Before(from.Truncate(24 * time.Hour))
		}},
		{"date window", url.Values{"date": {"ge2016-01-01", "le2021-12-31"}}, func(d Document) bool {
			return !d.Date.Before(time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)) && d.Date.Before(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"date year", url.Values{"date": {"2025"}}, func(d Document) bool { return d.Date.Year() == 2025 }},
		{"type and date", url.Values{"type": {"C00"}, "date": {"lt2025-01-01T00:00:00Z"}}, func(d Document) bool {
			return d.Type.Group == "C00" && d.Date.Year() < 2025
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := expect(c.keep)
			b := e.search(t, p.PersonNumber, c.params)
			assert.ElementsMatch(t, want, ids(b))
			assert.Equal(t, len(want), b.Total)
		})
	}

	t.Run("_count limits entries, not total", func(t *testing.T) {
		b := e.search(t, p.PersonNumber, url.Values{"_count": {"2"}})
		assert.Len(t, b.Entry, 2)
		assert.Equal(t, len(all), b.Total)
	})
	// The filters above must have selected something, or they prove little.
	assert.NotEmpty(t, expect(func(d Document) bool { return d.Type.Group == "E00" }))
	assert.NotEmpty(t, expect(func(d Document) bool { return d.Date.Year() < 2022 }))
}

func TestSearchRejectsUnknownAndMalformedParameters(t *testing.T) {
	e := newEnv(t, nil)
	pnr := e.patients[0].PersonNumber
	tok := func() string { return e.kj.sign(t, claims(e.ts.URL, pnr, ""), signOpts{}) }
	for name, q := range map[string]string{
		"unknown parameter":       "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&status=current",
		"modifier":                "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&type:not=A00",
		"patient reference":       "patient=Patient/123",
		"no patient":              "type=A00",
		"identifier w/o system":   "patient.identifier=" + pnr,
		"other identifier system": "patient.identifier=" + url.QueryEscape("urn:oid:2.16.578.1.12.4.1.4.4|"+pnr),
		"two patients":            "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr),
		"date prefix":             "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&date=sa2020",
		"date value":              "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&date=ge20-01",
		"type system":             "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&type=" + url.QueryEscape("http://loinc.org|11488-4"),
		"count":                   "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr) + "&_count=-1",
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.get(t, e.ts.URL+"/DocumentReference?"+q, tok())
			assert.NotEmpty(t, outcome(t, resp, http.StatusBadRequest))
		})
	}
}

func TestNORSDocumentsAreListedAndServed(t *testing.T) {
	e := newEnv(t, nil)
	p := e.patients[1]
	var blocked *Document
	for _, d := range e.docsOf(p.PersonNumber) {
		if d.Confidentiality == ConfidentialityBlocked {
			blocked = &d
			break
		}
	}
	require.NotNil(t, blocked, "plan slot 10 is NORS")

	found := false
	for _, r := range e.search(t, p.PersonNumber, nil).refs(t) {
		if r.ID == blocked.ID {
			found = true
			assert.Equal(t, "NORS", r.SecurityLabel[0].Coding[0].Code)
		}
	}
	assert.True(t, found, "the source does not filter NORS; kjernejournal does")

	resp := e.get(t, e.ts.URL+"/Binary/"+blocked.ID, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, blocked.ID), signOpts{}))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, body(t, *blocked), got)
}

func TestRetrieveStreamsExactBytes(t *testing.T) {
	e := newEnv(t, nil)
	seen := map[string]bool{}
	for _, d := range e.docs {
		if seen[d.ContentType] {
			continue
		}
		seen[d.ContentType] = true
		resp := e.get(t, e.ts.URL+"/Binary/"+d.ID, e.kj.sign(t, claims(e.ts.URL, d.PersonNumber, d.ID), signOpts{}))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, d.ContentType, resp.Header.Get("Content-Type"))
		assert.Equal(t, d.Size, resp.ContentLength)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, body(t, d), got)
		switch d.ContentType {
		case "application/pdf":
			checkPDF(t, got)
		case "application/xml":
			var cda struct {
				XMLName xml.Name `xml:"urn:hl7-org:v3 ClinicalDocument"`
				Title   string   `xml:"title"`
			}
			require.NoError(t, xml.Unmarshal(got, &cda))
			assert.Equal(t, d.Title, cda.Title)
		}
	}
	assert.Len(t, seen, 2, "both content types are generated")

	t.Run("unknown document", func(t *testing.T) {
		resp := e.get(t, e.ts.URL+"/Binary/dok-nope", e.kj.sign(t, claims(e.ts.URL, e.patients[0].PersonNumber, "dok-nope"), signOpts{}))
		outcome(t, resp, http.StatusNotFound)
	})
}

// TestLargeDocumentStreamsInConstantMemory streams a 200 MiB document over
// real HTTP and samples the heap while it flows: the filler is rendered
// block by block, so neither the source nor the reading client holds it.
func TestLargeDocumentStreamsInConstantMemory(t *testing.T) {
	const size = 200 << 20
	var large Document
	e := newEnv(t, func(c *Config) {
		patients, err := SeedPatients(1, 1)
		require.NoError(t, err)
		large, err = LargeDocument(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), c.Org, patients[0], size)
		require.NoError(t, err)
		c.Documents = append(c.Documents, large)
	})
	require.EqualValues(t, size, large.Size)

	// What the bytes must hash to, computed without holding them either.
	want := sha256.New()
	_, err := large.WriteBody(want)
	require.NoError(t, err)

	resp := e.get(t, e.ts.URL+"/Binary/"+large.ID, e.kj.sign(t, claims(e.ts.URL, large.PersonNumber, large.ID), signOpts{}))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, size, resp.ContentLength)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, peak := ms.HeapInuse, ms.HeapInuse
	got := sha256.New()
	buf := make([]byte, 256<<10)
	var n, sampled int64
	for {
		k, err := resp.Body.Read(buf)
		got.Write(buf[:k])
		n += int64(k)
		if n-sampled >= 8<<20 {
			sampled = n
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
	}
	require.EqualValues(t, size, n)
	assert.Equal(t, want.Sum(nil), got.Sum(nil))
	growth := int64(peak) - int64(before)
	t.Logf("heap in use before %d MiB, peak growth %d KiB while streaming %d MiB", before>>20, growth>>10, size>>20)
	assert.Less(t, growth, int64(16<<20), "heap grew while streaming")
}

func TestLargeDocumentSizesAndLayout(t *testing.T) {
	p := Patient{ID: "pas-1", PersonNumber: "01810112345"}
	for _, size := range []int64{2000, 4096, 99_999, 100_000, 1 << 20, 10_000_000} {
		d, err := LargeDocument(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), testOrg, p, size)
		require.NoError(t, err)
		b := body(t, d)
		require.EqualValues(t, size, len(b), "size %d", size)
		checkPDF(t, b)
	}
	_, err := LargeDocument(time.Now(), testOrg, p, 100)
	assert.Error(t, err, "too small for the PDF around the filler")
}

// checkPDF checks the structure a PDF reader relies on: header, trailer,
// and an xref table whose offsets point at the objects.
func checkPDF(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	require.True(t, strings.HasPrefix(s, "%PDF-1.4\n"))
	require.True(t, strings.HasSuffix(s, "%%EOF\n"))
	i := strings.LastIndex(s, "startxref\n")
	require.Positive(t, i)
	var xref int
	_, err := fmtSscan(s[i+len("startxref\n"):], &xref)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s[xref:], "xref\n0 "), "startxref points at the xref table")
	sc := bufio.NewScanner(strings.NewReader(s[xref:]))
	sc.Scan() // xref
	sc.Scan() // 0 n
	var first, count int
	_, err = fmtSscan(sc.Text(), &first, &count)
	require.NoError(t, err)
	sc.Scan() // free entry
	for obj := 1; obj < count; obj++ {
		require.True(t, sc.Scan())
		// Sscan would read the zero-padded offsets as octal.
		off, err := strconv.Atoi(strings.Fields(sc.Text())[0])
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(s[off:], strings.TrimSpace(itoa(obj))+" 0 obj\n"), "object %d at %d", obj, off)
	}
	assert.Contains(t, s, "/Root 1 0 R")
}

func TestAssertionChecks(t *testing.T) {
	e := newEnv(t, nil)
	p := e.patients[0]
	d := e.docsOf(p.PersonNumber)[0]
	other := e.docsOf(e.patients[1].PersonNumber)[0]
	search := e.searchURL(p.PersonNumber, nil)
	binary := e.ts.URL + "/Binary/" + d.ID

	stranger := newKJ(t) // same kids, keys not in our JWKS
	with := func(mod func(map[string]any)) map[string]any {
		c := claims(e.ts.URL, p.PersonNumber, "")
		mod(c)
		return c
	}
	replayed := e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})
	require.Equal(t, http.StatusOK, e.get(t, search, replayed).StatusCode)

	cases := []struct {
		name, url, token string
	}{
		{"missing", search, ""},
		{"not a JWS", search, "not-a-jws"},
		{"expired", search, e.kj.sign(t, with(func(c map[string]any) {
			c["iat"] = time.Now().Add(-3 * time.Minute).Unix()
			c["exp"] = time.Now().Add(-2 * time.Minute).Unix()
		}), signOpts{})},
		{"lives too long", search, e.kj.sign(t, with(func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }), signOpts{})},
		{"no exp", search, e.kj.sign(t, with(func(c map[string]any) { delete(c, "exp") }), signOpts{})},
		{"key not in JWKS", search, stranger.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})},
		{"unknown kid", search, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{key: e.kj.ec, alg: jwa.ES256(), kid: "nope"})},
		{"HS256", search, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{key: []byte("0123456789abcdef0123456789abcdef"), alg: jwa.HS256(), kid: "ec-1"})},
		{"wrong typ", search, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{typ: "at+jwt"})},
		{"wrong issuer", search, e.kj.sign(t, with(func(c map[string]any) { c["iss"] = "https://evil.test" }), signOpts{})},
		{"wrong audience", search, e.kj.sign(t, with(func(c map[string]any) { c["aud"] = "http://other-source.test" }), signOpts{})},
		{"another org as audience", search, e.kj.sign(t, with(func(c map[string]any) { c["aud"] = "300011268" }), signOpts{})},
		{"no hpr", search, e.kj.sign(t, with(func(c map[string]any) { delete(c, "hpr") }), signOpts{})},
		{"no access basis", search, e.kj.sign(t, with(func(c map[string]any) { delete(c, "access_basis") }), signOpts{})},
		{"no jti", search, e.kj.sign(t, with(func(c map[string]any) { delete(c, "jti") }), signOpts{})},
		{"wrong patient", search, e.kj.sign(t, claims(e.ts.URL, e.patients[1].PersonNumber, ""), signOpts{})},
		{"replayed jti", search, replayed},
		{"retrieval without document", binary, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})},
		{"wrong document", binary, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, e.docsOf(p.PersonNumber)[1].ID), signOpts{})},
		{"another patient's document", e.ts.URL + "/Binary/" + other.ID, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, other.ID), signOpts{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.get(t, c.url, c.token)
			diag := outcome(t, resp, http.StatusUnauthorized)
			assert.NotEmpty(t, diag)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`)
		})
	}

	t.Run("accepted variants", func(t *testing.T) {
		for name, tok := range map[string]string{
			"audience is the organisation number": e.kj.sign(t, with(func(c map[string]any) { c["aud"] = testOrg.Number }), signOpts{}),
			"audience list":                       e.kj.sign(t, with(func(c map[string]any) { c["aud"] = []string{"x", e.ts.URL + "/"} }), signOpts{}),
			"RS256":                               e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{key: e.kj.rsa, alg: jwa.RS256(), kid: "rsa-1"}),
		} {
			assert.Equal(t, http.StatusOK, e.get(t, search, tok).StatusCode, name)
		}
	})

	t.Run("a refused call does not spend the jti", func(t *testing.T) {
		c := claims(e.ts.URL, p.PersonNumber, d.ID)
		tok := e.kj.sign(t, c, signOpts{})
		outcome(t, e.get(t, e.ts.URL+"/Binary/"+e.docsOf(p.PersonNumber)[1].ID, tok), http.StatusUnauthorized)
		assert.Equal(t, http.StatusOK, e.get(t, binary, tok).StatusCode)
	})
}

func TestLookupLog(t *testing.T) {
	e := newEnv(t, nil)
	p := e.patients[0]
	d := e.docsOf(p.PersonNumber)[3]
	e.search(t, p.PersonNumber, url.Values{"type": {"A00"}})
	resp := e.get(t, e.ts.URL+"/Binary/"+d.ID, e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, d.ID), signOpts{}))
	_, _ = io.Copy(io.Discard, resp.Body)
	outcome(t, e.get(t, e.searchURL(p.PersonNumber, nil), ""), http.StatusUnauthorized)

	got := e.src.Lookups()
	require.Len(t, got, 3)
	s, r, refused := got[0], got[1], got[2]
	assert.Equal(t, "search", s.Action)
	assert.Equal(t, "allowed", s.Outcome)
	assert.Equal(t, testOrg.Number, s.Source)
	assert.Contains(t, s.Query, "type=A00")
	assert.Equal(t, 2, s.Results) // plan slots 0 and 5
	require.NotNil(t, s.Assertion)
	assert.Equal(t, "9144889", s.Assertion.HPR)
	assert.Equal(t, "LE", s.Assertion.HPCategory)
	assert.Equal(t, "300011268", s.Assertion.Org)
	assert.Equal(t, "TREAT", s.Assertion.PurposeOfUse)
	assert.Equal(t, "UNNTAK", s.Assertion.AccessBasis)
	assert.Equal(t, p.PersonNumber, s.Assertion.Patient)
	assert.Equal(t, "retrieve", r.Action)
	assert.Equal(t, d.ID, r.Document)
	assert.Equal(t, d.ID, r.Assertion.Document)
	assert.Equal(t, "refused", refused.Outcome)
	assert.Equal(t, http.StatusUnauthorized, refused.Status)
	assert.Nil(t, refused.Assertion)

	lines := strings.Split(strings.TrimSpace(e.log.String()), "\n")
	require.Len(t, lines, 3)
	var line struct {
		Msg string `json:"msg"`
		Lookup
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &line))
	assert.Equal(t, "lookup", line.Msg)
	assert.Equal(t, d.ID, line.Document)
	assert.Equal(t, "9144889", line.Assertion.HPR)
}

func TestFaultInjection(t *testing.T) {
	t.Run("latency is applied before answering", func(t *testing.T) {
		var mu sync.Mutex
		var waited []time.Duration
		e := newEnv(t, func(c *Config) {
			c.Faults.Latency = 1500 * time.Millisecond
			// The hook records the wait and waits for real, briefly: no
			// assertion below depends on how long anything took.
			c.Sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				waited = append(waited, d)
				mu.Unlock()
				return sleep(ctx, time.Millisecond)
			}
		})
		p := e.patients[0]
		b := e.search(t, p.PersonNumber, nil)
		assert.Equal(t, 12, b.Total)
		mu.Lock()
		assert.Equal(t, []time.Duration{1500 * time.Millisecond}, waited)
		mu.Unlock()
		st := e.src.Stats()
		assert.EqualValues(t, 1, st.LatencyApplied)
		assert.Equal(t, 1500*time.Millisecond, st.LatencyTotal)
	})

	t.Run("real latency with the default sleeper", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.Latency = 20 * time.Millisecond })
		e.search(t, e.patients[0].PersonNumber, nil)
		assert.EqualValues(t, 1, e.src.Stats().LatencyApplied)
	})

	t.Run("error rate 1 answers 500", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.ErrorRate = 1 })
		p := e.patients[0]
		for range 3 {
			outcome(t, e.get(t, e.searchURL(p.PersonNumber, nil), e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})), http.StatusInternalServerError)
		}
		assert.EqualValues(t, 3, e.src.Stats().InjectedErrors)
	})

	t.Run("down answers 503, and can be switched at run time", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.Down = true })
		p := e.patients[0]
		outcome(t, e.get(t, e.searchURL(p.PersonNumber, nil), e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})), http.StatusServiceUnavailable)
		outcome(t, e.get(t, e.ts.URL+"/healthz", ""), http.StatusServiceUnavailable)
		assert.EqualValues(t, 2, e.src.Stats().RefusedDown)
		require.NoError(t, e.src.SetFaults(Faults{}))
		e.search(t, p.PersonNumber, nil)
		assert.Equal(t, http.StatusOK, e.get(t, e.ts.URL+"/healthz", "").StatusCode)
	})

	t.Run("disconnect cuts the stream", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.DisconnectAfterBytes = 500 })
		d := e.docs[0]
		require.Greater(t, d.Size, int64(500))
		resp := e.get(t, e.ts.URL+"/Binary/"+d.ID, e.kj.sign(t, claims(e.ts.URL, d.PersonNumber, d.ID), signOpts{}))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, d.Size, resp.ContentLength)
		got, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, body(t, d)[:500], got, "the bytes before the cut are the document's")
		assert.EqualValues(t, 1, e.src.Stats().Disconnects)
	})

	t.Run("invalid faults are refused", func(t *testing.T) {
		e := newEnv(t, nil)
		assert.Error(t, e.src.SetFaults(Faults{ErrorRate: 1.5}))
		assert.Error(t, e.src.SetFaults(Faults{Latency: -time.Second}))
	})
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	outcome(t, e.get(t, e.ts.URL+"/Patient", ""), http.StatusNotFound)
	resp, err := e.ts.Client().Post(e.ts.URL+"/DocumentReference", "application/x-www-form-urlencoded", strings.NewReader(""))
	require.NoError(t, err)
	defer resp.Body.Close()
	outcome(t, resp, http.StatusMethodNotAllowed)
}

func TestBaseURLWithPath(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BaseURL = "http://source.test/fhir/" })
	p := e.patients[0]
	tok := e.kj.sign(t, claims("http://source.test/fhir", p.PersonNumber, ""), signOpts{})
	resp := e.get(t, e.ts.URL+"/fhir/DocumentReference?patient.identifier="+url.QueryEscape(domain.SystemFNR+"|"+p.PersonNumber), tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var b bundle
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	refs := b.refs(t)
	require.NotEmpty(t, refs)
	assert.True(t, strings.HasPrefix(refs[0].Content[0].Attachment.URL, "http://source.test/fhir/Binary/"))
	// The request's own host is not an audience when BaseURL is set.
	outcome(t, e.get(t, e.searchURL(p.PersonNumber, nil), e.kj.sign(t, claims(e.ts.URL, p.PersonNumber, ""), signOpts{})), http.StatusNotFound)
}

func TestNewValidatesConfig(t *testing.T) {
	ok := Config{Org: testOrg, Issuer: testIssuer, JWKSURL: "http://127.0.0.1:1/jwks"}
	for name, mod := range map[string]func(*Config){
		"no org":       func(c *Config) { c.Org.Number = "" },
		"no issuer":    func(c *Config) { c.Issuer = "" },
		"bad jwks":     func(c *Config) { c.JWKSURL = "jwks.json" },
		"bad base":     func(c *Config) { c.BaseURL = "source.test" },
		"bad faults":   func(c *Config) { c.Faults.ErrorRate = -1 },
		"duplicate id": func(c *Config) { c.Documents = []Document{{ID: "a"}, {ID: "a"}} },
		"slash in id":  func(c *Config) { c.Documents = []Document{{ID: "a/b"}} },
	} {
		c := ok
		mod(&c)
		_, err := New(c)
		assert.Error(t, err, name)
	}
	s, err := New(ok)
	require.NoError(t, err)
	s.Close()
}

func TestSourceWaitsForAJWKSThatIsNotUpYet(t *testing.T) {
	// make run starts sources and kjernejournal together: a source must
	// start without the JWKS and verify once it is served.
	k := newKJ(t)
	var up sync.Mutex
	upNow := false
	gate := &gatedHandler{next: k.jwks.Config.Handler, ok: func() bool { up.Lock(); defer up.Unlock(); return upNow }}
	k.jwks.Config.Handler = gate
	patients, err := SeedPatients(1, 1)
	require.NoError(t, err)
	src, err := New(Config{Org: testOrg, Issuer: testIssuer, JWKSURL: k.jwks.URL, Documents: Generate(1, patients, testOrg, 2), Log: io.Discard})
	require.NoError(t, err)
	defer src.Close()
	e := &env{kj: k, src: src, ts: newHTTPTest(t, src), patients: patients}
	tok := func() string { return k.sign(t, claims(e.ts.URL, patients[0].PersonNumber, ""), signOpts{}) }
	outcome(t, e.get(t, e.searchURL(patients[0].PersonNumber, nil), tok()), http.StatusServiceUnavailable)
	up.Lock()
	upNow = true
	up.Unlock()
	src.verifier.mu.Lock()
	src.verifier.lastRefresh = time.Time{} // skip the refresh back-off
	src.verifier.mu.Unlock()
	assert.Equal(t, http.StatusOK, e.get(t, e.searchURL(patients[0].PersonNumber, nil), tok()).StatusCode)
}

type gatedHandler struct {
	next http.Handler
	ok   func() bool
}

func (g *gatedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.ok() {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	g.next.ServeHTTP(w, r)
}

func TestLookupsAreBounded(t *testing.T) {
	s := &Server{cfg: Config{Log: io.Discard, Now: time.Now}}
	for i := range maxLookups + 5 {
		s.record(Lookup{Results: i})
	}
	got := s.Lookups()
	require.Len(t, got, maxLookups)
	assert.Equal(t, 5, got[0].Results)
	assert.True(t, slices.IsSortedFunc(got, func(a, b Lookup) int { return a.Results - b.Results }))
}
