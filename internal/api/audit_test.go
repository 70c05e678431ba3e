package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

func auditHead(t *testing.T, st store.Store) int64 {
	t.Helper()
	seq, _, err := st.AuditHead(context.Background())
	require.NoError(t, err)
	return seq
}

// lastAudit returns the newest usage-log record as a generic map.
func lastAudit(t *testing.T, st store.Store) map[string]any {
	t.Helper()
	recs, err := st.SearchAudit(context.Background(), store.AuditQuery{Count: 1})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	var m map[string]any
	require.NoError(t, json.Unmarshal(recs[0].Body, &m))
	return m
}

// TestEveryRouteIsAudited walks every route of the router and shows that
// each data route writes to the usage log, for a permitted and for a
// refused request.
func TestEveryRouteIsAudited(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	fill := func(path string) string {
		r := strings.NewReplacer(":type", "Flag", ":id", "sec-flag-0", ":sub", "_history", ":vid", "1")
		return r.Replace(path)
	}
	bodies := map[string][]byte{
		"POST /":              []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Flag/sec-flag-0"}}]}`),
		"POST /:type":         clinical("Flag", p0, "", "audited"),
		"PUT /:type/:id":      clinical("Flag", p0, "sec-flag-0", "audited"),
		"POST /AuditEvent":    []byte(`{"resourceType":"AuditEvent"}`),
		"PUT /AuditEvent/:id": []byte(`{"resourceType":"AuditEvent"}`),
		"POST /:type/_search": []byte("patient=" + p0),
	}
	checked := 0
	for _, rt := range s.srv.Routes() {
		if rt.Public {
			continue
		}
		key := rt.Method + " " + rt.Path
		t.Run(key, func(t *testing.T) {
			path := fill(rt.Path)
			if strings.HasPrefix(rt.Path, "/AuditEvent") {
				path = strings.Replace(path, "sec-flag-0", "x1", 1)
			}
			if rt.Method == http.MethodGet && (rt.Path == "/:type" || rt.Path == "/AuditEvent") {
				path += "?patient=" + p0
			}
			body := bodies[key]
			for _, withToken := range []bool{false, true} {
				before := auditHead(t, s.st)
				h := []string{"nhn-access-basis", "UNNTAK"}
				if withToken {
					h = append(h, "Authorization", "Bearer "+gp)
				}
				if rt.Path == "/:type/_search" {
					h = append(h, "Content-Type", "application/x-www-form-urlencoded")
				}
				r := s.do(rt.Method, path, body, h...)
				if !withToken {
					assert.Equal(t, http.StatusUnauthorized, r.status, "body: %s", r.body)
				}
				assert.Greater(t, auditHead(t, s.st), before, "%s (token %v, status %d) left no AuditEvent", key, withToken, r.status)
				ev := lastAudit(t, s.st)
				assert.Equal(t, "AuditEvent", ev["resourceType"])
				if !withToken {
					assert.Equal(t, "4", ev["outcome"], "a refusal is logged as one")
				}
			}
		})
		checked++
	}
	assert.GreaterOrEqual(t, checked, 10)
}

func TestAuditEventContent(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	doc := s.token("hospital-doctor", p0)
	r := s.as_(doc, "UNNTAK", "GET", "/MedicationStatement?patient="+p0, nil)
	require.Equal(t, http.StatusOK, r.status)
	ev := lastAudit(t, s.st)
	b, _ := json.Marshal(ev)
	validR4(t, b)
	text := string(b)
	assert.Contains(t, text, doctorHPR, "the HP's HPR number")
	assert.Contains(t, text, "Patient/"+p0)
	assert.Contains(t, text, "UNNTAK", "the access basis")
	assert.Contains(t, text, "300010008", "the organisation")
	assert.Contains(t, text, r.header.Get("X-Request-Id"), "the request id")
	assert.Equal(t, "0", ev["outcome"])

	// a refusal carries its reason
	s.as_(doc, "UNNTAK", "GET", "/Flag/sec-flag-1", nil)
	ev = lastAudit(t, s.st)
	assert.Equal(t, "4", ev["outcome"])
	assert.Contains(t, fmt.Sprint(ev), "patient-not-in-context")

	// AuditEvents cannot be written through the API
	for _, m := range []string{"POST /AuditEvent", "PUT /AuditEvent/1", "DELETE /AuditEvent/1"} {
		method, path, _ := strings.Cut(m, " ")
		outcome(t, s.as_(doc, "", method, path, []byte(`{"resourceType":"AuditEvent"}`)), http.StatusMethodNotAllowed)
	}
	// health personnel cannot read the usage log
	assert.Equal(t, http.StatusForbidden, s.as_(doc, "UNNTAK", "GET", "/AuditEvent?patient="+p0, nil).status)
}

func TestCitizenUsageLog(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	s.addCitizen(t)
	doc := s.token("hospital-doctor", citizenPatient)
	emerg := s.token("emergency", citizenPatient)
	require.Equal(t, http.StatusOK, s.as_(emerg, "AKUTT", "GET", "/Flag/cit-flag", nil).status)
	// an opening of a restricted part
	citizenTok := s.token("citizen", "")
	now := time.Now().UTC().Truncate(time.Second)
	require.Equal(t, http.StatusCreated, s.as_(citizenTok, "", "POST", "/Consent", consent(privacy.Restriction, true, now, []access.Section{access.Medications})).status)
	require.Equal(t, http.StatusOK, s.as_(doc, "FORHOYET_SAMTYKKE", "GET", "/MedicationStatement/cit-med", nil).status)
	require.Equal(t, http.StatusOK, s.as_(doc, "UNNTAK", "GET", "/Flag/cit-flag", nil).status)
	other := s.token("gp", s.patients[1])
	s.as_(other, "SAMTYKKE", "GET", "/Patient/"+citizenPatient+"/Flag", nil) // refused: not in context
	citizen := s.token("citizen", "")

	read := func() []map[string]any {
		r := s.as_(citizen, "", "GET", "/AuditEvent?patient="+citizenPatient, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var out []map[string]any
		for _, e := range r.json(t)["entry"].([]any) {
			out = append(out, e.(map[string]any)["resource"].(map[string]any))
		}
		return out
	}
	evs := read()
	require.NotEmpty(t, evs)
	all, _ := json.Marshal(evs)
	assert.NotContains(t, string(all), "Borghild Thomassen", "the HP's name is hidden for 7 days")
	assert.Contains(t, string(all), "300010008", "the organisation shows at once")
	assert.Contains(t, string(all), "patient-not-in-context", "refusals of others are included")
	assert.Contains(t, string(all), "emergency", "emergency access is marked")
	assert.Contains(t, string(all), "restricted-opened", "openings of restricted parts are marked")
	// newest first
	first := evs[0]["recorded"].(string)
	last := evs[len(evs)-1]["recorded"].(string)
	assert.GreaterOrEqual(t, first, last)

	s.advance(8 * 24 * time.Hour)
	all, _ = json.Marshal(read())
	assert.Contains(t, string(all), "Borghild Thomassen", "after 7 days the name shows")
	// another patient's log is refused
	assert.Equal(t, http.StatusForbidden, s.as_(citizen, "", "GET", "/AuditEvent?patient="+s.patients[1], nil).status)
}

func TestAuditorSearches(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	doc := s.token("hospital-doctor", p0)
	require.Equal(t, http.StatusOK, s.as_(doc, "UNNTAK", "GET", "/Flag/sec-flag-0", nil).status)
	auditor := s.token("auditor", "")
	r := s.as_(auditor, "", "GET", "/AuditEvent?agent=urn:oid:2.16.578.1.12.4.1.4.4|"+doctorHPR, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.NotEmpty(t, r.json(t)["entry"])
	assert.Contains(t, string(r.body), "Borghild Thomassen", "the auditor sees names")
	r = s.as_(auditor, "", "GET", "/AuditEvent?organization=300010008&outcome=0&date=ge2020-01-01", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.NotEmpty(t, r.json(t)["entry"])
	// the auditor's own search is audited, once per patient whose log it returned
	gp1 := s.token("gp", s.patients[1])
	require.Equal(t, http.StatusOK, s.as_(gp1, "SAMTYKKE", "GET", "/Flag/sec-flag-1", nil).status)
	before := auditHead(t, s.st)
	r = s.as_(auditor, "", "GET", "/AuditEvent?outcome=0", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	added, err := s.st.SearchAudit(context.Background(), store.AuditQuery{Count: int(auditHead(t, s.st) - before)})
	require.NoError(t, err)
	var logged []string
	for _, rec := range added {
		logged = append(logged, rec.Patient)
	}
	assert.ElementsMatch(t, []string{s.patients[0], s.patients[1]}, logged, "one AuditEvent per patient")
	// the auditor reads no health data
	assert.Equal(t, http.StatusForbidden, s.as_(auditor, "", "GET", "/Flag/sec-flag-0", nil).status)
}

// TestAuditFailClosed: when the usage log cannot be written, the request
// gets 503 and no resource data leaves, on both engines.
func TestAuditFailClosed(t *testing.T) {
	broken := map[string]func(t *testing.T) store.AuditLog{
		"embedded": func(t *testing.T) store.AuditLog {
			st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "audit.db")})
			require.NoError(t, err)
			require.NoError(t, st.Close()) // a log that is gone
			return st
		},
		"mongodb": func(t *testing.T) store.AuditLog {
			st, err := mongodb.Open(context.Background(), mongodb.Options{URI: mongotest.URI(t), Database: fmt.Sprintf("kjaudit_%d", dbSeq.Add(1))})
			require.NoError(t, err)
			require.NoError(t, st.Close())
			return st
		},
	}
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			codec, err := fhir.NewCodec()
			require.NoError(t, err)
			c := newServer(t, st, api.Config{Audit: broken[e.name](t), Logger: slog.New(slog.DiscardHandler)})
			res, err := codec.Parse(patientJSON(t, 70, "fail-closed"))
			require.NoError(t, err)
			b, err := codec.Marshal(res)
			require.NoError(t, err)
			_, err = st.Commit(context.Background(), []store.Write{{Type: "Patient", ID: res.ID, Patient: res.ID,
				Render: func(v int64, at time.Time) ([]byte, error) { return fhir.WithMeta(b, v, at) }}})
			require.NoError(t, err)
			r := c.do("GET", "/Patient/fail-closed", nil)
			outcome(t, r, http.StatusServiceUnavailable)
			assert.NotContains(t, string(r.body), "Nordmann", "no resource data in the answer")
			assert.Empty(t, r.header.Get("Location"))
			assert.Empty(t, r.header.Get("ETag"))
		})
	}
}
