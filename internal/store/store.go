// Package store defines the storage contract that every engine implements.
//
// The contract is deliberately small and split by user: versioned resources
// addressed by type and id (Resources), queues of work items that keep no
// history (Queues), the append-only usage log (AuditLog) and what background
// jobs need (Maintenance). One all-or-nothing Commit makes resource
// versions, queue items and usage-log records durable together, so a write
// never exists without the record of who made it. Everything FHIR-specific
// (parsing, validation, rendering) happens above it, so an engine only
// moves bytes and keeps versions consistent.
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
	// (Write.Index), returned exactly as given with the current version
	// (Commit, Read, Compartment, the newest of History); nil for a
	// deleted version and for versions written without one. A version
	// that a newer one superseded may come without it (only the current
	// version is searched, and the embedded engine keeps the index once);
	// a reader that needs it derives it from Body.
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
	// Unique are identifiers (each also in Identifiers) that no other
	// current, not deleted resource of Type may carry once the commit is
	// applied, counting the other writes of the same commit: a Patient's
	// person number. A clash fails the commit with a *ConflictError whose
	// Reason is ConflictUnique and whose Identifier names the value.
	Unique []string
	// Guard, when not empty, is a key (e.g. a conditional create's "type
	// in this patient's record") that the commit serialises on across
	// every process sharing the store: of two commits guarded by the same
	// key, the later one runs its Batch.Precondition only after the
	// earlier one is applied, so two commits never both succeed on the
	// same observed state. Keys are per Type.
	Guard string
}

// QueueOp adds, replaces or removes one item of a named queue. Queue items
// are work for background jobs (change notifications waiting to be queued
// or delivered): they are not resources, keep no versions or history, are
// never served, and cost one record each however often they change.
type QueueOp struct {
	Queue string // queue name, e.g. "notify-outbox"; no '/' or NUL
	ID    string // unique within the queue; no '/' or NUL
	// Patient is the patient the item concerns ("" if none), so that a
	// reservation's Purge removes it with the record.
	Patient string
	Body    []byte // the item; ignored for a removal
	// Remove removes the item; removing an item that does not exist is
	// not an error (a job that finished twice has nothing left to do).
	Remove bool
}

// QueueItem is one stored queue item.
type QueueItem struct {
	Queue, ID, Patient string
	Body               []byte
}

// Batch is what one Commit makes durable, all or nothing: new resource
// versions, queue items, and the usage-log records of the request that
// made them.
type Batch struct {
	Writes []Write
	Queue  []QueueOp
	// Audit are usage-log entries appended, linked with Link, in the same
	// commit as Writes and Queue: a write and the record of who made it
	// are durable together or not at all. A commit refused for a
	// precondition (ConflictError, NotFoundError) appends none of them;
	// the caller then logs the refusal on its own (AuditLog.AppendAudit).
	Audit []AuditEntry
	Link  LinkFunc // required when Audit is not empty
	// Precondition, when set, is the caller's check of what the store
	// holds (a conditional create's "no match yet"). The engine runs it
	// inside the commit, after it has taken its place in the order of the
	// writes' Guards and before anything is written, again on every
	// retry; a non-nil error fails the commit and is returned as is.
	// Without Guards it is only run before the commit.
	Precondition func(ctx context.Context) error
}

// HistoryQuery narrows an instance history.
type HistoryQuery struct {
	Since time.Time // only versions updated at or after Since (zero: all)
	Count int       // at most Count versions (0: all)
}

// Store is the contract between the server and a storage engine: all of
// the small interfaces below. Every method is safe for concurrent use.
// Users take the smallest interface they need.
type Store interface {
	Resources
	Queues
	AuditLog
	Maintenance

	// Ping reports whether the engine can serve requests and take a write
	// now (for an engine on local disk: the disk has room). An engine
	// that cannot reports an error wrapping ErrUnavailable.
	Ping(ctx context.Context) error
	// Close stops the engine; background jobs using it must be stopped
	// first.
	Close() error
}

// Resources are versioned FHIR resources in patients' records.
type Resources interface {
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
	// Commit applies the whole batch or nothing of it and returns the new
	// versions in the order of b.Writes. It returns only when the result
	// is durable. Writes to the same resource, or queue ops on the same
	// item, within one batch are refused with an error.
	Commit(ctx context.Context, b Batch) ([]Version, error)
}

// Queues lists queue items (QueueOp says how they are written).
type Queues interface {
	// ScanQueue calls fn for every item of queue, in no particular order.
	ScanQueue(ctx context.Context, queue string, fn func(QueueItem) error) error
}

// ErrUnavailable is matched (errors.Is) by the errors of an engine that
// cannot serve now: its database does not answer within the operation
// timeout, or its disk is full. Callers answer 503 and may retry later;
// a commit that failed so may or may not have been applied only where the
// engine says so (see each engine's Commit).
var ErrUnavailable = errors.New("store: unavailable")

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
	ConflictUnique                        // another resource carries a Unique identifier
)

// ConflictError reports a precondition that did not hold. Nothing of the
// commit was applied.
type ConflictError struct {
	Index   int // index of the offending write in the Commit call
	Type    string
	ID      string
	Reason  ConflictReason
	Current int64 // the current version, 0 if none
	// Identifier is the Unique identifier that clashed (ConflictUnique),
	// and Other the id of the resource already carrying it ("" when it is
	// another write of the same commit).
	Identifier, Other string
}

func (e *ConflictError) Error() string {
	switch e.Reason {
	case ConflictVersion:
		return fmt.Sprintf("store: %s/%s is at version %d, not the expected one", e.Type, e.ID, e.Current)
	case ConflictExists:
		return fmt.Sprintf("store: %s/%s already exists", e.Type, e.ID)
	case ConflictUnique:
		return fmt.Sprintf("store: %s/%s: identifier %s is already carried by another %s", e.Type, e.ID, e.Identifier, e.Type)
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
