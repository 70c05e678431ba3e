package interaction

import (
	"context"
	"errors"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// stampSettingTime makes Consent.dateTime of a privacy setting the
// server's (privacy.StampSince): the 30 days before a reserved record is
// deleted run from when this server recorded the reservation, never from
// a time the client claims. It re-parses the stamped body, so what is
// validated, decided on and stored carries the server's time. Other
// resources, and Consents that are no privacy setting, pass unchanged.
func (s *Service) stampSettingTime(ctx context.Context, c *Call, body []byte, res *fhir.Resource) ([]byte, *fhir.Resource, error) {
	if res.Type != "Consent" || !privacy.IsSetting(body) {
		return body, res, nil
	}
	var prev []byte
	if c.Kind != Create && c.ID != "" {
		v, err := s.store.Read(ctx, "Consent", c.ID)
		switch {
		case err == nil && !v.Deleted:
			prev = v.Body
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, nil, err
		}
	}
	stamped := privacy.StampSince(body, prev, s.cfg.Now())
	out, err := s.codec.Parse(stamped)
	if err != nil {
		return nil, nil, err
	}
	// A conditional update set the id of the resource it matched on the
	// parsed resource; the new parse must carry it too.
	if res.ID != "" {
		out.SetID(res.ID)
	}
	return stamped, out, nil
}
