package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// The usage log. DESIGN.md ("Usage log") explains the protocol: a group of
// appends is committed by inserting ONE document into auditbatches whose
// _id is the Seq of its first record (head+1, so the unique _id serialises
// appenders of every process), carrying every record already linked. That
// single insert is the all-or-nothing commit point; the records are then
// copied ("materialised") into audit, one document per record, _id = Seq,
// which is what readers and indexes use.
//
// The usage-log entries of a committed transaction (Commit of a batch with
// writes or queue ops) are appended the same way, after its commit point,
// by whoever applies it: the writer, or a recoverer after the writer died.
// The batch document lists the ids of the transactions whose entries it
// holds (txns), and the committer looks them up before appending: since
// every append inserts at the head it read, and the unique _id refuses it
// if another append got there first, "not found at or below the head, and
// inserted right after it" means nobody else appended them, so each
// transaction's entries are in the chain exactly once.

// auditDoc is one usage-log record in the audit collection.
type auditDoc struct {
	Seq      int64     `bson:"_id"`
	Patient  string    `bson:"patient"`
	Agent    string    `bson:"agent"`
	Org      string    `bson:"org"`
	Recorded time.Time `bson:"recorded"`
	Outcome  string    `bson:"outcome"`
	Hash     string    `bson:"hash"`
	Prev     string    `bson:"prev"`
	Body     []byte    `bson:"body"` // the linked AuditEvent JSON
}

func (d *auditDoc) record() store.AuditRecord {
	return store.AuditRecord{
		Seq: d.Seq,
		AuditEntry: store.AuditEntry{
			Patient:  d.Patient,
			AgentHPR: d.Agent,
			Org:      d.Org,
			Recorded: d.Recorded.UTC(),
			Outcome:  d.Outcome,
			Body:     d.Body,
		},
		Hash: d.Hash,
	}
}

// auditBatch is the commit point of one group commit. Records is removed
// once they are all in the audit collection; what stays (start, count and
// the hashes at both ends) is a compact second copy of the chain's shape,
// which is how a truncated tail of audit is detected (AuditHead).
type auditBatch struct {
	Start   int64     `bson:"_id"` // Seq of the first record
	N       int64     `bson:"n"`
	Prev    string    `bson:"prev"` // hash of record Start-1, "" for the first
	Head    string    `bson:"head"` // hash of record Start+N-1
	Created time.Time `bson:"created"`
	// Txns are the transactions whose usage-log entries the batch holds.
	Txns    []string   `bson:"txns,omitempty"`
	Records []auditDoc `bson:"records,omitempty"` // until materialised
}

const (
	// maxAuditBatchBytes bounds the bodies in one batch document, well
	// under BSON's 16 MiB document limit; a batch takes at least one
	// request, so maxAuditRequestBytes bounds what one request may carry.
	maxAuditBatchBytes   = 4 << 20
	maxAuditRequestBytes = 12 << 20
	// maxAuditBatchRecords bounds the records of one batch.
	maxAuditBatchRecords = 4096
	// auditRaceAttempts bounds how often one group is relinked after
	// another process appended first. Every lost race is another
	// appender's progress, so this is only hit under extreme contention.
	auditRaceAttempts = 64
)

var errClosed = errors.New("mongodb: store closed")

type auditReq struct {
	ctx     context.Context
	link    store.LinkFunc
	entries []store.AuditEntry
	txn     string // the transaction whose entries these are, if any
	size    int
	done    chan auditResult // buffered: the committer never blocks on it
}

type auditResult struct {
	recs []store.AuditRecord
	err  error
}

// committer is the one goroutine of a Store that appends to the usage log.
// It takes every request queued while it was busy and commits them as one
// batch (group commit): one insert of the batch document and one insertMany
// of its records, both with write concern majority + journal.
type committer struct {
	s      *Store
	reqs   chan *auditReq
	quit   chan struct{}
	exited chan struct{}

	// Owned by the committer goroutine: the head as of its last append,
	// valid while known. Another process's append shows up as a duplicate
	// _id, after which the head is read again.
	known bool
	next  int64
	head  string
	carry *auditReq // taken from the queue but left for the next batch
}

// startCommitter is called by Open.
func (s *Store) startCommitter() {
	c := &committer{
		s:      s,
		reqs:   make(chan *auditReq, 256),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	s.audit = c
	go c.run()
}

// stopCommitter lets the committer finish the batch it is writing, answers
// what is still queued with errClosed and waits for it to exit.
func (s *Store) stopCommitter() {
	s.closeOnce.Do(func() { close(s.audit.quit) })
	<-s.audit.exited
}

// AppendAudit implements store.AuditLog. It returns once the batch holding
// the entries is committed with majority + journal and the records are in
// the audit collection. An error means the entries were not appended,
// except when ctx ends while the batch is being written: then the outcome
// is unknown (the entries may still appear), as with any write whose
// acknowledgement is lost.
func (s *Store) AppendAudit(ctx context.Context, link store.LinkFunc, entries []store.AuditEntry) ([]store.AuditRecord, error) {
	return s.appendAudit(ctx, link, entries, "")
}

// appendAudit is AppendAudit for the entries of transaction txn ("" for
// none): entries the chain already holds for txn are not appended again,
// and nil records are returned for them.
func (s *Store) appendAudit(ctx context.Context, link store.LinkFunc, entries []store.AuditEntry, txn string) ([]store.AuditRecord, error) {
	if len(entries) == 0 {
		return []store.AuditRecord{}, nil
	}
	if link == nil {
		return nil, errors.New("mongodb: append audit: no link function")
	}
	size := 0
	for _, e := range entries {
		size += len(e.Body) + len(e.Patient) + len(e.AgentHPR) + len(e.Org) + len(e.Outcome) + 256
	}
	if size > maxAuditRequestBytes {
		return nil, fmt.Errorf("mongodb: append audit: %d entries of %d bytes exceed the %d bytes one append may carry", len(entries), size, maxAuditRequestBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := s.audit
	r := &auditReq{ctx: ctx, link: link, entries: entries, txn: txn, size: size, done: make(chan auditResult, 1)}
	select {
	case c.reqs <- r:
	case <-c.quit:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.recs, res.err
	case <-c.exited:
		select {
		case res := <-r.done:
			return res.recs, res.err
		default:
			return nil, errClosed
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("mongodb: append audit: outcome unknown: %w", ctx.Err())
	}
}

func (c *committer) run() {
	defer close(c.exited)
	for {
		first := c.carry
		c.carry = nil
		if first == nil {
			select {
			case first = <-c.reqs:
			case <-c.quit:
				c.drain()
				return
			}
		}
		batch := []*auditReq{first}
		size, n := first.size, len(first.entries)
	gather:
		for size < maxAuditBatchBytes && n < maxAuditBatchRecords {
			select {
			case r := <-c.reqs:
				if size+r.size > maxAuditBatchBytes || n+len(r.entries) > maxAuditBatchRecords {
					c.carry = r
					break gather
				}
				batch = append(batch, r)
				size += r.size
				n += len(r.entries)
			default:
				break gather
			}
		}
		groupSize.Observe(float64(len(batch)))
		c.commit(batch)
	}
}

// groupSize is the usage-log group commit's size, for monitoring.
var groupSize = telemetry.CommitGroup.WithLabelValues("mongodb")

func (c *committer) drain() {
	if c.carry != nil {
		c.carry.done <- auditResult{err: errClosed}
	}
	for {
		select {
		case r := <-c.reqs:
			r.done <- auditResult{err: errClosed}
		default:
			return
		}
	}
}

// commit appends one group: link it after the head, insert the batch
// document (the commit point), materialise the records, answer the callers.
func (c *committer) commit(batch []*auditReq) {
	// A request whose caller already gave up is not written.
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- auditResult{err: err}
			continue
		}
		live = append(live, r)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	s := c.s
	// The batch serves many callers, so no single caller's context bounds
	// it; the lock TTL does (a commit that takes longer is broken anyway).
	ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
	defer cancel()
	fail := func(reqs []*auditReq, err error) {
		for _, r := range reqs {
			r.done <- auditResult{err: err}
		}
	}

	for attempt := 1; ; attempt++ {
		if !c.known {
			seq, head, err := s.settleAudit(ctx)
			if err != nil {
				fail(batch, fmt.Errorf("mongodb: append audit: reading the head: %w", classify(err)))
				return
			}
			c.next, c.head, c.known = seq+1, head, true
		}
		var err error
		if batch, err = c.skipAppended(ctx, batch); err != nil {
			fail(batch, fmt.Errorf("mongodb: append audit: looking for transactions already appended: %w", classify(err)))
			return
		}
		b, reqs, recs := c.link(batch)
		batch = reqs
		if len(batch) == 0 {
			return
		}
		oc, cancel := s.op(ctx)
		_, err = s.auditBatches.InsertOne(oc, b)
		cancel()
		if err != nil && mongo.IsDuplicateKeyError(err) {
			// Another process appended first: read its head and relink.
			c.known = false
			if attempt == auditRaceAttempts {
				fail(batch, fmt.Errorf("mongodb: append audit: lost %d races for the chain head", attempt))
				return
			}
			continue
		}
		if err != nil {
			// Unknown outcome: the batch may have been written. Look.
			var got auditBatch
			oc, cancel := s.op(ctx)
			ferr := s.auditBatches.FindOne(oc, bson.D{{Key: "_id", Value: b.Start}}).Decode(&got)
			cancel()
			c.known = false
			if ferr != nil || got.Head != b.Head {
				if ferr != nil && !errors.Is(ferr, mongo.ErrNoDocuments) {
					err = fmt.Errorf("%w (and reading it back: %v; the entries may still be appended)", err, ferr)
				}
				fail(batch, fmt.Errorf("mongodb: append audit: %w", classify(err)))
				return
			}
			// It was written after all.
		}
		if s.crashAuditAfterBatch {
			fail(batch, errCrashed)
			return
		}
		if err := s.materialise(ctx, b.Records); err != nil {
			// Committed and durable, but not yet readable; recovery (Open,
			// or this committer's next head read) completes it. The callers
			// are told, so no data is served on the strength of a record
			// nobody can read yet.
			c.known = false
			fail(batch, fmt.Errorf("mongodb: append audit: committed as records %d-%d but not yet readable: %w", b.Start, b.Start+b.N-1, classify(err)))
			return
		}
		c.next, c.head = b.Start+b.N, b.Head
		for i, r := range batch {
			r.done <- auditResult{recs: recs[i]}
		}
		// The records are in audit; the copy in the batch is no longer
		// needed. Failing here only leaves work for the next settle.
		oc, cancel = s.op(ctx)
		_, _ = s.auditBatches.UpdateOne(oc, bson.D{{Key: "_id", Value: b.Start}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "records", Value: ""}}}})
		cancel()
		return
	}
}

// skipAppended answers and drops the requests of transactions whose
// entries a batch document already holds (materialising that batch if it
// is not yet), and refuses a second request for the same transaction in
// one group. It runs before every insert attempt: a batch inserted by
// someone else after it looked takes the _id this attempt wants, so the
// attempt fails and looks again.
func (c *committer) skipAppended(ctx context.Context, batch []*auditReq) ([]*auditReq, error) {
	var ids []string
	for _, r := range batch {
		if r.txn != "" {
			ids = append(ids, r.txn)
		}
	}
	if len(ids) == 0 {
		return batch, nil
	}
	s := c.s
	var found []auditBatch
	err := s.findAll(ctx, s.auditBatches, &found, bson.D{{Key: "txns", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return batch, err
	}
	appended := map[string]bool{}
	for _, b := range found {
		if len(b.Records) > 0 {
			if err := s.materialise(ctx, b.Records); err != nil {
				return batch, err
			}
		}
		for _, t := range b.Txns {
			appended[t] = true
		}
	}
	kept := batch[:0]
	seen := map[string]bool{}
	for _, r := range batch {
		switch {
		case r.txn == "":
		case appended[r.txn]:
			r.done <- auditResult{}
			continue
		case seen[r.txn]:
			// Two appliers of one transaction met in one group (its
			// writer and a recoverer): one appends, the other retries
			// later and then finds it appended.
			r.done <- auditResult{err: fmt.Errorf("mongodb: append audit: transaction %s is being appended by another request", r.txn)}
			continue
		}
		seen[r.txn] = true
		kept = append(kept, r)
	}
	return kept, nil
}

// link links the batch after the committer's head. A request whose entries
// cannot be linked is answered with the error and left out; the rest keep
// their order, each request's records contiguous.
func (c *committer) link(batch []*auditReq) (auditBatch, []*auditReq, [][]store.AuditRecord) {
	b := auditBatch{Start: c.next, Prev: c.head, Created: time.Now().UTC()}
	kept := make([]*auditReq, 0, len(batch))
	var out [][]store.AuditRecord
	seq, prev := c.next, c.head
	for _, r := range batch {
		docs := make([]auditDoc, 0, len(r.entries))
		recs := make([]store.AuditRecord, 0, len(r.entries))
		p := prev
		var err error
		for i, e := range r.entries {
			linked, hash, lerr := safeLink(r.link, p, e.Body)
			if lerr != nil {
				err = fmt.Errorf("mongodb: append audit: linking entry %d: %w", i, lerr)
				break
			}
			d := auditDoc{
				Seq:      seq + int64(i),
				Patient:  e.Patient,
				Agent:    e.AgentHPR,
				Org:      e.Org,
				Recorded: e.Recorded.UTC().Truncate(time.Millisecond), // BSON dates are milliseconds
				Outcome:  e.Outcome,
				Hash:     hash,
				Prev:     p,
				Body:     linked,
			}
			docs = append(docs, d)
			recs = append(recs, d.record())
			p = hash
		}
		if err != nil {
			r.done <- auditResult{err: err}
			continue
		}
		b.Records = append(b.Records, docs...)
		if r.txn != "" {
			b.Txns = append(b.Txns, r.txn)
		}
		kept = append(kept, r)
		out = append(out, recs)
		seq += int64(len(docs))
		prev = p
	}
	b.N, b.Head = int64(len(b.Records)), prev
	return b, kept, out
}

// safeLink runs a caller's link function on the committer goroutine,
// where a panic would take every later append down with it.
func safeLink(link store.LinkFunc, prev string, body []byte) (linked []byte, hash string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("link panicked: %v", p)
		}
	}()
	return link(prev, body)
}

// materialise inserts the records of a committed batch into audit. It is
// idempotent: a record already there (an earlier, interrupted attempt, or
// another process settling the same batch) counts as done.
func (s *Store) materialise(ctx context.Context, recs []auditDoc) error {
	docs := make([]any, len(recs))
	for i := range recs {
		docs[i] = &recs[i]
	}
	// Ordered and resumed after a duplicate, as in replaceCurrent: FerretDB
	// stops at the first error even when unordered.
	for len(docs) > 0 {
		c, cancel := s.op(ctx)
		_, err := s.auditColl.InsertMany(c, docs, options.InsertMany().SetOrdered(true))
		cancel()
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) != 1 || !isDuplicateCode(bwe.WriteErrors[0].Code) {
			return err
		}
		docs = docs[bwe.WriteErrors[0].Index+1:]
	}
	return nil
}

// settleAudit materialises every committed batch whose records are not all
// in audit yet (its writer died, or failed, between the two steps), and
// returns the head of the chain. Safe to run beside live appenders: it only
// inserts records that a committed batch fixed, and does so idempotently.
func (s *Store) settleAudit(ctx context.Context) (int64, string, error) {
	var pending []auditBatch
	err := s.findAll(ctx, s.auditBatches, &pending, bson.D{{Key: "records", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, "", err
	}
	for _, b := range pending {
		// Insert only what is missing, so settling a batch that was fully
		// materialised (only its clean-up was lost) costs one query.
		have := map[int64]bool{}
		var ids []struct {
			Seq int64 `bson:"_id"`
		}
		err := s.findAll(ctx, s.auditColl, &ids, bson.D{{Key: "_id", Value: bson.D{
			{Key: "$gte", Value: b.Start}, {Key: "$lt", Value: b.Start + b.N}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return 0, "", err
		}
		for _, id := range ids {
			have[id.Seq] = true
		}
		var missing []auditDoc
		for _, r := range b.Records {
			if !have[r.Seq] {
				missing = append(missing, r)
			}
		}
		if err := s.materialise(ctx, missing); err != nil {
			return 0, "", err
		}
		c, cancel := s.op(ctx)
		_, err = s.auditBatches.UpdateOne(c, bson.D{{Key: "_id", Value: b.Start}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "records", Value: ""}}}})
		cancel()
		if err != nil {
			return 0, "", err
		}
	}
	return s.auditHead(ctx)
}

// auditHead reads the head from the last batch document.
func (s *Store) auditHead(ctx context.Context) (int64, string, error) {
	var b auditBatch
	c, cancel := s.op(ctx)
	defer cancel()
	err := s.auditBatches.FindOne(c, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "records", Value: 0}})).Decode(&b)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return b.Start + b.N - 1, b.Head, nil
}

// AuditHead implements store.AuditLog. The head comes from the batch
// documents, not from the audit collection, so records cut off the end of
// audit show as a head that ScanAudit does not reach.
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	seq, hash, err := s.auditHead(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("mongodb: audit head: %w", classify(err))
	}
	return seq, hash, nil
}

// ScanAudit implements store.AuditLog.
func (s *Store) ScanAudit(ctx context.Context, from int64, fn func(store.AuditRecord) error) error {
	return s.stream(ctx, s.auditColl, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: from}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(500), func(raw bson.Raw) error {
			var d auditDoc
			if err := bson.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("mongodb: scan audit: %w", err)
			}
			return fn(d.record())
		}, "scan audit")
}

// auditFilter builds the SearchAudit filter. Every value is a plain BSON
// string, date or integer taken from a typed field of q; nothing a caller
// supplies can become an operator or a field name.
func auditFilter(q store.AuditQuery) bson.D {
	f := bson.D{}
	for _, kv := range []struct{ key, val string }{
		{"patient", q.Patient}, {"agent", q.AgentHPR}, {"org", q.Org}, {"outcome", q.Outcome},
	} {
		if kv.val != "" {
			f = append(f, bson.E{Key: kv.key, Value: kv.val})
		}
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		r := bson.D{}
		if !q.From.IsZero() {
			r = append(r, bson.E{Key: "$gte", Value: q.From.UTC()})
		}
		if !q.To.IsZero() {
			r = append(r, bson.E{Key: "$lte", Value: q.To.UTC()})
		}
		f = append(f, bson.E{Key: "recorded", Value: r})
	}
	if q.Before > 0 {
		f = append(f, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: q.Before}}})
	}
	return f
}

// SearchAudit implements store.AuditLog: newest first. The filters on
// patient, agent and org are served by {patient|agent|org, _id:-1}, which
// also gives the order, so Count stops the scan early.
func (s *Store) SearchAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}})
	if q.Count > 0 {
		opts.SetLimit(int64(q.Count))
	}
	var docs []auditDoc
	if err := s.findAll(ctx, s.auditColl, &docs, auditFilter(q), opts); err != nil {
		return nil, fmt.Errorf("mongodb: search audit: %w", classify(err))
	}
	// Sorted again, as in History: the order must not depend on the
	// server honouring the sort.
	sort.Slice(docs, func(i, j int) bool { return docs[i].Seq > docs[j].Seq })
	out := make([]store.AuditRecord, len(docs))
	for i := range docs {
		out[i] = docs[i].record()
	}
	return out, nil
}

// closeGuard is embedded in Store so that Close stops the committer and
// disconnects once, however often it is called.
type closeGuard struct {
	recovererOnce sync.Once
	closeOnce     sync.Once
	disconnect    sync.Once
	closeErr      error
}
