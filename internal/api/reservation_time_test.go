package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// TestClientDatedReservationKeepsThe30Days: the 30 days before a reserved
// record is deleted run from when the server recorded the reservation
// (DOMAIN.md rule 4). A reservation the client dates 31 days back is
// stored with the server's time, is not purged by the next run of the job,
// and can be undone with the record intact.
func TestClientDatedReservationKeepsThe30Days(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		s.addCitizen(t)
		ctx := context.Background()
		citizen, gp := s.token("citizen", ""), s.token("gp", citizenPatient)
		back := time.Now().UTC().Add(-31 * 24 * time.Hour).Truncate(time.Second)

		before := time.Now().Add(-time.Second)
		r := s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, back, nil))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		id := r.json(t)["id"].(string)
		recorded, err := time.Parse(time.RFC3339Nano, r.json(t)["dateTime"].(string))
		require.NoError(t, err)
		assert.False(t, recorded.Before(before), "dateTime is the server's time (%s), not the client's (%s)", recorded, back)

		purged, err := (&privacy.Purger{Store: st}).RunOnce(ctx)
		require.NoError(t, err)
		assert.Empty(t, purged, "a reservation recorded just now is not 30 days old")
		outcome(t, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil), http.StatusNotFound)

		// Sending the reservation again (still in force, another date)
		// keeps the time the server first recorded it.
		r = s.as_(citizen, "", "PUT", "/Consent/"+id, withID(t, consent(privacy.Reservation, true, back.Add(-time.Hour), nil), id))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		again, err := time.Parse(time.RFC3339Nano, r.json(t)["dateTime"].(string))
		require.NoError(t, err)
		assert.True(t, again.Equal(recorded), "re-sent reservation keeps %s, got %s", recorded, again)

		// Undo (also client-dated in the past): everything is back.
		r = s.as_(citizen, "", "PUT", "/Consent/"+id, withID(t, consent(privacy.Reservation, false, back, nil), id))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		lifted, err := time.Parse(time.RFC3339Nano, r.json(t)["dateTime"].(string))
		require.NoError(t, err)
		assert.True(t, lifted.After(recorded), "lifting is recorded at the server's time")
		r = s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil)
		assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

		// Put in force again: a new time, so the 30 days start over.
		r = s.as_(citizen, "", "PUT", "/Consent/"+id, withID(t, consent(privacy.Reservation, true, back, nil), id))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		renewed, err := time.Parse(time.RFC3339Nano, r.json(t)["dateTime"].(string))
		require.NoError(t, err)
		assert.True(t, renewed.After(lifted))
	})
}
