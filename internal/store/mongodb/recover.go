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
// Open runs it; running it at any other time is safe, because it only
// touches transactions whose writers can no longer commit.
func (s *Store) Recover(ctx context.Context) error {
	now := time.Now()
	cur, err := s.history.Find(ctx,
		bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "exp", Value: bson.D{{Key: "$lt", Value: now}}}},
		options.Find().SetProjection(bson.D{{Key: "txn", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongodb: recovery: %w", err)
	}
	var claims []struct {
		Txn string `bson:"txn"`
	}
	if err := cur.All(ctx, &claims); err != nil {
		return fmt.Errorf("mongodb: recovery: %w", err)
	}
	done := map[string]bool{}
	for _, c := range claims {
		if done[c.Txn] {
			continue
		}
		done[c.Txn] = true
		if _, err := s.resolve(ctx, c.Txn); err != nil {
			return fmt.Errorf("mongodb: recovering transaction %s: %w", c.Txn, err)
		}
	}

	// Committed records whose claims were already unmarked: the writer died
	// between clearing markers and deleting the record, or while applying.
	cur, err = s.txns.Find(ctx, bson.D{
		{Key: "state", Value: stateCommitted},
		{Key: "created", Value: bson.D{{Key: "$lt", Value: now.Add(-s.ttl)}}},
	})
	if err != nil {
		return fmt.Errorf("mongodb: recovery: %w", err)
	}
	var recs []txnRecord
	if err := cur.All(ctx, &recs); err != nil {
		return fmt.Errorf("mongodb: recovery: %w", err)
	}
	for i := range recs {
		if err := s.rollForward(ctx, &recs[i]); err != nil {
			return fmt.Errorf("mongodb: recovering transaction %s: %w", recs[i].ID, err)
		}
	}

	// An aborted record fences its writer off the commit point for as long
	// as that writer's lease could last; after that it is garbage.
	_, err = s.txns.DeleteMany(ctx, bson.D{
		{Key: "state", Value: stateAborted},
		{Key: "created", Value: bson.D{{Key: "$lt", Value: now.Add(-2 * s.ttl)}}},
	})
	if err != nil {
		return fmt.Errorf("mongodb: recovery: %w", err)
	}
	return nil
}

// resolve decides a transaction whose writer is gone (or whose own commit
// insert has an unknown outcome) and finishes or undoes it. It reports
// whether the transaction committed.
func (s *Store) resolve(ctx context.Context, txn string) (bool, error) {
	var rec txnRecord
	for attempt := 0; ; attempt++ {
		_, err := s.txns.InsertOne(ctx, txnRecord{ID: txn, State: stateAborted, Created: time.Now().UTC()})
		if err == nil {
			rec = txnRecord{ID: txn, State: stateAborted}
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, err
		}
		err = s.txns.FindOne(ctx, bson.D{{Key: "_id", Value: txn}}).Decode(&rec)
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

	// Aborted. Claims at or below the current version nonetheless belong to
	// a commit that completed and deleted its record before the markers
	// were cleared: keep those, drop the rest.
	cur, err := s.history.Find(ctx, bson.D{{Key: "txn", Value: txn}})
	if err != nil {
		return false, err
	}
	var claims []doc
	if err := cur.All(ctx, &claims); err != nil {
		return false, err
	}
	if len(claims) == 0 {
		return false, nil
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
		if _, err := s.history.DeleteMany(ctx, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: drop}}},
			{Key: "txn", Value: txn},
		}); err != nil {
			return false, err
		}
	}
	return len(keep) > 0, nil
}

// rollForward finishes a committed transaction from its history documents.
func (s *Store) rollForward(ctx context.Context, rec *txnRecord) error {
	hists := make([]string, len(rec.Writes))
	for i, w := range rec.Writes {
		hists[i] = w.Hist
	}
	cur, err := s.history.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: hists}}}})
	if err != nil {
		return err
	}
	var docs []*doc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	if len(docs) != len(hists) {
		// Claims of a committed transaction are never deleted, so this is
		// damage from outside; applying part of it would be worse.
		return fmt.Errorf("mongodb: transaction %s: %d of %d history documents missing", rec.ID, len(hists)-len(docs), len(hists))
	}
	return s.apply(ctx, rec.ID, docs, false)
}
