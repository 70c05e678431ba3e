package documents

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// Config configures a Federation. Zero durations and sizes take the
// defaults noted.
type Config struct {
	Sources []Source // validated again by New
	Signer  *Signer
	// BaseURL is kjernejournal's public FHIR base; attachment URLs become
	// {BaseURL}/documents/{token}.
	BaseURL string
	// TokenKey is the HMAC-SHA256 key of the document tokens, at least 32
	// bytes. With several instances behind a load balancer, all share it.
	TokenKey []byte
	TokenTTL time.Duration // lifetime of a document URL; default 30 min

	SourceTimeout time.Duration // per source, per search; default 3 s
	SearchTimeout time.Duration // whole fan-out; default SourceTimeout + 1 s
	// MaxSearchResponse bounds one source's search Bundle; default 16 MiB.
	MaxSearchResponse int64
	// PerSourceCount is the _count asked of each source; default 500. A
	// source that pages beyond it is reported in a warning outcome.
	PerSourceCount int

	ConnectTimeout   time.Duration // default 2 s
	FirstByteTimeout time.Duration // retrieval: until the response headers; default 10 s
	StallTimeout     time.Duration // retrieval: longest pause between reads; default 30 s
	MaxDocumentSize  int64         // default 512 MiB

	// LabWindowYears is how many years back lab results are shown: 0
	// takes access.DefaultLabWindowYears (the test results' period), a
	// negative value shows them whatever their age.
	LabWindowYears int

	// Now is the clock for the time windows and token expiry; default
	// time.Now.
	Now func() time.Time
	// Transport overrides the HTTP transport to the sources (nil: one
	// built from ConnectTimeout and FirstByteTimeout).
	Transport http.RoundTripper
}

// Federation searches and proxies the registered sources. It is safe for
// concurrent use.
type Federation struct {
	cfg     Config
	sources []Source
	byName  map[string]*Source
	client  *http.Client
	now     func() time.Time
}

// New validates the configuration and builds a Federation.
func New(cfg Config) (*Federation, error) {
	if err := ValidateSources(cfg.Sources); err != nil {
		return nil, fmt.Errorf("documents: %w", err)
	}
	if cfg.Signer == nil {
		return nil, errors.New("documents: Signer missing")
	}
	if len(cfg.TokenKey) < 32 {
		return nil, errors.New("documents: TokenKey must be at least 32 bytes")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("documents: BaseURL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	cfg.TokenKey = append([]byte(nil), cfg.TokenKey...)
	cfg.TokenTTL = durationOr(cfg.TokenTTL, 30*time.Minute)
	cfg.SourceTimeout = durationOr(cfg.SourceTimeout, 3*time.Second)
	cfg.SearchTimeout = durationOr(cfg.SearchTimeout, cfg.SourceTimeout+time.Second)
	cfg.ConnectTimeout = durationOr(cfg.ConnectTimeout, 2*time.Second)
	cfg.FirstByteTimeout = durationOr(cfg.FirstByteTimeout, 10*time.Second)
	cfg.StallTimeout = durationOr(cfg.StallTimeout, 30*time.Second)
	if cfg.MaxSearchResponse <= 0 {
		cfg.MaxSearchResponse = 16 << 20
	}
	if cfg.PerSourceCount <= 0 {
		cfg.PerSourceCount = 500
	}
	if cfg.MaxDocumentSize <= 0 {
		cfg.MaxDocumentSize = 512 << 20
	}
	switch {
	case cfg.LabWindowYears == 0:
		cfg.LabWindowYears = access.DefaultLabWindowYears()
	case cfg.LabWindowYears < 0:
		cfg.LabWindowYears = 0
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	f := &Federation{cfg: cfg, byName: map[string]*Source{}, now: now}
	f.sources = normalise(cfg.Sources)
	for i := range f.sources {
		f.byName[f.sources[i].Name] = &f.sources[i]
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			// No environment proxy: the registry is the complete list of
			// hosts this server talks to.
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   cfg.ConnectTimeout,
			ResponseHeaderTimeout: cfg.FirstByteTimeout,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			// Bytes pass through as the source sent them; transparent
			// gzip would break Content-Length and the size limit.
			DisableCompression: true,
			ForceAttemptHTTP2:  true,
			// A document passes in reads as large as the copy buffer
			// (CopyBufferSize) rather than the default 4 KiB: fewer
			// system calls per megabyte.
			ReadBufferSize: CopyBufferSize,
		}
	}
	f.client = &http.Client{
		Transport: measure(rt, f.sources),
		// A source's redirect would make this server call a URL that is
		// not in the registry (SSRF); it is an error instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return f, nil
}

// Serves reports whether any registered source is of the kind
// (KindDocuments, KindLab).
func (f *Federation) Serves(kind string) bool {
	return slices.ContainsFunc(f.sources, func(s Source) bool { return s.kind() == kind })
}

// Sources returns the registry (copies).
func (f *Federation) Sources() []Source { return append([]Source(nil), f.sources...) }

// Close releases idle connections to the sources.
func (f *Federation) Close() { f.client.CloseIdleConnections() }

// fanOut asks every source in srcs at once, each bounded by SourceTimeout
// and all by SearchTimeout, and returns what each answered and how each
// fared, in the order of srcs. A source that fails or times out has no
// answer and says why in its outcome; the error return is only for a
// cancelled ctx (there is nobody to answer).
func fanOut[T any](ctx context.Context, f *Federation, srcs []*Source, ask func(ctx context.Context, src *Source) ([]T, string, error)) ([][]T, []SourceOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.SearchTimeout)
	defer cancel()
	answers := make([][]T, len(srcs))
	outcomes := make([]SourceOutcome, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Go(func() {
			sctx, scancel := context.WithTimeout(ctx, f.cfg.SourceTimeout)
			defer scancel()
			got, warn, err := ask(sctx, src)
			o := SourceOutcome{Source: src.Name, Label: src.Label(), Status: "ok", Matches: len(got), Detail: warn}
			if err != nil {
				got = nil
				o.Status, o.Err, o.Matches = "error", err, 0
				o.Detail = describe(err)
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrSourceTimeout) {
					o.Status = "timeout"
					o.Detail = fmt.Sprintf("no complete answer within %s", min(f.cfg.SourceTimeout, f.cfg.SearchTimeout))
				}
			}
			answers[i], outcomes[i] = got, o
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, nil, err
	}
	return answers, outcomes, nil
}

// newRequest builds a GET to a source with a fresh assertion.
func (f *Federation) newRequest(ctx context.Context, src *Source, u string, req Requester, patient, document string) (*http.Request, error) {
	a, err := f.cfg.Signer.Assertion(src.BaseURL, req, patient, document)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+a)
	return r, nil
}
