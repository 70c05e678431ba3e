package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kj_http_requests_total",
			Help: "HTTP requests by FHIR interaction, resource type and status code.",
		}, []string{"interaction", "type", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kj_http_request_duration_seconds",
			Help:    "HTTP request latency by FHIR interaction and resource type.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"interaction", "type"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
				return nil, err
			}
		}
	}
	if err := telemetry.Register(reg); err != nil {
		return nil, err
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m, nil
}

func (m *metrics) observe(interaction, typ string, status int, d time.Duration) {
	m.requests.WithLabelValues(interaction, typ, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(interaction, typ).Observe(d.Seconds())
}

// noMetrics answers /metrics on the public port: the metrics tell how
// the service is used and fails, which is for its operators only (Admin).
func (s *Server) noMetrics(c *gin.Context) {
	s.fail(c, &interaction.Error{Status: http.StatusNotFound, Issues: []fhir.Issue{{Severity: "error", Code: "not-found",
		Diagnostics: "there is no /metrics here: the metrics are served on the admin listener"}}})
}

// Admin is the handler of the admin listener (--admin-addr), for the
// operators' network only: /metrics (Prometheus), and /healthz and
// /readyz as on the public port.
func (s *Server) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

func (s *Server) healthz(c *gin.Context) {
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"))
}

// readyz is ready only when the store can serve requests and take a write
// (an embedded store whose disk is full is not).
func (s *Server) readyz(c *gin.Context) {
	if err := s.Ready(c.Request.Context()); err != nil {
		s.fail(c, &interaction.Error{Status: http.StatusServiceUnavailable, Unavailable: true, Issues: []fhir.Issue{{Severity: "error", Code: "transient",
			Diagnostics: "the store cannot serve requests now: " + err.Error()}}})
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ready\n"))
}

// refusals counts the request's refused accesses by reason code and
// returns the reason code of the request for its log line: the first
// refusal's, else the first decision's ("" when none was taken).
func (m *metrics) refusals(f *interaction.Facts) string {
	reason := ""
	refused := false
	for i := range f.Accesses {
		d := &f.Accesses[i].Decision
		if d.Effect == access.Deny {
			telemetry.Refusals.WithLabelValues(string(d.Reason)).Inc()
			if !refused {
				reason, refused = string(d.Reason), true
			}
		} else if reason == "" {
			reason = string(d.Reason)
		}
	}
	return reason
}
