package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"

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

// publish tells the notification dispatcher about committed changes of
// critical information. The change is already durable; a notification
// that cannot be queued is logged, not turned into a failed write.
func (s *Server) publish(ctx context.Context, vs ...store.Version) {
	if s.cfg.Notify == nil {
		return
	}
	var events []notify.Event
	for _, v := range vs {
		if (v.Type == "AllergyIntolerance" || v.Type == "Flag") && v.Patient != "" {
			events = append(events, notify.Event{ResourceType: v.Type, ID: v.ID, Patient: v.Patient})
		}
	}
	if len(events) == 0 {
		return
	}
	if _, err := s.cfg.Notify.Dispatcher.Publish(context.WithoutCancel(ctx), events...); err != nil {
		s.log.Error("change notification not queued", "error", err)
	}
}
