// Package load is the HTTP load generator behind `make bench` (cmd/kjload).
//
// Run drives a Scenario with a fixed number of closed-loop workers against a
// loopback server and reports throughput, latency percentiles, errors and
// bytes received. Measurement is lock-free: every worker keeps its own
// histogram and counters, merged once the workers have stopped.
package load

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// Config describes one load run.
type Config struct {
	// BaseURL is the server root, e.g. http://127.0.0.1:8080. Scenario
	// paths are appended to it.
	BaseURL string
	// Concurrency is the number of workers, each with at most one request
	// in flight.
	Concurrency int
	// Duration bounds the measured phase; it is required so that every run
	// ends by itself. Requests in flight at the deadline are waited for
	// (at most Timeout) and counted.
	Duration time.Duration
	// MaxRequests, if > 0, also bounds the measured phase: exactly this
	// many requests are issued unless Duration runs out first.
	MaxRequests int
	// Warmup runs the scenario this long before measuring; its requests
	// are not counted except in Result.WarmupRequests.
	Warmup time.Duration
	// Header is added to every request (e.g. Authorization). It is never
	// written to reports.
	Header http.Header
	// Timeout bounds each request including reading the body. 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Seed makes the workers' random streams reproducible: worker i uses
	// PCG(Seed, i).
	Seed uint64
	// AllowRemote permits a non-loopback BaseURL. Load on other hosts is
	// forbidden at this workplace; cmd/kjload deliberately has no flag for
	// it.
	AllowRemote bool
}

const (
	// DefaultTimeout is the per-request timeout when Config.Timeout is 0.
	DefaultTimeout = 30 * time.Second
	// MaxConcurrency caps Config.Concurrency: each worker owns a 66 KiB
	// histogram, and a loopback server gains nothing from more.
	MaxConcurrency = 4096
)

// ErrNotLoopback is returned (wrapped) for a BaseURL, or a connection,
// whose host is not a loopback address.
var ErrNotLoopback = errors.New("load: refusing to generate load against a non-loopback address (only 127.0.0.0/8, ::1 and localhost are allowed)")

// CheckBaseURL validates u and, unless allowRemote, insists that its host is
// loopback: 127.0.0.0/8, ::1 (also IPv4-mapped) or the name "localhost".
func CheckBaseURL(u string, allowRemote bool) (*url.URL, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("load: base URL %q: %w", u, err)
	}
	if parsed.Scheme != "http" && parsed.Scheme != "https" {
		return nil, fmt.Errorf("load: base URL %q: scheme must be http or https", u)
	}
	host := parsed.Hostname()
	if host == "" {
		return nil, fmt.Errorf("load: base URL %q has no host", u)
	}
	if parsed.RawQuery != "" || parsed.Fragment != "" {
		return nil, fmt.Errorf("load: base URL %q: must not have a query or fragment (scenario paths are appended to it)", u)
	}
	if !allowRemote && !loopback.Host(host) {
		return nil, fmt.Errorf("%w: host %q in %q", ErrNotLoopback, host, u)
	}
	return parsed, nil
}

// Validate reports what Run would refuse about c, so that a caller can
// fail before doing anything else.
func (c Config) Validate() error {
	_, err := c.validate()
	return err
}

func (c Config) validate() (*url.URL, error) {
	u, err := CheckBaseURL(c.BaseURL, c.AllowRemote)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return nil, fmt.Errorf("load: Concurrency must be in 1..%d, got %d", MaxConcurrency, c.Concurrency)
	case c.Duration <= 0:
		return nil, fmt.Errorf("load: Duration must be > 0 (it guarantees the run ends), got %v", c.Duration)
	case c.MaxRequests < 0:
		return nil, fmt.Errorf("load: MaxRequests must be >= 0, got %d", c.MaxRequests)
	case c.Warmup < 0:
		return nil, fmt.Errorf("load: Warmup must be >= 0, got %v", c.Warmup)
	case c.Timeout < 0:
		return nil, fmt.Errorf("load: Timeout must be >= 0, got %v", c.Timeout)
	}
	return u, nil
}
