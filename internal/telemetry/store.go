package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Store measures the operations of st under engine's name. What st does
// beyond store.Store (store.Once) stays reachable through the result.
func Store(st store.Store, engine string) store.Store {
	m := &measured{Store: st}
	for i, op := range opNames {
		m.lat[i] = StoreOp.WithLabelValues(engine, op)
		m.errs[i] = StoreErrors.WithLabelValues(engine, op)
	}
	CommitGroup.WithLabelValues(engine)
	if o, ok := st.(store.Once); ok {
		return &measuredOnce{measured: m, once: o}
	}
	return m
}

type op int

const (
	opRead op = iota
	opVRead
	opHistory
	opCompartment
	opFindByIdentifier
	opCommit
	opAppendAudit
	opSearchAudit
	opScanQueue
	opClaimOnce
	opCount
)

var opNames = [opCount]string{"read", "vread", "history", "compartment", "find-by-identifier", "commit",
	"append-audit", "search-audit", "scan-queue", "claim-once"}

type measured struct {
	store.Store
	lat  [opCount]prometheus.Observer
	errs [opCount]prometheus.Counter
}

func (m *measured) done(o op, start time.Time, err error) {
	m.lat[o].Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) &&
		!errors.Is(err, context.Canceled) {
		m.errs[o].Inc()
	}
}

func (m *measured) Read(ctx context.Context, typ, id string) (store.Version, error) {
	start := time.Now()
	v, err := m.Store.Read(ctx, typ, id)
	m.done(opRead, start, err)
	return v, err
}

func (m *measured) VRead(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	start := time.Now()
	v, err := m.Store.VRead(ctx, typ, id, versionID)
	m.done(opVRead, start, err)
	return v, err
}

func (m *measured) History(ctx context.Context, typ, id string, q store.HistoryQuery) ([]store.Version, error) {
	start := time.Now()
	v, err := m.Store.History(ctx, typ, id, q)
	m.done(opHistory, start, err)
	return v, err
}

func (m *measured) Compartment(ctx context.Context, patient, typ string) ([]store.Version, error) {
	start := time.Now()
	v, err := m.Store.Compartment(ctx, patient, typ)
	m.done(opCompartment, start, err)
	return v, err
}

func (m *measured) FindByIdentifier(ctx context.Context, typ, identifier string) ([]string, error) {
	start := time.Now()
	v, err := m.Store.FindByIdentifier(ctx, typ, identifier)
	m.done(opFindByIdentifier, start, err)
	return v, err
}

func (m *measured) Commit(ctx context.Context, b store.Batch) ([]store.Version, error) {
	start := time.Now()
	v, err := m.Store.Commit(ctx, b)
	m.done(opCommit, start, err)
	return v, err
}

func (m *measured) AppendAudit(ctx context.Context, link store.LinkFunc, entries []store.AuditEntry) ([]store.AuditRecord, error) {
	start := time.Now()
	v, err := m.Store.AppendAudit(ctx, link, entries)
	m.done(opAppendAudit, start, err)
	return v, err
}

func (m *measured) SearchAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	start := time.Now()
	v, err := m.Store.SearchAudit(ctx, q)
	m.done(opSearchAudit, start, err)
	return v, err
}

func (m *measured) ScanQueue(ctx context.Context, queue string, fn func(store.QueueItem) error) error {
	start := time.Now()
	err := m.Store.ScanQueue(ctx, queue, fn)
	m.done(opScanQueue, start, err)
	return err
}

type measuredOnce struct {
	*measured
	once store.Once
}

func (m *measuredOnce) ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	start := time.Now()
	ok, err := m.once.ClaimOnce(ctx, key, now, expires)
	m.done(opClaimOnce, start, err)
	return ok, err
}
