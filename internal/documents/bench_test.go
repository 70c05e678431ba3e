package documents

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// directGet fetches the document straight from the source, with a fresh
// assertion (the source refuses a replayed jti).
func directGet(tb testing.TB, signer *Signer, rs *realSource, id string) *http.Response {
	a, err := signer.Assertion(rs.ts.URL, requester, patientA, id)
	require.NoError(tb, err)
	r, err := http.NewRequest(http.MethodGet, rs.ts.URL+"/Binary/"+id, nil)
	require.NoError(tb, err)
	r.Header.Set("Authorization", "Bearer "+a)
	resp, err := http.DefaultClient.Do(r)
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, resp.StatusCode)
	return resp
}

// BenchmarkProxyThroughput streams a 64 MiB document from the source,
// directly and through the proxy, on loopback; compare the MB/s.
func BenchmarkProxyThroughput(b *testing.B) {
	const size = 64 << 20
	rs, f, p, docURL := largeSetup(b, size)
	id := rs.docs[0].ID
	buf := make([]byte, 32<<10)
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resp := directGet(b, f.cfg.Signer, rs, id)
			n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			require.NoError(b, err)
			require.Equal(b, int64(size), n)
		}
	})
	b.Run("proxy", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resp, err := p.get(context.Background(), docURL, patientA)
			require.NoError(b, err)
			n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			require.NoError(b, err)
			require.Equal(b, int64(size), n)
		}
	})
}

// BenchmarkFirstByteAddedLatency measures the time to the first byte of a
// small document directly and through the proxy (token check, assertion
// signing, the extra hop), alternating, and reports both and the
// difference.
func BenchmarkFirstByteAddedLatency(b *testing.B) {
	rs, f, p, docURL := largeSetup(b, 64<<10)
	id := rs.docs[0].ID
	firstByte := func(resp *http.Response, start time.Time) time.Duration {
		var one [1]byte
		_, err := io.ReadFull(resp.Body, one[:])
		require.NoError(b, err)
		d := time.Since(start)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return d
	}
	var direct, proxied time.Duration
	for b.Loop() {
		start := time.Now()
		direct += firstByte(directGet(b, f.cfg.Signer, rs, id), start)
		start = time.Now()
		resp, err := p.get(context.Background(), docURL, patientA)
		require.NoError(b, err)
		proxied += firstByte(resp, start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs/op")
	b.ReportMetric(float64(proxied.Microseconds())/n, "proxy-µs/op")
	b.ReportMetric(float64((proxied-direct).Microseconds())/n, "added-µs/op")
}
