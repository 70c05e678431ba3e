package source

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/syncbuf"
)

const testIssuer = "https://kjernejournal.test"

// kj plays kjernejournal's side of the contract: it owns signing keys,
// publishes their public halves as a JWKS over real HTTP and signs
// assertions.
type kj struct {
	ec   *ecdsa.PrivateKey
	rsa  *rsa.PrivateKey
	jwks *httptest.Server
}

func newKJ(t *testing.T) *kj {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"ec-1": &ec.PublicKey, "rsa-1": &rk.PublicKey} {
		k, err := jwk.Import(pub)
		require.NoError(t, err)
		require.NoError(t, k.Set(jwk.KeyIDKey, kid))
		require.NoError(t, k.Set(jwk.KeyUsageKey, "sig"))
		require.NoError(t, set.AddKey(k))
	}
	body, err := json.Marshal(set)
	require.NoError(t, err)
	k := &kj{ec: ec, rsa: rk}
	k.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(k.jwks.Close)
	return k
}

// claims returns a valid claim set for patient (and document, if any).
func claims(aud, patient, document string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": testIssuer, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"jti":            rand.Text(),
		"hpr":            "9144889",
		"hp_category":    "LE",
		"org":            "300011268",
		"purpose_of_use": "TREAT",
		"access_basis":   "UNNTAK",
		"patient":        patient,
	}
	if document != "" {
		c["document"] = document
	}
	return c
}

type signOpts struct {
	typ string
	kid string
	alg jwa.SignatureAlgorithm
	key any
}

// sign makes a compact JWS of c, by default ES256 with kid ec-1 and the
// assertion typ.
func (k *kj) sign(t *testing.T, c map[string]any, o signOpts) string {
	t.Helper()
	if o.typ == "" {
		o.typ = AssertionType
	}
	if o.key == nil {
		o.key, o.alg, o.kid = k.ec, jwa.ES256(), "ec-1"
	}
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	h := jws.NewHeaders()
	require.NoError(t, h.Set(jws.TypeKey, o.typ))
	if o.kid != "" {
		require.NoError(t, h.Set(jws.KeyIDKey, o.kid))
	}
	out, err := jws.Sign(payload, jws.WithKey(o.alg, o.key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return string(out)
}

// env is a source running on a real HTTP server with its documents.
type env struct {
	kj       *kj
	src      *Server
	ts       *httptest.Server
	docs     []Document
	labs     []LabReport
	patients []Patient
	log      *syncbuf.Buffer
}

var testOrg = Organisation{Number: "300010008", Name: "Oslo universitetssykehus HF", Region: "Helse Sør-Øst"}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	k := newKJ(t)
	patients, err := SeedPatients(1, 3)
	require.NoError(t, err)
	docs := Generate(1, patients, testOrg, 12)
	labs := GenerateLab(seed.DefaultBase, 1, patients, testOrg)
	e := &env{kj: k, docs: docs, labs: labs, patients: patients, log: &syncbuf.Buffer{}}
	cfg := Config{Org: testOrg, Issuer: testIssuer, JWKSURL: k.jwks.URL, Documents: docs, LabResults: labs, Log: e.log}
	if mod != nil {
		mod(&cfg)
	}
	e.src, err = New(cfg)
	require.NoError(t, err)
	t.Cleanup(e.src.Close)
	e.ts = httptest.NewServer(e.src)
	t.Cleanup(e.ts.Close)
	return e
}

// searchURL is the search for the person number with extra parameters.
func (e *env) searchURL(pnr string, extra url.Values) string {
	v := url.Values{"patient.identifier": {domain.SystemFNR + "|" + pnr}}
	for k, vs := range extra {
		v[k] = vs
	}
	return e.ts.URL + "/DocumentReference?" + v.Encode()
}

// get sends a GET with the bearer token (none if "").
func (e *env) get(t *testing.T, u, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// search runs a valid search and decodes the Bundle.
func (e *env) search(t *testing.T, pnr string, extra url.Values) bundle {
	t.Helper()
	resp := e.get(t, e.searchURL(pnr, extra), e.kj.sign(t, claims(e.ts.URL, pnr, ""), signOpts{}))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/fhir+json; charset=utf-8", resp.Header.Get("Content-Type"))
	var b bundle
	require.NoError(t, json.Unmarshal(body, &b))
	return b
}

// bundle is the part of a searchset the tests look at.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        int    `json:"total"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct{ Mode string }
	} `json:"entry"`
}

type docRef struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Type   struct {
		Coding []struct{ System, Code, Display string }
	}
	Category []struct {
		Coding []struct{ System, Code string }
	}
	Subject struct {
		Identifier struct{ System, Value string }
	}
	Date   time.Time
	Author []struct {
		Identifier struct{ System, Value string }
		Display    string
	}
	Custodian struct {
		Identifier struct{ System, Value string }
	}
	SecurityLabel []struct {
		Coding []struct{ System, Code string }
	}
	Content []struct {
		Attachment struct {
			ContentType string
			URL         string
			Size        int64
			Title       string
		}
	}
}

func (b bundle) refs(t *testing.T) []docRef {
	t.Helper()
	var out []docRef
	for _, e := range b.Entry {
		var d docRef
		require.NoError(t, json.Unmarshal(e.Resource, &d))
		out = append(out, d)
	}
	return out
}

// outcome decodes an OperationOutcome answer and returns its diagnostics.
func outcome(t *testing.T, resp *http.Response, status int) string {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, string(body))
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	require.NoError(t, json.Unmarshal(body, &oo), string(body))
	require.Equal(t, "OperationOutcome", oo.ResourceType)
	require.Len(t, oo.Issue, 1)
	return oo.Issue[0].Diagnostics
}

func (e *env) docsOf(pnr string) []Document {
	var out []Document
	for _, d := range e.docs {
		if d.PersonNumber == pnr {
			out = append(out, d)
		}
	}
	return out
}

func body(t *testing.T, d Document) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := d.WriteBody(&b)
	require.NoError(t, err)
	require.Equal(t, d.Size, n)
	return b.Bytes()
}

func fmtSscan(s string, args ...any) (int, error) { return fmt.Sscan(s, args...) }

func itoa(i int) string { return strconv.Itoa(i) }

func newHTTPTest(t *testing.T, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}
