package interaction

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Error is a call that was refused or failed: the HTTP status and the
// OperationOutcome issues that say why.
type Error struct {
	Status int
	Issues []fhir.Issue
	// Allow, for a 405, lists the methods the target supports (possibly
	// none); nil otherwise.
	Allow *string
	// Challenge, for a refusal by the token's scopes, is the
	// insufficient_scope description for WWW-Authenticate.
	Challenge string
	// Version, for a 410, is the deleted version (its ETag is answered).
	Version *store.Version
	// Unavailable marks a 503 the client may retry later.
	Unavailable bool
	// cause is the internal error behind a 500 or 503, for the log only.
	cause error
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return http.StatusText(e.Status)
	}
	return e.Issues[0].Diagnostics
}

func (e *Error) Unwrap() error { return e.cause }

// Outcome is the OperationOutcome to answer.
func (e *Error) Outcome() []byte { return fhir.Outcome(e.Issues...) }

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Issues: []fhir.Issue{{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}}}
}

func notFound(format string, args ...any) *Error {
	return fail(http.StatusNotFound, "not-found", format, args...)
}

// invalid is a 400 naming the element (expr, "" for none).
func invalid(expr, format string, args ...any) *Error {
	e := fail(http.StatusBadRequest, "invalid", format, args...)
	if expr != "" {
		e.Issues[0].Expression = []string{expr}
	}
	return e
}

func notAllowed(allow, format string, args ...any) *Error {
	e := fail(http.StatusMethodNotAllowed, "not-supported", format, args...)
	e.Allow = &allow
	return e
}

// absent says what a call answers for a resource, version or patient that
// does not exist: the answer the rules' as-if-no-record refusal gives too.
// It is a value, so that the answer is built only when it is given.
type absent struct {
	kind    absentKind
	typ, id string
	version int64
}

type absentKind uint8

const (
	noAbsent        absentKind = iota // no answer of its own: the decision's message
	unknownResource                   // typ/id is not known
	unknownVersion                    // typ/id has no version
	nothingToDelete                   // a delete of typ/id that is not known
	patientNotHeld                    // a write of typ for patient id, which is not held here (or reserved: no answer tells them apart)
)

func (a absent) err() *Error {
	switch a.kind {
	case unknownResource:
		return notFound("%s/%s is not known", a.typ, a.id)
	case unknownVersion:
		return notFound("%s/%s has no version %d", a.typ, a.id, a.version)
	case nothingToDelete:
		return notFound("%s/%s is not known, so there is nothing to delete", a.typ, a.id)
	case patientNotHeld:
		el := domain.PatientElement(a.typ)
		return invalid(el, "%s refers to Patient/%s, which this server does not hold", el, a.id)
	}
	return nil
}

// refusal turns a refusing access decision into the answer: as if there
// were no record when the rules ask for that (missing says what the call
// answers for a resource or patient that does not exist), else 403 with
// the reason code in issue.details.
func refusal(d access.Decision, missing absent) *Error {
	if d.AsNotFound && missing.kind != noAbsent {
		return missing.err()
	}
	e := &Error{Status: http.StatusForbidden, Issues: []fhir.Issue{{Severity: "error", Code: "forbidden", Diagnostics: d.Message,
		Details: fhir.Coding{System: domain.SystemAccessReason, Code: string(d.Reason)}}}}
	switch {
	case d.Reason == access.NotAuthenticated:
		e.Status, e.Issues[0].Code = http.StatusUnauthorized, "login"
	case d.Reason == access.NoPatientBound:
		// Rule 1 is the law's: the request itself is wrong, whoever asks.
		e.Status, e.Issues[0].Code = http.StatusBadRequest, "business-rule"
	case d.AsNotFound:
		e.Status, e.Issues[0].Code = http.StatusNotFound, "not-found"
		e.Issues[0].Details = fhir.Coding{}
	}
	if d.ScopeRefused {
		e.Challenge = d.Message
	}
	return e
}

// errorOf maps what a store, the codec, the profile or the privacy parser
// returned to the answer. Errors already answers pass through.
func errorOf(err error) *Error {
	var e *Error
	var verr *fhir.ValidationError
	var serr *search.Error
	var conflict *store.ConflictError
	var perr *privacy.ProfileError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.As(err, &verr):
		return &Error{Status: http.StatusBadRequest, Issues: verr.Issues}
	case errors.As(err, &serr):
		return &Error{Status: http.StatusBadRequest, Issues: serr.Issues}
	case errors.As(err, &perr):
		issues := make([]fhir.Issue, 0, len(perr.Issues))
		for _, is := range perr.Issues {
			issues = append(issues, fhir.Issue{Severity: "error", Code: "processing", Diagnostics: is.Message, Expression: []string{is.Path}})
		}
		return &Error{Status: http.StatusUnprocessableEntity, Issues: issues}
	case errors.As(err, &conflict):
		status := http.StatusConflict
		if conflict.Reason == store.ConflictVersion {
			status = http.StatusPreconditionFailed
		}
		code := "conflict"
		if conflict.Reason == store.ConflictUnique {
			code = "duplicate"
		}
		return fail(status, code, "%s", conflictText(conflict))
	case errors.Is(err, store.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, context.Canceled):
		// The client went away; the status is for the log (nginx's 499).
		e := fail(499, "exception", "the client closed the request")
		e.cause = err
		return e
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// The database did not answer within the operation timeout or
		// the request's deadline.
		e := fail(http.StatusServiceUnavailable, "transient", "the database does not answer now; retry later")
		e.Unavailable, e.cause = true, err
		return e
	}
	e = &Error{Status: http.StatusInternalServerError, Issues: []fhir.Issue{{Severity: "fatal", Code: "exception",
		Diagnostics: "the server could not complete the request"}}, cause: err}
	return e
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
	case store.ConflictUnique:
		_, value, _ := strings.Cut(e.Identifier, "|")
		if e.Other != "" {
			return fmt.Sprintf("a %s with identifier %s already exists (%s/%s); a person has one Patient here: update that one", e.Type, value, e.Type, e.Other)
		}
		return fmt.Sprintf("two %s resources in the request carry identifier %s; a person has one Patient here", e.Type, value)
	default:
		return fmt.Sprintf("%s/%s is being changed by another request; retry", e.Type, e.ID)
	}
}
