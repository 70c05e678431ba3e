// Package store defines the storage contract that every engine implements.
//
// The contract is deliberately small: versioned resources addressed by type and
// id, an all-or-nothing commit of a group of writes, and the few reads the REST
// layer needs. Everything FHIR-specific (parsing, validation, rendering) happens
// above it, so an engine only moves bytes and keeps versions consistent.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Version is one stored version of a resource.
type Version struct {
	Type        string
	ID          string
	VersionID   int64 // 1, 2, 3, ...
	LastUpdated time.Time
	Deleted     bool // a delete is a version of its own; Body is nil then
	// Patient is the FHIR id of the patient whose record the resource belongs
	// to (a Patient belongs to itself). It is the natural shard key and the
	// compartment the resource is listed in; empty for resources outside any
	// patient's record.
	Patient string
	Body    []byte // the stored JSON, meta.versionId and meta.lastUpdated included
	// Index is the opaque search index the version was written with
	// (Write.Index), returned by every read exactly as given; nil for a
	// deleted version and for versions written without one (the reader
	// then derives it from Body).
	Index []byte
}

// Op says what a Write does.
type Op int

const (
	// OpPut creates the resource or adds a new version of it.
	OpPut Op = iota
	// OpDelete adds a deleted version. Deleting a resource that does not
	// exist gives ErrNotFound; deleting one already deleted changes nothing.
	OpDelete
)

// RenderFunc produces the JSON to store for a new version. Engines call it
// inside the commit, once the version number and time are known, possibly
// more than once if the commit is retried, so it must be a pure function.
type RenderFunc func(versionID int64, lastUpdated time.Time) ([]byte, error)

// Write is one change in a Commit.
type Write struct {
	Type    string
	ID      string
	Op      Op
	Patient string // see Version.Patient
	// IfMatch, when non-zero, is the version the caller expects to be
	// current; a different current version fails the commit with a
	// *ConflictError whose Reason is ConflictVersion.
	IfMatch int64
	// Create, when true, fails the commit with a *ConflictError whose
	// Reason is ConflictExists if the resource already has any version
	// (used for server-assigned ids, where a clash must never overwrite).
	Create bool
	Render RenderFunc // required for OpPut
	// Index is an opaque search index (fhir/search's binary encoding),
	// stored with the new version and returned as Version.Index. Engines
	// never interpret it. Ignored for OpDelete.
	Index []byte
	// Identifiers are the resource's business identifiers, each
	// "system|value" ("|value" when the identifier has no system), that
	// FindByIdentifier looks the resource up by while this version is
	// current. They must not contain NUL bytes. Ignored for OpDelete: a
	// deleted resource is found by none.
	Identifiers []string
}

// HistoryQuery narrows an instance history.
type HistoryQuery struct {
	Since time.Time // only versions updated at or after Since (zero: all)
	Count int       // at most Count versions (0: all)
}

// Store is the contract between the REST layer and a storage engine.
// Every method is safe for concurrent use. Every engine also keeps the
// usage log and does the maintenance background jobs need (audit.go).
type Store interface {
	AuditLog
	Maintenance

	// Read returns the current version. A deleted resource is returned
	// with Deleted set; a resource that never existed gives ErrNotFound.
	Read(ctx context.Context, typ, id string) (Version, error)
	// VRead returns one version, ErrNotFound if there is no such version.
	VRead(ctx context.Context, typ, id string, versionID int64) (Version, error)
	// History returns the versions of one resource, newest first.
	// ErrNotFound if the resource never existed.
	History(ctx context.Context, typ, id string, q HistoryQuery) ([]Version, error)
	// Compartment returns the current, not deleted versions of the given
	// type that belong to patient, ordered by type and id.
	Compartment(ctx context.Context, patient, typ string) ([]Version, error)
	// FindByIdentifier returns the ids, sorted, of the resources of typ
	// whose current version is not deleted and carries identifier (one of
	// its Write.Identifiers, compared as exact strings). Older versions
	// do not count: an identifier removed by an update, or a deleted
	// resource, is found no more. No match is an empty result, not an
	// error. It is maintained in the same commit as the versions, so a
	// commit that fails leaves no identifier behind.
	FindByIdentifier(ctx context.Context, typ, identifier string) ([]string, error)
	// Commit applies all writes or none of them and returns the new
	// versions in the order of writes. It returns only when the result
	// is durable. Writes to the same resource within one commit are
	// refused with an error.
	Commit(ctx context.Context, writes []Write) ([]Version, error)
	// Ping reports whether the engine can serve requests.
	Ping(ctx context.Context) error
	Close() error
}

// ErrNotFound reports that a resource or version does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is matched by every *ConflictError (errors.Is).
var ErrConflict = errors.New("store: conflict")

// ConflictReason says why a write conflicted.
type ConflictReason int

const (
	ConflictVersion ConflictReason = iota // IfMatch did not match
	ConflictExists                        // Create on an existing resource
	ConflictBusy                          // a concurrent writer holds the resource; retry
)

// ConflictError reports a precondition that did not hold. Nothing of the
// commit was applied.
type ConflictError struct {
	Index   int // index of the offending write in the Commit call
	Type    string
	ID      string
	Reason  ConflictReason
	Current int64 // the current version, 0 if none
}

func (e *ConflictError) Error() string {
	switch e.Reason {
	case ConflictVersion:
		return fmt.Sprintf("store: %s/%s is at version %d, not the expected one", e.Type, e.ID, e.Current)
	case ConflictExists:
		return fmt.Sprintf("store: %s/%s already exists", e.Type, e.ID)
	default:
		return fmt.Sprintf("store: %s/%s is being changed by another request", e.Type, e.ID)
	}
}

func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// NotFoundError reports which write referred to a resource that does not
// exist (a delete of an unknown resource). errors.Is(err, ErrNotFound) holds.
type NotFoundError struct {
	Index    int
	Type, ID string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("store: %s/%s not found", e.Type, e.ID)
}

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }
