package conformance

import (
	"net/http"
	"strings"
)

// The metrics say how the service is used and how it fails: they are for
// its operators, on a listener of their own, not on the public API port.

func init() {
	register(
		Check{GroupREST, "rest/no-public-metrics", "GET /metrics on the public base URL is 404 with an OperationOutcome, and no Prometheus metrics", checkNoPublicMetrics},
	)
}

func checkNoPublicMetrics(t *T) {
	res := t.Do(Request{Path: "metrics"})
	if res.Status != http.StatusNotFound {
		t.Errorf("GET metrics: status %d, want 404", res.Status)
	}
	if res.ResourceType() != "OperationOutcome" {
		t.Errorf("GET metrics: the answer is not an OperationOutcome: %.200s", res.Body)
	}
	if body := string(res.Body); strings.Contains(body, "# TYPE") || strings.Contains(body, "kj_http_requests_total") {
		t.Errorf("GET metrics: the answer holds Prometheus metrics")
	}
}
