package notify

import (
	"context"
	"sync/atomic"
)

// ExtSubscriber records, on a stored Subscription, the HPR number of the
// health personnel whose token created it. The server sets it; a client's
// value is never read (ParseSubscription ignores extensions), so nobody
// can subscribe in another HP's name or dodge a block.
const ExtSubscriber = "https://kjernejournal.no/fhir/StructureDefinition/subscription-subscriber-hpr"

// Gate says whether a notification may go out on sub now. The access
// rules decide (package access, through the server's interactions): a
// blocked subscriber or a reserved patient gets no further notifications.
// An error leaves the work where it is, to be tried again.
type Gate func(ctx context.Context, sub Subscription) (bool, error)

// gateBox holds the Gate; the server sets it once its rules exist, which
// is after the Dispatcher is built.
type gateBox struct{ g atomic.Pointer[Gate] }

// SetGate installs the gate asked before a notification is queued and
// again before it is sent (a block set or a reservation made meanwhile
// stops what is pending). Without a gate every notification goes out, as
// for a server without access rules (--insecure-no-auth) and the
// package's own tests. Set it before Run or Flush.
func (d *Dispatcher) SetGate(g Gate) {
	if g == nil {
		d.gate.g.Store(nil)
		return
	}
	d.gate.g.Store(&g)
}

// permits asks the gate, if any.
func (d *Dispatcher) permits(ctx context.Context, sub Subscription) (bool, error) {
	g := d.gate.g.Load()
	if g == nil {
		return true, nil
	}
	return (*g)(ctx, sub)
}
