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

// Delivery is one notification waiting to be delivered to a subscription's
// endpoint. It carries no health data: ids and the patient reference only.
type Delivery struct {
	ID           string    `json:"id"`
	Subscription string    `json:"subscription"`
	Patient      string    `json:"patient"`
	Events       []Event   `json:"events"`
	Attempts     int       `json:"attempts"`             // failed attempts so far
	NextAttempt  time.Time `json:"nextAttempt,omitzero"` // zero: at once
	LastError    string    `json:"lastError,omitempty"`  // why the last attempt failed
	Created      time.Time `json:"created,omitzero"`     // when it was queued
}

// ErrNoSubscription is returned when a subscription does not exist (or was
// deleted).
var ErrNoSubscription = errors.New("notify: no such subscription")

// State keeps subscriptions, their delivery status and the pending
// deliveries, durably: what it returned from Enqueue or Save survives a
// restart.
type State interface {
	// PutSubscription creates or replaces a subscription (the REST
	// layer's create and update). The server state (Error, Failures,
	// Events) of an existing subscription is kept, not taken from sub.
	PutSubscription(ctx context.Context, sub Subscription) error
	// Subscription returns one subscription; ErrNoSubscription if none.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Subscriptions returns every subscription on patient, any status.
	Subscriptions(ctx context.Context, patient string) ([]Subscription, error)
	// Enqueue numbers events in the subscription's stream (Event.Seq,
	// advancing its events-since-subscription-start) and stores a new
	// pending delivery with them, atomically.
	Enqueue(ctx context.Context, subID string, events []Event, now time.Time) (Delivery, error)
	// Save stores a changed pending delivery (after a failed attempt).
	Save(ctx context.Context, d Delivery) error
	// Done removes a delivery that was delivered or given up.
	Done(ctx context.Context, d Delivery) error
	// Pending returns every pending delivery, in no particular order.
	Pending(ctx context.Context) ([]Delivery, error)
	// Record records the outcome of a delivery attempt on the
	// subscription: nil makes it active with no error and no failures, an
	// error makes it error, with the error's text and one more failure. A
	// subscription that is off stays off.
	Record(ctx context.Context, subID string, attempt error) (Subscription, error)
	// Unqueued returns the outbox records of committed changes whose
	// notifications are not queued yet (see OutboxWrites).
	Unqueued(ctx context.Context) ([]OutboxEntry, error)
	// Queued removes outbox records once their notifications are queued.
	Queued(ctx context.Context, entries ...OutboxEntry) error
}

// Resource types StoreState uses. "Subscription" is the FHIR type the REST
// layer serves (GET Subscription/<id> reads the stored JSON as is, after
// masking channel.header). DeliveryType is private: it is not a FHIR type
// and the REST layer must never serve it (it serves only the types it
// knows). Both are written with Patient set to the watched patient, so
// they are in that patient's compartment and a reservation's Purge removes
// them when given these types (see PurgeTypes).
const (
	SubscriptionType = "Subscription"
	DeliveryType     = "KjNotificationDelivery"
)

// PurgeTypes are the types to add to a reservation's store.Purge so the
// patient's subscriptions and pending notifications go with the record.
var PurgeTypes = []string{SubscriptionType, DeliveryType, OutboxType}

// StoreState implements State on any store.Store engine: subscriptions as
// Subscription resources, pending deliveries as resources of the private
// type DeliveryType, listed with Maintenance.ScanType. A delivered
// delivery is deleted (a deleted version, as every engine keeps them).
// Read-modify-writes use IfMatch and retry on conflict, so the REST layer
// and the dispatcher may change a subscription concurrently.
type StoreState struct {
	S store.Store
}

// NewStoreState returns a State on s.
func NewStoreState(s store.Store) *StoreState { return &StoreState{S: s} }

const maxRetries = 20

func (st *StoreState) update(ctx context.Context, id string, change func(*Subscription) error) (Subscription, error) {
	for range maxRetries {
		cur, err := st.S.Read(ctx, SubscriptionType, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.Deleted) {
			return Subscription{}, fmt.Errorf("%w: %s", ErrNoSubscription, id)
		}
		if err != nil {
			return Subscription{}, err
		}
		sub, err := decodeStored(cur.Body)
		if err != nil {
			return Subscription{}, err
		}
		if err := change(&sub); err != nil {
			return Subscription{}, err
		}
		w := st.subWrite(sub)
		w.IfMatch = cur.VersionID
		_, err = st.S.Commit(ctx, []store.Write{w})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Subscription{}, err
		}
		return sub, nil
	}
	return Subscription{}, fmt.Errorf("notify: subscription %s keeps changing; giving up", id)
}

func (st *StoreState) subWrite(sub Subscription) store.Write {
	return store.Write{
		Type: SubscriptionType, ID: sub.ID, Op: store.OpPut, Patient: sub.Patient,
		Render: func(v int64, at time.Time) ([]byte, error) { return sub.Resource(v, at) },
	}
}

// PutSubscription implements State.
func (st *StoreState) PutSubscription(ctx context.Context, sub Subscription) error {
	if sub.ID == "" || sub.Patient == "" {
		return errors.New("notify: PutSubscription needs an id and a patient")
	}
	for range maxRetries {
		cur, err := st.S.Read(ctx, SubscriptionType, sub.ID)
		w := st.subWrite(sub)
		switch {
		case errors.Is(err, store.ErrNotFound):
			w.Create = true
		case err != nil:
			return err
		default:
			if !cur.Deleted {
				old, err := decodeStored(cur.Body)
				if err != nil {
					return err
				}
				if old.Patient != sub.Patient {
					return fmt.Errorf("notify: subscription %s watches patient %s; it cannot be moved to another patient", sub.ID, old.Patient)
				}
				sub.Error, sub.Failures, sub.Events = old.Error, old.Failures, old.Events
				if sub.Status != StatusOff && old.Status == StatusError {
					sub.Status = StatusError
				}
				w = st.subWrite(sub)
			}
			w.IfMatch = cur.VersionID
		}
		_, err = st.S.Commit(ctx, []store.Write{w})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("notify: subscription %s keeps changing; giving up", sub.ID)
}

// Subscription implements State.
func (st *StoreState) Subscription(ctx context.Context, id string) (Subscription, error) {
	v, err := st.S.Read(ctx, SubscriptionType, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return Subscription{}, fmt.Errorf("%w: %s", ErrNoSubscription, id)
	}
	if err != nil {
		return Subscription{}, err
	}
	return decodeStored(v.Body)
}

// Subscriptions implements State.
func (st *StoreState) Subscriptions(ctx context.Context, patient string) ([]Subscription, error) {
	vs, err := st.S.Compartment(ctx, patient, SubscriptionType)
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(vs))
	for _, v := range vs {
		s, err := decodeStored(v.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (st *StoreState) deliveryWrite(d Delivery) store.Write {
	return store.Write{
		Type: DeliveryType, ID: d.ID, Op: store.OpPut, Patient: d.Patient,
		Render: func(int64, time.Time) ([]byte, error) { return json.Marshal(d) },
	}
}

// Enqueue implements State.
func (st *StoreState) Enqueue(ctx context.Context, subID string, events []Event, now time.Time) (Delivery, error) {
	var d Delivery
	for range maxRetries {
		d = Delivery{ID: rand.Text(), Subscription: subID, Created: now.UTC()}
		cur, err := st.S.Read(ctx, SubscriptionType, subID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.Deleted) {
			return Delivery{}, fmt.Errorf("%w: %s", ErrNoSubscription, subID)
		}
		if err != nil {
			return Delivery{}, err
		}
		sub, err := decodeStored(cur.Body)
		if err != nil {
			return Delivery{}, err
		}
		d.Patient = sub.Patient
		d.Events = make([]Event, len(events))
		for i, ev := range events {
			sub.Events++
			ev.Seq = sub.Events
			d.Events[i] = ev
		}
		sw := st.subWrite(sub)
		sw.IfMatch = cur.VersionID
		dw := st.deliveryWrite(d)
		dw.Create = true
		_, err = st.S.Commit(ctx, []store.Write{sw, dw})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Delivery{}, err
		}
		return d, nil
	}
	return Delivery{}, fmt.Errorf("notify: subscription %s keeps changing; giving up", subID)
}

// Save implements State.
func (st *StoreState) Save(ctx context.Context, d Delivery) error {
	_, err := st.S.Commit(ctx, []store.Write{st.deliveryWrite(d)})
	return err
}

// Done implements State.
func (st *StoreState) Done(ctx context.Context, d Delivery) error {
	_, err := st.S.Commit(ctx, []store.Write{{Type: DeliveryType, ID: d.ID, Op: store.OpDelete, Patient: d.Patient}})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Pending implements State.
func (st *StoreState) Pending(ctx context.Context) ([]Delivery, error) {
	var out []Delivery
	err := st.S.ScanType(ctx, DeliveryType, func(v store.Version) error {
		var d Delivery
		if err := json.Unmarshal(v.Body, &d); err != nil {
			return fmt.Errorf("notify: stored delivery %s: %w", v.ID, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Record implements State.
func (st *StoreState) Record(ctx context.Context, subID string, attempt error) (Subscription, error) {
	if attempt == nil {
		// The common case, success on a healthy subscription, writes nothing.
		cur, err := st.Subscription(ctx, subID)
		if err != nil {
			return Subscription{}, err
		}
		if cur.Status != StatusError && cur.Error == "" && cur.Failures == 0 {
			return cur, nil
		}
	}
	return st.update(ctx, subID, func(s *Subscription) error {
		if attempt == nil {
			s.Error, s.Failures = "", 0
			if s.Status == StatusError {
				s.Status = StatusActive
			}
			return nil
		}
		s.Error = attempt.Error()
		s.Failures++
		if s.Status != StatusOff {
			s.Status = StatusError
		}
		return nil
	})
}
