package api_test

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/source"
)

// withSources starts two source hospitals (two health regions) holding
// documents of the citizen persona's patient, and a server that federates
// them.
func withSources(t *testing.T) (*secured, map[string]*source.Server) {
	t.Helper()
	return withSourcesConfig(t, sourceOptions{})
}

// sourceOptions adjust withSources.
type sourceOptions struct {
	// tune adjusts the federation's configuration.
	tune func(*documents.Config)
	// large, when > 0, adds a document of that many bytes to each source.
	large int64
	// hospitals is how many of sourceHospitals to start; 0 starts the
	// first two.
	hospitals int
	// labAt, when not zero, gives each source hospital a lab service too:
	// the citizen's results labReports(h, labAt), served at {base}/lab and
	// registered as the lab source h.labName(). The federation's clock
	// then stands still at labAt (before tune), so the lab window is
	// decided at a known instant, not whenever the search runs.
	labAt time.Time
	// tb, when set, opens the store and takes the sources' cleanups in
	// place of t (a benchmark's *testing.B; see benchT).
	tb testing.TB
	// labFollowsVisits is the policy's LabFollowsVisitHistory (serve
	// --lab-follows-visit-history).
	labFollowsVisits bool
}

// sourceHospital is one development source hospital withSourcesConfig
// starts.
type sourceHospital struct{ name, org, display, region string }

func (h sourceHospital) organisation() source.Organisation {
	return source.Organisation{Number: h.org, Name: h.display, Region: h.region}
}

// labName is the name of the hospital's lab source in the registry.
func (h sourceHospital) labName() string { return h.name + "-lab" }

// sourceHospitals are the source hospitals withSourcesConfig can start,
// in three health regions.
var sourceHospitals = []sourceHospital{
	{"ous", "300010008", "Oslo universitetssykehus HF", "Helse Sør-Øst"},
	{"nlsh", "300011268", "Nordlandssykehuset HF", "Helse Nord"},
	{"stolav", "300012345", "St. Olavs hospital HF", "Helse Midt-Norge"},
}

// labSeed is the seed of every source's lab results.
const labSeed = 7

// labReports are the lab results of the citizen persona's patient that
// hospital h's lab service holds when sourceOptions.labAt is at.
func labReports(h sourceHospital, at time.Time) []source.LabReport {
	return source.GenerateLab(at, labSeed, []source.Patient{{ID: citizenPatient, PersonNumber: citizenPID}}, h.organisation())
}

// withSourcesConfig is withSources with options.
func withSourcesConfig(t *testing.T, opts sourceOptions) (*secured, map[string]*source.Server) {
	t.Helper()
	var tb testing.TB = t
	if opts.tb != nil {
		tb = opts.tb
	}
	srcs := map[string]*source.Server{}
	var registry []documents.Source
	var setups []func(base string)
	hospitals := sourceHospitals[:cmp.Or(opts.hospitals, 2)]
	for _, h := range hospitals {
		var srv *source.Server
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { srv.ServeHTTP(w, r) }))
		tb.Cleanup(ts.Close)
		org := h.organisation()
		citizen := source.Patient{ID: citizenPatient, PersonNumber: citizenPID}
		docs := source.GenerateAt(time.Now().UTC(), 7, []source.Patient{citizen}, org, 14)
		if opts.large > 0 {
			big, err := source.LargeDocument(time.Now(), org, citizen, opts.large)
			require.NoError(t, err)
			docs = append(docs, big)
		}
		registry = append(registry, documents.Source{Name: h.name, DisplayName: h.display, Organisation: h.org,
			Region: documents.NormaliseRegion(h.region), BaseURL: ts.URL, SharedTypes: []string{"A00", "C00", "D00", "E00", "I00"},
			SharesWith: documents.SharesWith{Regions: []string{"helse-sor-ost", "helse-nord"}}})
		var lab []source.LabReport
		if !opts.labAt.IsZero() {
			lab = labReports(h, opts.labAt)
			registry = append(registry, documents.Source{Name: h.labName(), Kind: documents.KindLab, DisplayName: h.display, Organisation: h.org,
				Region: documents.NormaliseRegion(h.region), BaseURL: ts.URL + "/lab",
				SharesWith: documents.SharesWith{Regions: []string{"helse-sor-ost", "helse-nord"}}})
		}
		// the source learns kjernejournal's base URL once that server is up
		setups = append(setups, func(base string) {
			var err error
			srv, err = source.New(source.Config{Org: org, BaseURL: ts.URL, Issuer: base, JWKSURL: base + "/jwks", Documents: docs, LabResults: lab, Log: io.Discard})
			require.NoError(t, err)
			srcs[h.name] = srv
		})
	}
	s := newSecuredWith(t, engines()[0].open(tb), func(base string, cfg *api.Config) {
		signer, err := documents.GenerateSigner(base)
		require.NoError(t, err)
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		dc := documents.Config{Sources: registry, Signer: signer, BaseURL: base, TokenKey: key}
		if at := opts.labAt; !at.IsZero() {
			dc.Now = func() time.Time { return at }
		}
		if opts.tune != nil {
			opts.tune(&dc)
		}
		fed, err := documents.New(dc)
		require.NoError(t, err)
		cfg.Documents, cfg.DocumentKeys = fed, signer.PublicKey()
		cfg.RegionOf = func(string) string { return "helse-sor-ost" }
		cfg.Policy.LabFollowsVisitHistory = opts.labFollowsVisits
	})
	// Only now that kjernejournal answers: a source fetches its JWKS when
	// it starts.
	for _, setup := range setups {
		setup(s.base)
	}
	s.addCitizen(t)
	return s, srcs
}

var proxyURL = regexp.MustCompile(`"url":"(http://[^"]+/documents/[^"]+)"`)

func TestDocumentsOverHTTP(t *testing.T) {
	s, srcs := withSources(t)
	doc := s.token("hospital-doctor", citizenPatient)

	r := s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	validR4(t, r.body)
	body := string(r.body)
	assert.Contains(t, body, "ous.", "documents from Oslo")
	assert.Contains(t, body, "nlsh.", "and from Bodø, merged")
	assert.NotContains(t, body, `"code":"NORS"`, "NORS documents are never shown")
	for _, src := range srcs {
		lookups := src.Lookups()
		require.NotEmpty(t, lookups, "the source logged the lookup from the assertion")
	}
	urls := proxyURL.FindAllStringSubmatch(body, -1)
	require.NotEmpty(t, urls, "attachments point to this server's proxy")

	// open one document: streamed bytes, logged first
	res := s.as_(doc, "UNNTAK", "GET", strings.TrimPrefix(urls[0][1], s.base), nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	assert.True(t, strings.HasPrefix(string(res.body), "%PDF") || strings.HasPrefix(string(res.body), "<?xml"), "a real document")
	ev := lastAudit(t, s.st)
	evb, _ := json.Marshal(ev)
	assert.Contains(t, string(evb), "ITI-68", "the retrieval is in the usage log")

	// a forged or altered URL is refused and nothing is fetched
	forged := strings.TrimPrefix(urls[0][1], s.base)
	forged = forged[:len(forged)-3] + "AAA"
	assert.Equal(t, http.StatusNotFound, s.as_(doc, "UNNTAK", "GET", forged, nil).status)
	// another patient's token cannot open it
	other := s.token("hospital-doctor", s.patients[0])
	assert.Equal(t, http.StatusNotFound, s.as_(other, "UNNTAK", "GET", strings.TrimPrefix(urls[0][1], s.base), nil).status)

	// one source down: the other's results plus an outcome naming it
	require.NoError(t, srcs["nlsh"].SetFaults(source.Faults{Down: true}))
	r = s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), "ous.")
	assert.Contains(t, string(r.body), "Nordlandssykehuset HF (nlsh)")
	require.NoError(t, srcs["nlsh"].SetFaults(source.Faults{}))

	// the citizen sees that documents were viewed, not which
	citizen := s.token("citizen", "")
	r = s.as_(citizen, "", "GET", "/AuditEvent?patient="+citizenPatient, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), "Journaldokumenter")
	assert.NotContains(t, string(r.body), "dok-", "not which documents")

	// a blocked visit history makes documents unavailable
	now := time.Now().UTC().Truncate(time.Second)
	require.Equal(t, http.StatusCreated, s.as_(citizen, "", "POST", "/Consent", consent(privacy.Restriction, true, now, []access.Section{access.VisitHistory})).status)
	assert.Equal(t, "documents-unavailable", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil)))
	assert.Equal(t, "documents-unavailable", reasonOf(t, s.as_(doc, "UNNTAK", "GET", strings.TrimPrefix(urls[0][1], s.base), nil)))
	// a search bound to no patient is refused
	assert.Equal(t, http.StatusBadRequest, s.as_(doc, "UNNTAK", "GET", "/DocumentReference", nil).status)
}

// The category parameter is a FHIR token: the 9602 system may be named,
// and a value that is no document group is the client's error (400), not
// a server failure.
func TestDocumentCategoryIsAToken(t *testing.T) {
	s, _ := withSources(t)
	doc := s.token("hospital-doctor", citizenPatient)
	bare := s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient+"&category=A00", nil)
	require.Equal(t, http.StatusOK, bare.status, "body: %s", bare.body)
	token := s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient+"&category="+domain.SystemDocumentType+"%7CA00", nil)
	require.Equal(t, http.StatusOK, token.status, "body: %s", token.body)
	assert.Contains(t, string(token.body), `"code":"A`, "discharge summaries are found")
	for _, bad := range []string{"http%3A%2F%2Fexample.org%7CA00", "Z9", domain.SystemDocumentType + "%7CA01"} {
		outcome(t, s.as_(doc, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient+"&category="+bad, nil), http.StatusBadRequest)
	}
}
