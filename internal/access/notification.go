package access

import "slices"

// SubscriberUnknown: a Subscription that does not record which health
// personnel made it (stored before the server recorded the subscriber)
// cannot be checked against the patient's blocks, so nothing is sent.
const SubscriberUnknown Reason = "subscriber-unknown"

// DecideNotification says whether a change notification may go to the
// health personnel (HPR number subscriberHPR) who subscribed to the
// patient's critical information, with the patient's state now, when the
// notification is queued and again when it is sent. A subscription is
// made under the rules of its time; the rules that can change afterwards
// stop its notifications:
//
//   - Rule 4: a reserved record (or none: purged, deleted) is as if it
//     did not exist; no notification tells anybody that it changed.
//   - Rule 6: a blocked HP gets nothing, emergencies included; the block
//     is checked after the reservation, as for every other request, so the
//     reason recorded never reveals a block on a reserved record.
//   - Without a known subscriber a block cannot be checked: fail closed.
//
// Restrictions (rule 5) do not stop notifications: like $kj-status they
// show that something changed, never what, and the HP opens restricted
// parts with an elevated basis (rule 9: the receiver fetches with its own
// token and basis, and every fetch passes Decide).
func (p *Policy) DecideNotification(subscriberHPR string, st PatientState) Decision {
	if subscriberHPR == "" {
		return deny(SubscriberUnknown, "the subscription does not record which health personnel made it, so the patient's blocks cannot be checked")
	}
	if !st.Exists || st.ReservedNow() {
		d := deny(NoRecord, "there is no kjernejournal for the patient; no change notifications")
		d.AsNotFound = true
		return d
	}
	if slices.Contains(st.BlockedHPR, subscriberHPR) {
		return deny(HPBlocked, "the patient has blocked health personnel with HPR number %s; no change notifications", subscriberHPR)
	}
	d := permit()
	d.Message = "change notification permitted"
	return d
}
