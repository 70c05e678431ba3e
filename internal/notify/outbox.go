package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The outbox closes the gap between a change and its notifications: the
// REST layer adds an outbox item (OutboxOps) to the very commit that
// changes critical information, queues the notifications after the commit
// (Dispatcher.Published), which removes the item. A crash in between
// leaves the item, and the next dispatcher queues it (Dispatcher.Run,
// Flush; with several processes on one database, the lease holder once
// the item is OutboxAge old): a committed change is notified at least
// once.

// outboxRecord is an outbox item's body.
type outboxRecord struct {
	Events []Event `json:"events"`
	// At is when the item was made, just before its commit (zero in
	// items of earlier versions).
	At time.Time `json:"at,omitzero"`
}

// OutboxAge is the age after which an outbox item is taken to have no
// live writer: Published runs right after the commit, bounded by the
// store's deadlines, so an item this old was left by a process that died
// or whose queueing failed. The process that delivers queues such items
// while it runs; younger ones it leaves to their writer, so that a
// change is not queued twice.
const OutboxAge = time.Minute

// OutboxOps returns the outbox items for events, one per patient, to add
// to the Batch that commits the changes they describe.
func OutboxOps(events []Event) []store.QueueOp {
	byPatient := map[string][]Event{}
	var order []string
	for _, ev := range events {
		if _, ok := byPatient[ev.Patient]; !ok {
			order = append(order, ev.Patient)
		}
		byPatient[ev.Patient] = append(byPatient[ev.Patient], ev)
	}
	out := make([]store.QueueOp, 0, len(order))
	now := time.Now().UTC()
	for _, p := range order {
		body, err := json.Marshal(outboxRecord{Events: byPatient[p], At: now})
		if err != nil {
			// Strings and integers only: cannot fail.
			panic("notify: marshal outbox item: " + err.Error())
		}
		out = append(out, store.QueueOp{Queue: OutboxQueue, ID: rand.Text(), Patient: p, Body: body})
	}
	return out
}

// OutboxEntry is an outbox item whose notifications are not queued yet.
type OutboxEntry struct {
	ID      string
	Patient string
	Events  []Event
	At      time.Time // when it was made; zero if unknown (an earlier version's)
}

func outboxEntry(id, patient string, body []byte) (OutboxEntry, error) {
	var rec outboxRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return OutboxEntry{}, fmt.Errorf("notify: outbox item %s: %w", id, err)
	}
	return OutboxEntry{ID: id, Patient: patient, Events: rec.Events, At: rec.At}, nil
}

// Unqueued implements State. It first moves what an earlier version left
// as resources of private types into the queues.
func (st *StoreState) Unqueued(ctx context.Context) ([]OutboxEntry, error) {
	if err := st.migrateLegacy(ctx); err != nil {
		return nil, err
	}
	var out []OutboxEntry
	err := st.S.ScanQueue(ctx, OutboxQueue, func(it store.QueueItem) error {
		e, err := outboxEntry(it.ID, it.Patient, it.Body)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// Queued implements State.
func (st *StoreState) Queued(ctx context.Context, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ops := make([]store.QueueOp, len(entries))
	for i, e := range entries {
		ops[i] = store.QueueOp{Queue: OutboxQueue, ID: e.ID, Remove: true}
	}
	_, err := st.S.Commit(ctx, store.Batch{Queue: ops})
	return err
}

// migrateLegacy turns the pending deliveries and outbox records that an
// earlier version stored as resources of private types into queue items
// with the same ids, then deletes the resources. Interrupted, it is done
// again: the items are written again as they were, before anything has
// been done with them. (Not Purge, which would take the patient's queue
// items with it; the deleted versions go with a reservation's Purge, as
// PurgeTypes lists the private types.)
func (st *StoreState) migrateLegacy(ctx context.Context) error {
	var ops []store.QueueOp
	var dels []store.Write
	for typ, queue := range map[string]string{legacyDeliveryType: DeliveryQueue, legacyOutboxType: OutboxQueue} {
		err := st.S.ScanType(ctx, typ, func(v store.Version) error {
			ops = append(ops, store.QueueOp{Queue: queue, ID: v.ID, Patient: v.Patient, Body: v.Body})
			dels = append(dels, store.Write{Type: typ, ID: v.ID, Op: store.OpDelete, Patient: v.Patient})
			return nil
		})
		if err != nil {
			return fmt.Errorf("notify: moving stored %s into a queue: %w", typ, err)
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if _, err := st.S.Commit(ctx, store.Batch{Queue: ops[:n]}); err != nil {
			return fmt.Errorf("notify: moving stored deliveries and outbox records into queues: %w", err)
		}
		ops = ops[n:]
	}
	for _, w := range dels {
		// One by one: another process migrating at the same time may have
		// deleted some already, and deleting a deleted one is no error.
		if _, err := st.S.Commit(ctx, store.Batch{Writes: []store.Write{w}}); err != nil {
			return fmt.Errorf("notify: removing stored %s/%s after moving it into a queue: %w", w.Type, w.ID, err)
		}
	}
	return nil
}

// Watched returns the events among events that a subscription watches now:
// only those need an outbox item, so a change nobody subscribed to costs
// no more than a read of the patient's subscriptions.
func (d *Dispatcher) Watched(ctx context.Context, events []Event) ([]Event, error) {
	now := d.opt.Now()
	subs := map[string][]Subscription{}
	var out []Event
	for _, ev := range events {
		list, ok := subs[ev.Patient]
		if !ok {
			var err error
			if list, err = d.state.Subscriptions(ctx, ev.Patient); err != nil {
				return nil, err
			}
			subs[ev.Patient] = list
		}
		for _, s := range list {
			if s.Watches(ev, now) {
				out = append(out, ev)
				break
			}
		}
	}
	return out, nil
}

// Published queues the notifications of a committed change from the
// outbox items committed with it (the ops OutboxOps gave; other ops are
// ignored) and removes the items. Call it after the commit; what it
// cannot queue stays in the outbox for the next start.
func (d *Dispatcher) Published(ctx context.Context, ops []store.QueueOp) error {
	var entries []OutboxEntry
	for _, op := range ops {
		if op.Queue != OutboxQueue || op.Remove {
			continue
		}
		e, err := outboxEntry(op.ID, op.Patient, op.Body)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	return d.queue(ctx, entries)
}

// recover queues what a process committed but did not queue: every item
// when madeBefore is zero (no other process writes), else the items made
// before madeBefore and those of unknown age.
func (d *Dispatcher) recover(ctx context.Context, madeBefore time.Time) error {
	entries, err := d.state.Unqueued(ctx)
	if err != nil {
		return err
	}
	if !madeBefore.IsZero() {
		entries = slices.DeleteFunc(entries, func(e OutboxEntry) bool { return !e.At.IsZero() && !e.At.Before(madeBefore) })
	}
	return d.queue(ctx, entries)
}

// queue publishes the entries' events and then removes the entries, all
// in one commit; an entry whose events could not be published stays.
func (d *Dispatcher) queue(ctx context.Context, entries []OutboxEntry) error {
	var errs []error
	done := entries[:0:0]
	for _, e := range entries {
		if _, err := d.Publish(ctx, e.Events...); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, e)
	}
	if len(done) > 0 {
		errs = append(errs, d.state.Queued(ctx, done...))
	}
	return errors.Join(errs...)
}
