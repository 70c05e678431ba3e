package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/source"
)

// BenchmarkLabSearchOneSlowSource: a health worker's lab search fans out
// to three lab sources at once, one of them slow by a fixed injected
// latency (well inside the source timeout), the others fast; every
// iteration is one full HTTP search through the secured server (token
// validation, access rules, usage log written before the answer) that
// gets the results of all three sources. It reports the p50 and p99 of
// the iterations' wall times, the slow source's latency, and p50 and p99
// minus that latency ("added-ms"): what the server adds to waiting for
// the slowest healthy source, which should stay under 50 ms. The sources
// and the server share the machine's cores with the client; no figure is
// asserted.
func BenchmarkLabSearchOneSlowSource(b *testing.B) {
	const slow = 150 * time.Millisecond
	hospitals := sourceHospitals[:3]
	var (
		s    *secured
		srcs map[string]*source.Server
		tok  string
	)
	benchT(b, func(t *testing.T) {
		s, srcs = withSourcesConfig(t, sourceOptions{hospitals: len(hospitals), labAt: labNow, tb: b})
		tok = s.token("hospital-doctor", citizenPatient)
	})
	slowSource := srcs[hospitals[2].name]
	if err := slowSource.SetFaults(source.Faults{Latency: slow}); err != nil {
		b.Fatal(err)
	}
	want, _ := wantLab(hospitals, "DiagnosticReport", 1)
	search := func() time.Duration {
		req, err := http.NewRequest(http.MethodGet, s.base+"/DiagnosticReport?patient="+citizenPatient, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("nhn-access-basis", "UNNTAK")
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		// Every source's results, and no outcome: nobody failed.
		var bundle struct{ Total int }
		if res.StatusCode != http.StatusOK || json.Unmarshal(body, &bundle) != nil || bundle.Total != len(want) || bytes.Contains(body, []byte(`"mode":"outcome"`)) {
			b.Fatalf("not the results of all three sources (want %d): %d %s", len(want), res.StatusCode, body)
		}
		for _, h := range hospitals {
			if !bytes.Contains(body, []byte(`"code":"`+h.labName()+`"`)) {
				b.Fatalf("no results from %s: %s", h.labName(), body)
			}
		}
		return took
	}
	// The first search fetches the sources' JWKS and opens the connections.
	search()
	delayed := slowSource.Stats().LatencyApplied
	var took []time.Duration
	for b.Loop() {
		took = append(took, search())
	}
	if got := slowSource.Stats().LatencyApplied - delayed; got != int64(len(took)) {
		b.Fatalf("the slow source delayed %d of %d searches", got, len(took))
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p50, p99 := percentile(took, 0.50), percentile(took, 0.99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(slow), "slow-source-ms")
	b.ReportMetric(ms(p50-slow), "p50-added-ms")
	b.ReportMetric(ms(p99-slow), "p99-added-ms")
}

// percentile is the nearest-rank percentile p (0-1] of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// benchT runs setup, which needs the *testing.T the package's HTTP
// helpers take, in a benchmark, which has none. It passes the zero T (as
// BenchmarkHandlerCreate passes patientJSON one). Cleanups registered on
// it never run: setup registers what must be cleaned up on b instead
// (sourceOptions.tb); only the server's listener stays until the process
// ends. A helper's failed require has nowhere to write on the zero T and
// panics; the panic becomes b.Fatal with its stack.
func benchT(b *testing.B, setup func(t *testing.T)) {
	b.Helper()
	defer func() {
		if p := recover(); p != nil {
			b.Fatalf("setup failed (a helper failed on the zero testing.T): %v\n%s", p, debug.Stack())
		}
	}()
	setup(&testing.T{})
}
