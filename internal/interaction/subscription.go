package interaction

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/notify"
)

// subscriptionCreate serves POST /Subscription: notifications of changed
// critical information of one patient, for health personnel treating the
// patient (who may subscribe is the decision point's). The Subscription
// and the usage-log record commit together.
func (s *Service) subscriptionCreate(ctx context.Context, req *Request, c *Call) (*Result, error) {
	n := s.cfg.Notify
	if len(c.Body) == 0 {
		return nil, invalid("", "the request has no body; a Subscription in JSON is expected")
	}
	sub, err := notify.ParseSubscription(c.Body, n.Dev, n.Allow)
	if err != nil {
		var ne *notify.Error
		if errors.As(err, &ne) {
			issues := make([]fhir.Issue, len(ne.Issues))
			for i, is := range ne.Issues {
				issues[i] = fhir.Issue{Severity: "error", Code: is.Code, Diagnostics: is.Message, Expression: []string{is.Path}}
			}
			return nil, &Error{Status: http.StatusUnprocessableEntity, Issues: issues}
		}
		return nil, err
	}
	if _, _, err := s.require(ctx, req, ask{in: access.Create, typ: "Subscription", patient: sub.Patient}, absent{kind: unknownResource, typ: "Patient", id: sub.Patient}); err != nil {
		return nil, err
	}
	sub.ID = rand.Text()
	if req.Principal != nil {
		// Who subscribed is the token's, checked against the patient's
		// blocks before every notification (notifygate.go).
		sub.SubscriberHPR = req.Principal.HPR
	}
	req.Facts.ID = sub.ID
	p := &pending{call: c, write: n.State.CreateWrite(sub), status: http.StatusCreated, facts: req.Facts}
	if _, err := s.commit(ctx, []*pending{p}, req.Facts); err != nil {
		return nil, err
	}
	v, err := n.State.Served(ctx, sub.ID)
	if err != nil {
		return nil, err
	}
	return s.written(req, c, v, http.StatusCreated)
}

// subscriptionRead serves GET /Subscription/{id}, with its live status and
// without the channel's headers (they usually hold the receiver's
// credentials).
func (s *Service) subscriptionRead(ctx context.Context, req *Request, c *Call) (*Result, error) {
	missing := absent{kind: unknownResource, typ: "Subscription", id: c.ID}
	v, err := s.cfg.Notify.State.Served(ctx, c.ID)
	if errors.Is(err, notify.ErrNoSubscription) {
		return nil, missing.err()
	}
	if err != nil {
		return nil, err
	}
	if _, _, err := s.require(ctx, req, ask{in: access.Read, typ: "Subscription", patient: v.Patient}, missing); err != nil {
		return nil, err
	}
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	body, err := sh.apply(v.Body)
	if err != nil {
		return nil, err
	}
	return &Result{Status: http.StatusOK, Body: body, Version: &v}, nil
}
