package privacy

import (
	"slices"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// Summary is what a patient's settings in force mean for access.
type Summary struct {
	// Reserved is set by an active reservation or a secret address.
	Reserved bool
	// ReservedSince is the earliest active reservation's dateTime: the
	// deletion deadline counts from the first opt-out still in force.
	// The dateTime is the server's time of recording (StampSince), never
	// a client's.
	// Zero when only the secret address reserves the patient and no
	// automatic reservation Consent has been written yet.
	ReservedSince time.Time
	// SecretAddress is the population register's flag as given to State.
	SecretAddress bool
	// AutomaticReservation is set when an active reservation comes from the
	// population register (the citizen cannot lift it).
	AutomaticReservation bool
	// Restricted are the restricted sections, in AllSections order.
	Restricted []access.Section
	// BlockedHPR are the blocked HPR numbers, sorted, without repeats.
	BlockedHPR []string
	// DocumentsBlocked is set when the documents section is restricted:
	// the citizen has blocked document sharing.
	DocumentsBlocked    bool
	PortalAccessRemoved bool
	// PurgeAt is when the reserved record must be deleted (zero if not
	// reserved by a Consent); PurgeDue reports that it has come.
	PurgeAt  time.Time
	PurgeDue bool
}

// State combines the patient's settings; lifted ones are ignored. now
// decides PurgeDue.
func State(settings []Setting, secretAddress bool, now time.Time) Summary {
	sum := Summary{SecretAddress: secretAddress, Reserved: secretAddress}
	restricted := map[access.Section]bool{}
	for _, s := range settings {
		if !s.Active {
			continue
		}
		switch s.Kind {
		case Reservation:
			sum.Reserved = true
			sum.AutomaticReservation = sum.AutomaticReservation || s.Automatic
		case Restriction:
			for _, sec := range s.Sections {
				restricted[sec] = true
			}
		case Block:
			for _, h := range s.BlockedHPR {
				if !slices.Contains(sum.BlockedHPR, h) {
					sum.BlockedHPR = append(sum.BlockedHPR, h)
				}
			}
		case PortalAccessRemoved:
			sum.PortalAccessRemoved = true
		}
	}
	for _, sec := range AllSections {
		if restricted[sec] {
			sum.Restricted = append(sum.Restricted, sec)
		}
	}
	slices.Sort(sum.BlockedHPR)
	sum.DocumentsBlocked = restricted[access.Documents]
	sum.PurgeDue, sum.PurgeAt = PurgeDue(settings, now)
	if since, ok := reservedSince(settings); ok {
		sum.ReservedSince = since
	}
	return sum
}

// Fill sets the privacy fields of st (SecretAddress, Reserved, Restricted,
// BlockedHPR, DocumentsBlocked, PortalAccessRemoved) and leaves the fields
// that come from the Patient resource alone.
func (s Summary) Fill(st *access.PatientState) {
	st.SecretAddress = s.SecretAddress
	st.Reserved = s.Reserved
	st.Restricted = slices.Clone(s.Restricted)
	st.BlockedHPR = slices.Clone(s.BlockedHPR)
	st.DocumentsBlocked = s.DocumentsBlocked
	st.PortalAccessRemoved = s.PortalAccessRemoved
}

func reservedSince(settings []Setting) (time.Time, bool) {
	var since time.Time
	found := false
	for _, s := range settings {
		if s.Active && s.Kind == Reservation && (!found || s.Since.Before(since)) {
			since, found = s.Since, true
		}
	}
	return since, found
}

// PurgeDue reports whether the record must be deleted now: an active
// reservation (automatic ones included) has been in force for 30 days or
// more. The time is when deletion is or becomes due (the earliest active
// reservation's dateTime plus 30 days), zero without an active
// reservation, so a job can also schedule the next run.
func PurgeDue(settings []Setting, now time.Time) (bool, time.Time) {
	since, ok := reservedSince(settings)
	if !ok {
		return false, time.Time{}
	}
	at := since.Add(ReservationRetention)
	return !now.Before(at), at
}
