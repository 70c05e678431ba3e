package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// engine opens a fresh, empty store for one test.
type engine struct {
	name string
	open func(t testing.TB) store.Store
}

var dbSeq atomic.Int64

// engines are the storage engines every HTTP test runs against: the
// embedded engine and the MongoDB engine (on an embedded FerretDB unless
// KJ_TEST_MONGO_URI names a real MongoDB).
func engines() []engine {
	return []engine{
		{"embedded", func(t testing.TB) store.Store {
			st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db")})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"mongodb", func(t testing.TB) store.Store {
			uri := mongotest.URI(t)
			db := fmt.Sprintf("kjapi_%s_%d", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), dbSeq.Add(1))
			if len(db) > 60 {
				db = fmt.Sprintf("kjapi_%d", dbSeq.Add(1))
			}
			st, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db, Link: audit.Link})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
}

// forEachEngine runs fn as a subtest per engine with a real HTTP server.
func forEachEngine(t *testing.T, fn func(t *testing.T, c *client, st store.Store)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			fn(t, newServer(t, st, api.Config{}), st)
		})
	}
}

func newServer(t *testing.T, st store.Store, cfg api.Config) *client {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	cfg.Store, cfg.Codec = st, codec
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := api.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &client{t: t, base: hs.URL, srv: srv}
}
