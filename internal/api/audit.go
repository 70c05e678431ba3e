package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// heldResponse keeps the handler's answer in memory until the usage log
// has recorded the access: no byte of health data leaves before its
// AuditEvent is durable (fail closed). A stream, once its record is
// written, passes through.
type heldResponse struct {
	gin.ResponseWriter
	status  int
	body    bytes.Buffer
	through bool
}

func (h *heldResponse) WriteHeader(code int) {
	if h.through {
		h.ResponseWriter.WriteHeader(code)
		return
	}
	if h.status == 0 {
		h.status = code
	}
}
func (h *heldResponse) WriteHeaderNow() {
	if h.through {
		h.ResponseWriter.WriteHeaderNow()
		return
	}
	if h.status == 0 {
		h.status = http.StatusOK
	}
}
func (h *heldResponse) Write(b []byte) (int, error) {
	if h.through {
		return h.ResponseWriter.Write(b)
	}
	h.WriteHeaderNow()
	return h.body.Write(b)
}
func (h *heldResponse) WriteString(s string) (int, error) {
	if h.through {
		return h.ResponseWriter.WriteString(s)
	}
	h.WriteHeaderNow()
	return h.body.WriteString(s)
}
func (h *heldResponse) Status() int {
	if h.through {
		return h.ResponseWriter.Status()
	}
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}
func (h *heldResponse) Size() int {
	if h.through {
		return h.ResponseWriter.Size()
	}
	if h.status == 0 {
		return -1
	}
	return h.body.Len()
}
func (h *heldResponse) Written() bool {
	if h.through {
		return h.ResponseWriter.Written()
	}
	return h.status != 0
}
func (h *heldResponse) Flush() {
	if h.through {
		h.ResponseWriter.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (a stream
// extends its write deadline per chunk).
func (h *heldResponse) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// audited records every request in the usage log, allowed or refused,
// before its answer is sent: one AuditEvent per patient it touched (see
// interaction.Facts), and one per Bundle entry. A write's records were
// committed with the write itself; the rest are appended here. If the log
// cannot be written the answer is replaced by 503. A panic in a handler is
// answered 500 and logged like any other request; an aborted stream (its
// source broke off) stays aborted, so the client cannot take it for a
// whole document.
func (s *Server) audited(c *gin.Context) {
	x := exchangeOf(c)
	if !s.cfg.Audit {
		c.Next()
		return
	}
	real := c.Writer
	held := &heldResponse{ResponseWriter: real}
	x.held = held
	c.Writer = held
	func() {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler && held.through {
					panic(p)
				}
				s.log.Error("panic in handler", "request_id", x.id, "panic", fmt.Sprint(p), "path", c.Request.URL.Path)
				held.through, held.status = false, 0
				held.body.Reset()
				s.fail(c, internalError(x.id))
			}
		}()
		c.Next()
	}()
	c.Writer = real
	if held.through {
		return // streamed: logged before the first byte (stream)
	}
	if !x.facts.IsLogged() {
		x.facts.Status = held.Status()
	}
	if err := s.log1(c.Request.Context(), x); err != nil {
		s.log.Error("usage log not written: request refused", "request_id", x.id, "error", err)
		h := real.Header()
		for _, k := range []string{"ETag", "Last-Modified", "Location", "Content-Length", "Content-Type"} {
			h.Del(k)
		}
		c.Data(http.StatusServiceUnavailable, ctFHIRJSON+"; charset=utf-8", fhir.Outcome(fhir.Issue{
			Severity: "fatal", Code: "transient",
			Diagnostics: "the usage log could not record this access, so nothing is answered; retry later (request id " + x.id + ")"}))
		return
	}
	real.WriteHeader(held.Status())
	if held.body.Len() > 0 || held.status != 0 {
		real.Write(held.body.Bytes())
	}
}

// log1 appends the records of the request's facts (and its Bundle
// entries') not written yet, in one append.
func (s *Server) log1(ctx context.Context, x *exchange) error {
	pending := x.facts.Pending()
	if len(pending) == 0 {
		return nil
	}
	now := s.cfg.Now()
	var entries []store.AuditEntry
	for _, f := range pending {
		if f.Status == 0 {
			f.Status = x.facts.Status
		}
		entries = append(entries, f.Entries(now, s.cfg.BaseURL)...)
	}
	// Logged even when the client has gone away; the engine bounds the
	// append (the MongoDB engine's operation timeout).
	start := time.Now()
	_, err := s.store.AppendAudit(context.WithoutCancel(ctx), audit.Link, entries)
	telemetry.AuditAppend.Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	for _, f := range pending {
		f.Logged()
	}
	return nil
}

// stream sends a document: the usage log first (503 if it cannot be
// written), then the bytes from the source with constant memory. A source
// that breaks off after the headers aborts the client's response too, on
// sized and chunked answers alike.
func (s *Server) stream(c *gin.Context, x *exchange, res *interaction.Result) {
	st := res.Stream
	defer st.Close()
	if s.cfg.Audit {
		x.facts.Status = http.StatusOK
		if err := s.log1(c.Request.Context(), x); err != nil {
			s.log.Error("usage log not written: document not sent", "request_id", x.id, "error", err)
			s.fail(c, &interaction.Error{Status: http.StatusServiceUnavailable, Unavailable: true, Issues: []fhir.Issue{{Severity: "fatal", Code: "transient",
				Diagnostics: "the usage log could not record this access, so nothing is sent; retry later"}}})
			return
		}
		if x.held != nil {
			x.held.through = true
		}
	}
	w := &deadlineWriter{ResponseWriter: c.Writer, rc: http.NewResponseController(c.Writer)}
	if _, err := st.WriteTo(w); err != nil {
		if c.Request.Context().Err() != nil {
			return // the client went away
		}
		s.log.Warn("document stream broken; aborting the response", "request_id", x.id, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// streamIdle is how long one chunk of a document may take to reach the
// client; the server-wide write timeout would cut long documents.
const streamIdle = time.Minute

// deadlineWriter moves the connection's write deadline forward before
// every chunk of a stream.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(streamIdle))
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
