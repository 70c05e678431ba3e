package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// withPrivacy adds the patient's privacy settings (reservation,
// restrictions, blocks, portal access; stored as Consent) to st. An
// unreadable setting fails the request rather than being ignored: a
// block that is not understood must not let the blocked HP in.
func (s *Server) withPrivacy(ctx context.Context, patient string, st access.PatientState) (access.PatientState, error) {
	vs, err := s.store.Compartment(ctx, patient, "Consent")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return st, err
	}
	if len(vs) == 0 {
		if st.SecretAddress {
			st.Reserved = true // reserved automatically
		}
		return st, nil
	}
	bodies := make([][]byte, len(vs))
	for i, v := range vs {
		bodies[i] = v.Body
	}
	settings, err := privacy.ParseAll(bodies)
	if err != nil {
		return st, fmt.Errorf("privacy settings of Patient/%s: %w", patient, err)
	}
	privacy.State(settings, st.SecretAddress, s.cfg.Now()).Fill(&st)
	return st, nil
}

// checkPrivacyWrite applies the KjPrivacyConsent profile and who may change
// which setting (citizens their reservation, restrictions and portal
// access; the citizen-support role HP blocks; nobody else). It answers the
// request itself and returns false when the write is refused.
func (s *Server) checkPrivacyWrite(c *gin.Context, res *fhir.Resource, body []byte) bool {
	setting, err := privacy.Parse(body)
	if err != nil {
		var pe *privacy.ProfileError
		if errors.As(err, &pe) {
			issues := make([]fhir.Issue, 0, len(pe.Issues))
			for _, is := range pe.Issues {
				issues = append(issues, fhir.Issue{Severity: "error", Code: "processing", Diagnostics: is.Message, Expression: []string{is.Path}})
			}
			s.fail(c, http.StatusUnprocessableEntity, issues...)
			return false
		}
		s.failErr(c, err)
		return false
	}
	p := principal(c)
	if p == nil {
		return true // authentication is off: only the profile applies
	}
	var prev *privacy.Setting
	if res.ID != "" {
		cur, err := s.store.Read(c, "Consent", res.ID)
		switch {
		case err == nil && !cur.Deleted:
			ps, err := privacy.Parse(cur.Body)
			if err != nil {
				s.failErr(c, fmt.Errorf("stored Consent/%s: %w", res.ID, err))
				return false
			}
			prev = &ps
		case err != nil && !errors.Is(err, store.ErrNotFound):
			s.failErr(c, err)
			return false
		}
	}
	role := roleOf(p)
	if err := privacy.CanChange(role, setting, prev); err != nil {
		reason := "privacy-change-refused"
		var ce *privacy.ChangeError
		if errors.As(err, &ce) {
			reason = string(ce.Reason)
		}
		refuseNoted(c, setting.Patient, "Consent", access.Decision{Effect: access.Deny, Reason: access.Reason(reason), Message: err.Error()})
		s.refuse(c, http.StatusForbidden, reason, err.Error())
		return false
	}
	return true
}

// refuseNoted turns the permit the enforcement point noted for patient
// into d: a check after it (who may change which privacy setting) refused
// the request, and the usage log must record that refusal and its reason,
// not the permit that preceded it.
func refuseNoted(c *gin.Context, patient, typ string, d access.Decision) {
	notes, _ := c.Get(keyAccess)
	ns, _ := notes.([]accessNote)
	found := false
	for i := range ns {
		if ns[i].patient == patient {
			ns[i].decision, found = d, true
		}
	}
	if !found {
		noteAccess(c, patient, typ, d)
	}
}
