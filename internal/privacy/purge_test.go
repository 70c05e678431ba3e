package privacy

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// A record purged 30 days after its reservation takes its critical
// information (Consents with scope adr included) and the queue items
// about the patient (pending notifications) with it, on the real store,
// and leaves other patients' record and queue items alone.
func TestPurgerRemovesRecordAndQueueItems(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	reservedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	put := func(typ, id, patient, body string) store.Write {
		return store.Write{Type: typ, ID: id, Op: store.OpPut, Patient: patient,
			Render: func(int64, time.Time) ([]byte, error) { return []byte(body), nil }}
	}
	for _, p := range []string{"p1", "p2"} {
		_, err := st.Commit(ctx, store.Batch{
			Writes: []store.Write{
				put("Patient", p, p, `{"resourceType":"Patient"}`),
				put("Flag", "f-"+p, p, `{"resourceType":"Flag"}`),
				put("AllergyIntolerance", "a-"+p, p, `{"resourceType":"AllergyIntolerance"}`),
				// Critical information stored as Consent: a limit of
				// life-prolonging treatment.
				put("Consent", "adr-"+p, p, `{"resourceType":"Consent","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]}}`),
			},
			Queue: []store.QueueOp{{Queue: "notify-delivery", ID: "d-" + p, Patient: p, Body: []byte("pending")}},
		})
		require.NoError(t, err)
	}
	_, err = st.Commit(ctx, store.Batch{Writes: []store.Write{
		put("Consent", "c-p1", "p1", string(AutomaticReservation("p1", reservedAt))),
	}})
	require.NoError(t, err)

	queued := func() []string {
		var out []string
		require.NoError(t, st.ScanQueue(ctx, "notify-delivery", func(it store.QueueItem) error {
			out = append(out, it.ID)
			return nil
		}))
		slices.Sort(out)
		return out
	}
	job := &Purger{Store: st, Now: func() time.Time { return reservedAt.Add(ReservationRetention - time.Minute) }}
	purged, err := job.RunOnce(ctx)
	require.NoError(t, err)
	assert.Empty(t, purged, "not before 30 days")
	assert.Equal(t, []string{"d-p1", "d-p2"}, queued())

	job.Now = func() time.Time { return reservedAt.Add(ReservationRetention) }
	purged, err = job.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, purged)
	assert.Equal(t, []string{"d-p2"}, queued(), "the reserved patient's queue items are gone")
	cs, err := st.Compartment(ctx, "p1", "")
	require.NoError(t, err)
	var left []string
	for _, v := range cs {
		left = append(left, v.Type)
	}
	assert.Equal(t, []string{"Consent", "Patient"}, left, "the person and the settings stay")
	_, err = st.Read(ctx, "Consent", "adr-p1")
	assert.ErrorIs(t, err, store.ErrNotFound, "a Consent that is critical information goes with the record")
	_, err = st.Read(ctx, "Consent", "c-p1")
	require.NoError(t, err, "the reservation itself stays")
	cs, err = st.Compartment(ctx, "p2", "")
	require.NoError(t, err)
	assert.Len(t, cs, 4, "the other patient's record is untouched")
}
