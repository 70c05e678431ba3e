package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Recover settles every transaction whose writer is presumed dead: its
// claims have expired, or its committed record is older than the lock TTL.
// Open runs it, and then a background loop every LockTTL; running it at
// any other time is safe, because it only touches transactions whose
// writers can no longer commit, and finishing a committed one again
// changes nothing. It settles what it can and reports every transaction
// it could not.
func (s *Store) Recover(ctx context.Context) error {
	now := time.Now()
	var claims []struct {
		Txn string `bson:"txn"`
	}
	err := s.findAll(ctx, s.history, &claims,
		bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "exp", Value: bson.D{{Key: "$lt", Value: now}}}},
		options.Find().SetProjection(bson.D{{Key: "txn", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongodb: recovery: %w", classify(err))
	}
	// Key claims of transactions whose history claims are already gone
	// (a writer that died between dropping the two).
	var keyClaims []struct {
		Txn string `bson:"txn"`
	}
	err = s.findAll(ctx, s.claims, &keyClaims,
		bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "exp", Value: bson.D{{Key: "$lt", Value: now}}}},
		options.Find().SetProjection(bson.D{{Key: "txn", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongodb: recovery: %w", classify(err))
	}
	claims = append(claims, keyClaims...)
	var errs []error
	done := map[string]bool{}
	for _, cl := range claims {
		if done[cl.Txn] {
			continue
		}
		done[cl.Txn] = true
		if _, err := s.resolve(ctx, cl.Txn); err != nil {
			errs = append(errs, fmt.Errorf("mongodb: recovering transaction %s: %w", cl.Txn, classify(err)))
		}
	}

	// Committed records whose claims were already unmarked (the writer
	// died between clearing markers and deleting the record, or while
	// applying), and those of batches without resource writes, which
	// have no claims at all.
	var recs []txnRecord
	err = s.findAll(ctx, s.txns, &recs, bson.D{
		{Key: "state", Value: stateCommitted},
		{Key: "created", Value: bson.D{{Key: "$lt", Value: now.Add(-s.ttl)}}},
	})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("mongodb: recovery: %w", classify(err)))...)
	}
	for i := range recs {
		if err := s.rollForward(ctx, &recs[i]); err != nil {
			errs = append(errs, fmt.Errorf("mongodb: recovering transaction %s: %w", recs[i].ID, classify(err)))
		}
	}

	// An aborted record fences its writer off the commit point for as long
	// as that writer's lease could last; after that it is garbage.
	c, cancel := s.op(ctx)
	_, err = s.txns.DeleteMany(c, bson.D{
		{Key: "state", Value: stateAborted},
		{Key: "created", Value: bson.D{{Key: "$lt", Value: now.Add(-2 * s.ttl)}}},
	})
	cancel()
	if err != nil {
		errs = append(errs, fmt.Errorf("mongodb: recovery: %w", classify(err)))
	}
	return errors.Join(errs...)
}

// resolve decides a transaction whose writer is gone (or whose own commit
// insert has an unknown outcome) and finishes or undoes it. It reports
// whether the transaction committed.
func (s *Store) resolve(ctx context.Context, txn string) (bool, error) {
	var rec txnRecord
	for attempt := 0; ; attempt++ {
		c, cancel := s.op(ctx)
		_, err := s.txns.InsertOne(c, txnRecord{ID: txn, State: stateAborted, Created: time.Now().UTC()})
		cancel()
		if err == nil {
			rec = txnRecord{ID: txn, State: stateAborted}
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, err
		}
		c, cancel = s.op(ctx)
		err = s.txns.FindOne(c, bson.D{{Key: "_id", Value: txn}}).Decode(&rec)
		cancel()
		if err == nil {
			break
		}
		// The record vanished between the two calls: its writer finished
		// and deleted it, so the next insert wins and the claim check
		// below sees the versions as current.
		if !errors.Is(err, mongo.ErrNoDocuments) || attempt == 2 {
			return false, err
		}
	}
	if rec.State == stateCommitted {
		return true, s.rollForward(ctx, &rec)
	}
	s.links.Delete(txn)

	// Aborted. Claims at or below the current version nonetheless belong to
	// a commit that completed and deleted its record before the markers
	// were cleared: keep those, drop the rest. Key claims first, while the
	// history claims still hold the versions they are judged by.
	keptKeys, err := s.settleKeyClaims(ctx, txn)
	if err != nil {
		return false, err
	}
	var claims []doc
	err = s.findAll(ctx, s.history, &claims, bson.D{{Key: "txn", Value: txn}})
	if err != nil {
		return false, err
	}
	if len(claims) == 0 {
		return keptKeys, nil
	}
	keys := make([]string, len(claims))
	for i, c := range claims {
		keys[i] = resourceKey(c.Type, c.ID)
	}
	current, err := s.loadCurrent(ctx, keys)
	if err != nil {
		return false, err
	}
	var keep, drop []string
	for i, c := range claims {
		if d := current[keys[i]]; d != nil && d.Version >= c.Version {
			keep = append(keep, c.Key)
		} else {
			drop = append(drop, c.Key)
		}
	}
	if err := s.unsetMarkers(ctx, keep); err != nil {
		return false, err
	}
	if len(drop) > 0 {
		c, cancel := s.op(ctx)
		_, err := s.history.DeleteMany(c, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: drop}}},
			{Key: "txn", Value: txn},
		})
		cancel()
		if err != nil {
			return false, err
		}
	}
	return len(keep) > 0 || keptKeys, nil
}

// rollForward finishes a committed transaction from its record and its
// history documents.
func (s *Store) rollForward(ctx context.Context, rec *txnRecord) error {
	var docs []*doc
	if len(rec.Writes) > 0 {
		hists := make([]string, len(rec.Writes))
		for i, w := range rec.Writes {
			hists[i] = w.Hist
		}
		err := s.findAll(ctx, s.history, &docs, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: hists}}}})
		if err != nil {
			return err
		}
		if len(docs) != len(hists) {
			// Claims of a committed transaction are never deleted, so this
			// is damage from outside; applying part of it would be worse.
			return fmt.Errorf("mongodb: transaction %s: %d of %d history documents missing", rec.ID, len(hists)-len(docs), len(hists))
		}
	}
	return s.apply(ctx, rec, docs, crashNone)
}
