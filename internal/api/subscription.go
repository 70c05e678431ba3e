package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Notifications of changed critical information: FHIR R4 Subscriptions
// (rest-hook, backport id-only or empty payloads) for one patient. They
// carry no health data; the receiver fetches with its own token and basis.
type Notifications struct {
	State      *notify.StoreState
	Dispatcher *notify.Dispatcher
	// Dev allows http endpoints on loopback (the development setup).
	Dev bool
	// Allow lists the endpoint hosts (suffixes) notifications may go to.
	Allow []string
}

func (s *Server) subscriptionCreate(c *gin.Context) {
	c.Set(keyInteraction, "create")
	c.Set(keyType, "Subscription")
	n := s.cfg.Notify
	if n == nil {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: "change notifications are not enabled on this server"})
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	sub, err := notify.ParseSubscription(body, n.Dev, n.Allow)
	if err != nil {
		var ne *notify.Error
		if errors.As(err, &ne) {
			issues := make([]fhir.Issue, len(ne.Issues))
			for i, is := range ne.Issues {
				issues[i] = fhir.Issue{Severity: "error", Code: is.Code, Diagnostics: is.Message, Expression: []string{is.Path}}
			}
			s.fail(c, http.StatusUnprocessableEntity, issues...)
			return
		}
		s.failErr(c, err)
		return
	}
	// Only health personnel with the patient in context subscribe.
	if p := principal(c); p != nil && p.Kind() != auth.KindPractitioner {
		s.refuse(c, http.StatusForbidden, "role-not-allowed", "subscriptions are made by health personnel treating the patient")
		return
	}
	if _, ok := s.allow(c, auth.Create, "Subscription", sub.Patient); !ok {
		return
	}
	sub.ID = rand.Text()
	if err := n.State.PutSubscription(c, sub); err != nil {
		s.failErr(c, err)
		return
	}
	v, err := s.store.Read(c, notify.SubscriptionType, sub.ID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	v.Body = withoutHeaders(v.Body)
	s.sendWritten(c, out, v, http.StatusCreated)
}

func (s *Server) subscriptionRead(c *gin.Context) {
	c.Set(keyInteraction, "read")
	c.Set(keyType, "Subscription")
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	v, err := s.store.Read(c, notify.SubscriptionType, id)
	if err != nil || v.Deleted {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "Subscription/" + id + " is not known"})
		return
	}
	if _, ok := s.allow(c, auth.Read, "Subscription", v.Patient); !ok {
		return
	}
	v.Body = withoutHeaders(v.Body)
	s.sendVersion(c, out, v)
}

// withoutHeaders hides channel.header: it usually holds the receiver's
// credentials.
func withoutHeaders(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	var ch map[string]json.RawMessage
	if json.Unmarshal(m["channel"], &ch) != nil || ch["header"] == nil {
		return body
	}
	delete(ch, "header")
	m["channel"], _ = json.Marshal(ch)
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

// withOutbox adds to writes the outbox records of the changes of critical
// information among them (notify.OutboxWrites): the commit that makes the
// changes also records that they are to be notified, so a crash before
// the notifications are queued loses none of them.
func (s *Server) withOutbox(ctx context.Context, writes []store.Write) []store.Write {
	if s.cfg.Notify == nil {
		return writes
	}
	var events []notify.Event
	for _, w := range writes {
		if w.Type != "AllergyIntolerance" && w.Type != "Flag" {
			continue
		}
		patient := w.Patient
		if patient == "" && w.Op == store.OpDelete {
			// A delete names no patient; the version it ends does.
			if cur, err := s.store.Read(ctx, w.Type, w.ID); err == nil {
				patient = cur.Patient
			}
		}
		if patient != "" {
			events = append(events, notify.Event{ResourceType: w.Type, ID: w.ID, Patient: patient})
		}
	}
	if len(events) == 0 {
		return writes
	}
	if watched, err := s.cfg.Notify.Dispatcher.Watched(ctx, events); err == nil {
		events = watched
	} else {
		// Unsure who watches: keep every event; the dispatcher sorts it out.
		s.log.Warn("subscriptions not read before a change; every event goes to the outbox", "error", err)
	}
	if len(events) == 0 {
		return writes
	}
	return append(slices.Clip(writes), notify.OutboxWrites(events)...)
}

// published queues the notifications of a committed change from the
// outbox records among its writes. The change is already durable; what
// cannot be queued now stays in the outbox, and the dispatcher queues it
// at its next start.
func (s *Server) published(ctx context.Context, writes []store.Write) {
	if s.cfg.Notify == nil {
		return
	}
	if err := s.cfg.Notify.Dispatcher.Published(context.WithoutCancel(ctx), writes); err != nil {
		s.log.Error("change notification not queued; it stays in the outbox until the next start", "error", err)
	}
}
