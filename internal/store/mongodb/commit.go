package mongodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// txnRecord is the commit point of a transaction: whoever inserts the record
// for a transaction id first decides its fate, the writer (committed) or a
// recoverer that found the writer's claims expired (aborted). Insert of a
// unique _id is atomic on every MongoDB-protocol server, unlike conditional
// updates, which FerretDB evaluates in two steps.
//
// A committed record carries everything of the batch that is not already
// in a claimed history document: its queue ops and its usage-log entries
// (unlinked: their place in the chain is decided when they are appended),
// so that whoever rolls it forward applies the whole batch.
type txnRecord struct {
	ID      string       `bson:"_id"`
	State   string       `bson:"state"`
	Created time.Time    `bson:"created"`
	Writes  []txnWrite   `bson:"writes,omitempty"`
	Queue   []txnQueueOp `bson:"queue,omitempty"`
	Audit   []txnAudit   `bson:"audit,omitempty"`
	// Claims are the _ids of the transaction's key claims (claims.go),
	// whose markers the clean-up clears.
	Claims []string `bson:"claims,omitempty"`
}

type txnWrite struct {
	Key     string `bson:"key"`  // resources _id
	Hist    string `bson:"hist"` // history _id of the new version
	Version int64  `bson:"version"`
	// Shard is the patient of the resources document the version
	// replaces (its own patient when there is none): the upsert that
	// makes it current filters on it, as a sharded collection needs the
	// whole shard key. Nil in records of earlier releases.
	Shard *string `bson:"shard,omitempty"`
}

// txnQueueOp is a store.QueueOp as the record keeps it.
type txnQueueOp struct {
	Key     string `bson:"key"` // queue _id
	Queue   string `bson:"queue"`
	ID      string `bson:"id"`
	Patient string `bson:"patient,omitempty"`
	Body    []byte `bson:"body,omitempty"`
	Remove  bool   `bson:"remove,omitempty"`
}

// txnAudit is a store.AuditEntry not yet linked to the chain.
type txnAudit struct {
	Patient  string    `bson:"patient"`
	Agent    string    `bson:"agent"`
	Org      string    `bson:"org"`
	Recorded time.Time `bson:"recorded"`
	Outcome  string    `bson:"outcome"`
	Body     []byte    `bson:"body"`
}

func (a txnAudit) entry() store.AuditEntry {
	return store.AuditEntry{Patient: a.Patient, AgentHPR: a.Agent, Org: a.Org, Recorded: a.Recorded.UTC(), Outcome: a.Outcome, Body: a.Body}
}

const (
	stateCommitted = "committed"
	stateAborted   = "aborted"
)

// maxAttempts bounds how often Commit starts over after losing a race; a
// resource that stays claimed by someone else after that is reported busy.
const maxAttempts = 5

// maxTxnBytes bounds the queue bodies and usage-log bodies one batch may
// carry: they travel in the transaction record, a single document, which
// BSON limits to 16 MiB.
const maxTxnBytes = 12 << 20

type crashPoint int

const (
	crashNone             crashPoint = iota
	crashAfterClaims                 // claims inserted, no txn record
	crashAfterCommitPoint            // txn record inserted, nothing applied
	crashAfterAudit                  // usage-log entries appended, nothing else
	crashMidApply                    // entries appended, queue applied, first resource current, the rest not
)

var errCrashed = errors.New("mongodb: simulated crash")

func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/\x00")
}

// validate refuses what can be refused without the database.
func validate(b *store.Batch) error {
	seen := make(map[string]bool, len(b.Writes))
	for i, w := range b.Writes {
		switch {
		case w.Type == "" || w.ID == "":
			return fmt.Errorf("mongodb: write %d: type and id are required", i)
		case w.Op != store.OpPut && w.Op != store.OpDelete:
			return fmt.Errorf("mongodb: write %d: unknown op %d", i, w.Op)
		case w.Op == store.OpPut && w.Render == nil:
			return fmt.Errorf("mongodb: write %d: put of %s/%s without Render", i, w.Type, w.ID)
		}
		if w.Op == store.OpPut {
			for _, u := range w.Unique {
				if !slices.Contains(w.Identifiers, u) {
					return fmt.Errorf("mongodb: write %d (%s/%s): unique identifier %.80q is not among its Identifiers", i, w.Type, w.ID, u)
				}
			}
		}
		k := resourceKey(w.Type, w.ID)
		if seen[k] {
			return fmt.Errorf("mongodb: write %d: %s is written more than once in one commit", i, k)
		}
		seen[k] = true
	}
	size := 0
	items := make(map[string]bool, len(b.Queue))
	for i, q := range b.Queue {
		if !validName(q.Queue) || !validName(q.ID) || strings.IndexByte(q.Patient, 0) >= 0 {
			return fmt.Errorf("mongodb: queue op %d: invalid queue, id or patient %q/%q/%q", i, q.Queue, q.ID, q.Patient)
		}
		k := queueKey(q.Queue, q.ID)
		if items[k] {
			return fmt.Errorf("mongodb: queue op %d: item %s is changed more than once in one commit", i, k)
		}
		items[k] = true
		size += len(q.Body)
	}
	if len(b.Audit) > 0 && b.Link == nil {
		return errors.New("mongodb: usage-log entries without a link function")
	}
	for _, e := range b.Audit {
		size += len(e.Body) + len(e.Patient) + len(e.AgentHPR) + len(e.Org) + len(e.Outcome) + 256
	}
	if size > maxTxnBytes {
		return fmt.Errorf("mongodb: commit: %d queue ops and %d usage-log entries of %d bytes exceed the %d bytes one commit may carry",
			len(b.Queue), len(b.Audit), size, maxTxnBytes)
	}
	return nil
}

// Commit implements store.Store. See DESIGN.md for the protocol. A batch
// with usage-log entries only is an append (AppendAudit), one with a
// single queue op a single-document write; everything else goes through
// the transaction record.
//
// An error wrapping store.ErrUnavailable may come after the commit point
// (its text then says so): the batch is committed, and recovery makes it
// visible.
func (s *Store) Commit(ctx context.Context, b store.Batch) ([]store.Version, error) {
	if err := validate(&b); err != nil {
		return nil, err
	}
	if len(b.Writes) == 0 && b.Precondition != nil {
		// Nothing to guard: the check runs once, before.
		if err := b.Precondition(ctx); err != nil {
			return nil, err
		}
	}
	switch {
	case len(b.Writes) == 0 && len(b.Queue) == 0 && len(b.Audit) == 0:
		return []store.Version{}, nil
	case len(b.Writes) == 0 && len(b.Queue) == 0:
		if _, err := s.AppendAudit(ctx, b.Link, b.Audit); err != nil {
			return nil, err
		}
		return []store.Version{}, nil
	case len(b.Writes) == 0 && len(b.Audit) == 0 && len(b.Queue) == 1:
		if err := s.applyQueue(ctx, txnQueue(b.Queue)); err != nil {
			return nil, fmt.Errorf("mongodb: commit: %w", classify(err))
		}
		return []store.Version{}, nil
	}
	backoff := 2 * time.Millisecond
	// A key claim (a Unique identifier, a Guard) held by a live writer is
	// waited for longer than a busy resource: the waiter's answer (the
	// identifier is taken, the match exists) comes once that writer is
	// done, usually within a few round trips, and "busy" would only make
	// the client ask again.
	keyWait := min(s.opTimeout, s.ttl/2)
	start := time.Now()
	for attempt := 1; ; attempt++ {
		out, busy, onKey, err := s.tryCommit(ctx, &b)
		if busy == nil {
			return out, err
		}
		if attempt >= maxAttempts && !(onKey && time.Since(start) < keyWait) {
			return nil, busy
		}
		// A short pause lets a writer that is between its commit point
		// and the update of the current documents finish.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, busy
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// maxBackoff caps the pause between attempts.
const maxBackoff = 50 * time.Millisecond

func txnQueue(ops []store.QueueOp) []txnQueueOp {
	out := make([]txnQueueOp, len(ops))
	for i, q := range ops {
		out[i] = txnQueueOp{Key: queueKey(q.Queue, q.ID), Queue: q.Queue, ID: q.ID, Patient: q.Patient, Remove: q.Remove}
		if !q.Remove {
			out[i].Body = q.Body
		}
	}
	return out
}

func txnAudits(entries []store.AuditEntry) []txnAudit {
	out := make([]txnAudit, len(entries))
	for i, e := range entries {
		out[i] = txnAudit{Patient: e.Patient, Agent: e.AgentHPR, Org: e.Org, Outcome: e.Outcome, Body: e.Body,
			// BSON dates are milliseconds; the committer truncates too.
			Recorded: e.Recorded.UTC().Truncate(time.Millisecond)}
	}
	return out
}

// tryCommit makes one attempt. A non-nil busy means another writer got in
// the way and nothing of this attempt is left behind; Commit may retry
// (longer when onKey: the other writer holds a key claim).
func (s *Store) tryCommit(ctx context.Context, b *store.Batch) (out []store.Version, busy *store.ConflictError, onKey bool, err error) {
	writes := b.Writes
	keys := make([]string, len(writes))
	for i, w := range writes {
		keys[i] = resourceKey(w.Type, w.ID)
	}
	cur := map[string]*doc{}
	if len(writes) > 0 {
		if cur, err = s.loadCurrent(ctx, keys); err != nil {
			return nil, nil, false, err
		}
	}
	// The generations of the keys first, the reads they guard after: a
	// writer that commits a generation this attempt does not see yet has
	// to insert the one this attempt will claim (DESIGN.md).
	wants := claimsWanted(writes, keys, cur)
	gens, busy, err := s.readGenerations(ctx, wants, writes)
	if busy != nil || err != nil {
		return nil, busy, busy != nil, err
	}

	// BSON dates have millisecond precision; truncating here makes the
	// time given to Render equal to the one read back. Never going back in
	// time per resource keeps _history and _since consistent on clock skew.
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, d := range cur {
		if lu := d.LastUpdated.UTC(); !lu.Before(now) {
			now = lu.Add(time.Millisecond)
		}
	}

	out = make([]store.Version, len(writes))
	idents := make([][]string, len(writes))
	var claims []*doc
	var claimOf []int // index in writes of each claim
	shards := map[string]string{}
	for i, w := range writes {
		c := cur[keys[i]]
		var curV int64
		if c != nil {
			curV = c.Version
		}
		if w.Create && c != nil {
			return nil, nil, false, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictExists, Current: curV}
		}
		if w.IfMatch != 0 && w.IfMatch != curV {
			return nil, nil, false, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictVersion, Current: curV}
		}
		d := &doc{
			Key:         historyKey(w.Type, w.ID, curV+1),
			Type:        w.Type,
			ID:          w.ID,
			Version:     curV + 1,
			Patient:     w.Patient,
			LastUpdated: now,
		}
		if w.Op == store.OpDelete {
			if c == nil {
				return nil, nil, false, &store.NotFoundError{Index: i, Type: w.Type, ID: w.ID}
			}
			if c.Deleted {
				out[i] = c.version()
				continue
			}
			d.Deleted = true
			if d.Patient == "" {
				// The shard key must not change just because a delete
				// does not name the patient.
				d.Patient = c.Patient
			}
		} else {
			body, err := w.Render(d.Version, now)
			if err != nil {
				return nil, nil, false, fmt.Errorf("mongodb: render %s/%s: %w", w.Type, w.ID, err)
			}
			d.Body = body
			if len(w.Index) > 0 {
				d.Index = w.Index
			}
			d.Identifiers = slices.Compact(slices.Sorted(slices.Values(w.Identifiers)))
			idents[i] = d.Identifiers
		}
		shards[d.Key] = d.Patient
		if c != nil {
			shards[d.Key] = c.Patient
		}
		claims = append(claims, d)
		claimOf = append(claimOf, i)
	}
	if err := s.checkUnique(ctx, writes, idents, cur); err != nil {
		return nil, nil, false, err
	}
	if b.Precondition != nil {
		if err := b.Precondition(ctx); err != nil {
			return nil, nil, false, err
		}
	}
	// The entries are linked only after the commit point, when their place
	// in the chain is known. Trying the link function on them now refuses
	// a batch it would refuse then, before anything is written.
	for i, e := range b.Audit {
		if _, _, err := safeLink(b.Link, "", e.Body); err != nil {
			return nil, nil, false, fmt.Errorf("mongodb: linking usage-log entry %d: %w", i, err)
		}
	}
	if len(claims) == 0 && len(b.Queue) == 0 && len(b.Audit) == 0 {
		return out, nil, false, nil
	}

	txn := newTxnID()
	exp := time.Now().Add(s.ttl)
	hists := make([]string, len(claims))
	// Past the first network call a cancelled request must still either
	// undo or finish what it started.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ttl)
	defer cancel()
	// (1a) Claim the next generation of every key (claims.go). A
	// duplicate means another writer got there since step 1 read the
	// generation: the retry reads again and sees it.
	keyIDs, lost, err := s.insertClaims(ctx, wants, gens, claims, claimOf, txn, &exp)
	if lost || err != nil {
		if derr := s.dropKeyClaims(bg, txn, keyIDs); derr != nil && err == nil {
			err = fmt.Errorf("mongodb: commit: undoing key claims (recovery removes them): %w", classify(derr))
		}
		if err != nil {
			return nil, nil, false, err
		}
		i := wants[0].write
		var curV int64
		if c := cur[keys[i]]; c != nil {
			curV = c.Version
		}
		return nil, &store.ConflictError{Index: i, Type: writes[i].Type, ID: writes[i].ID, Reason: store.ConflictBusy, Current: curV}, true, nil
	}
	if len(claims) > 0 {
		// (1b) Claim the next version of every target by inserting its
		// history document. The unique _id makes this the lock: of two
		// writers that read the same current version only one can insert
		// version+1.
		ins := make([]any, len(claims))
		for j, d := range claims {
			d.Txn, d.Exp = txn, &exp
			ins[j] = d
			hists[j] = d.Key
		}
		c, cancelOp := s.op(ctx)
		_, err := s.history.InsertMany(c, ins, options.InsertMany().SetOrdered(false))
		cancelOp()
		if err != nil {
			s.dropClaims(bg, txn, keyIDs, hists)
			dup, ok := firstDuplicate(err)
			if !ok {
				return nil, nil, false, fmt.Errorf("mongodb: commit: %w", classify(err))
			}
			i := claimOf[dup]
			busy := &store.ConflictError{Index: i, Type: writes[i].Type, ID: writes[i].ID, Reason: store.ConflictBusy, Current: claims[dup].Version - 1}
			if err := s.meetClaim(bg, hists[dup]); err != nil {
				return nil, nil, false, err
			}
			return nil, busy, false, nil
		}
	}
	if s.crashAt == crashAfterClaims {
		return nil, nil, false, errCrashed
	}

	// (2) The commit point. A writer whose claims may already count as
	// expired must not commit: a recoverer could be undoing them.
	if time.Until(exp) < s.ttl/2 {
		s.dropClaims(bg, txn, keyIDs, hists)
		return nil, nil, false, fmt.Errorf("mongodb: commit took longer than half the lock TTL (%s); undone", s.ttl)
	}
	rec := txnRecord{ID: txn, State: stateCommitted, Created: now, Writes: make([]txnWrite, len(claims)),
		Queue: txnQueue(b.Queue), Audit: txnAudits(b.Audit), Claims: keyIDs}
	for j, d := range claims {
		shard := shards[d.Key]
		rec.Writes[j] = txnWrite{Key: resourceKey(d.Type, d.ID), Hist: d.Key, Version: d.Version, Shard: &shard}
	}
	if len(rec.Audit) > 0 {
		s.links.Store(txn, b.Link)
	}
	c, cancelOp := s.op(ctx)
	_, err = s.txns.InsertOne(c, rec)
	cancelOp()
	if err != nil {
		// The outcome is unknown (or a recoverer aborted us); resolving
		// the transaction settles it one way or the other.
		committed, rerr := s.resolve(bg, txn)
		if rerr != nil {
			return nil, nil, false, fmt.Errorf("mongodb: commit outcome unknown, recovery will settle it: %w (resolving: %v)", classify(err), rerr)
		}
		if !committed {
			s.links.Delete(txn)
			return nil, nil, false, fmt.Errorf("mongodb: commit: %w", classify(err))
		}
	} else {
		if s.crashAt == crashAfterCommitPoint {
			return nil, nil, false, errCrashed
		}
		// (3) Make the batch visible and clean up.
		if err := s.apply(bg, &rec, claims, s.crashAt); err != nil {
			if errors.Is(err, errCrashed) {
				return nil, nil, false, err
			}
			return nil, nil, false, fmt.Errorf("mongodb: committed, but making it visible failed (recovery will finish it): %w", classify(err))
		}
	}
	for j, d := range claims {
		d.Txn, d.Exp = "", nil
		out[claimOf[j]] = d.version()
	}
	return out, nil, false, nil
}

// checkUnique refuses a write whose Unique identifier another current, not
// deleted resource of its type would carry after the commit: another write
// of the batch, or a stored resource the batch does not rewrite. It must
// run after readGenerations: the identifier's claim is what makes a racing
// writer that this read cannot see yet lose (DESIGN.md, "Unique
// identifiers and guards").
func (s *Store) checkUnique(ctx context.Context, writes []store.Write, idents [][]string, cur map[string]*doc) error {
	clash := func(i int, u, other string) error {
		w := writes[i]
		var curV int64
		if c := cur[resourceKey(w.Type, w.ID)]; c != nil {
			curV = c.Version
		}
		return &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictUnique, Current: curV, Identifier: u, Other: other}
	}
	need := map[string][]string{} // type -> unique identifiers asked for
	for i, w := range writes {
		if w.Op != store.OpPut {
			continue
		}
		for _, u := range w.Unique {
			for j, x := range writes {
				if j != i && x.Type == w.Type && x.Op == store.OpPut && slices.Contains(idents[j], u) {
					return clash(i, u, "")
				}
			}
			need[w.Type] = append(need[w.Type], u)
		}
	}
	if len(need) == 0 {
		return nil
	}
	inBatch := make(map[string]bool, len(writes))
	for _, w := range writes {
		inBatch[resourceKey(w.Type, w.ID)] = true
	}
	first := -1
	var firstErr error
	for _, typ := range slices.Sorted(maps.Keys(need)) {
		var carriers []struct {
			ID          string   `bson:"id"`
			Identifiers []string `bson:"identifiers"`
		}
		c, cancel := s.op(ctx)
		cursor, err := s.resources.Find(c, bson.D{
			{Key: "type", Value: typ},
			{Key: "identifiers", Value: bson.D{{Key: "$in", Value: need[typ]}}},
			{Key: "deleted", Value: false},
		}, options.Find().SetProjection(bson.D{{Key: "id", Value: 1}, {Key: "identifiers", Value: 1}}))
		if err == nil {
			err = cursor.All(c, &carriers)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("mongodb: checking unique identifiers of %s: %w", typ, classify(err))
		}
		for _, d := range carriers {
			if inBatch[resourceKey(typ, d.ID)] {
				// Its new version decides, checked above.
				continue
			}
			for i, w := range writes {
				if w.Type != typ || w.Op != store.OpPut || (first >= 0 && i >= first) {
					continue
				}
				for _, u := range w.Unique {
					if slices.Contains(d.Identifiers, u) {
						first, firstErr = i, clash(i, u, d.ID)
						break
					}
				}
			}
		}
	}
	return firstErr
}

// meetClaim deals with a claim that beat ours: an expired one is resolved so
// the retry can proceed; a live or committed one just needs the retry.
func (s *Store) meetClaim(ctx context.Context, hist string) error {
	var e doc
	c, cancel := s.op(ctx)
	err := s.history.FindOne(c, bson.D{{Key: "_id", Value: hist}}).Decode(&e)
	cancel()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mongodb: commit: %w", classify(err))
	}
	if e.Txn != "" && e.Exp != nil && time.Now().After(*e.Exp) {
		if _, err := s.resolve(ctx, e.Txn); err != nil {
			return fmt.Errorf("mongodb: recovering transaction %s: %w", e.Txn, classify(err))
		}
	}
	return nil
}

// apply makes the committed batch visible: it appends the usage-log
// entries, applies the queue ops and makes the versions current, in that
// order, so that no write is readable before the record of who made it;
// then it removes the claim markers and the transaction record. Every
// step is idempotent (the usage log through the transaction id its batch
// document records), so recovery can run it again from any point. crash
// stops it as a dying process would (tests).
func (s *Store) apply(ctx context.Context, rec *txnRecord, docs []*doc, crash crashPoint) error {
	if len(rec.Audit) > 0 {
		link := s.link
		if l, ok := s.links.Load(rec.ID); ok {
			link = l.(store.LinkFunc)
		}
		if link == nil {
			return fmt.Errorf("mongodb: transaction %s carries %d usage-log entries and no link function to append them (Options.Link)", rec.ID, len(rec.Audit))
		}
		entries := make([]store.AuditEntry, len(rec.Audit))
		for i, a := range rec.Audit {
			entries[i] = a.entry()
		}
		if _, err := s.appendAudit(ctx, link, entries, rec.ID); err != nil {
			return err
		}
	}
	if crash == crashAfterAudit {
		return errCrashed
	}
	if err := s.applyQueue(ctx, rec.Queue); err != nil {
		return fmt.Errorf("mongodb: apply: %w", err)
	}
	todo := docs
	if crash == crashMidApply && len(docs) > 1 {
		todo = docs[:1]
	}
	if err := s.replaceCurrent(ctx, rec, todo); err != nil {
		return err
	}
	if crash == crashMidApply {
		return errCrashed
	}
	hists := make([]string, len(docs))
	for j, d := range docs {
		hists[j] = d.Key
	}
	// Independent: a claim at or below the current version counts as
	// committed with or without its record, so the order does not matter.
	var wg sync.WaitGroup
	var unsetErr, keyErr, delErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		unsetErr = s.unsetMarkers(ctx, hists)
	}()
	go func() {
		defer wg.Done()
		keyErr = s.unsetKeyMarkers(ctx, rec.Claims)
	}()
	c, cancel := s.op(ctx)
	_, delErr = s.txns.DeleteOne(c, bson.D{{Key: "_id", Value: rec.ID}})
	cancel()
	wg.Wait()
	if delErr == nil {
		s.links.Delete(rec.ID)
	}
	return errors.Join(unsetErr, keyErr, delErr)
}

// replaceCurrent writes each version into resources unless the resource is
// already at that version or later. The version filter keeps a late or
// repeated roll-forward from moving a resource back; the upsert's duplicate
// key error is how "already newer" shows, and counts as done. The filter
// names the patient of the document it replaces (txnWrite.Shard): an upsert
// on a sharded collection must carry the whole shard key, and a resource
// that moves to another patient is found under its old one. A document
// already moved (applied before) does not match, and the upsert's
// duplicate key counts as done, as above.
func (s *Store) replaceCurrent(ctx context.Context, rec *txnRecord, docs []*doc) error {
	shard := make(map[string]*string, len(rec.Writes))
	for _, w := range rec.Writes {
		shard[w.Hist] = w.Shard
	}
	models := make([]mongo.WriteModel, len(docs))
	for j, d := range docs {
		c := *d
		c.Key = resourceKey(d.Type, d.ID)
		c.Txn, c.Exp = "", nil
		filter := bson.D{{Key: "_id", Value: c.Key}}
		if p := shard[d.Key]; p != nil {
			filter = append(filter, bson.E{Key: "patient", Value: *p})
		}
		filter = append(filter, bson.E{Key: "version", Value: bson.D{{Key: "$lt", Value: d.Version}}})
		models[j] = mongo.NewReplaceOneModel().
			SetFilter(filter).
			SetReplacement(&c).
			SetUpsert(true)
	}
	// Ordered, and resumed after a duplicate: FerretDB stops at the first
	// error even in unordered mode, so relying on unordered would skip
	// writes there.
	for len(models) > 0 {
		c, cancel := s.op(ctx)
		_, err := s.resources.BulkWrite(c, models, options.BulkWrite().SetOrdered(true))
		cancel()
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) != 1 || !isDuplicateCode(bwe.WriteErrors[0].Code) {
			return fmt.Errorf("mongodb: apply: %w", err)
		}
		models = models[bwe.WriteErrors[0].Index+1:]
	}
	return nil
}

func (s *Store) unsetMarkers(ctx context.Context, hists []string) error {
	if len(hists) == 0 {
		return nil
	}
	unset := bson.D{{Key: "$unset", Value: bson.D{{Key: "txn", Value: ""}, {Key: "exp", Value: ""}}}}
	// One update per _id rather than an $in: a lone _id equality is the only
	// filter FerretDB serves without scanning the whole history, and MongoDB
	// does the same index lookups either way.
	models := make([]mongo.WriteModel, len(hists))
	for i, h := range hists {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: h}}).SetUpdate(unset)
	}
	c, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.history.BulkWrite(c, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("mongodb: clearing claim markers: %w", err)
	}
	return nil
}

// dropClaims removes this transaction's own uncommitted claims, its key
// claims first (dropKeyClaims says why). Failure is tolerable: the claims
// expire and recovery removes them.
func (s *Store) dropClaims(ctx context.Context, txn string, keyIDs, hists []string) {
	if err := s.dropKeyClaims(ctx, txn, keyIDs); err != nil || len(hists) == 0 {
		return
	}
	c, cancel := s.op(ctx)
	defer cancel()
	_, _ = s.history.DeleteMany(c, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: hists}}},
		{Key: "txn", Value: txn},
	})
}

func (s *Store) loadCurrent(ctx context.Context, keys []string) (map[string]*doc, error) {
	out := make(map[string]*doc, len(keys))
	c, cancel := s.op(ctx)
	defer cancel()
	if len(keys) == 1 {
		var d doc
		err := s.resources.FindOne(c, bson.D{{Key: "_id", Value: keys[0]}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("mongodb: reading current versions: %w", classify(err))
		}
		out[d.Key] = &d
		return out, nil
	}
	var docs []doc
	if err := s.findAll(ctx, s.resources, &docs, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}); err != nil {
		return nil, fmt.Errorf("mongodb: reading current versions: %w", classify(err))
	}
	for i := range docs {
		out[docs[i].Key] = &docs[i]
	}
	return out, nil
}

func firstDuplicate(err error) (int, bool) {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return 0, false
	}
	first := -1
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return 0, false
		}
		if first < 0 || we.Index < first {
			first = we.Index
		}
	}
	return first, true
}

func isDuplicateCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

func newTxnID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
