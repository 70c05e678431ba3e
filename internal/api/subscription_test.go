package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/notify"
)

// TestChangeNotificationsCarryNoHealthData: an HP subscribes to a
// patient's Flags; a change is announced to a real HTTP receiver with ids
// only, and the subscription refuses full-resource payloads.
func TestChangeNotificationsCarryNoHealthData(t *testing.T) {
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	var disp *notify.Dispatcher
	var state *notify.StoreState
	s := newSecuredWith(t, engines()[0].open(t), func(base string, cfg *api.Config) {
		state = notify.NewStoreState(cfg.Store)
		disp = notify.NewDispatcher(state, notify.Options{ServerBase: base})
		cfg.Notify = &interaction.Notifications{State: state, Dispatcher: disp, Dev: true}
	})
	p0 := s.patients[0]
	// what is served is advertised: Subscription create and read
	assert.Contains(t, string(s.do("GET", "/metadata", nil).body),
		`{"type":"Subscription","interaction":[{"code":"create"},{"code":"read"}]`)
	gp := s.token("gp", p0, "patient/*.rs", "patient/Flag.cud", "patient/Subscription.c")
	sub := func(payload string) []byte {
		return []byte(fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"kritisk info",
		  "criteria":"Flag?patient=%s","channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json",
		  "_payload":{"extension":[{"url":%q,"valueCode":%q}]},"header":["Authorization: Bearer secret"]}}`,
			p0, recv.URL+"/hook", notify.ExtPayloadContent, payload))
	}
	r := s.as_(gp, "UNNTAK", "POST", "/Subscription", sub("full-resource"))
	assert.Equal(t, http.StatusUnprocessableEntity, r.status, "full-resource payloads would carry health data: %s", r.body)
	r = s.as_(gp, "UNNTAK", "POST", "/Subscription", sub("id-only"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	assert.NotContains(t, string(r.body), "secret", "the receiver's credentials are not shown")
	// another patient's record cannot be watched
	other := []byte(strings.ReplaceAll(string(sub("id-only")), p0, s.patients[1]))
	assert.Equal(t, http.StatusForbidden, s.as_(gp, "UNNTAK", "POST", "/Subscription", other).status)

	r = s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", p0, "", "pacemaker implanted"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	flagID := r.json(t)["id"].(string)
	// the write's outbox record went with it and was gone once queued
	unqueued, err := state.Unqueued(context.Background())
	require.NoError(t, err)
	assert.Empty(t, unqueued)
	pending, err := state.Pending(context.Background())
	require.NoError(t, err)
	assert.Len(t, pending, 1, "queued by the write itself, before any flush")
	require.NoError(t, disp.Flush(context.Background()))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1, "one notification")
	assert.Contains(t, got[0], "Flag/"+flagID)
	assert.Contains(t, got[0], "Patient/"+p0)
	assert.NotContains(t, got[0], "pacemaker", "no health data in the notification")
	assert.NotContains(t, got[0], "implantat")
	validR4(t, []byte(got[0]))
}
