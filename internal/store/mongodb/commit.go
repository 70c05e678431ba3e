package mongodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
type txnRecord struct {
	ID      string     `bson:"_id"`
	State   string     `bson:"state"`
	Created time.Time  `bson:"created"`
	Writes  []txnWrite `bson:"writes,omitempty"`
}

type txnWrite struct {
	Key     string `bson:"key"`  // resources _id
	Hist    string `bson:"hist"` // history _id of the new version
	Version int64  `bson:"version"`
}

const (
	stateCommitted = "committed"
	stateAborted   = "aborted"
)

// maxAttempts bounds how often Commit starts over after losing a race; a
// resource that stays claimed by someone else after that is reported busy.
const maxAttempts = 5

type crashPoint int

const (
	crashNone             crashPoint = iota
	crashAfterClaims                 // claims inserted, no txn record
	crashAfterCommitPoint            // txn record inserted, nothing applied
	crashMidApply                    // first resource applied, the rest not
)

var errCrashed = errors.New("mongodb: simulated crash")

// Commit implements store.Store. See DESIGN.md for the protocol.
func (s *Store) Commit(ctx context.Context, writes []store.Write) ([]store.Version, error) {
	if len(writes) == 0 {
		return []store.Version{}, nil
	}
	seen := make(map[string]bool, len(writes))
	for i, w := range writes {
		switch {
		case w.Type == "" || w.ID == "":
			return nil, fmt.Errorf("mongodb: write %d: type and id are required", i)
		case w.Op != store.OpPut && w.Op != store.OpDelete:
			return nil, fmt.Errorf("mongodb: write %d: unknown op %d", i, w.Op)
		case w.Op == store.OpPut && w.Render == nil:
			return nil, fmt.Errorf("mongodb: write %d: put of %s/%s without Render", i, w.Type, w.ID)
		}
		k := resourceKey(w.Type, w.ID)
		if seen[k] {
			return nil, fmt.Errorf("mongodb: write %d: %s is written more than once in one commit", i, k)
		}
		seen[k] = true
	}
	backoff := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		out, busy, err := s.tryCommit(ctx, writes)
		if busy == nil || attempt == maxAttempts {
			if busy != nil {
				return nil, busy
			}
			return out, err
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
		backoff *= 2
	}
}

// tryCommit makes one attempt. A non-nil busy means another writer got in
// the way and nothing of this attempt is left behind; Commit may retry.
func (s *Store) tryCommit(ctx context.Context, writes []store.Write) (out []store.Version, busy *store.ConflictError, err error) {
	keys := make([]string, len(writes))
	for i, w := range writes {
		keys[i] = resourceKey(w.Type, w.ID)
	}
	cur, err := s.loadCurrent(ctx, keys)
	if err != nil {
		return nil, nil, err
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
	var claims []*doc
	var claimOf []int // index in writes of each claim
	for i, w := range writes {
		c := cur[keys[i]]
		var curV int64
		if c != nil {
			curV = c.Version
		}
		if w.Create && c != nil {
			return nil, nil, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictExists, Current: curV}
		}
		if w.IfMatch != 0 && w.IfMatch != curV {
			return nil, nil, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictVersion, Current: curV}
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
				return nil, nil, &store.NotFoundError{Index: i, Type: w.Type, ID: w.ID}
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
				return nil, nil, fmt.Errorf("mongodb: render %s/%s: %w", w.Type, w.ID, err)
			}
			d.Body = body
			if len(w.Index) > 0 {
				d.Index = w.Index
			}
			d.Identifiers = slices.Compact(slices.Sorted(slices.Values(w.Identifiers)))
		}
		claims = append(claims, d)
		claimOf = append(claimOf, i)
	}
	if len(claims) == 0 {
		return out, nil, nil
	}

	// (1) Claim the next version of every target by inserting its history
	// document. The unique _id makes this the lock: of two writers that
	// read the same current version only one can insert version+1.
	txn := newTxnID()
	exp := time.Now().Add(s.ttl)
	ins := make([]any, len(claims))
	hists := make([]string, len(claims))
	for j, d := range claims {
		d.Txn, d.Exp = txn, &exp
		ins[j] = d
		hists[j] = d.Key
	}
	// Past the first network call a cancelled request must still either
	// undo or finish what it started.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ttl)
	defer cancel()
	if _, err := s.history.InsertMany(ctx, ins, options.InsertMany().SetOrdered(false)); err != nil {
		s.dropClaims(bg, txn, hists)
		dup, ok := firstDuplicate(err)
		if !ok {
			return nil, nil, fmt.Errorf("mongodb: commit: %w", err)
		}
		i := claimOf[dup]
		busy := &store.ConflictError{Index: i, Type: writes[i].Type, ID: writes[i].ID, Reason: store.ConflictBusy, Current: claims[dup].Version - 1}
		if err := s.meetClaim(bg, hists[dup]); err != nil {
			return nil, nil, err
		}
		return nil, busy, nil
	}
	if s.crashAt == crashAfterClaims {
		return nil, nil, errCrashed
	}

	// (2) The commit point. A writer whose claims may already count as
	// expired must not commit: a recoverer could be undoing them.
	if time.Until(exp) < s.ttl/2 {
		s.dropClaims(bg, txn, hists)
		return nil, nil, fmt.Errorf("mongodb: commit took longer than half the lock TTL (%s); undone", s.ttl)
	}
	rec := txnRecord{ID: txn, State: stateCommitted, Created: now, Writes: make([]txnWrite, len(claims))}
	for j, d := range claims {
		rec.Writes[j] = txnWrite{Key: resourceKey(d.Type, d.ID), Hist: d.Key, Version: d.Version}
	}
	if _, err := s.txns.InsertOne(ctx, rec); err != nil {
		// The outcome is unknown (or a recoverer aborted us); resolving
		// the transaction settles it one way or the other.
		committed, rerr := s.resolve(bg, txn)
		if rerr != nil {
			return nil, nil, fmt.Errorf("mongodb: commit outcome unknown, recovery will settle it: %w (resolving: %v)", err, rerr)
		}
		if !committed {
			return nil, nil, fmt.Errorf("mongodb: commit: %w", err)
		}
	} else {
		if s.crashAt == crashAfterCommitPoint {
			return nil, nil, errCrashed
		}
		// (3) Make the new versions current and clean up.
		if err := s.apply(bg, txn, claims, s.crashAt == crashMidApply); err != nil {
			return nil, nil, fmt.Errorf("mongodb: committed, but making it visible failed (recovery will finish it): %w", err)
		}
	}
	for j, d := range claims {
		d.Txn, d.Exp = "", nil
		out[claimOf[j]] = d.version()
	}
	return out, nil, nil
}

// meetClaim deals with a claim that beat ours: an expired one is resolved so
// the retry can proceed; a live or committed one just needs the retry.
func (s *Store) meetClaim(ctx context.Context, hist string) error {
	var e doc
	err := s.history.FindOne(ctx, bson.D{{Key: "_id", Value: hist}}).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mongodb: commit: %w", err)
	}
	if e.Txn != "" && e.Exp != nil && time.Now().After(*e.Exp) {
		if _, err := s.resolve(ctx, e.Txn); err != nil {
			return fmt.Errorf("mongodb: recovering transaction %s: %w", e.Txn, err)
		}
	}
	return nil
}

// apply makes the committed versions current, then removes the claim
// markers and the transaction record. Every step is idempotent, so
// recovery can run it again from any point.
func (s *Store) apply(ctx context.Context, txn string, docs []*doc, crashMidway bool) error {
	todo := docs
	if crashMidway && len(docs) > 1 {
		todo = docs[:1]
	}
	if err := s.replaceCurrent(ctx, todo); err != nil {
		return err
	}
	if len(todo) < len(docs) {
		return errCrashed
	}
	hists := make([]string, len(docs))
	for j, d := range docs {
		hists[j] = d.Key
	}
	// Independent: a claim at or below the current version counts as
	// committed with or without its record, so the order does not matter.
	var wg sync.WaitGroup
	var unsetErr, delErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		unsetErr = s.unsetMarkers(ctx, hists)
	}()
	_, delErr = s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: txn}})
	wg.Wait()
	return errors.Join(unsetErr, delErr)
}

// replaceCurrent writes each version into resources unless the resource is
// already at that version or later. The version filter keeps a late or
// repeated roll-forward from moving a resource back; the upsert's duplicate
// key error is how "already newer" shows, and counts as done.
func (s *Store) replaceCurrent(ctx context.Context, docs []*doc) error {
	models := make([]mongo.WriteModel, len(docs))
	for j, d := range docs {
		c := *d
		c.Key = resourceKey(d.Type, d.ID)
		c.Txn, c.Exp = "", nil
		models[j] = mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: c.Key}, {Key: "version", Value: bson.D{{Key: "$lt", Value: d.Version}}}}).
			SetReplacement(&c).
			SetUpsert(true)
	}
	// Ordered, and resumed after a duplicate: FerretDB stops at the first
	// error even in unordered mode, so relying on unordered would skip
	// writes there.
	for len(models) > 0 {
		_, err := s.resources.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true))
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
	if _, err := s.history.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("mongodb: clearing claim markers: %w", err)
	}
	return nil
}

// dropClaims removes this transaction's own uncommitted claims. Failure is
// tolerable: the claims expire and recovery removes them.
func (s *Store) dropClaims(ctx context.Context, txn string, hists []string) {
	if len(hists) == 0 {
		return
	}
	_, _ = s.history.DeleteMany(ctx, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: hists}}},
		{Key: "txn", Value: txn},
	})
}

func (s *Store) loadCurrent(ctx context.Context, keys []string) (map[string]*doc, error) {
	out := make(map[string]*doc, len(keys))
	if len(keys) == 1 {
		var d doc
		err := s.resources.FindOne(ctx, bson.D{{Key: "_id", Value: keys[0]}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("mongodb: reading current versions: %w", err)
		}
		out[d.Key] = &d
		return out, nil
	}
	cur, err := s.resources.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, fmt.Errorf("mongodb: reading current versions: %w", err)
	}
	var docs []doc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongodb: reading current versions: %w", err)
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
