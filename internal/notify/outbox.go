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
func (st *StoreState) Queued(ctx context.Context, e OutboxEntry) error {
	_, err := st.S.Commit(ctx, []store.Write{{Type: OutboxType, ID: e.ID, Op: store.OpDelete, Patient: e.Patient}})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Published queues the notifications of a committed change from the
// outbox records committed with it (the writes OutboxWrites gave; other
// writes are ignored) and removes the records.
func (d *Dispatcher) Published(ctx context.Context, writes []store.Write) error {
	var errs []error
	for _, w := range writes {
		if w.Type != OutboxType || w.Render == nil {
			continue
		}
		raw, err := w.Render(0, time.Time{})
		var rec outboxRecord
		if err == nil {
			err = json.Unmarshal(raw, &rec)
		}
		if err == nil {
			err = d.queue(ctx, OutboxEntry{ID: w.ID, Patient: w.Patient, Events: rec.Events})
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recover queues what a previous process committed but did not queue.
func (d *Dispatcher) recover(ctx context.Context) error {
	entries, err := d.state.Unqueued(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, d.queue(ctx, e))
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) queue(ctx context.Context, e OutboxEntry) error {
	if _, err := d.Publish(ctx, e.Events...); err != nil {
		return err
	}
	return d.state.Queued(ctx, e)
}
