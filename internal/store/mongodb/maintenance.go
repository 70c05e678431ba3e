package mongodb

import (
	"context"
	"fmt"
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
	if len(types) > 0 {
		inTypes := bson.D{{Key: "$in", Value: types}}
		err := s.findAll(ctx, s.resources, &found, bson.D{{Key: "patient", Value: patient}, {Key: "type", Value: inTypes}},
			options.Find().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}))
		if err != nil {
			return fail("resources", err)
		}
		// Claims of creates that never committed (a writer died) are the
		// patient's data too, with no resources document to find them by.
		err = s.findAll(ctx, s.history, &claims, bson.D{{Key: "patient", Value: patient}, {Key: "type", Value: inTypes},
			{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}))
		if err != nil {
			return fail("claims", err)
		}
	}

	keys := []string{}
	byType := map[string][]string{}
	seen := map[string]bool{}
	for _, d := range append(found, claims...) {
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
	var recs []txnRecord
	err := s.findAll(ctx, s.txns, &recs, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "writes.key", Value: bson.D{{Key: "$in", Value: keys}}}},
		bson.D{{Key: "queue.patient", Value: patient}},
	}}})
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
			if q.Patient != patient {
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

	c, cancel := s.op(ctx)
	_, err = s.queue.DeleteMany(c, bson.D{{Key: "patient", Value: patient}})
	cancel()
	if err != nil {
		return fail("queue items", err)
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
	c, cancel = s.op(ctx)
	res, err := s.resources.DeleteMany(c, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	cancel()
	if err != nil {
		return fail("resources", err)
	}
	return int(res.DeletedCount), nil
}
