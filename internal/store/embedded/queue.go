package embedded

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Queue items (store.Queues): one record per item in bucket queue, and an
// entry in queue_patient for items about a patient so that Purge finds
// them without scanning every queue. They are written by Commit in the
// same transaction as the rest of their batch.

var _ store.Queues = (*Store)(nil)

// applyQueue applies one request's queue ops. It runs after the request's
// checks passed; every error is a storage error.
func (b buckets) applyQueue(ops []store.QueueOp) error {
	for _, op := range ops {
		key := queueKey(op.Queue, op.ID)
		if old := b.queue.Get(key); old != nil {
			patient, _, err := decodeQueueItem(old)
			if err != nil {
				return storageError{fmt.Errorf("queue item %s/%s: %w", op.Queue, op.ID, err)}
			}
			if patient != "" && (op.Remove || patient != op.Patient) {
				if err := b.queuePatient.Delete(queuePatientKey(patient, op.Queue, op.ID)); err != nil {
					return storageError{fmt.Errorf("queue item %s/%s: %w", op.Queue, op.ID, err)}
				}
			}
		}
		if op.Remove {
			if err := b.queue.Delete(key); err != nil {
				return storageError{fmt.Errorf("queue item %s/%s: %w", op.Queue, op.ID, err)}
			}
			continue
		}
		if err := b.queue.Put(key, encodeQueueItem(op.Patient, op.Body)); err != nil {
			return storageError{fmt.Errorf("queue item %s/%s: %w", op.Queue, op.ID, err)}
		}
		if op.Patient != "" {
			if err := b.queuePatient.Put(queuePatientKey(op.Patient, op.Queue, op.ID), []byte{}); err != nil {
				return storageError{fmt.Errorf("queue item %s/%s: %w", op.Queue, op.ID, err)}
			}
		}
	}
	return nil
}

// purgeQueue removes every queue item about patient.
func (b buckets) purgeQueue(patient string) error {
	prefix := append([]byte(patient), 0)
	var keys [][]byte
	c := b.queuePatient.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		rest := k[len(prefix):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return fmt.Errorf("queue index key %q: %w", k, errCorrupt)
		}
		if err := b.queue.Delete(queueKey(string(rest[:i]), string(rest[i+1:]))); err != nil {
			return err
		}
		if err := b.queuePatient.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ScanQueue calls fn for every item of queue, in id order, outside any
// transaction (a chunk at a time, as ScanType).
func (s *Store) ScanQueue(ctx context.Context, queue string, fn func(store.QueueItem) error) error {
	if !validName(queue) {
		return ctx.Err()
	}
	prefix := queueKey(queue, "")
	return scanPrefix(ctx, s, bucketQueue, prefix, scanChunk, func() string { return "scan queue " + queue },
		func(k, v []byte) (store.QueueItem, bool, error) {
			patient, body, err := decodeQueueItem(v)
			if err != nil {
				return store.QueueItem{}, false, fmt.Errorf("queue item %s: %w", k, err)
			}
			return store.QueueItem{Queue: queue, ID: string(k[len(prefix):]), Patient: patient, Body: bytes.Clone(body)}, true, nil
		}, fn)
}
