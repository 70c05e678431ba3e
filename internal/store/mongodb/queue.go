package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Queue items (store.Queues) live in the queue collection, one document
// per item, _id "queue/id". They keep no versions: a put replaces the
// document, a removal deletes it, so applying an op again (roll-forward)
// changes nothing more.

// queueDoc is a queue item as stored.
type queueDoc struct {
	Key     string `bson:"_id"`
	Queue   string `bson:"queue"`
	ID      string `bson:"id"`
	Patient string `bson:"patient"`
	Body    []byte `bson:"body"`
}

func queueKey(queue, id string) string { return queue + "/" + id }

// applyQueue applies queue ops by _id. A put filters on the item's
// patient too, as an upsert on a sharded collection needs the whole shard
// key; a put that gives an existing item another patient finds no
// document there, and its upsert's duplicate key is answered by removing
// the item and putting it again (queue items are last-writer-wins, and
// nobody but the ops' writer changes them meanwhile).
func (s *Store) applyQueue(ctx context.Context, ops []txnQueueOp) error {
	if len(ops) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(ops))
	for i, q := range ops {
		id := bson.D{{Key: "_id", Value: q.Key}}
		if q.Remove {
			models[i] = mongo.NewDeleteOneModel().SetFilter(id)
			continue
		}
		body := q.Body
		if body == nil {
			body = []byte{}
		}
		models[i] = mongo.NewReplaceOneModel().SetFilter(append(id, bson.E{Key: "patient", Value: q.Patient})).SetUpsert(true).
			SetReplacement(queueDoc{Key: q.Key, Queue: q.Queue, ID: q.ID, Patient: q.Patient, Body: body})
	}
	c, cancel := s.op(ctx)
	_, err := s.queue.BulkWrite(c, models, options.BulkWrite().SetOrdered(true))
	cancel()
	if err == nil {
		return nil
	}
	if !isDuplicateWrite(err) {
		return fmt.Errorf("queue items: %w", classify(err))
	}
	// An item moved to another patient. FerretDB does not always name the
	// right op in a bulk write's error, so the ops are applied again one
	// by one (applying one twice changes nothing).
	for i, m := range models {
		for moved := false; ; moved = true {
			c, cancel := s.op(ctx)
			_, err := s.queue.BulkWrite(c, []mongo.WriteModel{m})
			cancel()
			if err == nil {
				break
			}
			if moved || !isDuplicateWrite(err) {
				return fmt.Errorf("queue items: %s: %w", ops[i].Key, classify(err))
			}
			c, cancel = s.op(ctx)
			_, err = s.queue.DeleteOne(c, bson.D{{Key: "_id", Value: ops[i].Key}})
			cancel()
			if err != nil {
				return fmt.Errorf("queue items: %w", classify(err))
			}
		}
	}
	return nil
}

// isDuplicateWrite reports a bulk write refused by a duplicate key only.
func isDuplicateWrite(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return false
		}
	}
	return true
}

// ScanQueue implements store.Queues. The items of a queue are the _id
// range "queue/" to "queue0" ('0' follows '/'), which the _id index serves
// on MongoDB.
func (s *Store) ScanQueue(ctx context.Context, queue string, fn func(store.QueueItem) error) error {
	if !validName(queue) {
		return ctx.Err()
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: queue + "/"}, {Key: "$lt", Value: queue + "0"}}}}
	return s.stream(ctx, s.queue, filter, options.Find().SetBatchSize(500), func(raw bson.Raw) error {
		var d queueDoc
		if err := bson.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("mongodb: queue item: %w", err)
		}
		return fn(store.QueueItem{Queue: d.Queue, ID: d.ID, Patient: d.Patient, Body: d.Body})
	}, "scan queue "+queue)
}

// stream runs a find and calls fn with each document, bounding every
// round trip (the find, each getMore) by the operation timeout rather
// than the whole scan, which may be long.
func (s *Store) stream(ctx context.Context, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder, fn func(bson.Raw) error, what string) error {
	c, cancel := s.op(ctx)
	cur, err := coll.Find(c, filter, opts)
	if err != nil {
		cancel()
		return fmt.Errorf("mongodb: %s: %w", what, classify(err))
	}
	defer func() {
		cancel()
		cc, ccancel := s.op(context.WithoutCancel(ctx))
		_ = cur.Close(cc)
		ccancel()
	}()
	for {
		if cur.RemainingBatchLength() == 0 {
			cancel()
			c, cancel = s.op(ctx)
		}
		if !cur.Next(c) {
			break
		}
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongodb: %s: %w", what, classify(err))
	}
	return nil
}
