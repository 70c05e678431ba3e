package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// condLocks serialise conditional creates per patient and type, so that an
// EHR reporting the same item twice at once gets one resource, not two.
// They hold within one server process; several processes over one MongoDB
// database can still race (documented).
type condLocks [64]sync.Mutex

func (l *condLocks) lock(typ, patient string) func() {
	h := fnv.New32a()
	h.Write([]byte(typ + "\x00" + patient))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// conditionalMatches runs an If-None-Exist query inside the resource's own
// patient record (a resource never duplicates one of another patient).
func (s *Server) conditionalMatches(c *gin.Context, typ, patient, criteria string) ([]store.Version, error) {
	params, err := url.ParseQuery(criteria)
	if err != nil || len(params) == 0 {
		return nil, invalid("", "If-None-Exist must be a search query such as identifier=system|value, not %q", criteria)
	}
	q, _, err := s.reg.ParseQuery(typ, params, false)
	if err != nil {
		var se *search.Error
		if errors.As(err, &se) {
			return nil, &badRequest{issues: se.Issues}
		}
		return nil, err
	}
	all, err := s.store.Compartment(c, patient, typ)
	if err != nil {
		return nil, err
	}
	var out []store.Version
	for _, v := range all {
		idx, err := s.indexOf(v)
		if err != nil {
			return nil, err
		}
		if q.Match(idx) {
			out = append(out, v)
		}
	}
	return out, nil
}

// createConditional finishes a create that carries If-None-Exist: the
// existing match is answered (200) instead of a new resource, several
// matches are a 412, none creates.
func (s *Server) createConditional(c *gin.Context, out output, w *pendingWrite, criteria string) {
	if w.res.Type == "Patient" || w.res.Patient == "" {
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "not-supported",
			Diagnostics: "conditional create works within a patient's record: for clinical resources only"})
		return
	}
	defer s.conds.lock(w.res.Type, w.res.Patient)()
	matches, err := s.conditionalMatches(c, w.res.Type, w.res.Patient, criteria)
	if err != nil {
		s.failErr(c, err)
		return
	}
	switch len(matches) {
	case 0:
	case 1:
		s.sendWritten(c, out, matches[0], http.StatusOK)
		return
	default:
		s.fail(c, http.StatusPreconditionFailed, fhir.Issue{Severity: "error", Code: "duplicate",
			Diagnostics: fmt.Sprintf("If-None-Exist matched %d resources; it must match at most one", len(matches))})
		return
	}
	writes := s.withOutbox(c, []store.Write{w.write})
	vs, err := s.store.Commit(c, writes)
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.published(c, writes)
	s.sendWritten(c, out, vs[0], http.StatusCreated)
}

// stampRecorder makes the server, not the body, say who recorded critical
// information: the HP of the token, and when.
func stampRecorder(body []byte, typ string, p *auth.Principal, now time.Time) ([]byte, error) {
	if p == nil || p.Kind() != auth.KindPractitioner || p.HPR == "" {
		return body, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return body, nil // the parser reports malformed JSON properly
	}
	who, _ := json.Marshal(map[string]any{
		"identifier": map[string]string{"system": systemHPR, "value": p.HPR},
		"display":    p.Name,
	})
	switch typ {
	case "AllergyIntolerance":
		m["recorder"] = who
		when, _ := json.Marshal(fhir.FormatInstant(now))
		m["recordedDate"] = when
	case "Flag":
		m["author"] = who
	default:
		return body, nil
	}
	return json.Marshal(m)
}
