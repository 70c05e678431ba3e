package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

const (
	ctFHIRJSON = "application/fhir+json"
	ctJSON     = "application/json"
)

// output is how the client wants resources shaped, from _format, Accept,
// _pretty, _summary and _elements.
type output struct {
	contentType string
	pretty      bool
	summary     string // "", "true", "false", "count", "data"
	elements    []string
}

// negotiate reads the output parameters. It answers the request itself
// (406 or 400) and returns false when they cannot be honoured.
func (s *Server) negotiate(c *gin.Context) (output, bool) {
	q := c.Request.URL.Query()
	out := output{contentType: ctFHIRJSON}
	if f := q.Get("_format"); f != "" {
		switch f {
		case "json", ctFHIRJSON, ctJSON:
			if f == ctJSON {
				out.contentType = ctJSON
			}
		case "xml", "text/xml", "application/xml", "application/fhir+xml":
			s.fail(c, http.StatusNotAcceptable, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "this server speaks FHIR JSON only; _format=" + f + " is not supported", Expression: []string{"_format"}})
			return out, false
		default:
			s.fail(c, http.StatusNotAcceptable, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "unknown _format " + strconv.Quote(f) + "; use json", Expression: []string{"_format"}})
			return out, false
		}
	} else if accept := c.GetHeader("Accept"); accept != "" {
		ct, ok := acceptable(accept)
		if !ok {
			s.fail(c, http.StatusNotAcceptable, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "none of the types in Accept: " + accept + " is served; this server speaks application/fhir+json and application/json"})
			return out, false
		}
		out.contentType = ct
	}
	switch p := q.Get("_pretty"); p {
	case "", "false":
	case "true":
		out.pretty = true
	default:
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: "_pretty must be true or false, not " + strconv.Quote(p), Expression: []string{"_pretty"}})
		return out, false
	}
	switch sm := q.Get("_summary"); sm {
	case "", "false", "true", "count", "data":
		out.summary = sm
	default:
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "not-supported",
			Diagnostics: "_summary must be one of true, false, count, data; " + strconv.Quote(sm) + " is not supported", Expression: []string{"_summary"}})
		return out, false
	}
	if el := q.Get("_elements"); el != "" {
		for _, name := range strings.Split(el, ",") {
			name = strings.TrimSpace(name)
			if !validElementName(name) {
				s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
					Diagnostics: "_elements holds an invalid element name " + strconv.Quote(name), Expression: []string{"_elements"}})
				return out, false
			}
			out.elements = append(out.elements, name)
		}
		if out.summary != "" && out.summary != "false" {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
				Diagnostics: "_summary and _elements cannot be combined", Expression: []string{"_elements"}})
			return out, false
		}
	}
	return out, true
}

func validElementName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
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
		switch mt {
		case ctFHIRJSON, "*/*", "application/*":
			return ctFHIRJSON, true
		case ctJSON:
			return ctJSON, true
		}
	}
	return "", false
}

// shape applies _summary / _elements to one resource's JSON.
func (o output) shape(body []byte) ([]byte, error) {
	switch {
	case len(o.elements) > 0:
		return fhir.Elements(body, o.elements)
	case o.summary == "true":
		return fhir.Summary(body)
	case o.summary == "data":
		return dropText(body)
	}
	return body, nil
}

// write sends a FHIR JSON body.
func (s *Server) write(c *gin.Context, status int, out output, body []byte) {
	if out.pretty {
		body = fhir.Pretty(body)
	}
	c.Data(status, out.contentType+"; charset=utf-8", body)
}

// fail answers with an OperationOutcome.
func (s *Server) fail(c *gin.Context, status int, issues ...fhir.Issue) {
	c.Data(status, ctFHIRJSON+"; charset=utf-8", fhir.Outcome(issues...))
	c.Abort()
}

// failErr maps a store or validation error to an OperationOutcome.
func (s *Server) failErr(c *gin.Context, err error) {
	var verr *fhir.ValidationError
	var conflict *store.ConflictError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &verr):
		s.fail(c, http.StatusBadRequest, verr.Issues...)
	case errors.As(err, &tooBig):
		s.fail(c, http.StatusRequestEntityTooLarge, fhir.Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit)})
	case errors.As(err, &conflict):
		status := http.StatusConflict
		if conflict.Reason == store.ConflictVersion {
			status = http.StatusPreconditionFailed
		}
		s.fail(c, status, fhir.Issue{Severity: "error", Code: "conflict", Diagnostics: conflictText(conflict)})
	case errors.Is(err, store.ErrNotFound):
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: err.Error()})
	case errors.As(err, new(*profileError)):
		var pe *profileError
		errors.As(err, &pe)
		s.fail(c, http.StatusUnprocessableEntity, pe.issues...)
	case errors.As(err, new(*unsupportedMedia)):
		s.fail(c, http.StatusUnsupportedMediaType, fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: err.Error()})
	case errors.Is(err, errBadRequest):
		s.fail(c, http.StatusBadRequest, issuesOf(err)...)
	default:
		id := c.GetString(keyRequestID)
		s.log.Error("request failed", "request_id", id, "error", err)
		s.fail(c, http.StatusInternalServerError, fhir.Issue{Severity: "fatal", Code: "exception",
			Diagnostics: "the server could not complete the request; the request id is " + id})
	}
}

func conflictText(e *store.ConflictError) string {
	switch e.Reason {
	case store.ConflictVersion:
		if e.Current == 0 {
			return fmt.Sprintf("%s/%s does not exist, so If-Match cannot match", e.Type, e.ID)
		}
		return fmt.Sprintf("%s/%s is at version %d; If-Match named another version (reread and retry)", e.Type, e.ID, e.Current)
	case store.ConflictExists:
		return fmt.Sprintf("%s/%s already exists", e.Type, e.ID)
	default:
		return fmt.Sprintf("%s/%s is being changed by another request; retry", e.Type, e.ID)
	}
}

// errBadRequest marks client errors raised by the REST layer itself.
var errBadRequest = errors.New("bad request")

type badRequest struct{ issues []fhir.Issue }

func (e *badRequest) Error() string {
	if len(e.issues) == 0 {
		return "bad request"
	}
	return e.issues[0].Diagnostics
}
func (e *badRequest) Is(target error) bool { return target == errBadRequest }

func invalid(expr, format string, args ...any) error {
	is := fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: fmt.Sprintf(format, args...)}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return &badRequest{issues: []fhir.Issue{is}}
}

func issuesOf(err error) []fhir.Issue {
	var br *badRequest
	if errors.As(err, &br) {
		return br.issues
	}
	return []fhir.Issue{{Severity: "error", Code: "invalid", Diagnostics: err.Error()}}
}

// readBody reads a request body within the size limit and checks its type.
func (s *Server) readBody(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != ctFHIRJSON && mt != ctJSON) {
			return nil, &unsupportedMedia{ct}
		}
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	r := http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	b, err := io.ReadAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, invalid("", "could not read the request body: %v", err)
	}
	if len(b) == 0 {
		return nil, invalid("", "the request has no body; a FHIR resource in JSON is expected")
	}
	return b, nil
}

type unsupportedMedia struct{ ct string }

func (e *unsupportedMedia) Error() string {
	return "Content-Type " + e.ct + " is not supported; send application/fhir+json"
}

// setVersionHeaders sets ETag and Last-Modified for a version.
func setVersionHeaders(c *gin.Context, v store.Version) {
	c.Header("ETag", etag(v.VersionID))
	c.Header("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// parseETag reads W/"3" or "3" (If-Match, If-None-Match) into 3.
func parseETag(h string) (int64, error) {
	t := strings.TrimSpace(h)
	t = strings.TrimPrefix(t, "W/")
	if len(t) < 3 || t[0] != '"' || t[len(t)-1] != '"' {
		return 0, fmt.Errorf("ETag %q is not of the form W/\"<version>\"", h)
	}
	v, err := strconv.ParseInt(t[1:len(t)-1], 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("ETag %q does not name a version", h)
	}
	return v, nil
}
