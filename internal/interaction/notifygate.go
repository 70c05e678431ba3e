package interaction

import (
	"context"

	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// notificationAllowed is the dispatcher's gate (notify.Gate): before a
// change notification is queued and again before it is sent, the access
// rules decide with the patient's state now (access.DecideNotification):
// a blocked subscriber (rule 6) or a reserved patient (rule 4) gets no
// further notifications on a subscription made before. The state is read
// as for every request, privacy settings included, and with the same
// clock; without access rules (--insecure-no-auth) everything goes out.
func (s *Service) notificationAllowed(ctx context.Context, sub notify.Subscription) (bool, error) {
	if s.cfg.Policy == nil {
		return true, nil
	}
	st, err := s.patientState(ctx, sub.Patient, store.Version{})
	if err != nil {
		return false, err
	}
	d := s.cfg.Policy.DecideNotification(sub.SubscriberHPR, st)
	if !d.Allowed() {
		// The reason stays in the server's log: the subscriber is told
		// nothing, as a reserved record must look like none.
		s.log.InfoContext(ctx, "change notification withheld", "subscription", sub.ID, "reason", string(d.Reason))
	}
	return d.Allowed(), nil
}
