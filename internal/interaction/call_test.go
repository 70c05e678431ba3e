package interaction

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

func newService(t *testing.T) *Service {
	t.Helper()
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	reg, err := search.Load(codec.Types())
	require.NoError(t, err)
	s, err := New(Config{Store: st, Codec: codec, Search: reg, Audit: true})
	require.NoError(t, err)
	return s
}

// TestRouter: one table of FHIR URLs, routed for a REST request and for a
// Bundle entry, which must reach exactly the same call (or the same
// refusal): the two share one router.
func TestRouter(t *testing.T) {
	s := newService(t)
	cases := []struct {
		method, url string
		kind        Kind
		typ, id     string
		status      int // the refusal's status, 0 for a call
		allow       string
	}{
		{"GET", "metadata", Capabilities, "", "", 0, ""},
		{"POST", "metadata", "", "", "", 405, "GET"},
		{"POST", "", Bundle, "", "", 0, ""},
		{"GET", "Flag", Search, "Flag", "", 0, ""},
		{"GET", "Flag?patient=p1", Search, "Flag", "", 0, ""},
		{"POST", "Flag", Create, "Flag", "", 0, ""},
		{"PUT", "Flag?identifier=x|1", Update, "Flag", "", 0, ""},
		{"PUT", "Flag", "", "", "", 405, "GET, POST"},
		{"DELETE", "Flag", "", "", "", 405, "GET, POST, PUT"},
		{"POST", "Flag/_search", Search, "Flag", "", 0, ""},
		{"GET", "Flag/_history", "", "", "", 405, ""},
		{"POST", "Flag/$validate", Validate, "Flag", "", 0, ""},
		{"GET", "Flag/f1", Read, "Flag", "f1", 0, ""},
		{"PUT", "Flag/f1", Update, "Flag", "f1", 0, ""},
		{"DELETE", "Flag/f1", Delete, "Flag", "f1", 0, ""},
		{"PATCH", "Flag/f1", "", "", "", 405, "GET, PUT, DELETE"},
		{"DELETE", "Consent/c1", "", "", "", 405, "GET, PUT"},
		{"GET", "Flag/f1/_history", History, "Flag", "f1", 0, ""},
		{"GET", "Flag/f1/_history/2", VRead, "Flag", "f1", 0, ""},
		{"GET", "Flag/f1/_history/x", "", "", "", 400, ""},
		{"GET", "Flag/bad$id", "", "", "", 400, ""},
		{"GET", "Patient/p1/Flag", Search, "Flag", "", 0, ""},
		{"GET", "Patient/p1/$kj-status", Status, "Patient", "p1", 0, ""},
		{"GET", "AuditEvent?patient=p1", Search, "AuditEvent", "", 0, ""},
		{"POST", "AuditEvent", "", "", "", 405, "GET"},
		{"GET", "AuditEvent/a1", "", "", "", 405, ""},
		{"GET", "StructureDefinition/KjFlag", Read, "StructureDefinition", "KjFlag", 0, ""},
		{"GET", "Observation/o1", "", "", "", 404, ""},
		{"GET", "DocumentReference?patient=p1", "", "", "", 404, ""}, // no sources configured
		{"GET", "Flag/f1/_history/1/x", "", "", "", 404, ""},
		{"GET", "no such thing", "", "", "", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.url, func(t *testing.T) {
			path, query, _ := strings.Cut(tc.url, "?")
			rest, restErr := s.ParseCall(tc.method, "/"+path, query)
			entry, entryErr := s.EntryCall(tc.method, tc.url)
			if tc.url == "no such thing" {
				// A space is a valid (encoded) REST path, but never a
				// Bundle entry's URL.
				require.Error(t, entryErr)
				entryErr, entry = restErr, rest
			}
			if tc.status != 0 {
				for _, err := range []error{restErr, entryErr} {
					var e *Error
					require.True(t, errors.As(err, &e), "%v", err)
					assert.Equal(t, tc.status, e.Status, "%v", e)
					if tc.status == http.StatusMethodNotAllowed {
						require.NotNil(t, e.Allow)
						assert.Equal(t, tc.allow, *e.Allow)
					}
				}
				return
			}
			require.NoError(t, restErr)
			require.NoError(t, entryErr)
			for _, c := range []*Call{rest, entry} {
				assert.Equal(t, tc.kind, c.Kind)
				assert.Equal(t, tc.typ, c.Type)
				assert.Equal(t, tc.id, c.ID)
			}
			assert.Equal(t, rest.Query, entry.Query)
			assert.True(t, entry.Entry)
			assert.Equal(t, tc.kind == Capabilities || tc.typ == "StructureDefinition", rest.Public())
		})
	}
}
