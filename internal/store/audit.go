package store

import (
	"context"
	"time"
)

// The usage log (AuditEvent) and the maintenance a reservation needs are
// part of every engine, next to the resource store.

// AuditEntry is one usage-log record to append.
type AuditEntry struct {
	Patient  string // FHIR id of the patient the access concerned; "" if none
	AgentHPR string // HPR number of the health personnel, if any
	Org      string // organisation number of the legal entity, if any
	Recorded time.Time
	Outcome  string // AuditEvent.outcome: "0" success, "4" refused, "8" failed
	Body     []byte // the AuditEvent JSON, not yet linked to the chain
}

// AuditRecord is a stored usage-log record.
type AuditRecord struct {
	Seq int64 // position in the chain, from 1
	AuditEntry
	Hash string // the chain hash of this record; Body holds the linked JSON
}

// LinkFunc links an event to the chain (audit.Link): it returns the body
// carrying the link and the record's hash. It is pure, so an engine may
// call it again when it retries.
type LinkFunc func(prevHash string, body []byte) (linked []byte, hash string, err error)

// AuditQuery selects usage-log records; empty fields do not filter.
type AuditQuery struct {
	Patient  string
	AgentHPR string
	Org      string
	Outcome  string
	From, To time.Time // Recorded in [From, To]
	Count    int       // at most Count records (0: no limit)
	Before   int64     // only records with Seq < Before (0: no bound), for paging
}

// AuditLog is the append-only usage log. Records are never updated or
// deleted through it.
type AuditLog interface {
	// AppendAudit links the entries to the chain in order and returns only
	// when they are durable. All or none of them are appended.
	AppendAudit(ctx context.Context, link LinkFunc, entries []AuditEntry) ([]AuditRecord, error)
	// SearchAudit returns the records matching q, newest (highest Seq) first.
	SearchAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// ScanAudit calls fn for every record with Seq >= from, in chain order.
	ScanAudit(ctx context.Context, from int64, fn func(AuditRecord) error) error
	// AuditHead returns the last record's Seq and hash (0 and "" when empty).
	AuditHead(ctx context.Context) (int64, string, error)
}

// Maintenance is what background jobs need, such as deleting the record
// of a patient whose reservation is 30 days old.
type Maintenance interface {
	// ScanType calls fn with the current, not deleted version of every
	// resource of typ, in no particular order.
	ScanType(ctx context.Context, typ string, fn func(Version) error) error
	// Purge removes every version of every resource of the given types in
	// patient's compartment, and every queue item about the patient,
	// leaving no trace of them (the usage log, which is not a resource,
	// stays). It returns how many resources it removed.
	Purge(ctx context.Context, patient string, types []string) (int, error)
	// PurgeResources removes every version of the named resources of typ
	// that belong to patient (one of another patient, or none, is left
	// alone), as Purge does, for a type whose resources in the record are
	// not all purged (a patient's critical-information Consents go, their
	// privacy settings stay). Queue items are left alone. It returns how
	// many resources it removed.
	PurgeResources(ctx context.Context, patient, typ string, ids []string) (int, error)
}
