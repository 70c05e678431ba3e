package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
)

const (
	ctFHIRJSON = "application/fhir+json"
	ctJSON     = "application/json"
	ctForm     = "application/x-www-form-urlencoded"
	// basisHeader carries the access basis per request, as the national
	// APIs send it (nhn-access-basis), in Go's canonical form so that
	// reading it costs no allocation.
	basisHeader = "Nhn-Access-Basis"
)

// fhir serves every FHIR request: route it (interaction.ParseCall),
// negotiate the format, authenticate, read the body and the headers the
// call needs, run it, answer.
func (s *Server) fhir(c *gin.Context) {
	x := exchangeOf(c)
	r := c.Request
	if s.gets[r.URL.Path] {
		get := http.MethodGet
		s.fail(c, &interaction.Error{Status: http.StatusMethodNotAllowed, Allow: &get, Issues: []fhir.Issue{{Severity: "error", Code: "not-supported",
			Diagnostics: r.Method + " is not supported on " + r.URL.Path}}})
		return
	}
	call := &x.c
	if err := s.svc.Route(call, r.Method, r.URL.Path, r.URL.RawQuery); err != nil {
		s.fail(c, asError(err))
		return
	}
	x.call = call
	x.facts.Describe(call)
	out, e := negotiate(c, call.Query)
	if e != nil {
		s.fail(c, e)
		return
	}
	req := &x.req
	*req = interaction.Request{Basis: x.facts.BasisHeader, Base: s.baseURL(c), Facts: &x.facts}
	if !call.Public() {
		if !s.authenticate(c, x) {
			return
		}
		req.Principal = x.principal
	}
	nat, e := readNational(r.Header)
	if e != nil {
		s.fail(c, e)
		return
	}
	req.PersonNumber, req.UserRole = nat.personNumber, nat.userRole
	if e := s.readCall(c, call); e != nil {
		s.fail(c, e)
		return
	}
	// The request's context ends when the client goes away, which cancels
	// the store and source calls made for it; each of those has its own
	// deadline besides (the MongoDB engine's operation timeout, the
	// sources' timeouts), so no request waits on a dead database or
	// hospital for long.
	res, err := s.svc.Do(r.Context(), req, call)
	if err != nil {
		e := asError(err)
		if e.Status >= 500 {
			s.log.Error("request failed", "request_id", x.id, "error", errors.Unwrap(e))
		}
		s.fail(c, e)
		return
	}
	if res.Stream != nil {
		s.stream(c, x, res)
		return
	}
	s.answer(c, out, call, res)
}

// readCall adds to the call what comes from the body and the headers.
func (s *Server) readCall(c *gin.Context, call *interaction.Call) *interaction.Error {
	h := c.Request.Header
	for _, v := range h.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "handling=lenient" {
				call.Lenient = true
			}
			if ret, ok := strings.CutPrefix(part, "return="); ok {
				call.Return = ret
			}
		}
	}
	if v := h.Get("If-Match"); v != "" && (call.Kind == interaction.Update || call.Kind == interaction.Delete) {
		n, err := interaction.ParseETag(v)
		if err != nil {
			return badRequest("If-Match: " + err.Error())
		}
		call.IfMatch = n
	}
	if call.Kind == interaction.Create {
		call.IfNoneExist = h.Get("If-None-Exist")
	}
	switch {
	case call.Kind == interaction.Search && c.Request.Method == http.MethodPost:
		b, e := s.readBody(c, ctForm)
		call.Form = b
		return e
	case call.Kind == interaction.Create || call.Kind == interaction.Update || call.Kind == interaction.Bundle || call.Kind == interaction.Validate:
		b, e := s.readBody(c, ctFHIRJSON, ctJSON)
		call.Body = b
		return e
	}
	return nil
}

// readBody reads a request body within the size limit; a Content-Type,
// if given, must be one of types.
func (s *Server) readBody(c *gin.Context, types ...string) ([]byte, *interaction.Error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || !slices.Contains(types, mt) {
			return nil, &interaction.Error{Status: http.StatusUnsupportedMediaType, Issues: []fhir.Issue{{Severity: "error", Code: "not-supported",
				Diagnostics: "Content-Type " + ct + " is not supported here; send " + types[0]}}}
		}
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return nil, tooLarge(big.Limit)
		}
		return nil, badRequest("could not read the request body: " + err.Error())
	}
	// Editors on Windows start UTF-8 files with a byte order mark, which
	// RFC 8259 lets a reader ignore; no JSON reader here expects one.
	return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), nil
}

func tooLarge(limit int64) *interaction.Error {
	return &interaction.Error{Status: http.StatusRequestEntityTooLarge, Issues: []fhir.Issue{{Severity: "error", Code: "too-costly",
		Diagnostics: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}}}
}

func badRequest(msg string) *interaction.Error {
	return &interaction.Error{Status: http.StatusBadRequest, Issues: []fhir.Issue{{Severity: "error", Code: "invalid", Diagnostics: msg}}}
}

func internalError(id string) *interaction.Error {
	return &interaction.Error{Status: http.StatusInternalServerError, Issues: []fhir.Issue{{Severity: "fatal", Code: "exception",
		Diagnostics: "the server could not complete the request; the request id is " + id}}}
}

// asError is err as an answer: an *interaction.Error as it is, anything
// else a 500 that names the request id.
func asError(err error) *interaction.Error {
	var e *interaction.Error
	if errors.As(err, &e) {
		return e
	}
	return &interaction.Error{Status: http.StatusInternalServerError, Issues: []fhir.Issue{{Severity: "fatal", Code: "exception",
		Diagnostics: "the server could not complete the request"}}}
}

// output is how the answer is written: its media type and indentation.
type output struct {
	contentType string
	pretty      bool
}

// negotiate reads _format, Accept and _pretty (q is the request's query).
func negotiate(c *gin.Context, q url.Values) (output, *interaction.Error) {
	out := output{contentType: ctFHIRJSON}
	notAcceptable := func(msg string) *interaction.Error {
		return &interaction.Error{Status: http.StatusNotAcceptable, Issues: []fhir.Issue{{Severity: "error", Code: "not-supported", Diagnostics: msg, Expression: []string{"_format"}}}}
	}
	if f := q.Get("_format"); f != "" {
		// An unencoded + in the query arrives as a space
		// (_format=application/fhir+json).
		f = strings.ReplaceAll(strings.TrimSpace(f), " ", "+")
		if mt, params, err := mime.ParseMediaType(f); err == nil && strings.Contains(mt, "/") {
			if !fhirVersionR4(params) {
				return out, notAcceptable("this server speaks FHIR R4 (4.0) only; _format=" + f + " is not supported")
			}
			f = mt
		}
		switch f {
		case "json", ctFHIRJSON, ctJSON:
			if f == ctJSON {
				out.contentType = ctJSON
			}
		case "xml", "text/xml", "application/xml", "application/fhir+xml":
			return out, notAcceptable("this server speaks FHIR JSON only; _format=" + f + " is not supported")
		default:
			return out, notAcceptable("unknown _format " + strconv.Quote(f) + "; use json")
		}
	} else if accept := c.GetHeader("Accept"); accept != "" {
		ct, ok := acceptable(accept)
		if !ok {
			e := notAcceptable("none of the types in Accept: " + accept + " is served; this server speaks application/fhir+json and application/json, FHIR 4.0")
			e.Issues[0].Expression = nil
			return out, e
		}
		out.contentType = ct
	}
	switch p := q.Get("_pretty"); p {
	case "", "false":
	case "true":
		out.pretty = true
	default:
		return out, &interaction.Error{Status: http.StatusBadRequest, Issues: []fhir.Issue{{Severity: "error", Code: "invalid",
			Diagnostics: "_pretty must be true or false, not " + strconv.Quote(p), Expression: []string{"_pretty"}}}}
	}
	return out, nil
}

// acceptable picks the response media type from an Accept header.
func acceptable(accept string) (string, bool) {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		if !fhirVersionR4(params) {
			continue
		}
		switch mt {
		case ctFHIRJSON, "*/*", "application/*":
			return ctFHIRJSON, true
		case ctJSON:
			return ctJSON, true
		}
	}
	return "", false
}

// answer writes a result.
func (s *Server) answer(c *gin.Context, out output, call *interaction.Call, res *interaction.Result) {
	if v := res.Version; v != nil {
		setVersionHeaders(c, v.VersionID, v.LastUpdated.UTC().Format(http.TimeFormat))
		if call.Kind == interaction.Read || call.Kind == interaction.VRead {
			if inm := c.GetHeader("If-None-Match"); inm != "" {
				if n, err := interaction.ParseETag(inm); err == nil && n == v.VersionID {
					c.Status(http.StatusNotModified)
					return
				}
			} else if notModifiedSince(c.GetHeader("If-Modified-Since"), v.LastUpdated) {
				c.Status(http.StatusNotModified)
				return
			}
		}
	}
	if res.Location != "" {
		c.Header("Location", s.baseURL(c)+"/"+res.Location)
	}
	if res.Body == nil {
		c.Status(res.Status)
		return
	}
	s.write(c, res.Status, out, res.Body)
}

func setVersionHeaders(c *gin.Context, version int64, lastModified string) {
	c.Header("ETag", interaction.ETag(version))
	c.Header("Last-Modified", lastModified)
}

// write sends a FHIR JSON body.
func (s *Server) write(c *gin.Context, status int, out output, body []byte) {
	if out.pretty {
		body = fhir.Pretty(body)
	}
	c.Data(status, out.contentType+"; charset=utf-8", body)
}

// fail answers with the error's OperationOutcome and the headers it
// calls for.
func (s *Server) fail(c *gin.Context, e *interaction.Error) {
	h := c.Writer.Header()
	if e.Allow != nil {
		h["Allow"] = []string{*e.Allow} // set even when empty; gin's Header would drop it
	}
	if e.Challenge != "" {
		scheme := auth.SchemeBearer
		if p := exchangeOf(c).principal; p != nil {
			scheme = p.Scheme
		}
		auth.InsufficientScope(scheme, e.Challenge, "").SetHeader(h)
	}
	if e.Version != nil {
		setVersionHeaders(c, e.Version.VersionID, e.Version.LastUpdated.UTC().Format(http.TimeFormat))
	}
	if e.Unavailable {
		h.Set("Retry-After", "5")
	}
	c.Data(e.Status, ctFHIRJSON+"; charset=utf-8", e.Outcome())
	c.Abort()
}

func (s *Server) baseURL(c *gin.Context) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// fhirVersionR4 reports whether a media type's fhirVersion parameter, if
// any, names R4 (4.0, or a 4.0.x release).
func fhirVersionR4(params map[string]string) bool {
	v, ok := params["fhirversion"] // mime lower-cases parameter names
	if !ok {
		return true
	}
	return v == "4.0" || strings.HasPrefix(v, "4.0.")
}

// notModifiedSince reports whether an If-Modified-Since header (an HTTP
// date, to the second) is at or after lastUpdated, so that a read is
// answered 304. A missing or malformed header never is (RFC 9110 13.1.3).
func notModifiedSince(h string, lastUpdated time.Time) bool {
	if h == "" {
		return false
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return false
	}
	return !lastUpdated.Truncate(time.Second).After(t)
}
