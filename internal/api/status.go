package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// kjStatus serves GET /Patient/{id}/$kj-status: whether the patient has
// critical information and when it last changed, whether parts of the
// record are restricted and whether the calling HP is blocked — and
// nothing more, so an EHR can poll it without opening the record.
func (s *Server) kjStatus(c *gin.Context) {
	c.Set(keyInteraction, "operation")
	c.Set(keyType, "Patient")
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	g, ok := s.allowAs(c, auth.Read, access.Status, "Patient", id, nil)
	if !ok {
		return
	}
	st := g.state
	if g.open {
		var err error
		if st, err = s.patientState(c, id, nil); err != nil {
			s.failErr(c, err)
			return
		}
		if !st.Exists {
			s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "Patient/" + id + " is not known"})
			return
		}
	}
	var last time.Time
	has := false
	for _, typ := range []string{"AllergyIntolerance", "Flag"} {
		vs, err := s.store.Compartment(c, id, typ)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.failErr(c, err)
			return
		}
		for _, v := range vs {
			has = true
			if v.LastUpdated.After(last) {
				last = v.LastUpdated
			}
		}
	}
	var params []string
	params = append(params, fmt.Sprintf(`{"name":"hasCriticalInformation","valueBoolean":%t}`, has))
	if has {
		params = append(params, fmt.Sprintf(`{"name":"criticalInformationLastChanged","valueInstant":%q}`, fhir.FormatInstant(last)))
	}
	params = append(params, fmt.Sprintf(`{"name":"restricted","valueBoolean":%t}`, len(st.Restricted) > 0))
	for _, sec := range st.Restricted {
		params = append(params, fmt.Sprintf(`{"name":"restrictedSection","valueCode":%q}`, string(sec)))
	}
	if g.hpr != "" {
		params = append(params, fmt.Sprintf(`{"name":"blocked","valueBoolean":%t}`, slices.Contains(st.BlockedHPR, g.hpr)))
	}
	body := `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
	s.write(c, http.StatusOK, out, []byte(body))
}
