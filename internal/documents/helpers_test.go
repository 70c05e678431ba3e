package documents

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

const (
	kjBase   = "https://kj.example.no/fhir"
	patientA = "13116900216"
	patientB = "01017012345"
)

// testNow is the fixed "today" of the rule tests.
var testNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// clock is an injectable, adjustable clock.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }
func (c *clock) now() time.Time   { return *c.t.Load() }

type fakeDoc struct {
	ID, PNR, Type string
	Date          time.Time
	NORS          bool
	Size          int64
	ContentType   string
	// URL overrides the attachment URL (default {base}/Binary/{ID}).
	URL string
	// Div, when set, is the DocumentReference's narrative.
	Div string
}

// fakeSource is a real HTTP server on loopback that follows the source
// contract (DocumentReference search, Binary retrieval, the assertion). It
// verifies every assertion with jwx directly against the public key, as a
// source does with kjernejournal's JWKS, independently of this package's
// VerifyAssertion.
type fakeSource struct {
	t      testing.TB
	name   string
	org    string
	region string
	srv    *httptest.Server
	keys   jwk.Set
	issuer string

	mu       sync.Mutex
	docs     []fakeDoc
	claims   []map[string]any
	queries  []string
	refused  []string
	delay    time.Duration
	chunked  bool // Binary without Content-Length
	failWith int  // answer every request with this status

	// aborted receives the bytes written when a Binary transfer failed
	// on the source's side (the reader went away).
	aborted chan int64
}

func newFakeSource(t testing.TB, signer *Signer, name, org, region string, docs ...fakeDoc) *fakeSource {
	keys := jwk.NewSet()
	require.NoError(t, keys.AddKey(signer.PublicKey()))
	fs := &fakeSource{t: t, name: name, org: org, region: region, keys: keys, issuer: signer.Issuer(),
		docs: docs, aborted: make(chan int64, 4)}
	fs.srv = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fakeSource) source(shared []string, orgs, regions []string) Source {
	return Source{Name: fs.name, DisplayName: "Testsykehus " + fs.name, Organisation: fs.org, Region: fs.region,
		BaseURL: fs.srv.URL, SharedTypes: shared, SharesWith: SharesWith{Organisations: orgs, Regions: regions}}
}

func (fs *fakeSource) lastClaims() map[string]any {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.claims) == 0 {
		return nil
	}
	return fs.claims[len(fs.claims)-1]
}

func (fs *fakeSource) requests() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.claims) + len(fs.refused)
}

// verify checks the assertion the way a source does.
func (fs *fakeSource) verify(r *http.Request) (map[string]any, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, errors.New("no bearer assertion")
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		return nil, err
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != AssertionType {
		return nil, fmt.Errorf("typ %q", typ)
	}
	kid, _ := h.KeyID()
	key, ok := fs.keys.LookupKeyID(kid)
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKey(jwa.ES256(), key))
	if err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	now := float64(time.Now().Unix())
	switch {
	case c["iss"] != fs.issuer:
		return nil, fmt.Errorf("iss %v", c["iss"])
	case c["aud"] != fs.srv.URL:
		return nil, fmt.Errorf("aud %v, want %s", c["aud"], fs.srv.URL)
	case c["exp"].(float64) < now:
		return nil, errors.New("expired")
	}
	return c, nil
}

func (fs *fakeSource) serve(w http.ResponseWriter, r *http.Request) {
	c, err := fs.verify(r)
	fs.mu.Lock()
	delay, failWith := fs.delay, fs.failWith
	if err != nil {
		fs.refused = append(fs.refused, err.Error())
	} else {
		fs.claims = append(fs.claims, c)
		fs.queries = append(fs.queries, r.URL.RawQuery)
	}
	fs.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if failWith != 0 {
		http.Error(w, "injected failure", failWith)
		return
	}
	switch {
	case r.URL.Path == "/DocumentReference":
		fs.search(w, r, c)
	case strings.HasPrefix(r.URL.Path, "/Binary/"):
		fs.binary(w, r, c, strings.TrimPrefix(r.URL.Path, "/Binary/"))
	default:
		http.NotFound(w, r)
	}
}

func (fs *fakeSource) search(w http.ResponseWriter, r *http.Request, c map[string]any) {
	pid := r.URL.Query().Get("patient.identifier")
	sys, pnr, _ := strings.Cut(pid, "|")
	if sys != domain.SystemFNR || pnr != c["patient"] {
		http.Error(w, "patient.identifier does not match the assertion", http.StatusBadRequest)
		return
	}
	var entries []any
	fs.mu.Lock()
	docs := append([]fakeDoc(nil), fs.docs...)
	fs.mu.Unlock()
	for _, d := range docs {
		if d.PNR != pnr {
			continue
		}
		conf := "N"
		if d.NORS {
			conf = "NORS"
		}
		u := d.URL
		if u == "" {
			u = fs.srv.URL + "/Binary/" + d.ID
		}
		res := map[string]any{
			"resourceType": "DocumentReference", "id": d.ID, "status": "current",
			"type":          map[string]any{"coding": []any{map[string]any{"system": domain.SystemDocumentType, "code": d.Type}}},
			"category":      []any{map[string]any{"coding": []any{map[string]any{"system": domain.SystemDocumentType, "code": GroupOf(d.Type)}}}},
			"subject":       map[string]any{"reference": "Patient/src-1", "identifier": map[string]any{"system": domain.SystemFNR, "value": pnr}},
			"date":          d.Date.Format(time.RFC3339),
			"securityLabel": []any{map[string]any{"coding": []any{map[string]any{"system": domain.SystemConfidentiality, "code": conf}}}},
			"content": []any{map[string]any{"attachment": map[string]any{
				"contentType": d.ContentType, "size": d.Size, "title": "Dokument " + d.ID, "url": u}}},
		}
		if d.Div != "" {
			res["text"] = map[string]any{"status": "generated", "div": d.Div}
		}
		entries = append(entries, map[string]any{
			"fullUrl": fs.srv.URL + "/DocumentReference/" + d.ID, "search": map[string]any{"mode": "match"}, "resource": res,
		})
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})
}

// pattern is the content of every fake document, repeated.
var pattern = func() []byte {
	b := make([]byte, 32<<10)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

func (fs *fakeSource) binary(w http.ResponseWriter, r *http.Request, c map[string]any, id string) {
	fs.mu.Lock()
	var doc *fakeDoc
	for i := range fs.docs {
		if fs.docs[i].ID == id {
			doc = &fs.docs[i]
		}
	}
	chunked := fs.chunked
	fs.mu.Unlock()
	if doc == nil || c["document"] != id || c["patient"] != doc.PNR {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", doc.ContentType)
	if !chunked {
		w.Header().Set("Content-Length", strconv.FormatInt(doc.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	var n int64
	for n < doc.Size {
		chunk := pattern[:min(int64(len(pattern)), doc.Size-n)]
		k, err := w.Write(chunk)
		n += int64(k)
		if err != nil {
			fs.aborted <- n
			return
		}
	}
}

// newFederation builds a Federation over the fake sources.
func newFederation(t testing.TB, signer *Signer, clk *clock, sources []Source, mod ...func(*Config)) *Federation {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := Config{Sources: sources, Signer: signer, BaseURL: kjBase, TokenKey: key, Now: clk.now,
		SourceTimeout: 2 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	f, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(f.Close)
	return f
}

func newSigner(t testing.TB) *Signer {
	s, err := GenerateSigner(kjBase)
	require.NoError(t, err)
	return s
}

// proxyServer plays the REST layer's retrieval route: GET
// /documents/{token} with the patient in context (here a header), Open,
// then WriteTo.
type proxyServer struct {
	srv  *httptest.Server
	errs chan error
}

func newProxyServer(t testing.TB, f *Federation, req Requester) *proxyServer {
	p := &proxyServer{errs: make(chan error, 16)}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.URL.Path, "/documents/")
		st, err := f.Open(r.Context(), req, token, r.Header.Get("X-Patient"))
		if err != nil {
			p.errs <- err
			http.Error(w, err.Error(), HTTPStatus(err))
			return
		}
		_, err = st.WriteTo(w)
		if err != nil {
			p.errs <- err
		}
		var se *SourceError
		if errors.As(err, &se) && se.HeaderWritten {
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// get fetches a proxied document URL (as rewritten by Search) for pnr.
func (p *proxyServer) get(ctx context.Context, docURL, pnr string) (*http.Response, error) {
	token := docURL[strings.LastIndex(docURL, "/")+1:]
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, p.srv.URL+"/documents/"+token, nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("X-Patient", pnr)
	return http.DefaultClient.Do(r)
}

// attachmentURLs returns the content.attachment.url values of a
// re-rendered DocumentReference.
func attachmentURLs(t testing.TB, resource []byte) []string {
	var m struct {
		Content []struct {
			Attachment struct {
				URL string `json:"url"`
			} `json:"attachment"`
		} `json:"content"`
	}
	require.NoError(t, json.Unmarshal(resource, &m))
	var out []string
	for _, c := range m.Content {
		out = append(out, c.Attachment.URL)
	}
	return out
}

func entryIDs(r Result) []string {
	var ids []string
	for _, e := range r.Entries {
		ids = append(ids, e.Source+"/"+e.ID)
	}
	return ids
}

var requester = Requester{HPR: "565501872", HPCategory: "LE", Org: "300011268", Region: "helse-nord",
	PurposeOfUse: "TREAT", AccessBasis: "UNNTAK", Session: "issuer\x00sub-1\x00565501872\x00\x00jti-1"}

// drain reads and discards a body.
func drain(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
