package privacy

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// PurgedTypes are deleted when a reservation is 30 days old: the record
// itself, with the Consents that are critical information (RunOnce). The
// Patient and the privacy settings stay, so that the person
// stays reserved (no new data is accepted) and can still see and change
// their settings; the usage log is not a resource and stays too.
var PurgedTypes = []string{"AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Condition", "Procedure"}

// Purger deletes the records of patients whose reservation (reservasjon)
// is 30 days old. Its state is the store itself, so it survives restarts:
// every run looks at every reservation again.
type Purger struct {
	Store interface {
		store.Maintenance
		Compartment(ctx context.Context, patient, typ string) ([]store.Version, error)
	}
	Now func() time.Time
	Log *slog.Logger
	// Types to delete; nil means PurgedTypes. The server adds the resource
	// types of its change notifications (notify.PurgeTypes: the
	// Subscriptions). Queue items about the patient (pending
	// notifications) need no type: store.Purge removes them all.
	Types []string
	// Slots, when set, makes Run purge only in the slots of the purge
	// interval that this process wins (*lease.Lease with the interval as
	// its TTL): of several processes on one database, one purges per
	// interval. Nil: Run purges every interval (one process per store).
	Slots interface {
		Each(ctx context.Context, work func(ctx context.Context)) error
	}
}

// RunOnce purges every record that is due and returns the patients purged.
func (p *Purger) RunOnce(ctx context.Context) ([]string, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	patients := map[string]bool{}
	err := p.Store.ScanType(ctx, "Consent", func(v store.Version) error {
		if v.Patient != "" {
			patients[v.Patient] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("purge: scan privacy settings: %w", err)
	}
	var purged []string
	for patient := range patients {
		vs, err := p.Store.Compartment(ctx, patient, "Consent")
		if err != nil {
			return purged, fmt.Errorf("purge: privacy settings of Patient/%s: %w", patient, err)
		}
		bodies := make([][]byte, len(vs))
		for i, v := range vs {
			bodies[i] = v.Body
		}
		settings, err := ParseAll(bodies)
		if err != nil {
			return purged, fmt.Errorf("purge: privacy settings of Patient/%s: %w", patient, err)
		}
		if due, _ := PurgeDue(settings, now()); !due {
			continue
		}
		types := p.Types
		if types == nil {
			types = PurgedTypes
		}
		n, err := p.Store.Purge(ctx, patient, types)
		if err != nil {
			return purged, fmt.Errorf("purge: record of Patient/%s: %w", patient, err)
		}
		// Critical information stored as Consent (limits of
		// life-prolonging treatment, treatment clarifications) is part
		// of the record; the privacy settings beside it are not.
		var critical []string
		for _, v := range vs {
			if profile.CriticalConsent(v.Body) {
				critical = append(critical, v.ID)
			}
		}
		if len(critical) > 0 {
			m, err := p.Store.PurgeResources(ctx, patient, "Consent", critical)
			if err != nil {
				return purged, fmt.Errorf("purge: critical information of Patient/%s: %w", patient, err)
			}
			n += m
		}
		if p.Log != nil && n > 0 {
			p.Log.Info("reservation 30 days old: record deleted", "patient", patient, "resources", n)
		}
		if n > 0 {
			purged = append(purged, patient)
		}
	}
	return purged, nil
}

// Run calls RunOnce every interval until ctx ends; with Slots, once per
// slot this process wins (the slots' length is the interval then).
func (p *Purger) Run(ctx context.Context, every time.Duration) {
	once := func(ctx context.Context) {
		// A run cut short because the server is stopping (or its slot
		// ending) is no failure.
		if _, err := p.RunOnce(ctx); err != nil && ctx.Err() == nil && p.Log != nil {
			p.Log.Error("purge of reserved records failed; retrying at the next run", "error", err)
		}
	}
	if p.Slots != nil {
		_ = p.Slots.Each(ctx, once)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
