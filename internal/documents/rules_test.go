package documents

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

func TestLoadSourcesExample(t *testing.T) {
	list, err := LoadSources("../../testdata/sources/sources.json")
	require.NoError(t, err)
	require.Len(t, list, 4)
	assert.NotEqual(t, list[0].Region, list[1].Region, "two health regions")
	assert.Equal(t, "http://127.0.0.1:8091", list[0].BaseURL)
	assert.Equal(t, "http://127.0.0.1:8092", list[1].BaseURL)
	// Two lab services, on the same development sources under /lab.
	for i, base := range []string{"http://127.0.0.1:8091/lab", "http://127.0.0.1:8092/lab"} {
		assert.Equal(t, KindLab, list[2+i].Kind)
		assert.Equal(t, base, list[2+i].BaseURL)
	}
}

func TestLoadSourcesErrors(t *testing.T) {
	good := `{"name":"a","organisation":"300010008","region":"helse-vest","base_url":"https://a.example.no/fhir","shared_types":["A00"],"shares_with":{"regions":["helse-vest"]}}`
	for name, tc := range map[string]struct{ json, want string }{
		"duplicate name": {`{"sources":[` + good + `,` + strings.Replace(good, "a.example", "b.example", 1) + `]}`, `sources[1] (a).name: "a" is also the name of sources[0]`},
		"bad url":        {`{"sources":[` + strings.Replace(good, "https://a.example.no/fhir", "ftp://x", 1) + `]}`, `sources[0] (a).base_url: "ftp://x" is not an absolute http(s) URL`},
		"http remote":    {`{"sources":[` + strings.Replace(good, "https://", "http://", 1) + `]}`, `base_url: "http://a.example.no/fhir": plain http only on a loopback host`},
		"unknown group":  {`{"sources":[` + strings.Replace(good, `"A00"`, `"B00"`, 1) + `]}`, `sources[0] (a).shared_types[0]: "B00": unknown document group B00`},
		"not a code":     {`{"sources":[` + strings.Replace(good, `"A00"`, `"epikrise"`, 1) + `]}`, `shared_types[0]: "epikrise" is not a 9602 code`},
		"empty types":    {`{"sources":[` + strings.Replace(good, `["A00"]`, `[]`, 1) + `]}`, `sources[0] (a).shared_types: empty`},
		"empty shares":   {`{"sources":[` + strings.Replace(good, `{"regions":["helse-vest"]}`, `{}`, 1) + `]}`, `sources[0] (a).shares_with: empty`},
		"bad region":     {`{"sources":[` + strings.Replace(good, `"region":"helse-vest"`, `"region":"vest"`, 1) + `]}`, `sources[0] (a).region: "vest" is not a health region`},
		"bad org":        {`{"sources":[` + strings.Replace(good, `300010008`, `12`, 1) + `]}`, `sources[0] (a).organisation: "12" is not an organisation number`},
		"typo field":     {`{"sources":[` + strings.Replace(good, `shares_with`, `share_with`, 1) + `]}`, `unknown field "share_with"`},
		"no sources":     {`{"sources":[]}`, `the list is empty`},
		"unknown kind":   {`{"sources":[` + strings.Replace(good, `"name":"a"`, `"name":"a","kind":"labs"`, 1) + `]}`, `sources[0] (a).kind: "labs" is not a kind of source`},
		"lab with types": {`{"sources":[` + strings.Replace(good, `"name":"a"`, `"name":"a","kind":"lab"`, 1) + `]}`, `sources[0] (a).shared_types: a lab source shares its results as a whole`},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sources.json")
			require.NoError(t, os.WriteFile(p, []byte(tc.json), 0o600))
			_, err := LoadSources(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// ruleDocs are patient A's documents at one fake source, dated around the
// boundaries of every group's window relative to testNow.
func ruleDocs() []fakeDoc {
	day := 24 * time.Hour
	y1, y5 := testNow.AddDate(-1, 0, 0), testNow.AddDate(-5, 0, 0)
	d := func(id, typ string, date time.Time) fakeDoc {
		return fakeDoc{ID: id, PNR: patientA, Type: typ, Date: date, Size: 10, ContentType: "application/pdf"}
	}
	nors := d("nors", "A01-1", testNow.Add(-day))
	nors.NORS = true
	return []fakeDoc{
		d("a-20y", "A01-1", testNow.AddDate(-20, 0, 0)),
		d("c-in", "C01-1", y1.Add(day)), d("c-out", "C01-1", y1.Add(-day)),
		d("i-in", "I01-1", y1.Add(day)), d("i-out", "I01-2", y1.Add(-day)),
		d("d-in", "D01-1", y5.Add(day)), d("d-out", "D01-1", y5.Add(-day)),
		d("e-in", "E01-1", y5.Add(day)), d("e-out", "E01-2", y5.Add(-day)),
		d("b-other-group", "B01-1", testNow.Add(-day)),
		nors,
		{ID: "other-patient", PNR: patientB, Type: "A01-1", Date: testNow.Add(-day), Size: 10, ContentType: "application/pdf"},
	}
}

func TestSearchRules(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", ruleDocs()...)
	f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, nil, []string{"helse-nord"})})

	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	// Inside the windows (a day inside the boundary) shown; a day outside
	// hidden; A00 unlimited; NORS, another group and another patient never.
	assert.ElementsMatch(t, []string{"src/a-20y", "src/c-in", "src/i-in", "src/d-in", "src/e-in"}, entryIDs(res))
	assert.Nil(t, res.Outcome())

	// The subject is the identifier, not the source's local reference.
	for _, e := range res.Entries {
		assert.NotContains(t, string(e.Resource), "Patient/src-1")
		assert.Contains(t, string(e.Resource), `"value":"`+patientA+`"`)
	}
}

func TestSearchWindowMovesWithClock(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", ruleDocs()...)
	clk := newClock(testNow)
	f := newFederation(t, signer, clk, []Source{fs.source(allGroups, nil, []string{"helse-nord"})})
	// Two days later, the documents that were a day inside the 1-year and
	// 5-year windows are a day outside.
	clk.set(testNow.Add(48 * time.Hour))
	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"src/a-20y"}, entryIDs(res))
}

func TestSearchSharingPolicy(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-sor-ost", ruleDocs()...)

	t.Run("by organisation", func(t *testing.T) {
		f := newFederation(t, signer, newClock(testNow), []Source{fs.source([]string{"A00"}, []string{requester.Org}, nil)})
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.Equal(t, []string{"src/a-20y"}, entryIDs(res), "only the shared type; C00..I00 unshared")
	})
	t.Run("by region", func(t *testing.T) {
		f := newFederation(t, signer, newClock(testNow), []Source{fs.source([]string{"C01-1", "E00"}, nil, []string{"Helse Nord"})})
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"src/c-in", "src/e-in"}, entryIDs(res), "a shared code and a shared group")
	})
	t.Run("not shared with the requester", func(t *testing.T) {
		before := fs.requests()
		f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, []string{"300010075"}, []string{"helse-vest"})})
		res, err := f.Search(context.Background(), requester, patientA, Query{})
		require.NoError(t, err)
		assert.Empty(t, res.Entries)
		assert.Empty(t, res.Sources, "the source is not asked")
		assert.Equal(t, before, fs.requests())
	})
}

func TestSearchQueryFilters(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", ruleDocs()...)
	f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, nil, []string{"helse-nord"})})
	ctx := context.Background()

	res, err := f.Search(ctx, requester, patientA, Query{Types: []string{domain.SystemDocumentType + "|C01-1", "E00"}})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"src/c-in", "src/e-in"}, entryIDs(res))

	res, err = f.Search(ctx, requester, patientA, Query{Category: "D00"})
	require.NoError(t, err)
	assert.Equal(t, []string{"src/d-in"}, entryIDs(res))

	res, err = f.Search(ctx, requester, patientA, Query{DateFrom: testNow.AddDate(-2, 0, 0), DateTo: testNow})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"src/c-in", "src/i-in"}, entryIDs(res))

	res, err = f.Search(ctx, requester, patientA, Query{Count: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"src/c-in", "src/i-in"}, entryIDs(res), "the newest two")
	assert.Equal(t, 5, res.Total)
	assert.Len(t, res.Documents, 2)

	// A single type code is passed on to the source.
	_, err = f.Search(ctx, requester, patientA, Query{Types: []string{"C01-1"}})
	require.NoError(t, err)
	fs.mu.Lock()
	last := fs.queries[len(fs.queries)-1]
	fs.mu.Unlock()
	assert.Contains(t, last, "type=C01-1")
	assert.Contains(t, last, "date=ge", "a 1-year group bounds the search at the source")
}

func TestSearchDropsForeignAttachmentURL(t *testing.T) {
	signer := newSigner(t)
	evil := fakeDoc{ID: "evil", PNR: patientA, Type: "A01-1", Date: testNow, Size: 1, ContentType: "text/html",
		URL: "http://169.254.169.254/latest/meta-data"}
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", evil)
	f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, nil, []string{"helse-nord"})})
	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, []string{""}, attachmentURLs(t, res.Entries[0].Resource), "a URL outside {base}/Binary/ is removed, never proxied")
	assert.NotContains(t, string(res.Entries[0].Resource), "169.254")
}

// A source's narrative that breaks the narrative rules (a script) is
// removed before the DocumentReference leaves; a clean one stays.
func TestSearchRemovesUnsafeNarrative(t *testing.T) {
	signer := newSigner(t)
	const xhtml = `<div xmlns="http://www.w3.org/1999/xhtml">`
	bad := fakeDoc{ID: "bad", PNR: patientA, Type: "A01-1", Date: testNow, Size: 1, ContentType: "application/pdf",
		Div: xhtml + `<img src="x" onerror="alert(1)"/>Epikrise</div>`}
	good := fakeDoc{ID: "good", PNR: patientA, Type: "A01-1", Date: testNow.Add(-time.Hour), Size: 1, ContentType: "application/pdf",
		Div: xhtml + `<p>Epikrise</p></div>`}
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", bad, good)
	f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, nil, []string{"helse-nord"})})
	res, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	require.Len(t, res.Entries, 2, "the document itself is still listed")
	assert.NotContains(t, string(res.Entries[0].Resource), "onerror")
	assert.NotContains(t, string(res.Entries[0].Resource), `"div"`)
	assert.Contains(t, string(res.Entries[1].Resource), `<p>Epikrise</p>`)
}

func TestOpenRefusesBadTokens(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", ruleDocs()...)
	clk := newClock(testNow)
	f := newFederation(t, signer, clk, []Source{fs.source(allGroups, nil, []string{"helse-nord"})},
		func(c *Config) { c.TokenTTL = time.Hour })
	res, err := f.Search(context.Background(), requester, patientA, Query{Types: []string{"A00"}})
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	u := attachmentURLs(t, res.Entries[0].Resource)[0]
	token := u[strings.LastIndex(u, "/")+1:]
	p := newProxyServer(t, f, requester)

	status := func(tok, pnr string) int {
		resp, err := p.get(context.Background(), kjBase+"/documents/"+tok, pnr)
		require.NoError(t, err)
		_, _ = drain(resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, status(token, patientA), "the genuine token works")

	altered := []byte(token)
	altered[len(altered)/2] ^= 1
	if altered[len(altered)/2] == token[len(token)/2] {
		altered[len(altered)/2]++
	}
	forged := makeToken([]byte("0123456789abcdef0123456789abcdef"), docRef{Source: "src", ID: "a-20y", Type: "A01-1", Expires: testNow.Add(time.Hour)}, binding{patientA, requester.Session})
	for name, tc := range map[string]struct {
		tok, pnr string
		want     error
		status   int
	}{
		"altered":         {string(altered), patientA, ErrTokenInvalid, http.StatusNotFound},
		"forged":          {forged, patientA, ErrTokenInvalid, http.StatusNotFound},
		"garbage":         {"not-a-token", patientA, ErrTokenInvalid, http.StatusNotFound},
		"another patient": {token, patientB, ErrTokenInvalid, http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.status, status(tc.tok, tc.pnr))
			assert.ErrorIs(t, <-p.errs, tc.want)
		})
	}
	// Rule 7: a document URL opens for the user and the access token that
	// received it only; anyone else gets what a forged URL gets.
	for name, session := range map[string]string{
		"another access token of the same user": "issuer\x00sub-1\x00565501872\x00\x00jti-2",
		"another user":                          "issuer\x00sub-2\x00565501999\x00\x00jti-1",
		"no session":                            "",
	} {
		t.Run(name, func(t *testing.T) {
			other := requester
			other.Session = session
			_, err := f.Open(context.Background(), other, token, patientA)
			assert.ErrorIs(t, err, ErrTokenInvalid)
			assert.Equal(t, http.StatusNotFound, HTTPStatus(err))
		})
	}
	t.Run("not shared with this requester", func(t *testing.T) {
		other := requester
		other.Org, other.Region = "300010949", "helse-vest"
		_, err := f.Open(context.Background(), other, token, patientA)
		assert.ErrorIs(t, err, ErrNotShared)
		assert.Equal(t, http.StatusForbidden, HTTPStatus(err))
	})
	t.Run("expired", func(t *testing.T) {
		clk.set(testNow.Add(time.Hour + time.Second))
		defer clk.set(testNow)
		assert.Equal(t, http.StatusForbidden, status(token, patientA))
		assert.ErrorIs(t, <-p.errs, ErrTokenExpired)
	})
}

func TestAssertionVerify(t *testing.T) {
	signer := newSigner(t)
	keys := jwk.NewSet()
	require.NoError(t, keys.AddKey(signer.PublicKey()))
	a, err := signer.Assertion("http://127.0.0.1:8091", requester, patientA, "dok-1")
	require.NoError(t, err)
	c, err := VerifyAssertion(a, keys, kjBase, "http://127.0.0.1:8091", time.Now())
	require.NoError(t, err)
	assert.Equal(t, "dok-1", c.Document)
	assert.Equal(t, requester.HPR, c.HPR)
	_, err = VerifyAssertion(a, keys, kjBase, "http://127.0.0.1:8092", time.Now())
	assert.ErrorContains(t, err, "aud")
	_, err = VerifyAssertion(a, keys, kjBase, "http://127.0.0.1:8091", time.Now().Add(5*time.Minute))
	assert.ErrorContains(t, err, "expired")
	other := newSigner(t)
	b, err := other.Assertion("http://127.0.0.1:8091", requester, patientA, "")
	require.NoError(t, err)
	_, err = VerifyAssertion(b, keys, kjBase, "http://127.0.0.1:8091", time.Now())
	assert.ErrorContains(t, err, "unknown kid")
}

func TestFakeSourceSeesVerifiedAssertion(t *testing.T) {
	signer := newSigner(t)
	fs := newFakeSource(t, signer, "src", "300010008", "helse-nord", ruleDocs()...)
	f := newFederation(t, signer, newClock(testNow), []Source{fs.source(allGroups, nil, []string{"helse-nord"})})
	_, err := f.Search(context.Background(), requester, patientA, Query{})
	require.NoError(t, err)
	c := fs.lastClaims()
	require.NotNil(t, c, "refused: %v", fs.refused)
	assert.Equal(t, fs.srv.URL, c["aud"])
	assert.Equal(t, patientA, c["patient"])
	assert.Equal(t, "TREAT", c["purpose_of_use"])
	assert.Equal(t, "UNNTAK", c["access_basis"])
	assert.Equal(t, "LE", c["hp_category"])
	assert.NotEmpty(t, c["jti"])
	assert.InDelta(t, 60, c["exp"].(float64)-c["iat"].(float64), 0)
}
