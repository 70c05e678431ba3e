package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/webapp"
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
	return rendered(t, recs[0])
}

// rendered is the AuditEvent of a stored record, as the API serves it.
func rendered(t *testing.T, r store.AuditRecord) map[string]any {
	t.Helper()
	ev, err := audit.Render(r.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(ev, &m))
	return m
}

// lastAuditOf returns the newest usage-log record of a patient.
func lastAuditOf(t *testing.T, st store.Store, patient string) map[string]any {
	t.Helper()
	recs, err := st.SearchAudit(context.Background(), store.AuditQuery{Patient: patient, Count: 1})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	return rendered(t, recs[0])
}

// TestEveryRequestIsAudited drives every kind of call the router knows,
// the HTTP endpoints, routing refusals (404, 405, OPTIONS, HEAD), a mounted
// handler and a panic, with and without a token, and shows that each
// leaves an AuditEvent — naming the patient the request named even when
// the token is missing.
func TestEveryRequestIsAudited(t *testing.T) {
	var panicked atomic.Bool
	s := newSecuredWith(t, engines()[0].open(t), func(_ string, cfg *api.Config) {
		cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: "/boom/", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panicked.Store(true)
			panic("a handler that fails")
		})})
		site := webapp.Config{Base: cfg.BaseURL, AuthServer: true}
		cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: "/", Handler: webapp.Landing(site)}, api.Mount{Prefix: "/app/", Handler: webapp.App(site)})
		cfg.CORS = &api.CORS{Loopback: true}
	})
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	cases := []struct {
		method, path string
		body         []byte
		header       []string
		named        string // the patient the request names
	}{
		{"GET", "/metadata", nil, nil, ""},
		{"GET", "/StructureDefinition/KjFlag", nil, nil, ""},
		{"GET", "/SearchParameter/clinical-patient", nil, nil, ""},
		{"GET", "/StructureDefinition?url=https%3A%2F%2Fkjernejournal.example.no%2Ffhir%2FStructureDefinition%2FKjFlag", nil, nil, ""},
		{"PUT", "/SearchParameter/clinical-patient", []byte(`{"resourceType":"SearchParameter","id":"clinical-patient"}`), nil, ""},
		{"GET", "/Flag/sec-flag-0", nil, nil, ""},
		{"GET", "/Patient/" + p0, nil, nil, p0},
		{"GET", "/Flag/sec-flag-0/_history/1", nil, nil, ""},
		{"GET", "/Flag/sec-flag-0/_history", nil, nil, ""},
		{"GET", "/Flag?patient=" + p0, nil, nil, p0},
		{"POST", "/Flag/_search", []byte("patient=" + p0), form, ""},
		{"GET", "/Patient/" + p0 + "/Flag", nil, nil, p0},
		{"GET", "/Patient/" + p0 + "/$kj-status", nil, nil, p0},
		{"POST", "/Flag", clinical("Flag", p0, "", "audited"), nil, ""},
		{"PUT", "/Flag/sec-flag-0", clinical("Flag", p0, "sec-flag-0", "audited"), nil, ""},
		{"PUT", "/Flag?code=none&patient=" + p0, clinical("Flag", p0, "", "audited"), nil, p0},
		{"POST", "/Flag/$validate", clinical("Flag", p0, "", "valid"), nil, ""},
		{"POST", "/", []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Flag/sec-flag-0"}}]}`), nil, ""},
		{"GET", "/AuditEvent?patient=" + p0, nil, nil, p0},
		{"POST", "/AuditEvent", []byte(`{"resourceType":"AuditEvent"}`), nil, ""},
		{"DELETE", "/AuditEvent/x1", nil, nil, ""},
		{"GET", "/DocumentReference?patient=" + p0, nil, nil, p0},
		{"GET", "/documents/abc", nil, nil, ""},
		{"GET", "/Observation/1", nil, nil, ""},
		{"PATCH", "/Flag/sec-flag-0", []byte(`[]`), nil, ""},
		{"OPTIONS", "/Flag", nil, nil, ""},
		{"OPTIONS", "/Flag?patient=" + p0, nil, []string{"Origin", "http://127.0.0.1:5173", "Access-Control-Request-Method", "GET"}, ""},
		{"OPTIONS", "/auth/token", nil, []string{"Origin", "http://127.0.0.1:5173", "Access-Control-Request-Method", "POST"}, ""},
		{"GET", "/", nil, nil, ""},
		{"GET", "/app/smart-style.json", nil, nil, ""},
		{"GET", "/ehr", nil, nil, ""},
		{"GET", "/Practitioner/" + gpPersonaHPR, nil, nil, ""},
		{"HEAD", "/Flag/sec-flag-0", nil, nil, ""},
		{"GET", "/no/such/endpoint/at/all", nil, nil, ""},
		{"GET", "/jwks", nil, nil, ""},
		{"GET", "/.well-known/smart-configuration", nil, nil, ""},
		{"POST", "/healthz", nil, nil, ""},
		{"GET", "/boom/now", nil, nil, ""},
		{"DELETE", "/Flag/sec-flag-0", nil, nil, ""},
	}
	kinds := map[interaction.Kind]bool{}
	for _, tc := range cases {
		key := tc.method + " " + tc.path
		if path, query, _ := strings.Cut(tc.path, "?"); true {
			if call, err := s.srv.Interactions().ParseCall(tc.method, path, query); err == nil {
				kinds[call.Kind] = true
			}
		}
		t.Run(key, func(t *testing.T) {
			for _, withToken := range []bool{false, true} {
				before := auditHead(t, s.st)
				h := append([]string{"nhn-access-basis", "UNNTAK"}, tc.header...)
				if withToken {
					h = append(h, "Authorization", "Bearer "+gp)
				}
				r := s.do(tc.method, tc.path, tc.body, h...)
				added := auditHead(t, s.st) - before
				require.Greater(t, added, int64(0), "%s (token %v, status %d) left no AuditEvent: %s", key, withToken, r.status, r.body)
				ev := lastAudit(t, s.st)
				assert.Equal(t, "AuditEvent", ev["resourceType"])
				text := fmt.Sprint(ev)
				assert.Contains(t, text, r.header.Get("X-Request-Id"), "the server's request id")
				if r.status >= 400 {
					assert.NotEqual(t, "0", ev["outcome"], "a refusal or failure is logged as one")
				}
				if !withToken && r.status == http.StatusUnauthorized {
					assert.Contains(t, text, "not-authenticated")
					if tc.named != "" {
						assert.Contains(t, text, "Patient/"+tc.named, "logged under the patient the request named")
					}
				}
			}
		})
	}
	assert.True(t, panicked.Load())
	for _, k := range interaction.Kinds() {
		if k != interaction.DocumentRead { // needs document sources: TestDocumentStreamBroken
			assert.True(t, kinds[k], "no case drives %s", k)
		}
	}
}

// TestRequestIDIsTheServers: the request id in the answer and the usage
// log is always the server's own; a caller's X-Request-Id is kept as a
// correlation id only, and the same value twice makes two requests.
func TestRequestIDIsTheServers(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	gp := s.token("gp", s.patients[0])
	var ids []string
	for range 2 {
		r := s.do("GET", "/Flag/sec-flag-0", nil, "Authorization", "Bearer "+gp, "nhn-access-basis", "UNNTAK", "X-Request-Id", "ehr-trace-42")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		id := r.header.Get("X-Request-Id")
		assert.NotEqual(t, "ehr-trace-42", id)
		ids = append(ids, id)
		ev := fmt.Sprint(lastAudit(t, s.st))
		assert.Contains(t, ev, id)
		assert.Contains(t, ev, "correlationId")
		assert.Contains(t, ev, "ehr-trace-42")
	}
	assert.NotEqual(t, ids[0], ids[1])
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
