package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
	// Subscription returns one subscription with its delivery state;
	// ErrNoSubscription if none.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Subscriptions returns every subscription on patient, any status,
	// with its delivery state.
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
	// Unqueued returns the outbox items of committed changes whose
	// notifications are not queued yet (see OutboxOps).
	Unqueued(ctx context.Context) ([]OutboxEntry, error)
	// Queued removes outbox items once their notifications are queued.
	Queued(ctx context.Context, entries ...OutboxEntry) error
}

// SubscriptionType is the FHIR type of a subscription: the one thing of
// this package that is a resource, written when a client creates or
// changes a subscription, with Patient set to the watched patient.
const SubscriptionType = "Subscription"

// Queues StoreState keeps its work in (store.QueueOp). Queue items are no
// resources: they add no versions, are never served, and carry the
// patient, so a reservation's Purge removes them with the record.
const (
	// OutboxQueue holds the changes committed but not yet notified
	// (OutboxOps), one item per patient and commit.
	OutboxQueue = "notify-outbox"
	// DeliveryQueue holds the pending deliveries, one item each.
	DeliveryQueue = "notify-delivery"
	// statusQueuePrefix + a subscription id names the queue that holds
	// that subscription's delivery state, item statusItem: one queue per
	// subscription, because ScanQueue is the one way to read an item.
	statusQueuePrefix = "notify-status-"
	statusItem        = "status"
)

// Earlier versions kept pending deliveries and outbox records as
// resources of these private types; StoreState moves what it finds of
// them into the queues (Unqueued).
const (
	legacyDeliveryType = "KjNotificationDelivery"
	legacyOutboxType   = "KjNotificationOutbox"
)

// PurgeTypes are the resource types to add to a reservation's store.Purge
// so the patient's subscriptions go with the record (their queue items go
// anyway: Purge removes every queue item about the patient). The private
// types of earlier versions are listed too, for the deleted versions
// their move into the queues leaves; nothing writes them any more.
var PurgeTypes = []string{SubscriptionType, legacyDeliveryType, legacyOutboxType}

// StoreState implements State on any store.Store engine: a subscription
// is a Subscription resource holding what the client sent; its delivery
// state (events-since-subscription-start, the last error, the failure
// count), the pending deliveries and the outbox are queue items, so a
// notification queued, tried, retried or delivered changes no resource
// and adds no version. Read-modify-writes of a subscription's delivery
// state are serialised per subscription within the process; processes
// sharing the store number events uniquely when Numbers is set.
// Deliveries are not claimed: one
// dispatcher delivers at a time, the holder of its lease (Options.Lease)
// when several processes share the store.
type StoreState struct {
	S store.Store
	// Numbers, when set, claims every event number of a subscription in
	// the database before it is used, so that processes queueing for one
	// subscription at the same instant never give two events one number
	// (the delivery state's read-modify-write is serialised within a
	// process only). Nil: one process per store.
	Numbers store.Once

	locks sync.Map // subscription id -> *sync.Mutex
}

// NewStoreState returns a State on s.
func NewStoreState(s store.Store) *StoreState { return &StoreState{S: s} }

const maxRetries = 20

// lock serialises the read-modify-writes of one subscription's delivery
// state.
func (st *StoreState) lock(id string) func() {
	m, _ := st.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// liveStatus is a subscription's delivery state, as its status item
// stores it.
type liveStatus struct {
	Events   int64  `json:"events"`
	Failures int    `json:"failures,omitempty"`
	Error    string `json:"error,omitempty"`
}

func statusQueue(subID string) string { return statusQueuePrefix + subID }

func (st *StoreState) statusOp(sub Subscription) (store.QueueOp, error) {
	body, err := json.Marshal(liveStatus{Events: sub.Events, Failures: sub.Failures, Error: sub.Error})
	if err != nil {
		return store.QueueOp{}, fmt.Errorf("notify: delivery state of subscription %s: %w", sub.ID, err)
	}
	return store.QueueOp{Queue: statusQueue(sub.ID), ID: statusItem, Patient: sub.Patient, Body: body}, nil
}

// withStatus merges the subscription's status item into sub, read from
// its stored resource. Without an item (nothing was delivered yet, or the
// resource was stored by an earlier version with the state in it) the
// resource's values stand.
func (st *StoreState) withStatus(ctx context.Context, sub Subscription) (Subscription, error) {
	var live *liveStatus
	err := st.S.ScanQueue(ctx, statusQueue(sub.ID), func(it store.QueueItem) error {
		if it.ID != statusItem {
			return nil
		}
		live = &liveStatus{}
		if err := json.Unmarshal(it.Body, live); err != nil {
			return fmt.Errorf("notify: delivery state of subscription %s: %w", sub.ID, err)
		}
		return nil
	})
	if err != nil || live == nil {
		return sub, err
	}
	sub.Events, sub.Failures, sub.Error = live.Events, live.Failures, live.Error
	if sub.Status != StatusOff {
		sub.Status = StatusActive
		if live.Error != "" {
			sub.Status = StatusError
		}
	}
	return sub, nil
}

// read returns the stored version of a subscription and the subscription
// with its delivery state.
func (st *StoreState) read(ctx context.Context, id string) (store.Version, Subscription, error) {
	v, err := st.S.Read(ctx, SubscriptionType, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return store.Version{}, Subscription{}, fmt.Errorf("%w: %s", ErrNoSubscription, id)
	}
	if err != nil {
		return store.Version{}, Subscription{}, err
	}
	sub, err := decodeStored(v.Body)
	if err != nil {
		return store.Version{}, Subscription{}, err
	}
	sub, err = st.withStatus(ctx, sub)
	return v, sub, err
}

// Served returns what GET /Subscription/{id} answers: the stored
// Subscription with its delivery state (status, error, counters) merged
// in and channel.header left out (it usually holds the receiver's
// credentials), as the version it is (patient, version id and
// lastUpdated of the stored resource; the delivery state has none).
// ErrNoSubscription if there is no such subscription, or it was deleted.
func (st *StoreState) Served(ctx context.Context, id string) (store.Version, error) {
	v, sub, err := st.read(ctx, id)
	if err != nil {
		return store.Version{}, err
	}
	sub.Headers = nil
	body, err := sub.Resource(v.VersionID, v.LastUpdated)
	if err != nil {
		return store.Version{}, fmt.Errorf("notify: render subscription %s: %w", id, err)
	}
	v.Body, v.Index = body, nil
	return v, nil
}

func (st *StoreState) subWrite(sub Subscription) store.Write {
	return store.Write{
		Type: SubscriptionType, ID: sub.ID, Op: store.OpPut, Patient: sub.Patient,
		Render: func(v int64, at time.Time) ([]byte, error) { return sub.render(v, at, false) },
	}
}

// CreateWrite returns the write that creates sub, which has a new,
// server-assigned id, for the caller to commit in its own Batch (with the
// usage-log record of the request that creates it). The resource holds
// what the client sent; the delivery state starts empty. A clash with an
// existing id fails that commit (Create).
func (st *StoreState) CreateWrite(sub Subscription) store.Write {
	w := st.subWrite(sub)
	w.Create = true
	return w
}

// PutSubscription implements State. The resource holds what the client
// sent; the delivery state stays in its queue item. A subscription stored
// by an earlier version with its state in the resource gets the item
// here, in the same commit, so that the state outlives the rewrite.
func (st *StoreState) PutSubscription(ctx context.Context, sub Subscription) error {
	if sub.ID == "" || sub.Patient == "" {
		return errors.New("notify: PutSubscription needs an id and a patient")
	}
	for range maxRetries {
		cur, err := st.S.Read(ctx, SubscriptionType, sub.ID)
		b := store.Batch{Writes: []store.Write{st.subWrite(sub)}}
		switch {
		case errors.Is(err, store.ErrNotFound):
			b.Writes[0].Create = true
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
				if old.Events != 0 || old.Failures != 0 || old.Error != "" {
					merged, err := st.withStatus(ctx, old)
					if err != nil {
						return err
					}
					op, err := st.statusOp(merged)
					if err != nil {
						return err
					}
					b.Queue = append(b.Queue, op)
				}
			}
			b.Writes[0].IfMatch = cur.VersionID
		}
		_, err = st.S.Commit(ctx, b)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("notify: subscription %s keeps changing; giving up", sub.ID)
}

// Subscription implements State.
func (st *StoreState) Subscription(ctx context.Context, id string) (Subscription, error) {
	_, sub, err := st.read(ctx, id)
	return sub, err
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
		if s, err = st.withStatus(ctx, s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func deliveryOp(d Delivery) (store.QueueOp, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return store.QueueOp{}, fmt.Errorf("notify: delivery %s: %w", d.ID, err)
	}
	return store.QueueOp{Queue: DeliveryQueue, ID: d.ID, Patient: d.Patient, Body: body}, nil
}

// Enqueue implements State: the delivery and the subscription's advanced
// event count are written in one commit.
func (st *StoreState) Enqueue(ctx context.Context, subID string, events []Event, now time.Time) (Delivery, error) {
	defer st.lock(subID)()
	sub, err := st.Subscription(ctx, subID)
	if err != nil {
		return Delivery{}, err
	}
	d := Delivery{ID: rand.Text(), Subscription: subID, Patient: sub.Patient, Created: now.UTC(), Events: make([]Event, len(events))}
	for i, ev := range events {
		n, err := st.nextNumber(ctx, subID, sub.Events+1)
		if err != nil {
			return Delivery{}, err
		}
		sub.Events = n
		ev.Seq = n
		d.Events[i] = ev
	}
	status, err := st.statusOp(sub)
	if err != nil {
		return Delivery{}, err
	}
	del, err := deliveryOp(d)
	if err != nil {
		return Delivery{}, err
	}
	if _, err := st.S.Commit(ctx, store.Batch{Queue: []store.QueueOp{status, del}}); err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// numberKeep is how long a claimed event number stays claimed: far
// longer than another process's view of the count can lag behind.
const numberKeep = time.Hour

// nextNumber returns the first event number from from on that is free:
// from itself without Numbers, else the first one this call claims
// (another process may have used from already).
func (st *StoreState) nextNumber(ctx context.Context, subID string, from int64) (int64, error) {
	if st.Numbers == nil {
		return from, nil
	}
	for n := from; n < from+10000; n++ {
		now := time.Now()
		ok, err := st.Numbers.ClaimOnce(ctx, "notify-event:"+subID+":"+strconv.FormatInt(n, 10), now, now.Add(numberKeep))
		if err != nil {
			return 0, fmt.Errorf("notify: number event %d of subscription %s: %w", n, subID, err)
		}
		if ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("notify: no free event number of subscription %s from %d on", subID, from)
}

// Save implements State.
func (st *StoreState) Save(ctx context.Context, d Delivery) error {
	op, err := deliveryOp(d)
	if err != nil {
		return err
	}
	_, err = st.S.Commit(ctx, store.Batch{Queue: []store.QueueOp{op}})
	return err
}

// Done implements State.
func (st *StoreState) Done(ctx context.Context, d Delivery) error {
	_, err := st.S.Commit(ctx, store.Batch{Queue: []store.QueueOp{{Queue: DeliveryQueue, ID: d.ID, Remove: true}}})
	return err
}

// Pending implements State.
func (st *StoreState) Pending(ctx context.Context) ([]Delivery, error) {
	var out []Delivery
	err := st.S.ScanQueue(ctx, DeliveryQueue, func(it store.QueueItem) error {
		var d Delivery
		if err := json.Unmarshal(it.Body, &d); err != nil {
			return fmt.Errorf("notify: stored delivery %s: %w", it.ID, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Record implements State.
func (st *StoreState) Record(ctx context.Context, subID string, attempt error) (Subscription, error) {
	defer st.lock(subID)()
	sub, err := st.Subscription(ctx, subID)
	if err != nil {
		return Subscription{}, err
	}
	if attempt == nil {
		if sub.Status != StatusError && sub.Error == "" && sub.Failures == 0 {
			// The common case, success on a healthy subscription, writes
			// nothing.
			return sub, nil
		}
		sub.Error, sub.Failures = "", 0
		if sub.Status == StatusError {
			sub.Status = StatusActive
		}
	} else {
		sub.Error = attempt.Error()
		sub.Failures++
		if sub.Status != StatusOff {
			sub.Status = StatusError
		}
	}
	op, err := st.statusOp(sub)
	if err != nil {
		return Subscription{}, err
	}
	if _, err := st.S.Commit(ctx, store.Batch{Queue: []store.QueueOp{op}}); err != nil {
		return Subscription{}, err
	}
	return sub, nil
}
