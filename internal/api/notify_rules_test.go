package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// TestNotificationsFollowBlocksAndReservation: two HP subscribe to the
// citizen's Flags over HTTP. Once citizen support blocks one of them
// (rule 6), that HP gets no further notifications, also none queued
// before the block; the other still does. Once the citizen reserves
// (rule 4), nobody gets the notification already queued.
func TestNotificationsFollowBlocksAndReservation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		var mu sync.Mutex
		got := map[string]int{}
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			got[r.URL.Path]++
			mu.Unlock()
		}))
		defer recv.Close()
		count := func() map[string]int {
			mu.Lock()
			defer mu.Unlock()
			out := map[string]int{}
			for k, v := range got {
				out[k] = v
			}
			return out
		}
		var disp *notify.Dispatcher
		s := newSecuredWith(t, st, func(base string, cfg *api.Config) {
			state := notify.NewStoreState(cfg.Store)
			disp = notify.NewDispatcher(state, notify.Options{ServerBase: base})
			cfg.Notify = &interaction.Notifications{State: state, Dispatcher: disp, Dev: true}
		})
		s.addCitizen(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		scopes := []string{"patient/*.rs", "patient/Flag.cud", "patient/Subscription.c"}
		gp, doc := s.token("gp", citizenPatient, scopes...), s.token("hospital-doctor", citizenPatient, scopes...)
		support, citizen := s.token("citizen-support", ""), s.token("citizen", "")
		subscribe := func(tok, hook string) {
			body := fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"kritisk info",
			  "criteria":"Flag?patient=%s","channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json",
			  "_payload":{"extension":[{"url":%q,"valueCode":"id-only"}]}},
			  "extension":[{"url":%q,"valueString":"000000000"}]}`,
				citizenPatient, recv.URL+hook, notify.ExtPayloadContent, notify.ExtSubscriber)
			r := s.as_(tok, "UNNTAK", "POST", "/Subscription", []byte(body))
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			assert.NotContains(t, string(r.body), "000000000", "the subscriber is the token's, never the client's")
		}
		subscribe(gp, "/gp")
		subscribe(doc, "/doc")
		writeFlag := func(text string) {
			r := s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", citizenPatient, "", text))
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		}

		writeFlag("pacemaker")
		require.NoError(t, disp.Flush(ctx))
		assert.Equal(t, map[string]int{"/gp": 1, "/doc": 1}, count(), "both subscribers are told")

		// Queued for both, then the doctor is blocked before it is sent.
		writeFlag("insulinpumpe")
		r := s.as_(support, "", "POST", "/Consent", consent(privacy.Block, true, time.Now(), nil, doctorHPR))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.NoError(t, disp.Flush(ctx))
		assert.Equal(t, map[string]int{"/gp": 2, "/doc": 1}, count(), "a blocked HP gets nothing, not even what was queued")
		writeFlag("stent")
		require.NoError(t, disp.Flush(ctx))
		assert.Equal(t, map[string]int{"/gp": 3, "/doc": 1}, count(), "nor anything later")

		// Queued for the GP, then the citizen reserves: nothing is sent.
		writeFlag("cochleaimplantat")
		r = s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, time.Now(), nil))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		reservation := r.json(t)["id"].(string)
		require.NoError(t, disp.Flush(ctx))
		assert.Equal(t, map[string]int{"/gp": 3, "/doc": 1}, count(), "a reserved record announces nothing")

		// Undone: the GP's subscription works again; the block still holds.
		r = s.as_(citizen, "", "PUT", "/Consent/"+reservation, withID(t, consent(privacy.Reservation, false, time.Now(), nil), reservation))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		writeFlag("hjerteklaff")
		require.NoError(t, disp.Flush(ctx))
		assert.Equal(t, map[string]int{"/gp": 4, "/doc": 1}, count())
	})
}
