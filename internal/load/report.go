package load

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Report is a Result with the context needed to read it.
type Report struct {
	// Name labels the run, e.g. the scenario.
	Name   string
	Config Config
	Result Result
	// PeakRSS and RSS are the server's peak and final resident set size in
	// bytes; 0 means not measured.
	PeakRSS, RSS int64
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) }

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// String is the one-line human summary.
func (r Report) String() string {
	res := r.Result
	var b strings.Builder
	fmt.Fprintf(&b, "%s c=%d %.2fs: %d req (%d ok, %d err: %d transport, %d status), %.1f req/s, latency p50 %sms p90 %sms p99 %sms max %sms, %s MiB received",
		r.Name, r.Config.Concurrency, res.Duration.Seconds(), res.Requests, res.Succeeded(),
		res.Errors(), res.TransportErrors, res.StatusErrors, res.Throughput,
		ms(res.P50), ms(res.P90), ms(res.P99), ms(res.Max), mib(res.BytesReceived))
	if r.PeakRSS > 0 {
		fmt.Fprintf(&b, ", server peak RSS %s MiB", mib(r.PeakRSS))
	}
	if res.Aborted > 0 {
		fmt.Fprintf(&b, ", %d aborted", res.Aborted)
	}
	return b.String()
}

// MarkdownHeader is the header (two lines, no trailing newline) of the table
// whose rows MarkdownRow prints.
func MarkdownHeader() string {
	return "| run | c | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | MiB recv | peak RSS MiB |\n" +
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
}

// MarkdownRow is the run as one row of the MarkdownHeader table.
func (r Report) MarkdownRow() string {
	res := r.Result
	rss := "–"
	if r.PeakRSS > 0 {
		rss = mib(r.PeakRSS)
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %.1f | %s | %s | %s | %s | %s | %s |",
		strings.ReplaceAll(r.Name, "|", `\|`), r.Config.Concurrency, res.Requests, res.Errors(), res.Throughput,
		ms(res.P50), ms(res.P90), ms(res.P99), ms(res.Max), mib(res.BytesReceived), rss)
}

// JSONReport is the JSON form of a Report. Config.Header is left out on
// purpose: it may hold credentials.
type JSONReport struct {
	Name            string           `json:"name"`
	BaseURL         string           `json:"base_url"`
	Concurrency     int              `json:"concurrency"`
	DurationLimitS  float64          `json:"duration_limit_s"`
	MaxRequests     int              `json:"max_requests,omitempty"`
	WarmupS         float64          `json:"warmup_s,omitempty"`
	Requests        int64            `json:"requests"`
	Succeeded       int64            `json:"succeeded"`
	TransportErrors int64            `json:"transport_errors"`
	StatusErrors    int64            `json:"status_errors"`
	ErrorSamples    []string         `json:"error_samples,omitempty"`
	Statuses        map[string]int64 `json:"statuses"`
	WarmupRequests  int64            `json:"warmup_requests"`
	Aborted         int64            `json:"aborted,omitempty"`
	DurationS       float64          `json:"duration_s"`
	Throughput      float64          `json:"throughput_rps"`
	MinMS           float64          `json:"latency_min_ms"`
	MeanMS          float64          `json:"latency_mean_ms"`
	P50MS           float64          `json:"latency_p50_ms"`
	P90MS           float64          `json:"latency_p90_ms"`
	P99MS           float64          `json:"latency_p99_ms"`
	MaxMS           float64          `json:"latency_max_ms"`
	BytesReceived   int64            `json:"bytes_received"`
	PeakRSS         int64            `json:"server_peak_rss_bytes,omitempty"`
	RSS             int64            `json:"server_rss_bytes,omitempty"`
}

func msf(d time.Duration) float64 { return float64(d) / 1e6 }

// JSON returns the JSONReport form.
func (r Report) JSON() JSONReport {
	res := r.Result
	st := make(map[string]int64, len(res.Statuses))
	for code, n := range res.Statuses {
		st[strconv.Itoa(code)] = n
	}
	return JSONReport{
		Name: r.Name, BaseURL: r.Config.BaseURL, Concurrency: r.Config.Concurrency,
		DurationLimitS: r.Config.Duration.Seconds(), MaxRequests: r.Config.MaxRequests, WarmupS: r.Config.Warmup.Seconds(),
		Requests: res.Requests, Succeeded: res.Succeeded(), TransportErrors: res.TransportErrors, StatusErrors: res.StatusErrors,
		ErrorSamples: res.ErrorSamples, Statuses: st, WarmupRequests: res.WarmupRequests, Aborted: res.Aborted,
		DurationS: res.Duration.Seconds(), Throughput: res.Throughput,
		MinMS: msf(res.Min), MeanMS: msf(res.Mean), P50MS: msf(res.P50), P90MS: msf(res.P90), P99MS: msf(res.P99), MaxMS: msf(res.Max),
		BytesReceived: res.BytesReceived, PeakRSS: r.PeakRSS, RSS: r.RSS,
	}
}

// WriteJSON writes the JSONReport form, indented, with a trailing newline.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.JSON())
}
