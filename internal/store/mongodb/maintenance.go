package mongodb

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// ScanType implements store.Maintenance.
func (s *Store) ScanType(ctx context.Context, typ string, fn func(store.Version) error) error {
	return s.stream(ctx, s.resources, bson.D{{Key: "type", Value: typ}, {Key: "deleted", Value: false}},
		options.Find().SetBatchSize(200), func(raw bson.Raw) error {
			var d doc
			if err := bson.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("mongodb: scan %s: %w", typ, err)
			}
			return fn(d.version())
		}, "scan "+typ)
}

// Purge implements store.Maintenance. The patient's resources of the given
// types (deleted ones included: their history still holds data) lose
// their current document, every history version and every mention in a
// leftover transaction record; the patient's queue items go, in the queue
// collection and in leftover transaction records. The resources documents
// go last, so a Purge interrupted part way finds the same resources when
// run again; a second run removes nothing more and returns 0.
//
// It assumes nobody writes to the patient meanwhile (a reservation refuses
// new data for the patient before its record is purged): a commit racing
// it may leave its own write behind.
func (s *Store) Purge(ctx context.Context, patient string, types []string) (int, error) {
	if patient == "" {
		return 0, fmt.Errorf("mongodb: purge: no patient")
	}
	fail := func(what string, err error) (int, error) {
		return 0, fmt.Errorf("mongodb: purge %s: %s: %w", patient, what, classify(err))
	}
	var found, claims []doc
	filter := bson.D{{Key: "patient", Value: patient}}
	if len(types) > 0 {
		inTypes := bson.D{{Key: "$in", Value: types}}
		if err := s.findPurged(ctx, append(filter, bson.E{Key: "type", Value: inTypes}), &found, &claims); err != nil {
			return fail("resources", err)
		}
	}
	return s.purge(ctx, patient, append(found, claims...), true)
}

// PurgeResources implements store.Maintenance: Purge of exactly the named
// resources, the patient's queue items left alone.
func (s *Store) PurgeResources(ctx context.Context, patient, typ string, ids []string) (int, error) {
	if patient == "" || typ == "" {
		return 0, fmt.Errorf("mongodb: purge: no patient or type")
	}
	if len(ids) == 0 {
		return 0, ctx.Err()
	}
	var found, claims []doc
	filter := bson.D{{Key: "patient", Value: patient}, {Key: "type", Value: typ}, {Key: "id", Value: bson.D{{Key: "$in", Value: ids}}}}
	if err := s.findPurged(ctx, filter, &found, &claims); err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %s: %w", patient, typ, classify(err))
	}
	return s.purge(ctx, patient, append(found, claims...), false)
}

// findPurged finds the resources a purge removes by filter (patient and
// type at least), and the claims of creates of such resources that never
// committed (a writer died), which have no resources document to find
// them by but are the patient's data too.
func (s *Store) findPurged(ctx context.Context, filter bson.D, found, claims *[]doc) error {
	proj := options.Find().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}})
	if err := s.findAll(ctx, s.resources, found, filter, proj); err != nil {
		return err
	}
	return s.findAll(ctx, s.history, claims, append(slices.Clone(filter), bson.E{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}), proj)
}

// purge removes the found resources; withQueue also the patient's queue
// items.
func (s *Store) purge(ctx context.Context, patient string, docs []doc, withQueue bool) (int, error) {
	fail := func(what string, err error) (int, error) {
		return 0, fmt.Errorf("mongodb: purge %s: %s: %w", patient, what, classify(err))
	}
	keys := []string{}
	byType := map[string][]string{}
	seen := map[string]bool{}
	for _, d := range docs {
		k := resourceKey(d.Type, d.ID)
		if seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		byType[d.Type] = append(byType[d.Type], d.ID)
	}
	sort.Strings(keys)

	// Transaction records that name these resources lose those writes,
	// and the patient's queue ops, so that a later roll-forward neither
	// misses the history documents removed below nor brings a purged
	// resource or queue item back; a record left with nothing to apply is
	// removed. Usage-log entries stay: the log outlives the record.
	// (Rewritten in Go and set by _id rather than with $pull and a
	// condition, which FerretDB does not apply.)
	if len(keys) == 0 && !withQueue {
		return 0, nil
	}
	named := bson.A{bson.D{{Key: "writes.key", Value: bson.D{{Key: "$in", Value: keys}}}}}
	if withQueue {
		named = append(named, bson.D{{Key: "queue.patient", Value: patient}})
	}
	var recs []txnRecord
	err := s.findAll(ctx, s.txns, &recs, bson.D{{Key: "$or", Value: named}})
	if err != nil {
		return fail("transaction records", err)
	}
	for _, rec := range recs {
		writes := make([]txnWrite, 0, len(rec.Writes))
		for _, w := range rec.Writes {
			if !seen[w.Key] {
				writes = append(writes, w)
			}
		}
		queue := make([]txnQueueOp, 0, len(rec.Queue))
		for _, q := range rec.Queue {
			if !withQueue || q.Patient != patient {
				queue = append(queue, q)
			}
		}
		id := bson.D{{Key: "_id", Value: rec.ID}}
		c, cancel := s.op(ctx)
		if len(writes) == 0 && len(queue) == 0 && len(rec.Audit) == 0 {
			_, err = s.txns.DeleteOne(c, id)
		} else {
			_, err = s.txns.UpdateOne(c, id, bson.D{{Key: "$set", Value: bson.D{{Key: "writes", Value: writes}, {Key: "queue", Value: queue}}}})
		}
		cancel()
		if err != nil {
			return fail("transaction record "+rec.ID, err)
		}
	}

	if withQueue {
		c, cancel := s.op(ctx)
		_, err = s.queue.DeleteMany(c, bson.D{{Key: "patient", Value: patient}})
		cancel()
		if err != nil {
			return fail("queue items", err)
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	typs := make([]string, 0, len(byType))
	for t := range byType {
		typs = append(typs, t)
	}
	sort.Strings(typs)
	for _, t := range typs {
		c, cancel := s.op(ctx)
		_, err := s.history.DeleteMany(c, bson.D{{Key: "type", Value: t}, {Key: "id", Value: bson.D{{Key: "$in", Value: byType[t]}}}})
		cancel()
		if err != nil {
			return fail("history", err)
		}
	}
	c, cancel := s.op(ctx)
	res, err := s.resources.DeleteMany(c, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	cancel()
	if err != nil {
		return fail("resources", err)
	}
	return int(res.DeletedCount), nil
}
