// Package mongodb is the MongoDB storage engine. It relies only on
// single-document atomicity and unique keys, never on multi-document
// transactions, $lookup or change streams, so it runs on MongoDB (replica set
// or sharded cluster) and on FerretDB alike. DESIGN.md explains the protocol.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Options configures Open.
type Options struct {
	URI      string // mongodb://... (required)
	Database string // database name (required)
	// LockTTL is how long a writer's claim on a resource protects it; after
	// that another writer or Open may resolve the claimant's transaction.
	// It must comfortably exceed the longest commit. Default 30s.
	LockTTL time.Duration
	// SkipRecovery leaves unfinished transactions alone at Open (they are
	// still resolved lazily when a writer meets an expired claim). Useful for
	// read-only tools; the server should leave it false.
	SkipRecovery bool
}

// Collection and index names are part of the on-disk format.
const (
	collResources = "resources"
	collHistory   = "history"
	collTxns      = "txns"
	collAudit     = "audit"
	collBatches   = "auditbatches"

	idxCompartment = "patient_type_id"
	idxIdentifiers = "type_identifiers"
	idxHistory     = "type_id_version"
	idxClaims      = "txn"
	idxTxnState    = "state_created"
	idxAuditPat    = "patient_seq"
	idxAuditAgent  = "agent_seq"
	idxAuditOrg    = "org_seq"
	idxAuditTime   = "recorded"
)

// Store implements store.Store on MongoDB.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	resources *mongo.Collection
	history   *mongo.Collection
	txns      *mongo.Collection
	ttl       time.Duration

	// The usage log: records, and the batch documents that commit them.
	auditColl    *mongo.Collection
	auditBatches *mongo.Collection
	audit        *committer
	closeGuard

	// crashAt makes Commit stop dead at a protocol step, as if the process
	// died there; only tests set it.
	crashAt crashPoint
	// crashAuditAfterBatch makes the usage-log committer stop right after
	// its commit point, before the records reach audit; only tests set it.
	crashAuditAfterBatch bool
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.AuditLog    = (*Store)(nil)
	_ store.Maintenance = (*Store)(nil)
)

// Open connects, creates the indexes and finishes or undoes transactions
// left behind by writers that died.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URI == "" || opts.Database == "" {
		return nil, errors.New("mongodb: URI and Database are required")
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 30 * time.Second
	}
	journal := true
	// Majority + journal so that an acknowledged commit survives a primary
	// failover; majority reads so a reader never sees a write that a
	// failover could roll back.
	copts := options.Client().ApplyURI(opts.URI).
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal}).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary())
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongodb: connect: %w", err)
	}
	db := client.Database(opts.Database)
	s := &Store{
		client:    client,
		db:        db,
		resources: db.Collection(collResources),
		history:   db.Collection(collHistory),
		txns:      db.Collection(collTxns),
		ttl:       opts.LockTTL,

		auditColl:    db.Collection(collAudit),
		auditBatches: db.Collection(collBatches),
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if !opts.SkipRecovery {
		if err := s.Recover(ctx); err != nil {
			_ = client.Disconnect(context.Background())
			return nil, err
		}
		// Usage-log batches committed by a process that died before
		// copying their records into audit.
		if _, _, err := s.settleAudit(ctx); err != nil {
			_ = client.Disconnect(context.Background())
			return nil, fmt.Errorf("mongodb: recovering the usage log: %w", err)
		}
	}
	s.startCommitter()
	return s, nil
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	// _id carries the unique keys: "Type/id" in resources and
	// "Type/id/version" in history. Unique secondary indexes would not be
	// enforceable across shards unless prefixed by the shard key, and FerretDB
	// only pushes _id equality down to its storage, so _id is both the
	// uniqueness guarantee and the fast path for point reads.
	for _, ix := range []struct {
		coll  *mongo.Collection
		name  string
		model mongo.IndexModel
	}{
		{s.resources, idxCompartment, mongo.IndexModel{
			Keys:    bson.D{{Key: "patient", Value: 1}, {Key: "type", Value: 1}, {Key: "id", Value: 1}},
			Options: options.Index().SetName(idxCompartment),
		}},
		{s.resources, idxIdentifiers, mongo.IndexModel{
			// Multikey on identifiers: FindByIdentifier's equality on one
			// array element, per type.
			Keys:    bson.D{{Key: "type", Value: 1}, {Key: "identifiers", Value: 1}},
			Options: options.Index().SetName(idxIdentifiers),
		}},
		{s.history, idxHistory, mongo.IndexModel{
			Keys:    bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "version", Value: -1}},
			Options: options.Index().SetName(idxHistory),
		}},
		{s.history, idxClaims, mongo.IndexModel{
			// Sparse: only claims of unfinished transactions carry txn.
			Keys:    bson.D{{Key: "txn", Value: 1}},
			Options: options.Index().SetName(idxClaims).SetSparse(true),
		}},
		{s.txns, idxTxnState, mongo.IndexModel{
			Keys:    bson.D{{Key: "state", Value: 1}, {Key: "created", Value: 1}},
			Options: options.Index().SetName(idxTxnState),
		}},
		// Usage log: each search filter's equality field, then _id
		// descending, serves the filter and the newest-first order at once.
		{s.auditColl, idxAuditPat, mongo.IndexModel{
			Keys:    bson.D{{Key: "patient", Value: 1}, {Key: "_id", Value: -1}},
			Options: options.Index().SetName(idxAuditPat),
		}},
		{s.auditColl, idxAuditAgent, mongo.IndexModel{
			Keys:    bson.D{{Key: "agent", Value: 1}, {Key: "_id", Value: -1}},
			Options: options.Index().SetName(idxAuditAgent),
		}},
		{s.auditColl, idxAuditOrg, mongo.IndexModel{
			Keys:    bson.D{{Key: "org", Value: 1}, {Key: "_id", Value: -1}},
			Options: options.Index().SetName(idxAuditOrg),
		}},
		{s.auditColl, idxAuditTime, mongo.IndexModel{
			Keys:    bson.D{{Key: "recorded", Value: 1}},
			Options: options.Index().SetName(idxAuditTime),
		}},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("mongodb: create index %s.%s: %w", ix.coll.Name(), ix.name, err)
		}
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Ping(ctx, readpref.Primary())
}

// Close implements store.Store. It lets the usage-log committer finish the
// batch it is writing; appends still queued fail.
func (s *Store) Close() error {
	s.stopCommitter()
	s.disconnect.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closeErr = s.client.Disconnect(ctx)
	})
	return s.closeErr
}

// doc is a resource version as stored, in resources (current version,
// _id "Type/id") and in history (every version, _id "Type/id/version").
type doc struct {
	Key         string    `bson:"_id"`
	Type        string    `bson:"type"`
	ID          string    `bson:"id"`
	Version     int64     `bson:"version"`
	Patient     string    `bson:"patient"`
	LastUpdated time.Time `bson:"lastUpdated"`
	Deleted     bool      `bson:"deleted"`
	Body        []byte    `bson:"body,omitempty"`
	// Index is the opaque search index (Write.Index), Identifiers the
	// business identifiers "system|value" (Write.Identifiers); a deleted
	// version has neither.
	Index       []byte   `bson:"index,omitempty"`
	Identifiers []string `bson:"identifiers,omitempty"`
	// Txn and Exp mark a history document as a claim of an unfinished
	// transaction: the version is not committed unless the transaction is.
	Txn string     `bson:"txn,omitempty"`
	Exp *time.Time `bson:"exp,omitempty"`
}

func (d *doc) version() store.Version {
	return store.Version{
		Type:        d.Type,
		ID:          d.ID,
		VersionID:   d.Version,
		LastUpdated: d.LastUpdated.UTC(),
		Deleted:     d.Deleted,
		Patient:     d.Patient,
		Body:        d.Body,
		Index:       d.Index,
	}
}

func resourceKey(typ, id string) string { return typ + "/" + id }

func historyKey(typ, id string, v int64) string { return fmt.Sprintf("%s/%s/%d", typ, id, v) }
