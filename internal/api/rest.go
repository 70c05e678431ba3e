package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// resourceType checks the :type parameter; unknown types get 404.
func (s *Server) resourceType(c *gin.Context) (string, bool) {
	t := c.Param("type")
	if slices.Contains(fhir.ServedTypes, t) {
		c.Set(keyType, t)
		return t, true
	}
	s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-supported",
		Diagnostics: fmt.Sprintf("resource type %q is not served here; served types: %v", t, fhir.ServedTypes)})
	return "", false
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}

// pathID checks the :id parameter.
func (s *Server) pathID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if validID(id) {
		return id, true
	}
	if id == "_history" {
		// GET /{type}/_history is the history-type interaction, which is
		// not offered (nor advertised): that is a 405, not a bad id.
		s.notAllowed(c, "", fmt.Sprintf("%s %s: the history of a whole type is not offered; read the history of one resource at /%s/{id}/_history",
			c.Request.Method, c.Request.URL.Path, c.Param("type")))
		return "", false
	}
	s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
		Diagnostics: fmt.Sprintf("%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", id)})
	return "", false
}

// target reads the common parts of an instance-level request: the
// interaction for metrics, the type and id in the path, and the output
// format. It answers the request itself and returns false if any is bad.
func (s *Server) target(c *gin.Context, interaction string) (typ, id string, out output, ok bool) {
	c.Set(keyInteraction, interaction)
	if typ, ok = s.resourceType(c); !ok {
		return
	}
	if id, ok = s.pathID(c); !ok {
		return
	}
	out, ok = s.negotiate(c)
	return
}

// ifMatch reads the If-Match header (0 if absent).
func (s *Server) ifMatch(c *gin.Context) (int64, bool) {
	h := c.GetHeader("If-Match")
	if h == "" {
		return 0, true
	}
	v, err := parseETag(h)
	if err != nil {
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: "If-Match: " + err.Error()})
		return 0, false
	}
	return v, true
}

func (s *Server) baseURL(c *gin.Context) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (s *Server) read(c *gin.Context) {
	typ, id, out, ok := s.target(c, "read")
	if !ok {
		return
	}
	v, err := s.store.Read(c, typ, id)
	s.answerVersion(c, out, v, err, fmt.Sprintf("%s/%s is not known", typ, id))
}

// answerVersion answers a read or vread: 404 when there is no such
// version, else the version if the enforcement point lets it through.
func (s *Server) answerVersion(c *gin.Context, out output, v store.Version, err error, missing string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: missing})
	case err != nil:
		s.failErr(c, err)
	default:
		// A reserved record answers exactly as a missing one would.
		c.Set(keyMissing, missing)
		if s.allowVersion(c, v) {
			s.sendVersion(c, out, v)
		}
	}
}

// allowVersion passes one stored version through the enforcement point.
func (s *Server) allowVersion(c *gin.Context, v store.Version) bool {
	var pv *store.Version
	if v.Type == "Patient" && !v.Deleted {
		pv = &v
	}
	g, ok := s.allowKnown(c, auth.Read, v.Type, v.Patient, pv)
	if !ok {
		return false
	}
	if !v.Deleted && !s.admits(g, v) {
		s.refuseScope(c, "insufficient-scope",
			fmt.Sprintf("the token's scopes do not cover %s/%s (granular scope constraint)", v.Type, v.ID))
		return false
	}
	return true
}

// sendVersion answers a read or vread of one version.
func (s *Server) sendVersion(c *gin.Context, out output, v store.Version) {
	setVersionHeaders(c, v)
	if v.Deleted {
		s.fail(c, http.StatusGone, fhir.Issue{Severity: "error", Code: "deleted",
			Diagnostics: fmt.Sprintf("%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID)})
		return
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		if n, err := parseETag(inm); err == nil && n == v.VersionID {
			c.Status(http.StatusNotModified)
			return
		}
	}
	body, err := out.shape(v.Body)
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.write(c, http.StatusOK, out, body)
}

func (s *Server) vread(c *gin.Context) {
	typ, id, out, ok := s.target(c, "vread")
	if !ok {
		return
	}
	if c.Param("sub") != "_history" {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
			Diagnostics: "no FHIR endpoint at " + c.Request.URL.Path})
		return
	}
	vid, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || vid < 1 {
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: fmt.Sprintf("version %q is not a version number", c.Param("vid"))})
		return
	}
	v, err := s.store.VRead(c, typ, id, vid)
	s.answerVersion(c, out, v, err, fmt.Sprintf("%s/%s has no version %d", typ, id, vid))
}

// instanceSub serves /{type}/{id}/_history and /Patient/{id}/{type}.
func (s *Server) instanceSub(c *gin.Context) {
	if c.Param("sub") == "_history" {
		s.history(c)
		return
	}
	if c.Param("type") == "Patient" && c.Param("sub") == "$kj-status" {
		s.kjStatus(c)
		return
	}
	if c.Param("type") == "Patient" && slices.Contains(fhir.ServedTypes, c.Param("sub")) {
		s.searchCompartment(c)
		return
	}
	s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
		Diagnostics: "no FHIR endpoint at " + c.Request.URL.Path})
}

func (s *Server) history(c *gin.Context) {
	typ, id, out, ok := s.target(c, "history-instance")
	if !ok {
		return
	}
	q := store.HistoryQuery{}
	params := c.Request.URL.Query()
	for name := range params {
		switch name {
		case "_count", "_since", "_format", "_pretty", "_summary", "_elements":
		default:
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "parameter " + strconv.Quote(name) + " is not supported on _history", Expression: []string{name}})
			return
		}
	}
	if cs := params.Get("_count"); cs != "" {
		n, err := strconv.Atoi(cs)
		if err != nil || n < 0 {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
				Diagnostics: "_count must be a non-negative integer, not " + strconv.Quote(cs), Expression: []string{"_count"}})
			return
		}
		q.Count = min(n, 1000)
	} else {
		q.Count = 100
	}
	if ss := params.Get("_since"); ss != "" {
		t, err := parseInstant(ss)
		if err != nil {
			s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
				Diagnostics: "_since must be a FHIR instant such as 2024-05-01T12:00:00Z: " + err.Error(), Expression: []string{"_since"}})
			return
		}
		q.Since = t
	}
	var versions []store.Version
	var err error
	if q.Count > 0 || out.summary == "count" {
		versions, err = s.store.History(c, typ, id, store.HistoryQuery{Since: q.Since})
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
				Diagnostics: fmt.Sprintf("%s/%s is not known", typ, id)})
			return
		}
		s.failErr(c, err)
		return
	}
	patients := map[string]bool{}
	c.Set(keyMissing, fmt.Sprintf("%s/%s is not known", typ, id))
	for _, v := range versions {
		if !patients[v.Patient] {
			patients[v.Patient] = true
			if !s.allowVersion(c, v) {
				return
			}
		}
	}
	total := len(versions)
	if len(versions) > q.Count {
		versions = versions[:q.Count]
	}
	base := s.baseURL(c)
	var entries []fhir.BundleEntry
	if out.summary != "count" {
		for _, v := range versions {
			e := fhir.BundleEntry{
				FullURL:              base + "/" + v.Type + "/" + v.ID,
				RequestURL:           v.Type + "/" + v.ID,
				ResponseStatus:       "200",
				ResponseETag:         etag(v.VersionID),
				ResponseLastModified: v.LastUpdated,
			}
			switch {
			case v.Deleted:
				e.RequestMethod, e.ResponseStatus = http.MethodDelete, "204"
			case v.VersionID == 1:
				e.RequestMethod, e.ResponseStatus = http.MethodPost, "201"
				e.RequestURL = v.Type
			default:
				e.RequestMethod = http.MethodPut
			}
			if !v.Deleted {
				b, err := out.shape(v.Body)
				if err != nil {
					s.failErr(c, err)
					return
				}
				e.Resource = b
			}
			entries = append(entries, e)
		}
	}
	self := base + c.Request.URL.RequestURI()
	s.write(c, http.StatusOK, out, fhir.Bundle(fhir.BundleOptions{
		Type: "history", Total: &total, Links: []fhir.Link{{Relation: "self", URL: self}}, ID: rand.Text(),
	}, entries))
}

// notAllowed answers 405 with the methods the target does support in
// Allow, as HTTP requires of a 405 (empty when there are none).
func (s *Server) notAllowed(c *gin.Context, allow, diagnostics string) {
	c.Writer.Header()["Allow"] = []string{allow} // set even when empty; gin's Header would drop it
	s.fail(c, http.StatusMethodNotAllowed, fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: diagnostics})
}

func (s *Server) create(c *gin.Context) {
	c.Set(keyInteraction, "create")
	if c.Param("type") == "metadata" {
		// /metadata exists (GET); it is just not written to.
		s.notAllowed(c, "GET", "the CapabilityStatement is read with GET /metadata; it cannot be posted to")
		return
	}
	typ, ok := s.resourceType(c)
	if !ok {
		return
	}
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	s.write1(c, out, typ, "", 0, true)
}

// write1 runs a create (id "") or an update: read and validate the body,
// pass the enforcement point (and, for a privacy setting, who may change
// it), commit, answer.
func (s *Server) write1(c *gin.Context, out output, typ, id string, ifMatch int64, create bool) {
	body, err := s.readBody(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if body, err = stampRecorder(body, typ, principal(c), s.cfg.Now()); err != nil {
		s.failErr(c, err)
		return
	}
	w, err := s.prepareWrite(c, typ, id, body, ifMatch, create)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if create {
		if _, ok := s.allow(c, auth.Create, typ, w.res.Patient); !ok {
			return
		}
	} else if !s.allowWrite(c, auth.Update, typ, id, w.res.Patient) {
		return
	}
	if typ == "Consent" && !s.checkPrivacyWrite(c, w.res, body) {
		return
	}
	if criteria := c.GetHeader("If-None-Exist"); create && criteria != "" {
		s.createConditional(c, out, w, criteria)
		return
	}
	writes := s.withOutbox(c, []store.Write{w.write})
	vs, err := s.store.Commit(c, writes)
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.published(c, writes)
	status := http.StatusOK
	if create || vs[0].VersionID == 1 {
		status = http.StatusCreated
	}
	s.sendWritten(c, out, vs[0], status)
}

func (s *Server) update(c *gin.Context) {
	typ, id, out, ok := s.target(c, "update")
	if !ok {
		return
	}
	ifMatch, ok := s.ifMatch(c)
	if !ok {
		return
	}
	s.write1(c, out, typ, id, ifMatch, false)
}

func (s *Server) delete(c *gin.Context) {
	typ, id, _, ok := s.target(c, "delete")
	if !ok {
		return
	}
	ifMatch, ok := s.ifMatch(c)
	if !ok {
		return
	}
	if typ == "Consent" {
		// A privacy setting is lifted (status inactive), never deleted: its
		// history is part of what the citizen and the log can see.
		s.notAllowed(c, "GET, PUT", "privacy settings are not deleted; lift one by updating it with status inactive")
		return
	}
	if !s.allowWrite(c, auth.Delete, typ, id, "") {
		return
	}
	writes := s.withOutbox(c, []store.Write{{Type: typ, ID: id, Op: store.OpDelete, IfMatch: ifMatch}})
	vs, err := s.store.Commit(c, writes)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
				Diagnostics: fmt.Sprintf("%s/%s is not known, so there is nothing to delete", typ, id)})
			return
		}
		s.failErr(c, err)
		return
	}
	if vs[0].Patient == "" {
		if prev, err := s.store.VRead(c, typ, id, vs[0].VersionID-1); err == nil {
			vs[0].Patient = prev.Patient
		}
	}
	s.published(c, writes)
	setVersionHeaders(c, vs[0])
	c.Status(http.StatusNoContent)
}

// allowWrite passes an update or delete through the enforcement point: for
// the patient the resource belongs to now and, for an update, the patient
// it will belong to (moving a resource touches both records).
func (s *Server) allowWrite(c *gin.Context, in auth.Interaction, typ, id, newPatient string) bool {
	cur, err := s.store.Read(c, typ, id)
	switch {
	case err == nil && !cur.Deleted:
		if _, ok := s.allow(c, in, typ, cur.Patient); !ok {
			return false
		}
		if in == auth.Delete || cur.Patient == newPatient {
			return true
		}
	case errors.Is(err, store.ErrNotFound) || err == nil:
		if in == auth.Delete {
			return true // nothing to touch; the store answers 404
		}
	default:
		s.failErr(c, err)
		return false
	}
	_, ok := s.allow(c, in, typ, newPatient)
	return ok
}

// sendWritten answers a create or update, honouring Prefer: return=.
func (s *Server) sendWritten(c *gin.Context, out output, v store.Version, status int) {
	setVersionHeaders(c, v)
	c.Header("Location", s.baseURL(c)+"/"+v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.VersionID, 10))
	switch preferReturn(c.GetHeader("Prefer")) {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		s.write(c, status, out, fhir.Outcome(fhir.Issue{Severity: "information", Code: "informational",
			Diagnostics: fmt.Sprintf("%s/%s stored as version %d", v.Type, v.ID, v.VersionID)}))
	default:
		body, err := out.shape(v.Body)
		if err != nil {
			s.failErr(c, err)
			return
		}
		s.write(c, status, out, body)
	}
}

func preferReturn(h string) string {
	for _, part := range strings.Split(h, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "return="); ok {
			return v
		}
	}
	return ""
}

// pendingWrite is a parsed, validated resource ready to commit.
type pendingWrite struct {
	write store.Write
	res   *fhir.Resource
}

// prepareWrite parses and validates a body for create (id == "") or
// update, and checks the kjernejournal rules that need the store.
func (s *Server) prepareWrite(ctx context.Context, typ, id string, body []byte, ifMatch int64, create bool) (*pendingWrite, error) {
	res, err := s.codec.Parse(body)
	if err != nil {
		return nil, err
	}
	if res.Type != typ {
		return nil, invalid(res.Type+".resourceType", "the body is a %s, but the URL is for %s", res.Type, typ)
	}
	// Base R4 (400), then kjernejournal's rules (400), then the profile
	// of critical information (422, with every violated rule).
	if err := checkRules(res, body); err != nil {
		return nil, err
	}
	if err := checkProfile(typ, body); err != nil {
		return nil, err
	}
	if create {
		id = rand.Text()
	} else if res.ID == "" {
		return nil, invalid(typ+".id", "an update must carry the id from the URL (%s) in the body", id)
	} else if res.ID != id {
		return nil, invalid(typ+".id", "the body's id %q differs from the URL's id %q", res.ID, id)
	}
	res.SetID(id)
	if err := s.checkPatientExists(ctx, res, nil); err != nil {
		return nil, err
	}
	return s.pendingFor(res, ifMatch, create)
}

// pendingFor turns a validated resource into a store.Write (JSON, search
// index, identifiers: see package ingest).
func (s *Server) pendingFor(res *fhir.Resource, ifMatch int64, create bool) (*pendingWrite, error) {
	p := ingest.Preparer{Codec: s.codec, Search: s.reg}
	w, err := p.Write(res, ifMatch, create)
	if err != nil {
		return nil, err
	}
	return &pendingWrite{res: res, write: w}, nil
}

// checkPatientExists refuses clinical resources for a patient the store
// does not hold; patients created in the same transaction are in created.
func (s *Server) checkPatientExists(ctx context.Context, res *fhir.Resource, created map[string]bool) error {
	if res.Type == "Patient" || res.Patient == "" || created[res.Patient] {
		return nil
	}
	v, err := s.store.Read(ctx, "Patient", res.Patient)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return invalid(patientElement(res.Type), "%s refers to Patient/%s, which this server does not hold", patientElement(res.Type), res.Patient)
	}
	return err
}

// dropText removes the narrative (_summary=data).
func dropText(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if _, ok := m["text"]; !ok {
		return body, nil
	}
	delete(m, "text")
	return json.Marshal(m)
}

// datePrefix splits a date search value of the simple searches this layer
// answers itself (usage log, documents) into its FHIR comparator (eq when
// none is given) and its time; timed says whether it carried a time of day.
func datePrefix(v string) (prefix string, t time.Time, timed bool, err error) {
	prefix = "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	t, err = parseInstant(v)
	return prefix, t, strings.Contains(v, "T"), err
}

// dayEnd is the last instant of the day that starts at t.
func dayEnd(t time.Time) time.Time { return t.Add(24*time.Hour - time.Nanosecond) }

func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a date or instant", s)
}
