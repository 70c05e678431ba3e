// Package mongodb is the MongoDB storage engine. It relies only on
// single-document atomicity and unique keys, never on multi-document
// transactions, $lookup or change streams, so it runs on MongoDB (replica set
// or sharded cluster) and on FerretDB alike. DESIGN.md explains the protocol.
//
// Every call to the database is bounded by Options.OpTimeout; an error that
// means the database did not answer in time or could not be reached wraps
// store.ErrUnavailable.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

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
	// SkipRecovery leaves unfinished transactions alone at Open and
	// afterwards (they are still resolved lazily when a writer meets an
	// expired claim). Useful for read-only tools; the server should leave
	// it false.
	SkipRecovery bool
	// OpTimeout bounds every call to the database (default 5s): with the
	// database down or unreachable, a call returns within it with an
	// error wrapping store.ErrUnavailable instead of hanging the request.
	// Finding a server and connecting to it get at most
	// min(OpTimeout, 3s) of it, so that a stopped server is reported
	// before the operation's own time is up.
	OpTimeout time.Duration
	// Link is the usage log's link function (audit.Link), needed to
	// append the usage-log entries of a transaction that another process
	// committed and did not finish (recovery). Transactions of this
	// process are finished with the link function they were committed
	// with. Without it, such a transaction stays pending and recovery
	// reports it.
	Link store.LinkFunc
}

// DefaultOpTimeout is the default Options.OpTimeout.
const DefaultOpTimeout = 5 * time.Second

// Collection and index names are part of the on-disk format.
const (
	collResources = "resources"
	collHistory   = "history"
	collTxns      = "txns"
	collAudit     = "audit"
	collBatches   = "auditbatches"
	collQueue     = "queue"
	collClaims    = "claims"

	idxCompartment = "patient_type_id"
	idxIdentifiers = "type_identifiers"
	idxHistory     = "type_id_version"
	idxClaims      = "txn"
	idxTxnState    = "state_created"
	idxAuditPat    = "patient_seq"
	idxAuditAgent  = "agent_seq"
	idxAuditOrg    = "org_seq"
	idxAuditTime   = "recorded"
	idxBatchTxns   = "txns"
	idxQueuePat    = "patient"
	idxKeyClaims   = "txn"
	idxKeyGen      = "key_gen"
)

// Store implements store.Store on MongoDB.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	resources *mongo.Collection
	history   *mongo.Collection
	txns      *mongo.Collection
	queue     *mongo.Collection
	claims    *mongo.Collection // generations of Unique identifiers and Guards (claims.go)
	ttl       time.Duration
	opTimeout time.Duration

	// link is Options.Link; links holds the link function of each
	// transaction of this process whose usage-log entries are not
	// appended yet (txn id -> store.LinkFunc), so that finishing it here
	// never depends on Options.Link.
	link  store.LinkFunc
	links sync.Map

	// recoverer runs Recover every LockTTL until Close (unless
	// SkipRecovery), so that a transaction committed by a process that
	// died is finished even if no writer meets its claims and nobody
	// restarts: a batch of queue items or usage-log entries has none.
	stopRecoverer chan struct{}
	recovererDone chan struct{}

	// The usage log: records, and the batch documents that commit them.
	auditColl    *mongo.Collection
	auditBatches *mongo.Collection
	audit        *committer
	closeGuard

	// onceState is the per-process state of ClaimOnce (once.go).
	onceState onceState

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
	_ store.Queues      = (*Store)(nil)
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
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	journal := true
	// Majority + journal so that an acknowledged commit survives a primary
	// failover; majority reads so a reader never sees a write that a
	// failover could roll back. The driver's defaults would let a call
	// wait 30 s for a server that is gone; a request waiting that long
	// is worse than a quick 503.
	connect := min(opts.OpTimeout, 3*time.Second)
	copts := options.Client().ApplyURI(opts.URI).
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal}).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary()).
		SetTimeout(opts.OpTimeout).
		SetServerSelectionTimeout(connect).
		SetConnectTimeout(connect)
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongodb: connect: %w", classify(err))
	}
	db := client.Database(opts.Database)
	s := &Store{
		client:    client,
		db:        db,
		resources: db.Collection(collResources),
		history:   db.Collection(collHistory),
		txns:      db.Collection(collTxns),
		queue:     db.Collection(collQueue),
		claims:    db.Collection(collClaims),
		ttl:       opts.LockTTL,
		opTimeout: opts.OpTimeout,
		link:      opts.Link,

		auditColl:    db.Collection(collAudit),
		auditBatches: db.Collection(collBatches),
	}
	if err := s.ensureIndexes(ctx); err != nil {
		disconnect(client, opts.OpTimeout)
		return nil, err
	}
	if err := s.ensureOnceIndex(ctx); err != nil {
		disconnect(client, opts.OpTimeout)
		return nil, err
	}
	// The committer runs before recovery: rolling a transaction forward
	// appends its usage-log entries through it.
	s.startCommitter()
	if !opts.SkipRecovery {
		if err := s.Recover(ctx); err != nil {
			s.stopCommitter()
			disconnect(client, opts.OpTimeout)
			return nil, err
		}
		// Usage-log batches committed by a process that died before
		// copying their records into audit.
		if _, _, err := s.settleAudit(ctx); err != nil {
			s.stopCommitter()
			disconnect(client, opts.OpTimeout)
			return nil, fmt.Errorf("mongodb: recovering the usage log: %w", classify(err))
		}
		s.stopRecoverer, s.recovererDone = make(chan struct{}), make(chan struct{})
		go s.recoverLoop()
	}
	return s, nil
}

// disconnect closes a client that Open gave up on.
func disconnect(client *mongo.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = client.Disconnect(ctx)
}

// recoverLoop runs Recover every LockTTL. Failures are left for the next
// round: what it settles stays recorded in the database until then.
func (s *Store) recoverLoop() {
	defer close(s.recovererDone)
	t := time.NewTicker(s.ttl)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopRecoverer
		cancel()
	}()
	for {
		select {
		case <-s.stopRecoverer:
			return
		case <-t.C:
			_ = s.Recover(ctx)
		}
	}
}

// op bounds one call to the database by the operation timeout (and by
// ctx). The client's own timeout covers only contexts without a deadline;
// this also covers the longer ones of multi-step protocols.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

// findAll runs one Find under the operation timeout and decodes every
// document it matches into out (a pointer to a slice).
func (s *Store) findAll(ctx context.Context, coll *mongo.Collection, out any, filter any, opts ...options.Lister[options.FindOptions]) error {
	c, cancel := s.op(ctx)
	defer cancel()
	cur, err := coll.Find(c, filter, opts...)
	if err != nil {
		return err
	}
	return cur.All(c, out)
}

// classify marks err with store.ErrUnavailable when it means that the
// database could not be reached or did not answer in time (a server
// that cannot be selected, a network error, a timeout), as opposed to an
// answer (a duplicate key, a refused command) or a caller that went away.
func classify(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	var sse topology.ServerSelectionError
	var ce topology.ConnectionError
	if mongo.IsTimeout(err) || mongo.IsNetworkError(err) || errors.As(err, &sse) || errors.As(err, &ce) ||
		errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
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
		{s.auditBatches, idxBatchTxns, mongo.IndexModel{
			// Sparse: only batches holding the usage-log entries of
			// transactions list them; roll-forward looks a transaction
			// up here before appending its entries.
			Keys:    bson.D{{Key: "txns", Value: 1}},
			Options: options.Index().SetName(idxBatchTxns).SetSparse(true),
		}},
		{s.claims, idxKeyClaims, mongo.IndexModel{
			// Sparse, as in history: recovery's look for the key claims
			// of unfinished transactions.
			Keys:    bson.D{{Key: "txn", Value: 1}},
			Options: options.Index().SetName(idxKeyClaims).SetSparse(true),
		}},
		{s.claims, idxKeyGen, mongo.IndexModel{
			// The generations of the keys a commit claims (readGenerations).
			Keys:    bson.D{{Key: "key", Value: 1}, {Key: "gen", Value: -1}},
			Options: options.Index().SetName(idxKeyGen),
		}},
		{s.queue, idxQueuePat, mongo.IndexModel{
			Keys:    bson.D{{Key: "patient", Value: 1}},
			Options: options.Index().SetName(idxQueuePat),
		}},
	} {
		c, cancel := s.op(ctx)
		_, err := ix.coll.Indexes().CreateOne(c, ix.model)
		cancel()
		if err != nil {
			return fmt.Errorf("mongodb: create index %s.%s: %w", ix.coll.Name(), ix.name, classify(err))
		}
	}
	return nil
}

// Ping implements store.Store: the primary answers within the operation
// timeout, or the error wraps store.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	c, cancel := s.op(ctx)
	defer cancel()
	err := s.client.Ping(c, readpref.Primary())
	if err == nil || ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("%w: mongodb: ping: %w", store.ErrUnavailable, err)
}

// Close implements store.Store. It stops background recovery, lets the
// usage-log committer finish the batch it is writing (appends still
// queued fail) and disconnects.
func (s *Store) Close() error {
	s.recovererOnce.Do(func() {
		if s.stopRecoverer != nil {
			close(s.stopRecoverer)
			<-s.recovererDone
		}
	})
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
