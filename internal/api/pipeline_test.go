package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/source"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Defects of the copied request pipelines, each driven from outside.

// TestBundleEntryURLsAreChecked: an entry URL with a space, a control
// character, another server or a fragment is the entry's 400, answered in
// the Bundle (batch) or for the Bundle (transaction), never a cut
// connection; and the request is in the usage log.
func TestBundleEntryURLsAreChecked(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	for _, u := range []string{"Flag x", "Flag\x01", "Flag/sec-flag-0\n", "http://evil.example/Flag/sec-flag-0", "//evil.example/Flag", "Flag/sec-flag-0#frag", "Flag/../Patient", ""} {
		for _, typ := range []string{"batch", "transaction"} {
			t.Run(fmt.Sprintf("%s %q", typ, u), func(t *testing.T) {
				body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{
					map[string]any{"request": map[string]any{"method": "GET", "url": u}}}})
				require.NoError(t, err)
				before := auditHead(t, s.st)
				r := s.as_(gp, "UNNTAK", "POST", "/", body)
				require.Greater(t, auditHead(t, s.st), before, "the Bundle request is in the usage log")
				if r.status == http.StatusOK {
					got := entryOf(t, r.json(t))
					assert.Equal(t, http.StatusBadRequest, got.status, "entry: %v", got.body)
					assert.Equal(t, "OperationOutcome", got.body["resourceType"])
					return
				}
				outcome(t, r, http.StatusBadRequest)
			})
		}
	}
}

// TestReservedAnswersAsUnknownToABlockedHP: the order of the rules is the
// legal one: a reserved record answers as an unknown one to everybody, a
// blocked HP included, so the answer reveals neither the reservation nor
// the block.
func TestReservedAnswersAsUnknownToABlockedHP(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		s.addCitizen(t)
		now := time.Now().UTC().Truncate(time.Second)
		support := s.token("citizen-support", "")
		citizen := s.token("citizen", "")
		require.Equal(t, http.StatusCreated, s.as_(support, "", "POST", "/Consent", consent(privacy.Block, true, now, nil, gpPersonaHPR)).status)
		require.Equal(t, http.StatusCreated, s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, now, nil)).status)
		blocked := s.token("gp", citizenPatient)
		other := s.token("hospital-doctor", citizenPatient)
		paths := []string{"/Flag/cit-flag", "/Patient/" + citizenPatient, "/Flag?patient=" + citizenPatient,
			"/Flag?patient=" + citizenPatient + "&_include=Flag:subject", "/Patient/" + citizenPatient + "/MedicationStatement",
			"/Flag/cit-flag/_history", "/Flag/cit-flag/_history/1", "/Patient/" + citizenPatient + "/$kj-status"}
		for _, path := range paths {
			b := s.as_(blocked, "AKUTT", "GET", path, nil)
			o := s.as_(other, "UNNTAK", "GET", path, nil)
			assert.Equal(t, http.StatusNotFound, b.status, "%s: %s", path, b.body)
			assert.Equal(t, string(o.body), string(b.body), "%s: the blocked HP gets the answer any HP gets", path)
			assert.NotContains(t, string(b.body), "hp-blocked")
			assert.NotContains(t, string(b.body), "reserv")
		}
		// The same reads as entries of a batch: the same answers, entry by
		// entry.
		var entries []any
		for _, path := range paths {
			entries = append(entries, map[string]any{"request": map[string]any{"method": "GET", "url": strings.TrimPrefix(path, "/")}})
		}
		batch, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries})
		require.NoError(t, err)
		b := s.as_(blocked, "AKUTT", "POST", "/", batch)
		o := s.as_(other, "UNNTAK", "POST", "/", batch)
		require.Equal(t, http.StatusOK, b.status, "body: %s", b.body)
		bs, os := b.json(t)["entry"].([]any), o.json(t)["entry"].([]any)
		require.Len(t, bs, len(paths))
		for i := range paths {
			assert.Equal(t, os[i], bs[i], "batch entry %s", paths[i])
			assert.Contains(t, fmt.Sprint(bs[i]), "404", "batch entry %s", paths[i])
			assert.NotContains(t, fmt.Sprint(bs[i]), "hp-blocked")
		}
	})
}

// TestDocumentsClosedWithVisitHistoryRestricted (rule 7): no access
// basis opens documents while the visit history is restricted, not even
// an elevated one.
func TestDocumentsClosedWithVisitHistoryRestricted(t *testing.T) {
	s, _ := withSources(t)
	doc := s.token("hospital-doctor", citizenPatient)
	emergency := s.token("emergency", citizenPatient)
	r := s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	urls := proxyURL.FindAllStringSubmatch(string(r.body), -1)
	require.NotEmpty(t, urls)
	citizen := s.token("citizen", "")
	now := time.Now().UTC().Truncate(time.Second)
	require.Equal(t, http.StatusCreated, s.as_(citizen, "", "POST", "/Consent", consent(privacy.Restriction, true, now, []access.Section{access.VisitHistory})).status)
	batch := []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"DocumentReference?patient=` + citizenPatient + `"}}]}`)
	for _, c := range []struct{ tok, basis string }{{doc, "FORHOYET_SAMTYKKE"}, {emergency, "FORHOYET_AKUTT"}, {doc, "UNNTAK"}} {
		r := s.as_(c.tok, c.basis, "GET", "/DocumentReference?patient="+citizenPatient, nil)
		assert.Equal(t, "documents-unavailable", reasonOf(t, r), "search with %s", c.basis)
		r = s.as_(c.tok, c.basis, "GET", strings.TrimPrefix(urls[0][1], s.base), nil)
		assert.Equal(t, "documents-unavailable", reasonOf(t, r), "open with %s", c.basis)
		r = s.as_(c.tok, c.basis, "POST", "/", batch)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got := entryOf(t, r.json(t))
		assert.Equal(t, http.StatusForbidden, got.status, "batch entry with %s", c.basis)
		assert.Equal(t, "documents-unavailable", got.reason(), "batch entry with %s", c.basis)
	}
	// The restricted visit history itself still opens with an elevated basis.
	assert.Equal(t, http.StatusOK, s.as_(emergency, "FORHOYET_AKUTT", "GET", "/Encounter?patient="+citizenPatient, nil).status)
}

// TestCitizenGetsNoDocuments: the sources share journal documents with
// health personnel, so a citizen's search, a document link and a batch
// entry are refused with one reason instead of sources that seem to fail.
func TestCitizenGetsNoDocuments(t *testing.T) {
	s, _ := withSources(t)
	link := documentURLs(t, s, s.token("hospital-doctor", citizenPatient), "ous")[0]
	citizen := s.token("citizen", "")
	assert.Equal(t, "documents-for-hp", reasonOf(t, s.as_(citizen, "", "GET", "/DocumentReference?patient="+citizenPatient, nil)))
	assert.Equal(t, "documents-for-hp", reasonOf(t, s.as_(citizen, "", "GET", strings.TrimPrefix(link, s.base), nil)))
	batch := []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"DocumentReference?patient=` + citizenPatient + `"}}]}`)
	r := s.as_(citizen, "", "POST", "/", batch)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	got := entryOf(t, r.json(t))
	assert.Equal(t, http.StatusForbidden, got.status)
	assert.Equal(t, "documents-for-hp", got.reason())
	assert.Contains(t, fmt.Sprint(lastAuditOf(t, s.st, citizenPatient)), "documents-for-hp", "the refusal is in the usage log")
}

// documentURLs lists the proxy URLs of the documents of one source
// (documents are named <source>.<id>).
func documentURLs(t *testing.T, s *secured, tok, src string) []string {
	t.Helper()
	r := s.as_(tok, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var out []string
	for _, e := range r.json(t)["entry"].([]any) {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		if res == nil || res["resourceType"] != "DocumentReference" || !strings.HasPrefix(fmt.Sprint(res["id"]), src+".") {
			continue
		}
		for _, c := range res["content"].([]any) {
			out = append(out, c.(map[string]any)["attachment"].(map[string]any)["url"].(string))
		}
	}
	require.NotEmpty(t, out, "documents of %s", src)
	return out
}

// TestDocumentStreamBroken: a source that breaks a document off half way
// breaks the client's stream too, whether the source declared the length
// or sent chunks: a clinician never gets half a discharge summary that
// looks whole.
func TestDocumentStreamBroken(t *testing.T) {
	s, srcs := withSources(t)
	doc := s.token("hospital-doctor", citizenPatient)
	urls := documentURLs(t, s, doc, "ous")
	// get returns the status (0 when no answer arrived), the body read and
	// the error that ended the transfer, if any.
	get := func(u string) (int, []byte, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+doc)
		req.Header.Set("nhn-access-basis", "UNNTAK")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	status, whole, err := get(urls[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Greater(t, len(whole), 200)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			require.NoError(t, srcs["ous"].SetFaults(source.Faults{DisconnectAfterBytes: 100, Chunked: chunked}))
			t.Cleanup(func() { _ = srcs["ous"].SetFaults(source.Faults{}) })
			// The answer's headers may or may not have left before the
			// source broke off; either way the transfer must end in an
			// error, never as a complete-looking document.
			status, part, err := get(urls[0])
			require.Error(t, err, "status %d: the client must see the transfer break, not a complete document of %d bytes", status, len(part))
			assert.True(t, errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset"), "%v", err)
			assert.Less(t, len(part), len(whole))
		})
	}
	// The server is fine afterwards.
	status, again, err := get(urls[0])
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, whole, again)
}

// TestCancelledRequestCancelsSourceWork: when the client goes away, the
// server stops waiting for the source hospitals: their requests are
// cancelled, not left to run out their own timeouts.
func TestCancelledRequestCancelsSourceWork(t *testing.T) {
	// The sources' own timeouts are far away: only the client's going away
	// can end their requests within the test.
	s, srcs := withSourcesConfig(t, sourceOptions{tune: func(c *documents.Config) { c.SourceTimeout, c.SearchTimeout = time.Minute, time.Minute }})
	doc := s.token("hospital-doctor", citizenPatient)
	for _, src := range srcs {
		require.NoError(t, src.SetFaults(source.Faults{Latency: time.Minute}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/DocumentReference?patient="+citizenPatient, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+doc)
	req.Header.Set("nhn-access-basis", "UNNTAK")
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	// Once both sources hold the search, the client gives up.
	require.Eventually(t, func() bool {
		return srcs["ous"].Stats().Requests > 0 && srcs["nlsh"].Stats().Requests > 0
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.Error(t, <-done)
	require.Eventually(t, func() bool {
		return srcs["ous"].Stats().Abandoned == 1 && srcs["nlsh"].Stats().Abandoned == 1
	}, 10*time.Second, 10*time.Millisecond, "the source requests were cancelled with the client's")
}

// TestLongDocumentStreamOutlivesTheWriteTimeout: a document that takes
// longer to reach a slow client than the server's write timeout still
// arrives whole; the timeout bounds each chunk, not the stream.
func TestLongDocumentStreamOutlivesTheWriteTimeout(t *testing.T) {
	const size = 2 << 20
	s, _ := withSourcesConfig(t, sourceOptions{large: size})
	doc := s.token("hospital-doctor", citizenPatient)
	var large string
	for _, u := range documentURLs(t, s, doc, "ous") {
		large = u // the large document is listed like the others
	}
	// The same server behind a listener with a short write timeout, as
	// serve runs it (serve's is minutes; the client here is just slower).
	hs := httptest.NewUnstartedServer(s.srv)
	hs.Config.WriteTimeout = 300 * time.Millisecond
	hs.Start()
	t.Cleanup(hs.Close)
	found := false
	for _, u := range documentURLs(t, s, doc, "ous") {
		req, err := http.NewRequest(http.MethodGet, hs.URL+strings.TrimPrefix(u, s.base), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+doc)
		req.Header.Set("nhn-access-basis", "UNNTAK")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		if res.ContentLength != size {
			res.Body.Close()
			continue
		}
		found = true
		// A slow reader: the whole transfer takes well over the timeout.
		start := time.Now()
		n := int64(0)
		buf := make([]byte, 64<<10)
		for {
			k, err := res.Body.Read(buf)
			n += int64(k)
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "after %d bytes and %s", n, time.Since(start))
			time.Sleep(20 * time.Millisecond)
		}
		res.Body.Close()
		assert.Equal(t, int64(size), n)
		assert.Greater(t, time.Since(start), 2*hs.Config.WriteTimeout, "the transfer outlived the write timeout")
	}
	require.True(t, found, "the large document %s was not served", large)
}
