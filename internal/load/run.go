package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxErrorSamples is how many error descriptions a Result keeps.
const MaxErrorSamples = 10

// Result is the outcome of the measured phase of a run.
type Result struct {
	// Requests counts measured requests that finished, successfully or
	// not. Requests cut short by cancelling Run's context are not in it.
	Requests int64
	// TransportErrors are requests that got no complete response:
	// connection failures, timeouts, truncated bodies.
	TransportErrors int64
	// StatusErrors are complete responses with an unexpected status.
	StatusErrors int64
	// ErrorSamples describes the earliest errors, at most MaxErrorSamples.
	ErrorSamples []string
	// Statuses counts responses by status code.
	Statuses map[int]int64
	// WarmupRequests is how many requests the warmup phase issued; with
	// Requests it lets a caller reconcile with a server-side count.
	WarmupRequests int64
	// Aborted counts requests interrupted by cancellation of Run's context.
	Aborted int64
	// Duration runs from the first measured request's start to the last
	// one's end.
	Duration time.Duration
	// Throughput is Requests per second of Duration.
	Throughput float64
	// Latency percentiles cover successful requests only, so that fast
	// failures cannot flatter them; they include reading the whole body.
	Min, Mean, P50, P90, P99, Max time.Duration
	// Latency is the merged histogram behind the percentiles.
	Latency *Histogram
	// BytesReceived counts response body bytes of measured requests, as
	// sent on the wire (compression is not requested, so none is undone).
	BytesReceived int64
}

// Errors is TransportErrors + StatusErrors.
func (r Result) Errors() int64 { return r.TransportErrors + r.StatusErrors }

// Succeeded is the number of measured requests with an expected status.
func (r Result) Succeeded() int64 { return r.Requests - r.Errors() }

type runner struct {
	client   *http.Client
	base     string
	header   http.Header
	sc       Scenario
	warmEnd  time.Time
	deadline time.Time
	max      int64
	tickets  atomic.Int64
}

type errSample struct {
	at  time.Time
	msg string
}

// worker holds one goroutine's measurements. Nothing in it is shared while
// the run is going, which is what keeps the hot path free of locks.
type worker struct {
	hist            *Histogram
	statuses        [1000]int64
	requests        int64
	transportErrors int64
	statusErrors    int64
	warmup          int64
	aborted         int64
	bytes           int64
	first, last     time.Time
	samples         []errSample
	headers         map[string]http.Header // by content type; never mutated once built
}

// Run drives sc with cfg.Concurrency closed-loop workers: cfg.Warmup of
// unmeasured requests, then measured requests until cfg.Duration has passed
// or cfg.MaxRequests have been issued, whichever comes first. It always
// returns by itself: no new request starts after the deadline and each
// request is bounded by cfg.Timeout.
//
// If ctx is cancelled, in-flight requests are abandoned and Run returns
// what it measured so far together with ctx.Err().
func Run(ctx context.Context, cfg Config, sc Scenario) (Result, error) {
	if sc == nil {
		return Result{}, errors.New("load: nil Scenario")
	}
	base, err := cfg.validate()
	if err != nil {
		return Result{}, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	tr := newTransport(cfg.Concurrency, cfg.AllowRemote)
	defer tr.CloseIdleConnections()

	r := &runner{
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// Following a redirect would time two requests as one and could
			// leave loopback; a 3xx is reported as an unexpected status.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		base:   strings.TrimRight(base.String(), "/"),
		header: cfg.Header.Clone(),
		sc:     sc,
		max:    int64(cfg.MaxRequests),
	}
	// A scenario that cannot build a request would otherwise spin until the
	// deadline producing nothing but errors.
	probe := sc(rand.New(rand.NewPCG(cfg.Seed, math.MaxUint64)))
	if _, err := r.build(ctx, &worker{}, &probe); err != nil {
		return Result{}, fmt.Errorf("load: scenario produced an unusable request: %w", err)
	}

	workers := make([]*worker, cfg.Concurrency)
	start := time.Now()
	r.warmEnd = start.Add(cfg.Warmup)
	r.deadline = r.warmEnd.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{hist: NewHistogram()}
		workers[i] = w
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		wg.Go(func() { r.loop(ctx, w, rng) })
	}
	wg.Wait()
	return merge(workers), ctx.Err()
}

func newTransport(concurrency int, allowRemote bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Never a proxy: HTTP_PROXY from the environment would carry the
		// load to another host.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil || allowRemote {
				return c, err
			}
			// The URL check cannot see what "localhost" resolves to; the
			// peer address can.
			if ta, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ta.AddrPort().Addr().Unmap().IsLoopback() {
				c.Close()
				return nil, fmt.Errorf("%w: connected to %v", ErrNotLoopback, c.RemoteAddr())
			}
			return c, nil
		},
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		// Transparent gzip would hide the server's wire size and spend the
		// generator's CPU on decompression.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
}

func (r *runner) build(ctx context.Context, w *worker, req *Request) (*http.Request, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	path := req.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var body io.Reader
	ct := ""
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
		ct = req.ContentType
		if ct == "" {
			ct = FHIRJSON
		}
	}
	hr, err := http.NewRequestWithContext(ctx, method, r.base+path, body)
	if err != nil {
		return nil, err
	}
	hr.Header = w.header(r.header, ct)
	return hr, nil
}

// header returns a per-worker header for content type ct. Sharing one map
// between a worker's sequential requests is safe because neither Client nor
// Transport writes to it, and it saves cloning on every request.
func (w *worker) header(base http.Header, ct string) http.Header {
	if h, ok := w.headers[ct]; ok {
		return h
	}
	h := base.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", FHIRJSON)
	}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	if w.headers == nil {
		w.headers = map[string]http.Header{}
	}
	w.headers[ct] = h
	return h
}

func (r *runner) loop(ctx context.Context, w *worker, rng *rand.Rand) {
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(r.deadline) {
			return
		}
		measured := !now.Before(r.warmEnd)
		if measured && r.max > 0 && r.tickets.Add(1) > r.max {
			return
		}
		req := r.sc(rng)
		hr, err := r.build(ctx, w, &req)
		if err != nil {
			if measured {
				w.finished(now, now)
				w.transportErrors++
				if w.wantSample() {
					w.sample(now, fmt.Sprintf("%s %s: %v", req.Method, req.Path, err))
				}
			}
			continue
		}
		t0 := time.Now()
		resp, err := r.client.Do(hr)
		var n int64
		var snippet []byte
		if err == nil {
			n, snippet, err = w.drain(resp, req.expected(resp.StatusCode))
		}
		t1 := time.Now()
		if err != nil && ctx.Err() != nil {
			// Cancelled by the caller, not failed by the server.
			w.aborted++
			return
		}
		if !measured {
			w.warmup++
			continue
		}
		w.finished(t0, t1)
		w.bytes += n
		switch {
		case err != nil:
			w.transportErrors++
			if w.wantSample() {
				w.sample(t0, fmt.Sprintf("%s %s: %v", hr.Method, req.Path, err))
			}
		case !req.expected(resp.StatusCode):
			w.statusErrors++
			w.status(resp.StatusCode)
			if w.wantSample() {
				w.sample(t0, fmt.Sprintf("%s %s: status %d, expected %v: %s", hr.Method, req.Path, resp.StatusCode, expectList(req.Expect), snippet))
			}
		default:
			w.status(resp.StatusCode)
			w.hist.Record(t1.Sub(t0))
		}
	}
}

func (w *worker) finished(t0, t1 time.Time) {
	if w.requests == 0 {
		w.first = t0
	}
	w.last = t1
	w.requests++
}

const snippetLen = 200

// drain reads and discards the whole body so the connection goes back to
// the pool. For unexpected statuses it keeps the start of the body, while
// the worker still collects samples, because that is where servers explain.
func (w *worker) drain(resp *http.Response, ok bool) (int64, []byte, error) {
	defer resp.Body.Close()
	var snippet []byte
	var n int64
	if !ok && w.wantSample() {
		buf := make([]byte, snippetLen)
		k, err := io.ReadFull(resp.Body, buf)
		n = int64(k)
		snippet = bytes.TrimSpace(buf[:k])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, snippet, nil
		}
		if err != nil {
			return n, snippet, err
		}
	}
	m, err := io.Copy(io.Discard, resp.Body)
	return n + m, snippet, err
}

func (w *worker) status(code int) {
	if code >= 0 && code < len(w.statuses) {
		w.statuses[code]++
	}
}

// wantSample guards the formatting, which would otherwise allocate on every
// error of a run that fails wholesale.
func (w *worker) wantSample() bool { return len(w.samples) < MaxErrorSamples }

func (w *worker) sample(at time.Time, msg string) {
	w.samples = append(w.samples, errSample{at, msg})
}

func expectList(e []int) []int {
	if len(e) == 0 {
		return []int{http.StatusOK}
	}
	return e
}

func merge(workers []*worker) Result {
	res := Result{Latency: NewHistogram(), Statuses: map[int]int64{}}
	var first, last time.Time
	var samples []errSample
	for _, w := range workers {
		res.Requests += w.requests
		res.TransportErrors += w.transportErrors
		res.StatusErrors += w.statusErrors
		res.WarmupRequests += w.warmup
		res.Aborted += w.aborted
		res.BytesReceived += w.bytes
		res.Latency.Merge(w.hist)
		for code, c := range w.statuses {
			if c > 0 {
				res.Statuses[code] += c
			}
		}
		samples = append(samples, w.samples...)
		if w.requests > 0 {
			if first.IsZero() || w.first.Before(first) {
				first = w.first
			}
			if w.last.After(last) {
				last = w.last
			}
		}
	}
	slices.SortFunc(samples, func(a, b errSample) int { return a.at.Compare(b.at) })
	for _, s := range samples[:min(len(samples), MaxErrorSamples)] {
		res.ErrorSamples = append(res.ErrorSamples, s.msg)
	}
	if res.Requests > 0 {
		res.Duration = last.Sub(first)
	}
	if res.Duration > 0 {
		res.Throughput = float64(res.Requests) / res.Duration.Seconds()
	}
	h := res.Latency
	res.Min, res.Mean, res.Max = h.Min(), h.Mean(), h.Max()
	res.P50, res.P90, res.P99 = h.Percentile(50), h.Percentile(90), h.Percentile(99)
	return res
}
