package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Keys used once (store.Once), for the DPoP replay check: one document per
// key in collection once, {_id: key, expires: date}. The unique _id makes
// "insert if absent" atomic across every process on the database (the
// second insert of a key fails with a duplicate key); a TTL index on
// expires lets the database remove expired keys (an hour late, by the
// database's clock: a key must never vanish while a process whose clock is
// a little behind still counts it as live). MongoDB's TTL monitor
// runs about once a minute and FerretDB has none, so an expired key may
// still be there: a claim then takes it over with a conditional update
// (expires still in the past), which is as atomic as the insert, and every
// process sweeps expired keys itself at most once per onceSweepEvery.
const (
	collOnce       = "once"
	idxOnceExpires = "expires_ttl"
	onceSweepEvery = time.Minute
)

var _ store.Once = (*Store)(nil)

// onceState is the per-process state of the claims.
type onceState struct {
	lastSweep atomic.Int64 // Unix nanoseconds of the last sweep
}

func (s *Store) onceColl() *mongo.Collection { return s.db.Collection(collOnce) }

// ensureOnceIndex creates the TTL index. A server without TTL indexes
// (FerretDB answers NotImplemented) is not an error: the sweeps remove
// expired keys there.
func (s *Store) ensureOnceIndex(ctx context.Context) error {
	c, cancel := s.op(ctx)
	defer cancel()
	_, err := s.onceColl().Indexes().CreateOne(c, mongo.IndexModel{
		Keys:    bson.D{{Key: "expires", Value: 1}},
		Options: options.Index().SetName(idxOnceExpires).SetExpireAfterSeconds(3600),
	})
	var ce mongo.CommandError
	if err != nil && errors.As(err, &ce) && (ce.Code == 238 || strings.Contains(strings.ToLower(ce.Message), "not implemented")) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mongodb: create index %s.%s: %w", collOnce, idxOnceExpires, classify(err))
	}
	return nil
}

// ClaimOnce implements store.Once. Every call is bounded by ctx and the
// operation timeout; the write concern is the client's (majority,
// journaled), so a true result survives a failover.
func (s *Store) ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	if !store.ValidOnceKey(key) {
		return false, errors.New("mongodb: claim once: invalid key")
	}
	// Sweeps go by this process's own clock, not the caller's, so that a
	// development clock set ahead does not sweep keys that other
	// processes still count as live.
	s.sweepOnce(ctx, time.Now())
	coll := s.onceColl()
	c, cancel := s.op(ctx)
	defer cancel()
	_, err := coll.InsertOne(c, bson.D{{Key: "_id", Value: key}, {Key: "expires", Value: expires}})
	if err == nil {
		return true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, fmt.Errorf("mongodb: claim once: %w", classify(err))
	}
	// Present: claimable only if it has expired and the TTL monitor has
	// not removed it yet. The filter makes the takeover atomic: of two
	// processes taking over one expired key, one matches.
	res, err := coll.UpdateOne(c,
		bson.D{{Key: "_id", Value: key}, {Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: expires}}}})
	if err != nil {
		return false, fmt.Errorf("mongodb: claim once: %w", classify(err))
	}
	return res.MatchedCount == 1, nil
}

// sweepOnce deletes keys that expired more than onceSweepEvery ago (the
// same margin for clocks that differ between processes), at most once
// per onceSweepEvery per process. A failed sweep is left for the next one: expired keys only
// take room, they never refuse a claim.
func (s *Store) sweepOnce(ctx context.Context, now time.Time) {
	last := s.onceState.lastSweep.Load()
	if now.UnixNano()-last < int64(onceSweepEvery) || !s.onceState.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	c, cancel := s.op(ctx)
	defer cancel()
	_, _ = s.onceColl().DeleteMany(c, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now.Add(-onceSweepEvery)}}}})
}
