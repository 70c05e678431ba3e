package documents

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// measuredTransport times every request to a source until its answer's
// headers (a document's bytes then stream at the client's pace, which is
// not the source's latency), and counts the failures: no answer, or a 5xx.
type measuredTransport struct {
	next    http.RoundTripper
	sources []measuredSource
}

type measuredSource struct {
	host, path string
	latency    prometheus.Observer
	failures   prometheus.Counter
}

func measure(next http.RoundTripper, sources []Source) http.RoundTripper {
	t := &measuredTransport{next: next}
	for _, s := range sources {
		u, err := url.Parse(s.BaseURL)
		if err != nil {
			continue
		}
		t.sources = append(t.sources, measuredSource{host: u.Host, path: u.Path,
			latency: telemetry.SourceLatency.WithLabelValues(s.Name), failures: telemetry.SourceFailures.WithLabelValues(s.Name)})
	}
	return t
}

func (t *measuredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	for i := range t.sources {
		s := &t.sources[i]
		if r.URL.Host != s.host || !strings.HasPrefix(r.URL.Path, s.path) {
			continue
		}
		s.latency.Observe(time.Since(start).Seconds())
		if err != nil || resp.StatusCode >= 500 {
			s.failures.Inc()
		}
		break
	}
	return resp, err
}

// CloseIdleConnections passes Federation.Close on to the transport.
func (t *measuredTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
