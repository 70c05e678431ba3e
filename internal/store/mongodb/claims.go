package mongodb

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// keyClaim is one generation of a key that commits serialise on across
// processes: a Unique identifier ("unique/Type/value") or a Guard
// ("guard/Type/key"). Generation n+1 is inserted only by a writer that
// read n as the highest, so the unique _id makes two writers that read
// the same generation collide; see DESIGN.md, "Unique identifiers and
// guards". Txn and Exp mark it as part of an unfinished transaction, like
// a history claim; committed generations stay.
type keyClaim struct {
	ID  string `bson:"_id"` // Key#gen, gen zero-padded so that _id order is generation order
	Key string `bson:"key"`
	Gen int64  `bson:"gen"`
	// Res and Version are the resource write the claim came with: a claim
	// whose transaction left no record is committed exactly when the
	// resource reached that version.
	Res     string     `bson:"res"`
	Version int64      `bson:"version"`
	Txn     string     `bson:"txn,omitempty"`
	Exp     *time.Time `bson:"exp,omitempty"`
}

func claimID(key string, gen int64) string { return fmt.Sprintf("%s#%012d", key, gen) }

// claimWant is a key a write of the batch must claim.
type claimWant struct {
	key   string
	write int
}

// claimsWanted lists the keys the writes must claim: their Guards, and
// the Unique identifiers their current version does not carry yet. (A
// resource already carrying an identifier keeps it under its version
// claim; anyone adding the identifier elsewhere sees it there, so only
// the write that adds an identifier needs the identifier's claim.)
func claimsWanted(writes []store.Write, keys []string, cur map[string]*doc) []claimWant {
	var out []claimWant
	seen := map[string]bool{}
	add := func(k string, i int) {
		if !seen[k] {
			seen[k] = true
			out = append(out, claimWant{key: k, write: i})
		}
	}
	for i, w := range writes {
		if w.Op != store.OpPut {
			continue
		}
		if w.Guard != "" {
			add("guard/"+w.Type+"/"+w.Guard, i)
		}
		c := cur[keys[i]]
		for _, u := range w.Unique {
			if c != nil && !c.Deleted && slices.Contains(c.Identifiers, u) {
				continue
			}
			add("unique/"+w.Type+"/"+u, i)
		}
	}
	return out
}

// readGenerations reads the highest generation of every wanted key. It
// must come before the reads that check the rule the key guards (the
// identifier query, the Precondition): see DESIGN.md. A generation still
// held by a live transaction makes the attempt busy (the caller waits and
// retries); one whose transaction expired is settled first.
func (s *Store) readGenerations(ctx context.Context, wants []claimWant, writes []store.Write) (map[string]int64, *store.ConflictError, error) {
	gens := make(map[string]int64, len(wants))
	if len(wants) == 0 {
		return gens, nil, nil
	}
	// One query for all keys (a feeder's transaction of many Patients has
	// one per person number): on MongoDB the key_gen index answers it; on
	// FerretDB, which uses indexes for _id equality only, it is one scan
	// per commit rather than one per key.
	keys := make([]string, len(wants))
	for i, cw := range wants {
		keys[i] = cw.key
	}
	var found []keyClaim
	if err := s.findAll(ctx, s.claims, &found, bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "key", Value: 1}, {Key: "gen", Value: 1}, {Key: "txn", Value: 1}, {Key: "exp", Value: 1}})); err != nil {
		return nil, nil, fmt.Errorf("mongodb: reading claims of %s: %w", keys[0], classify(err))
	}
	top := make(map[string]*keyClaim, len(wants))
	for i := range found {
		if t := top[found[i].Key]; t == nil || found[i].Gen > t.Gen {
			top[found[i].Key] = &found[i]
		}
	}
	for _, cw := range wants {
		t := top[cw.key]
		if t == nil {
			gens[cw.key] = 0
			continue
		}
		if t.Txn != "" {
			w := writes[cw.write]
			busy := &store.ConflictError{Index: cw.write, Type: w.Type, ID: w.ID, Reason: store.ConflictBusy}
			if t.Exp != nil && time.Now().After(*t.Exp) {
				if _, err := s.resolve(ctx, t.Txn); err != nil {
					return nil, nil, fmt.Errorf("mongodb: recovering transaction %s: %w", t.Txn, classify(err))
				}
			}
			return nil, busy, nil
		}
		gens[cw.key] = t.Gen
	}
	return gens, nil, nil
}

// insertClaims inserts the next generation of every wanted key, marked
// with the transaction. A duplicate key means another writer took that
// generation since it was read: the attempt is busy.
func (s *Store) insertClaims(ctx context.Context, wants []claimWant, gens map[string]int64, claims []*doc, claimOf []int, txn string, exp *time.Time) ([]string, bool, error) {
	if len(wants) == 0 {
		return nil, false, nil
	}
	versionOf := map[int]*doc{}
	for j, d := range claims {
		versionOf[claimOf[j]] = d
	}
	ids := make([]string, len(wants))
	ins := make([]any, len(wants))
	for j, cw := range wants {
		d := versionOf[cw.write]
		g := gens[cw.key] + 1
		ids[j] = claimID(cw.key, g)
		ins[j] = keyClaim{ID: ids[j], Key: cw.key, Gen: g, Res: resourceKey(d.Type, d.ID), Version: d.Version, Txn: txn, Exp: exp}
	}
	c, cancel := s.op(ctx)
	_, err := s.claims.InsertMany(c, ins, options.InsertMany().SetOrdered(false))
	cancel()
	if err == nil {
		return ids, false, nil
	}
	if _, dup := firstDuplicate(err); dup {
		return ids, true, nil
	}
	return ids, false, fmt.Errorf("mongodb: commit: claiming %s: %w", wants[0].key, classify(err))
}

// dropKeyClaims removes this transaction's uncommitted key claims. Key
// claims go before history claims, so that recovery never finds a key
// claim whose resource version someone else could have taken meanwhile.
func (s *Store) dropKeyClaims(ctx context.Context, txn string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	c, cancel := s.op(ctx)
	defer cancel()
	_, err := s.claims.DeleteMany(c, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}},
		{Key: "txn", Value: txn},
	})
	return err
}

func (s *Store) unsetKeyMarkers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	unset := bson.D{{Key: "$unset", Value: bson.D{{Key: "txn", Value: ""}, {Key: "exp", Value: ""}}}}
	models := make([]mongo.WriteModel, len(ids))
	for i, id := range ids {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetUpdate(unset)
	}
	c, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.claims.BulkWrite(c, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("mongodb: clearing key claim markers: %w", err)
	}
	return nil
}

// settleKeyClaims finishes the key claims of an aborted transaction
// (resolve): a claim whose resource reached its version belongs to a
// commit that completed and deleted its record before clearing the
// markers, and is kept; the others are dropped. It runs before the
// history claims are dropped, while those still hold the versions.
func (s *Store) settleKeyClaims(ctx context.Context, txn string) (bool, error) {
	var kcs []keyClaim
	if err := s.findAll(ctx, s.claims, &kcs, bson.D{{Key: "txn", Value: txn}}); err != nil {
		return false, err
	}
	if len(kcs) == 0 {
		return false, nil
	}
	res := make([]string, len(kcs))
	for i, k := range kcs {
		res[i] = k.Res
	}
	current, err := s.loadCurrent(ctx, res)
	if err != nil {
		return false, err
	}
	var keep, drop []string
	for _, k := range kcs {
		if d := current[k.Res]; d != nil && d.Version >= k.Version {
			keep = append(keep, k.ID)
		} else {
			drop = append(drop, k.ID)
		}
	}
	if err := s.unsetKeyMarkers(ctx, keep); err != nil {
		return false, err
	}
	if err := s.dropKeyClaims(ctx, txn, drop); err != nil {
		return false, err
	}
	return len(keep) > 0, nil
}
