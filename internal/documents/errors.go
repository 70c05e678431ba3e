package documents

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// Errors of Open and Stream.WriteTo. Test with errors.Is; HTTPStatus and
// Issue map them for the REST layer.
var (
	// ErrTokenInvalid: the document URL is malformed, forged, altered or
	// belongs to another patient. 404: the answer must not confirm that a
	// document exists.
	ErrTokenInvalid = errors.New("documents: no such document")
	// ErrTokenExpired: a genuine URL past its lifetime; search again. 403.
	ErrTokenExpired = errors.New("documents: the document link has expired; search again")
	// ErrNotShared: the source does not (or no longer) share this document
	// type with the requester's organisation or region, or the source is
	// no longer registered. 403.
	ErrNotShared = errors.New("documents: the source does not share this document with the requester")
	// ErrNotFound: the source answered 404/410. 404.
	ErrNotFound = errors.New("documents: the source has no such document")
	// ErrSourceUnavailable: connection refused, reset, a 5xx, a refusal of
	// our assertion, a redirect, a broken transfer. 502.
	ErrSourceUnavailable = errors.New("documents: the source is unavailable")
	// ErrSourceTimeout: no connection or no first byte in time, or the
	// transfer stalled. 504.
	ErrSourceTimeout = errors.New("documents: the source did not answer in time")
	// ErrTooLarge: the document exceeds the size limit (declared or while
	// streaming). 502.
	ErrTooLarge = errors.New("documents: the document exceeds the size limit")
)

// SourceError is an error involving one source; it unwraps to one of the
// sentinel errors above and to the cause.
type SourceError struct {
	Source string // source name
	Kind   error  // one of the sentinel errors
	Detail string // for logs and diagnostics; no health data
	Cause  error  // underlying error, may be nil
	// HeaderWritten is set by Stream.WriteTo when the failure came after
	// the response status and headers were sent: the REST layer cannot
	// answer with an error any more and must abort the response (panic
	// with http.ErrAbortHandler) so the client sees a broken transfer
	// rather than a short document.
	HeaderWritten bool
}

func (e *SourceError) Error() string {
	s := fmt.Sprintf("%v (source %s)", e.Kind, e.Source)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap lets errors.Is find both the kind and the cause.
func (e *SourceError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// HTTPStatus is the status the REST layer should answer with for an error
// of Open or WriteTo (500 for anything unexpected).
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrNotShared):
		return http.StatusForbidden
	case errors.Is(err, ErrSourceTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrSourceUnavailable), errors.Is(err, ErrTooLarge):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// Issue is the OperationOutcome issue for an error of Open or WriteTo.
func Issue(err error) fhir.Issue {
	is := fhir.Issue{Severity: "error", Diagnostics: err.Error()}
	switch {
	case errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrNotFound):
		is.Code = "not-found"
	case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrNotShared):
		is.Code = "forbidden"
	case errors.Is(err, ErrSourceTimeout):
		is.Code = "timeout"
	case errors.Is(err, ErrTooLarge):
		is.Code = "too-costly"
	case errors.Is(err, ErrSourceUnavailable):
		is.Code = "transient"
	default:
		is.Code = "exception"
	}
	return is
}
