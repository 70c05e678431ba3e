package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Read implements store.Store. The resources collection only ever holds
// committed versions, so a resource that a writer is changing reads as its
// last committed version without looking at locks.
func (s *Store) Read(ctx context.Context, typ, id string) (store.Version, error) {
	var d doc
	c, cancel := s.op(ctx)
	defer cancel()
	err := s.resources.FindOne(c, bson.D{{Key: "_id", Value: resourceKey(typ, id)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Version{}, store.ErrNotFound
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("mongodb: read %s/%s: %w", typ, id, classify(err))
	}
	return d.version(), nil
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	var d doc
	c, cancel := s.op(ctx)
	err := s.history.FindOne(c, bson.D{{Key: "_id", Value: historyKey(typ, id, versionID)}}).Decode(&d)
	cancel()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Version{}, store.ErrNotFound
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("mongodb: vread %s/%s/%d: %w", typ, id, versionID, classify(err))
	}
	if d.Txn != "" {
		cur, err := s.currentVersion(ctx, typ, id)
		if err != nil {
			return store.Version{}, err
		}
		if d.Version > cur {
			return store.Version{}, store.ErrNotFound
		}
	}
	return d.version(), nil
}

// currentVersion is the committed version of a resource, 0 if none. A claim
// at or below it belongs to a committed transaction whose clean-up has not
// run yet; a claim above it is not visible.
func (s *Store) currentVersion(ctx context.Context, typ, id string) (int64, error) {
	var d struct {
		Version int64 `bson:"version"`
	}
	c, cancel := s.op(ctx)
	defer cancel()
	err := s.resources.FindOne(c, bson.D{{Key: "_id", Value: resourceKey(typ, id)}},
		options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mongodb: read %s/%s: %w", typ, id, classify(err))
	}
	return d.Version, nil
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, typ, id string, q store.HistoryQuery) ([]store.Version, error) {
	filter := bson.D{{Key: "type", Value: typ}, {Key: "id", Value: id}}
	if !q.Since.IsZero() {
		filter = append(filter, bson.E{Key: "lastUpdated", Value: bson.D{{Key: "$gte", Value: q.Since}}})
	}
	// No server-side limit: claims of unfinished transactions are filtered
	// out below, and a limit applied before that could return too few.
	var docs []doc
	err := s.findAll(ctx, s.history, &docs, filter, options.Find().SetSort(bson.D{{Key: "version", Value: -1}}))
	if err != nil {
		return nil, fmt.Errorf("mongodb: history %s/%s: %w", typ, id, classify(err))
	}
	// Sorted again because a server is not obliged to honour a sort on a
	// field it cannot serve from an index (FerretDB sorts in memory anyway).
	sort.Slice(docs, func(i, j int) bool { return docs[i].Version > docs[j].Version })
	committed := int64(-1)
	out := make([]store.Version, 0, len(docs))
	for i := range docs {
		if docs[i].Txn != "" {
			if committed < 0 {
				if committed, err = s.currentVersion(ctx, typ, id); err != nil {
					return nil, err
				}
			}
			if docs[i].Version > committed {
				continue
			}
		}
		out = append(out, docs[i].version())
		if q.Count > 0 && len(out) == q.Count {
			break
		}
	}
	if len(out) == 0 {
		// Empty because of Since, or because the resource never existed?
		if committed < 0 {
			if committed, err = s.currentVersion(ctx, typ, id); err != nil {
				return nil, err
			}
		}
		if committed == 0 {
			return nil, store.ErrNotFound
		}
	}
	return out, nil
}

// Compartment implements store.Store. An empty typ lists every type.
func (s *Store) Compartment(ctx context.Context, patient, typ string) ([]store.Version, error) {
	filter := s.compartmentFilter(patient, typ)
	var docs []doc
	err := s.findAll(ctx, s.resources, &docs, filter, options.Find().SetSort(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongodb: compartment %s %s: %w", patient, typ, classify(err))
	}
	out := make([]store.Version, len(docs))
	for i := range docs {
		out[i] = docs[i].version()
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// FindByIdentifier implements store.Store. identifier goes into the filter
// as a BSON string, compared for equality with the elements of the
// identifiers array: whatever it contains, it is never read as an operator.
// The {type, identifiers} index serves the query.
func (s *Store) FindByIdentifier(ctx context.Context, typ, identifier string) ([]string, error) {
	filter := bson.D{
		{Key: "type", Value: typ},
		{Key: "identifiers", Value: identifier},
		{Key: "deleted", Value: false},
	}
	var docs []struct {
		ID string `bson:"id"`
	}
	err := s.findAll(ctx, s.resources, &docs, filter, options.Find().SetProjection(bson.D{{Key: "id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongodb: find %s by identifier: %w", typ, classify(err))
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	sort.Strings(out)
	return out, nil
}

// compartmentFilter leads with patient and type so the {patient, type, id}
// index serves it and, on a cluster sharded by patient, it targets a single
// shard.
func (s *Store) compartmentFilter(patient, typ string) bson.D {
	filter := bson.D{{Key: "patient", Value: patient}}
	if typ != "" {
		filter = append(filter, bson.E{Key: "type", Value: typ})
	}
	return append(filter, bson.E{Key: "deleted", Value: false})
}
