package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// Options configure a Dispatcher. Zero values take the defaults.
type Options struct {
	// Client sends the notifications. Default: a client with a 10 s
	// timeout that does not follow redirects (a redirect could lead off
	// the allow-list).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx is done (default: a timer). Tests pass
	// a fake that advances their clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxAttempts bounds the attempts per delivery (default 10); after the
	// last one the delivery is dropped and the subscription stays in
	// status error until a later delivery succeeds.
	MaxAttempts int
	// BaseDelay is the wait after the first failure (default 2 s); it
	// doubles with every further failure up to MaxDelay (default 15 min).
	BaseDelay, MaxDelay time.Duration
	// ServerBase is the server's base URL for absolute references in
	// notifications (empty: relative references).
	ServerBase string
	// Log receives what the dispatcher cannot hand to a caller (default
	// slog.Default()).
	Log *slog.Logger
	// Lease, when set, makes Run deliver only while this process holds it
	// (package lease): of several processes on one database, one
	// delivers. Nil: Run always delivers (one process per store, as with
	// the embedded engine, whose file one process holds).
	Lease Lease
	// Poll is how often Run, while it holds the Lease, looks for
	// deliveries that other processes queued (default 1 s; their Publish
	// cannot wake this process).
	Poll time.Duration
}

// Lease is what Run needs of a lease shared by the processes on one
// database (*lease.Lease): work runs while this process holds it, and its
// context ends before another process can hold it.
type Lease interface {
	Run(ctx context.Context, work func(ctx context.Context)) error
}

// recordTimeout bounds the writes that record a sent delivery after the
// caller's context ended.
const recordTimeout = 10 * time.Second

// Dispatcher queues notifications for the subscriptions watching a
// changed resource and delivers them, one worker per subscription, in
// order, retrying with exponential backoff. Everything it queues is in
// the State first, so a restart loses nothing: a new Dispatcher over the
// same State delivers what was pending (Run or Flush). Several processes
// on one database each have one; Options.Lease makes one of them deliver.
type Dispatcher struct {
	state State
	opt   Options
	wake  chan struct{}
	gate  gateBox

	mu    sync.Mutex
	busy  map[string]bool // subscription id -> a worker runs
	dirty map[string]bool // subscription id -> new work arrived while busy
	wg    sync.WaitGroup
}

// NewDispatcher returns a Dispatcher over state.
func NewDispatcher(state State, opt Options) *Dispatcher {
	if opt.Client == nil {
		opt.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Sleep == nil {
		opt.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 10
	}
	if opt.BaseDelay <= 0 {
		opt.BaseDelay = 2 * time.Second
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 15 * time.Minute
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	return &Dispatcher{
		state: state, opt: opt, wake: make(chan struct{}, 1),
		busy: map[string]bool{}, dirty: map[string]bool{},
	}
}

// Backoff returns the wait after the given number of failed attempts.
func (d *Dispatcher) Backoff(failures int) time.Duration {
	w := d.opt.BaseDelay
	for i := 1; i < failures && w < d.opt.MaxDelay; i++ {
		w *= 2
	}
	return min(w, d.opt.MaxDelay)
}

// Publish queues a notification for every subscription watching one of
// events (same type and patient, not off, not ended) and returns the
// queued deliveries once they are durable. It does not send: Run (or
// Flush) does. The REST layer calls it after the commit that changed the
// resources; events of one commit for one patient become one notification
// per subscription.
func (d *Dispatcher) Publish(ctx context.Context, events ...Event) ([]Delivery, error) {
	byPatient := map[string][]Event{}
	var patients []string
	for _, ev := range events {
		if _, ok := byPatient[ev.Patient]; !ok {
			patients = append(patients, ev.Patient)
		}
		byPatient[ev.Patient] = append(byPatient[ev.Patient], ev)
	}
	now := d.opt.Now()
	var out []Delivery
	for _, p := range patients {
		subs, err := d.state.Subscriptions(ctx, p)
		if err != nil {
			return out, err
		}
		for _, s := range subs {
			var match []Event
			for _, ev := range byPatient[p] {
				if s.Watches(ev, now) {
					match = append(match, Event{ResourceType: ev.ResourceType, ID: ev.ID, Patient: ev.Patient})
				}
			}
			if len(match) == 0 {
				continue
			}
			// The access rules first: nothing is queued (or counted) for a
			// blocked subscriber or a reserved patient.
			ok, err := d.permits(ctx, s)
			if err != nil {
				return out, err
			}
			if !ok {
				continue
			}
			del, err := d.state.Enqueue(ctx, s.ID, match, now)
			if errors.Is(err, ErrNoSubscription) {
				continue // deleted meanwhile
			}
			if err != nil {
				return out, err
			}
			out = append(out, del)
		}
	}
	if len(out) > 0 {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return out, nil
}

// Run delivers what is pending and then whatever Publish queues, until ctx
// is done; it waits for its workers before returning ctx's error. With a
// Lease it delivers only while it holds the lease: what other processes
// queue it finds by polling, and it stops before the next send when the
// lease is lost. A delivery whose send succeeded but whose removal from
// the queue was not recorded (the process died in between) is sent again
// by the next holder, with the same event numbers, so the subscriber can
// tell: delivery is at least once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.opt.Lease == nil {
		d.recoverOutbox(ctx, time.Time{})
		d.deliverWhile(ctx, nil, nil)
		return ctx.Err()
	}
	return d.opt.Lease.Run(ctx, func(held context.Context) {
		poll := time.NewTicker(d.opt.Poll)
		defer poll.Stop()
		// Other processes write the outbox too: only what they left
		// behind is queued here, now and every half OutboxAge.
		d.recoverOutbox(held, time.Now().Add(-OutboxAge))
		last := time.Now()
		d.deliverWhile(held, poll.C, func() {
			if time.Since(last) >= OutboxAge/2 {
				d.recoverOutbox(held, time.Now().Add(-OutboxAge))
				last = time.Now()
			}
		})
	})
}

// recoverOutbox queues what the outbox holds of changes made before
// madeBefore (zero: all of it); see recover.
func (d *Dispatcher) recoverOutbox(ctx context.Context, madeBefore time.Time) {
	if err := d.recover(ctx, madeBefore); err != nil && ctx.Err() == nil {
		// What stays in the outbox is queued later (at the next start,
		// or by the lease holder's next pass); the deliveries already
		// pending go out meanwhile.
		d.opt.Log.Error("change notifications of committed changes not queued; retried later", "error", err)
	}
}

// deliverWhile delivers until ctx is done, on every wake-up and every
// tick of poll (after calling onPoll, if set), and waits for its workers.
func (d *Dispatcher) deliverWhile(ctx context.Context, poll <-chan time.Time, onPoll func()) {
	defer d.wg.Wait()
	for {
		if err := d.kick(ctx); err != nil && ctx.Err() == nil {
			// The state could not be listed; try again on the next wake-up
			// or after a pause.
			go func() {
				if d.opt.Sleep(ctx, d.opt.BaseDelay) == nil {
					select {
					case d.wake <- struct{}{}:
					default:
					}
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-poll:
			if onPoll != nil {
				onPoll()
			}
		}
	}
}

// Flush delivers everything pending now (retrying, with the configured
// sleep between attempts) and returns when no delivery is pending any
// more, each having been delivered or given up, or when ctx is done. It
// does not ask the Lease: it is for one process on its own store (tests,
// tools).
func (d *Dispatcher) Flush(ctx context.Context) error {
	if err := d.recover(ctx, time.Time{}); err != nil {
		return err
	}
	err := d.kick(ctx)
	d.wg.Wait()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// kick starts a worker for every subscription with pending deliveries.
func (d *Dispatcher) kick(ctx context.Context) error {
	pending, err := d.state.Pending(ctx)
	if err != nil {
		return err
	}
	telemetry.NotifyQueue.Set(float64(len(pending)))
	seen := map[string]bool{}
	for _, p := range pending {
		if seen[p.Subscription] {
			continue
		}
		seen[p.Subscription] = true
		d.mu.Lock()
		if d.busy[p.Subscription] {
			d.dirty[p.Subscription] = true
		} else {
			d.busy[p.Subscription] = true
			d.wg.Add(1)
			go d.worker(ctx, p.Subscription)
		}
		d.mu.Unlock()
	}
	return nil
}

func (d *Dispatcher) pendingFor(ctx context.Context, subID string) ([]Delivery, error) {
	all, err := d.state.Pending(ctx)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for _, p := range all {
		if p.Subscription == subID {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return firstSeq(out[i]) < firstSeq(out[j]) })
	return out, nil
}

func firstSeq(d Delivery) int64 {
	if len(d.Events) == 0 {
		return 0
	}
	return d.Events[0].Seq
}

func (d *Dispatcher) worker(ctx context.Context, subID string) {
	defer d.wg.Done()
	for {
		list, err := d.pendingFor(ctx, subID)
		if err == nil {
			for _, del := range list {
				if err = d.deliver(ctx, del); err != nil {
					break
				}
			}
		}
		d.mu.Lock()
		if err == nil && d.dirty[subID] && ctx.Err() == nil {
			delete(d.dirty, subID)
			d.mu.Unlock()
			continue
		}
		delete(d.dirty, subID)
		delete(d.busy, subID)
		d.mu.Unlock()
		return
	}
}

// deliver sends one delivery until it succeeds or is given up. It returns
// an error only when it had to stop (ctx done, state unavailable), leaving
// the delivery pending.
func (d *Dispatcher) deliver(ctx context.Context, del Delivery) error {
	for {
		if wait := del.NextAttempt.Sub(d.opt.Now()); !del.NextAttempt.IsZero() && wait > 0 {
			if err := d.opt.Sleep(ctx, wait); err != nil {
				return err
			}
		}
		sub, err := d.state.Subscription(ctx, del.Subscription)
		if errors.Is(err, ErrNoSubscription) {
			return d.finish(ctx, del) // deleted: nobody to notify
		}
		if err != nil {
			return err
		}
		if sub.Status == StatusOff {
			return d.finish(ctx, del)
		}
		// Asked again at sending: a block or reservation made after the
		// notification was queued drops it unsent.
		ok, err := d.permits(ctx, sub)
		if err != nil {
			return err
		}
		if !ok {
			return d.finish(ctx, del)
		}
		sub.ServerBase = d.opt.ServerBase
		if err := ctx.Err(); err != nil {
			// Stopped or the lease lost: not one more send.
			return err
		}
		sendErr := d.send(ctx, sub, del)
		if sendErr == nil {
			telemetry.NotifySent.Inc()
			// Sent: recorded even if ctx ends now (stopping, the lease
			// lost), within the store's own deadline, so that the window
			// in which the next holder sends it again stays the time of
			// this one write.
			done, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
			defer cancel()
			if err := d.finish(done, del); err != nil {
				return err
			}
			_, err := d.state.Record(done, sub.ID, nil)
			if errors.Is(err, ErrNoSubscription) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		telemetry.NotifyFailures.Inc()
		del.Attempts++
		del.LastError = sendErr.Error()
		if _, err := d.state.Record(ctx, sub.ID, sendErr); err != nil && !errors.Is(err, ErrNoSubscription) {
			return err
		}
		if del.Attempts >= d.opt.MaxAttempts {
			return d.finish(ctx, del)
		}
		del.NextAttempt = d.opt.Now().Add(d.Backoff(del.Attempts))
		if err := d.state.Save(ctx, del); err != nil {
			return err
		}
	}
}

// finish takes a delivery off the queue, sent or given up.
func (d *Dispatcher) finish(ctx context.Context, del Delivery) error {
	err := d.state.Done(ctx, del)
	if err == nil {
		// The depth is counted at every kick; between kicks it goes down
		// with every delivery finished, so it does not stay up once the
		// queue has drained.
		telemetry.NotifyQueue.Dec()
	}
	return err
}

func (d *Dispatcher) send(ctx context.Context, sub Subscription, del Delivery) error {
	body := Notification(sub, del.Events)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("delivery failed: %v", err)
	}
	for _, h := range sub.Headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	req.Header.Set("Content-Type", mimeFHIRJSON)
	resp, err := d.opt.Client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // drop the URL, which is in the subscription anyway
		}
		return fmt.Errorf("delivery failed: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("delivery failed: the endpoint answered HTTP %d", resp.StatusCode)
	}
	return nil
}
