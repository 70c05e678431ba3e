package documents

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/audit"
)

// CopyBufferSize is the one buffer a transfer uses, whatever the size of
// the document. 256 KiB rather than io.Copy's 32: a proxied megabyte
// costs a quarter of the reads and writes (the transfer is system-call
// bound), and a few hundred transfers at once still hold only tens of
// megabytes.
const CopyBufferSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, CopyBufferSize); return &b }}

var errStalled = errors.New("documents: transfer stalled")

// Stream is an open document at its source: the response headers have
// arrived and were checked; the body has not been read. Write it with
// WriteTo, or Close it.
type Stream struct {
	// ContentType and ContentLength as the source declared them
	// (ContentLength -1 when unknown).
	ContentType   string
	ContentLength int64

	src        *Source
	ref        docRef
	resp       *http.Response
	ctx        context.Context
	cancel     context.CancelCauseFunc
	stall      *time.Timer
	stallAfter time.Duration
	max        int64
	once       sync.Once
}

// Open verifies a document token (the last segment of the rewritten
// attachment URL) for the patient in context and opens the document at
// its source: GET {source base}/Binary/{id} with an assertion naming the
// document. It returns once the source's response headers are in, so that
// the REST layer can write the usage-log event before any byte leaves.
//
// The access policy must have permitted the retrieval (the caller asks it
// again at retrieval time); Open re-checks that the source still shares
// the document's type with the requester.
//
// ctx should be the client's request context: its cancellation (client
// disconnect) cancels the upstream request, also while streaming.
func (f *Federation) Open(ctx context.Context, req Requester, token, patientPNR string) (*Stream, error) {
	if patientPNR == "" {
		return nil, ErrTokenInvalid
	}
	ref, err := parseToken(f.cfg.TokenKey, token, binding{patientPNR, req.Session}, f.now())
	if err != nil {
		return nil, err
	}
	src := f.byName[ref.Source]
	if src == nil {
		return nil, &SourceError{Source: ref.Source, Kind: ErrNotShared, Detail: "the source is no longer registered"}
	}
	if !src.SharesWithRequester(req) || !src.SharesType(ref.Type) {
		return nil, &SourceError{Source: src.Name, Kind: ErrNotShared}
	}
	sctx, cancel := context.WithCancelCause(ctx)
	hr, err := f.newRequest(sctx, src, src.BaseURL+"/Binary/"+ref.ID, req, patientPNR, ref.ID)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp, err := f.client.Do(hr)
	if err != nil {
		cancel(nil)
		return nil, f.transportError(ctx, src, err, "")
	}
	fail := func(kind error, detail string) (*Stream, error) {
		resp.Body.Close()
		cancel(nil)
		return nil, &SourceError{Source: src.Name, Kind: kind, Detail: detail}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fail(ErrNotFound, "HTTP "+resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(ErrSourceUnavailable, "the source refused the request (HTTP "+resp.Status+")")
	default:
		return fail(ErrSourceUnavailable, "HTTP "+resp.Status)
	}
	if resp.ContentLength > f.cfg.MaxDocumentSize {
		return fail(ErrTooLarge, fmt.Sprintf("%d bytes declared, the limit is %d", resp.ContentLength, f.cfg.MaxDocumentSize))
	}
	s := &Stream{
		ContentType: resp.Header.Get("Content-Type"), ContentLength: resp.ContentLength,
		src: src, ref: ref, resp: resp, ctx: sctx, cancel: cancel, max: f.cfg.MaxDocumentSize,
	}
	// A source that stops sending mid-document would otherwise hold the
	// client and a connection forever; each read re-arms the timer.
	s.stallAfter = f.cfg.StallTimeout
	s.stall = time.AfterFunc(s.stallAfter, func() { cancel(errStalled) })
	return s, nil
}

// transportError classifies a failure to get an answer or bytes from src.
// parent is the caller's context: if it is done, the client went away and
// its error is returned as is.
func (f *Federation) transportError(parent context.Context, src *Source, err error, detail string) error {
	if parent.Err() != nil {
		return fmt.Errorf("documents: request cancelled: %w", context.Cause(parent))
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStalled) || errors.As(err, &ne) && ne.Timeout() {
		return &SourceError{Source: src.Name, Kind: ErrSourceTimeout, Detail: cmp.Or(detail, "no answer in time"), Cause: err}
	}
	return &SourceError{Source: src.Name, Kind: ErrSourceUnavailable, Detail: cmp.Or(detail, describe(err)), Cause: err}
}

// Document is the document for the usage log.
func (s *Stream) Document() audit.Document {
	return audit.Document{ID: s.ref.ID, Source: s.src.Organisation, SourceName: cmp.Or(s.src.DisplayName, s.src.Name)}
}

// Source is the source's name.
func (s *Stream) Source() string { return s.src.Name }

// Close ends the upstream request; safe to call more than once and after
// WriteTo.
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.stall.Stop()
		s.cancel(nil)
		s.resp.Body.Close()
	})
	return nil
}

// WriteTo sends the document to w: status 200, Content-Type and
// Content-Length as declared by the source, then the bytes through one
// buffer of CopyBufferSize. It closes the stream. Errors:
//   - the client went away (a write failed or its context ended): the
//     write error or the context's; nothing more to do;
//   - the source broke off, stalled or exceeded the size limit: a
//     *SourceError with HeaderWritten set. With a declared Content-Length
//     the short body already tells the client; without one the REST layer
//     must abort the response (panic(http.ErrAbortHandler)) so that the
//     end of a chunked body is not taken for the end of the document.
func (s *Stream) WriteTo(w http.ResponseWriter) (int64, error) {
	defer s.Close()
	h := w.Header()
	h.Set("Content-Type", cmp.Or(s.ContentType, "application/octet-stream"))
	if s.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(s.ContentLength, 10))
	}
	// Nothing may keep a copy, and a document (HTML, SVG, XML) must never
	// run as script in this server's origin.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	w.WriteHeader(http.StatusOK)

	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	r := &bodyReader{s: s}
	cw := &countingWriter{w: w}
	n, err := io.CopyBuffer(cw, r, *buf)
	if err == nil {
		return n, nil
	}
	if cw.err != nil {
		return n, cw.err // the client went away
	}
	if r.tooLarge {
		return n, &SourceError{Source: s.src.Name, Kind: ErrTooLarge, HeaderWritten: true,
			Detail: fmt.Sprintf("more than %d bytes; transfer aborted", s.max)}
	}
	parent := context.Cause(s.ctx)
	if errors.Is(parent, errStalled) {
		err = errStalled
	} else if parent != nil && !errors.Is(parent, context.Canceled) {
		return n, parent
	} else if parent != nil {
		return n, fmt.Errorf("documents: request cancelled: %w", parent)
	}
	se := &SourceError{Source: s.src.Name, Kind: ErrSourceUnavailable, HeaderWritten: true,
		Detail: fmt.Sprintf("transfer broken after %d bytes", n), Cause: err}
	if errors.Is(err, errStalled) {
		se.Kind, se.Detail = ErrSourceTimeout, fmt.Sprintf("transfer stalled after %d bytes", n)
	}
	return n, se
}

// bodyReader reads the upstream body within the size limit and re-arms
// the stall timer on every read. It has no WriteTo, so io.CopyBuffer uses
// the pooled buffer.
type bodyReader struct {
	s        *Stream
	n        int64
	tooLarge bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	s := r.s
	if r.n >= s.max {
		// At the limit: one more byte means too large.
		var one [1]byte
		k, err := s.resp.Body.Read(one[:])
		if k > 0 {
			r.tooLarge = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if rem := s.max - r.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	k, err := s.resp.Body.Read(p)
	r.n += int64(k)
	if k > 0 {
		s.stall.Reset(s.stallAfter)
	}
	return k, err
}

// countingWriter hides http.ResponseWriter's ReadFrom (so the fixed
// buffer is used) and records a write failure, which means the client is
// gone.
type countingWriter struct {
	w   io.Writer
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}
