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
	cur, err := s.resources.Find(ctx, bson.D{{Key: "type", Value: typ}, {Key: "deleted", Value: false}},
		options.Find().SetBatchSize(200))
	if err != nil {
		return fmt.Errorf("mongodb: scan %s: %w", typ, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var d doc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("mongodb: scan %s: %w", typ, err)
		}
		if err := fn(d.version()); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongodb: scan %s: %w", typ, err)
	}
	return nil
}

// Purge implements store.Maintenance. The patient's resources of the given
// types (deleted ones included: their history still holds data) lose
// their current document, every history version and every mention in a
// leftover transaction record. The resources documents go last, so a
// Purge interrupted part way finds the same resources when run again; a
// second run removes nothing more and returns 0.
//
// It assumes nobody writes to the patient meanwhile (a reservation refuses
// new data for the patient before its record is purged): a commit racing
// it may leave its own write behind.
func (s *Store) Purge(ctx context.Context, patient string, types []string) (int, error) {
	if patient == "" || len(types) == 0 {
		return 0, nil
	}
	inTypes := bson.D{{Key: "$in", Value: types}}
	cur, err := s.resources.Find(ctx, bson.D{{Key: "patient", Value: patient}, {Key: "type", Value: inTypes}},
		options.Find().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %w", patient, err)
	}
	var found []doc
	if err := cur.All(ctx, &found); err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %w", patient, err)
	}
	// Claims of creates that never committed (a writer died) are the
	// patient's data too, with no resources document to find them by.
	cur, err = s.history.Find(ctx, bson.D{{Key: "patient", Value: patient}, {Key: "type", Value: inTypes},
		{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %w", patient, err)
	}
	var claims []doc
	if err := cur.All(ctx, &claims); err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %w", patient, err)
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
	if len(keys) == 0 {
		return 0, nil
	}
	sort.Strings(keys)

	// Transaction records that name these resources lose those writes, so
	// that a later roll-forward neither misses the history documents
	// removed below nor brings a purged resource back; a record left with
	// no writes is removed.
	// (Rewritten in Go and set by _id rather than with $pull and a
	// condition, which FerretDB does not apply.)
	cur, err = s.txns.Find(ctx, bson.D{{Key: "writes.key", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: transaction records: %w", patient, err)
	}
	var recs []txnRecord
	if err := cur.All(ctx, &recs); err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: transaction records: %w", patient, err)
	}
	for _, rec := range recs {
		rest := make([]txnWrite, 0, len(rec.Writes))
		for _, w := range rec.Writes {
			if !seen[w.Key] {
				rest = append(rest, w)
			}
		}
		id := bson.D{{Key: "_id", Value: rec.ID}}
		if len(rest) == 0 {
			_, err = s.txns.DeleteOne(ctx, id)
		} else {
			_, err = s.txns.UpdateOne(ctx, id, bson.D{{Key: "$set", Value: bson.D{{Key: "writes", Value: rest}}}})
		}
		if err != nil {
			return 0, fmt.Errorf("mongodb: purge %s: transaction record %s: %w", patient, rec.ID, err)
		}
	}

	typs := make([]string, 0, len(byType))
	for t := range byType {
		typs = append(typs, t)
	}
	sort.Strings(typs)
	for _, t := range typs {
		if _, err := s.history.DeleteMany(ctx, bson.D{{Key: "type", Value: t}, {Key: "id", Value: bson.D{{Key: "$in", Value: byType[t]}}}}); err != nil {
			return 0, fmt.Errorf("mongodb: purge %s: history: %w", patient, err)
		}
	}
	res, err := s.resources.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return 0, fmt.Errorf("mongodb: purge %s: %w", patient, err)
	}
	return int(res.DeletedCount), nil
}
