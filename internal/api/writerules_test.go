package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// A write can reach the server three ways: as a REST request, as an entry
// of a batch Bundle and as an entry of a transaction Bundle. They are one
// write pipeline, so every rule must give the same outcome on all three.

// route sends one write and returns what the client sees of it: the
// status, the resource or OperationOutcome, and the Location.
type route struct {
	name string
	send func(s *secured, tok, basis string, w write) written
}

// write is one write as a client makes it.
type write struct {
	method, url string
	body        []byte
	ifNoneExist string
}

type written struct {
	status   int
	body     map[string]any // the resource, or the OperationOutcome
	location string
}

func (w written) reason() string {
	issues, _ := w.body["issue"].([]any)
	if len(issues) == 0 {
		return ""
	}
	d, _ := issues[0].(map[string]any)["details"].(map[string]any)
	if d == nil {
		return ""
	}
	return d["coding"].([]any)[0].(map[string]any)["code"].(string)
}

func (w written) diagnostics() string {
	issues, _ := w.body["issue"].([]any)
	if len(issues) == 0 {
		return ""
	}
	return fmt.Sprint(issues[0].(map[string]any)["diagnostics"])
}

var writeRoutes = []route{
	{"REST", func(s *secured, tok, basis string, w write) written {
		h := []string{"Authorization", "Bearer " + tok}
		if basis != "" {
			h = append(h, "nhn-access-basis", basis)
		}
		if w.ifNoneExist != "" {
			h = append(h, "If-None-Exist", w.ifNoneExist)
		}
		r := s.do(w.method, "/"+w.url, w.body, h...)
		out := written{status: r.status, location: strings.TrimPrefix(r.header.Get("Location"), s.base+"/")}
		if len(r.body) > 0 {
			out.body = r.json(s.t)
		}
		return out
	}},
	{"batch entry", func(s *secured, tok, basis string, w write) written {
		r := s.as_(tok, basis, "POST", "/", oneEntryBundle("batch", w))
		require.Equal(s.t, http.StatusOK, r.status, "a batch is answered 200 whatever its entries: %s", r.body)
		return entryOf(s.t, r.json(s.t))
	}},
	{"transaction entry", func(s *secured, tok, basis string, w write) written {
		r := s.as_(tok, basis, "POST", "/", oneEntryBundle("transaction", w))
		if r.status != http.StatusOK {
			return written{status: r.status, body: r.json(s.t)}
		}
		return entryOf(s.t, r.json(s.t))
	}},
}

func oneEntryBundle(typ string, w write) []byte {
	req := map[string]any{"method": w.method, "url": w.url}
	if w.ifNoneExist != "" {
		req["ifNoneExist"] = w.ifNoneExist
	}
	e := map[string]any{"request": req}
	if w.body != nil {
		e["resource"] = json.RawMessage(w.body)
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{e}})
	return b
}

// entryOf reads the one response entry of a batch or transaction.
func entryOf(t *testing.T, b map[string]any) written {
	t.Helper()
	entries := b["entry"].([]any)
	require.Len(t, entries, 1)
	e := entries[0].(map[string]any)
	resp := e["response"].(map[string]any)
	code, err := strconv.Atoi(strings.Fields(resp["status"].(string))[0])
	require.NoError(t, err)
	out := written{status: code}
	if loc, ok := resp["location"].(string); ok {
		out.location = loc
	}
	if o, ok := resp["outcome"].(map[string]any); ok {
		out.body = o
	} else if r, ok := e["resource"].(map[string]any); ok {
		out.body = r
	}
	return out
}

func withIdentifier(t *testing.T, body []byte, system, value string) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["identifier"] = []any{map[string]any{"system": system, "value": value}}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func setField(t *testing.T, body []byte, key string, value any) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	if value == nil {
		delete(m, key)
	} else {
		m[key] = value
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// TestWriteRulesOnEveryRoute runs every write rule through a REST write, a
// batch entry and a transaction entry, on both engines, and expects the
// same outcome from all three.
func TestWriteRulesOnEveryRoute(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		codec, err := fhir.NewCodec(domain.RecordTypes()...)
		require.NoError(t, err)
		n := 100
		// patient stores a fresh patient (the gp persona is its GP).
		patient := func(t *testing.T) (id, pnr string) {
			n++
			id = fmt.Sprintf("wr-pat-%d", n)
			body := patientJSON(t, n, id)
			body = []byte(strings.Replace(string(body), "565501872", gpPersonaHPR, 1))
			s.put(t, codec, body)
			return id, personNumber(t, n)
		}
		stored := func(t *testing.T, typ, patient string) []store.Version {
			vs, err := st.Compartment(context.Background(), patient, typ)
			require.NoError(t, err)
			return vs
		}
		const forged = "990099999"
		cases := []struct {
			name  string
			check func(t *testing.T, r route)
		}{
			{"recorder and author come from the token, not the body", func(t *testing.T, r route) {
				p, _ := patient(t)
				tok := s.token("gp", p)
				forgedWho := map[string]any{"identifier": map[string]any{"system": domain.SystemHPR, "value": forged}, "display": "Forged"}
				for _, c := range []struct{ typ, field string }{{"AllergyIntolerance", "recorder"}, {"Flag", "author"}} {
					body := setField(t, clinical(c.typ, p, "", "reported"), c.field, forgedWho)
					got := r.send(s, tok, "UNNTAK", write{method: "POST", url: c.typ, body: body})
					require.Equal(t, http.StatusCreated, got.status, "%v", got.body)
					vs := stored(t, c.typ, p)
					require.Len(t, vs, 1)
					assert.NotContains(t, string(vs[0].Body), forged, "a forged %s is stored", c.field)
					assert.Contains(t, string(vs[0].Body), gpPersonaHPR, "the token's HP is the %s", c.field)
				}
			}},
			{"If-None-Exist answers the existing match and creates nothing", func(t *testing.T, r route) {
				p, _ := patient(t)
				tok := s.token("gp", p)
				body := withIdentifier(t, clinical("Flag", p, "", "pacemaker"), "urn:ehr:flags", "f-1")
				first := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: body, ifNoneExist: "identifier=urn:ehr:flags|f-1"})
				require.Equal(t, http.StatusCreated, first.status, "%v", first.body)
				again := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: body, ifNoneExist: "identifier=urn:ehr:flags|f-1"})
				assert.Equal(t, http.StatusOK, again.status, "%v", again.body)
				assert.Equal(t, first.body["id"], again.body["id"])
				assert.Len(t, stored(t, "Flag", p), 1)
			}},
			{"a reserved record takes no new data, and an HP cannot tell it from none", func(t *testing.T, r route) {
				p, pnr := patient(t)
				s.put(t, codec, privacy.Setting{ID: "res-" + p, Patient: p, Kind: privacy.Reservation, Active: true, Since: time.Now().Add(-time.Hour)}.Consent())
				tok := s.token("gp", p)
				got := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: clinical("Flag", p, "", "new")})
				unknown := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: clinical("Flag", "wr-nobody", "", "new")})
				assert.Equal(t, http.StatusBadRequest, got.status, "%v", got.body)
				assert.Equal(t, unknown.status, got.status)
				assert.Equal(t, strings.ReplaceAll(unknown.diagnostics(), "wr-nobody", p), got.diagnostics())
				assert.Contains(t, fmt.Sprint(lastAuditOf(t, st, p)), "reserved-no-new-data", "the usage log keeps the reason")
				feeder := s.token("feeder", "")
				got = r.send(s, feeder, "", write{method: "POST", url: "MedicationStatement", body: clinical("MedicationStatement", p, "", "new")})
				assert.Equal(t, http.StatusForbidden, got.status, "%v", got.body)
				assert.Equal(t, "reserved-no-new-data", got.reason())
				update := patientJSON(t, n, p) // same person number, another name
				update = []byte(strings.Replace(string(update), `"Kari"`, `"Karianne"`, 1))
				got = r.send(s, feeder, "", write{method: "PUT", url: "Patient/" + p, body: update})
				assert.Equal(t, http.StatusForbidden, got.status, "%v", got.body)
				assert.Equal(t, "reserved-no-new-data", got.reason())
				twin := []byte(strings.Replace(string(patientJSON(t, n, "")), personNumber(t, n), pnr, 1))
				got = r.send(s, feeder, "", write{method: "POST", url: "Patient", body: twin})
				assert.Equal(t, http.StatusConflict, got.status, "a second Patient for the reserved person: %v", got.body)
				assert.Empty(t, stored(t, "MedicationStatement", p))
				ids, err := st.FindByIdentifier(context.Background(), "Patient", domain.SystemFNR+"|"+pnr)
				require.NoError(t, err)
				assert.Equal(t, []string{p}, ids)
			}},
			{"the profile of critical information (422, every rule)", func(t *testing.T, r route) {
				p, _ := patient(t)
				tok := s.token("gp", p)
				body := setField(t, clinical("Flag", p, "", "no category"), "category", nil)
				got := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: body})
				assert.Equal(t, http.StatusUnprocessableEntity, got.status, "%v", got.body)
				assert.Contains(t, fmt.Sprint(got.body), "category")
				assert.Empty(t, stored(t, "Flag", p))
			}},
			{"patient binding: a resource refers to a patient held here, in the token's context", func(t *testing.T, r route) {
				p, _ := patient(t)
				other, _ := patient(t)
				tok := s.token("gp", p)
				body := setField(t, clinical("Flag", p, "", "unbound"), "subject", map[string]any{"display": "somebody"})
				got := r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: body})
				assert.Equal(t, http.StatusBadRequest, got.status, "%v", got.body)
				assert.Contains(t, got.diagnostics(), "Flag.subject")
				got = r.send(s, tok, "UNNTAK", write{method: "POST", url: "Flag", body: clinical("Flag", other, "", "elsewhere")})
				assert.Equal(t, http.StatusForbidden, got.status, "%v", got.body)
				assert.Equal(t, "patient-not-in-context", got.reason())
				assert.Empty(t, stored(t, "Flag", other))
			}},
			{"one Patient per person number", func(t *testing.T, r route) {
				_, pnr := patient(t)
				feeder := s.token("feeder", "")
				n++
				twin := []byte(strings.Replace(string(patientJSON(t, n, "")), personNumber(t, n), pnr, 1))
				got := r.send(s, feeder, "", write{method: "POST", url: "Patient", body: twin})
				assert.Equal(t, http.StatusConflict, got.status, "%v", got.body)
				assert.Contains(t, got.diagnostics(), pnr)
				fresh := patientJSON(t, n, "")
				got = r.send(s, feeder, "", write{method: "POST", url: "Patient", body: fresh})
				assert.Equal(t, http.StatusCreated, got.status, "%v", got.body)
				ids, err := st.FindByIdentifier(context.Background(), "Patient", domain.SystemFNR+"|"+pnr)
				require.NoError(t, err)
				assert.Len(t, ids, 1)
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, r := range writeRoutes {
					t.Run(r.name, func(t *testing.T) { tc.check(t, r) })
				}
			})
		}
	})
}
