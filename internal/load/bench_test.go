package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGeneratorCeiling measures how many requests per second the
// generator sustains against a server that does nothing, i.e. the highest
// throughput kjload can report on this machine. The server shares the
// process and the CPUs, so this is a lower bound on the generator alone;
// one op is one request.
func BenchmarkGeneratorCeiling(b *testing.B) {
	for _, c := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, okBody)
			}))
			defer srv.Close()
			cfg := Config{BaseURL: srv.URL, Concurrency: c, Duration: 10 * time.Minute, MaxRequests: b.N}
			sc := ReadScenario([]string{"Patient/1"})
			b.ReportAllocs()
			b.ResetTimer()
			res, err := Run(context.Background(), cfg, sc)
			b.StopTimer()
			if err != nil || res.Errors() != 0 || res.Requests != int64(b.N) {
				b.Fatalf("err %v, %d requests, %d errors: %q", err, res.Requests, res.Errors(), res.ErrorSamples)
			}
			b.ReportMetric(res.Throughput, "req/s")
			b.ReportMetric(float64(res.P50)/1e3, "p50-µs")
			b.ReportMetric(float64(res.P99)/1e3, "p99-µs")
		})
	}
}
