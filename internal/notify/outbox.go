package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The outbox closes the gap between a change and its notifications: the
// REST layer adds an outbox record (OutboxWrites) to the very commit that
// changes critical information, queues the notifications after the commit
// (Dispatcher.Published) and then removes the record. A crash in between
// leaves the record, and the next dispatcher queues it (Dispatcher.Run,
// Flush): a committed change is notified at least once.

// OutboxType is the private type of an outbox record. Like DeliveryType
// it is never served, and it sits in the patient's compartment so that a
// reservation's Purge removes it (PurgeTypes).
const OutboxType = "KjNotificationOutbox"

// outboxRecord is an outbox record's stored JSON.
type outboxRecord struct {
	Events []Event `json:"events"`
}

// OutboxWrites returns the outbox records for events, one per patient, to
// commit together with the changes they describe.
func OutboxWrites(events []Event) []store.Write {
	byPatient := map[string][]Event{}
	var order []string
	for _, ev := range events {
		if _, ok := byPatient[ev.Patient]; !ok {
			order = append(order, ev.Patient)
		}
		byPatient[ev.Patient] = append(byPatient[ev.Patient], ev)
	}
	out := make([]store.Write, 0, len(order))
	for _, p := range order {
		rec := outboxRecord{Events: byPatient[p]}
		out = append(out, store.Write{
			Type: OutboxType, ID: rand.Text(), Op: store.OpPut, Patient: p, Create: true,
			Render: func(int64, time.Time) ([]byte, error) { return json.Marshal(rec) },
		})
	}
	return out
}

// OutboxEntry is an outbox record whose notifications are not queued yet.
type OutboxEntry struct {
	ID      string
	Patient string
	Events  []Event
}

// Unqueued implements State.
func (st *StoreState) Unqueued(ctx context.Context) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := st.S.ScanType(ctx, OutboxType, func(v store.Version) error {
		var rec outboxRecord
		if err := json.Unmarshal(v.Body, &rec); err != nil {
			return fmt.Errorf("notify: stored outbox record %s: %w", v.ID, err)
		}
		out = append(out, OutboxEntry{ID: v.ID, Patient: v.Patient, Events: rec.Events})
		return nil
	})
	return out, err
}

// Queued implements State.
func (st *StoreState) Queued(ctx context.Context, entries ...OutboxEntry) error {
	writes := make([]store.Write, len(entries))
	for i, e := range entries {
		writes[i] = store.Write{Type: OutboxType, ID: e.ID, Op: store.OpDelete, Patient: e.Patient}
	}
	_, err := st.S.Commit(ctx, writes)
	if errors.Is(err, store.ErrNotFound) && len(entries) > 1 {
		// One was removed already (a recovery racing a late Published):
		// remove the others one by one.
		var errs []error
		for _, e := range entries {
			errs = append(errs, st.Queued(ctx, e))
		}
		return errors.Join(errs...)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Watched returns the events among events that a subscription watches now:
// only those need an outbox record, so a change nobody subscribed to costs
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
// outbox records committed with it (the writes OutboxWrites gave; other
// writes are ignored) and removes the records.
func (d *Dispatcher) Published(ctx context.Context, writes []store.Write) error {
	var entries []OutboxEntry
	for _, w := range writes {
		if w.Type != OutboxType || w.Render == nil {
			continue
		}
		raw, err := w.Render(0, time.Time{})
		var rec outboxRecord
		if err == nil {
			err = json.Unmarshal(raw, &rec)
		}
		if err != nil {
			return fmt.Errorf("notify: outbox record %s: %w", w.ID, err)
		}
		entries = append(entries, OutboxEntry{ID: w.ID, Patient: w.Patient, Events: rec.Events})
	}
	return d.queue(ctx, entries)
}

// recover queues what a previous process committed but did not queue.
func (d *Dispatcher) recover(ctx context.Context) error {
	entries, err := d.state.Unqueued(ctx)
	if err != nil {
		return err
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
