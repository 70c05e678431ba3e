package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// BenchmarkHandlerRead is the server's own cost of a read by id (no token,
// no usage log), without the network: what the request pipeline adds to
// the store read, per request and in allocations.
func BenchmarkHandlerRead(b *testing.B) {
	srv, patient := handlerBench(b)
	path := "/Patient/" + patient
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkHandlerCreate is the server's own cost of a validated create
// of a Flag (no token, no usage log, no fsync), without the network: the
// write pipeline per request.
func BenchmarkHandlerCreate(b *testing.B) {
	srv, patient := handlerBench(b)
	body := clinical("Flag", patient, "", "benchmark")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/Flag", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// handlerBench is a server on an embedded store without fsync, holding
// one patient.
func handlerBench(b *testing.B) (*api.Server, string) {
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(b.TempDir(), "kj.db"), NoSync: true})
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(b, err)
	srv, err := api.New(api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/Patient", bytes.NewReader(patientJSON(&testing.T{}, 1, "")))
	req.Header.Set("Content-Type", "application/fhir+json")
	srv.ServeHTTP(w, req)
	require.Equal(b, http.StatusCreated, w.Code, "%s", w.Body)
	var p struct{ ID string }
	require.NoError(b, json.Unmarshal(w.Body.Bytes(), &p))
	return srv, p.ID
}
