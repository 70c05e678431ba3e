package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// createPatient stores a patient over HTTP and returns its id.
func createPatient(t *testing.T, c *client, n int) string {
	t.Helper()
	r := c.do("POST", "/Patient", patientJSON(t, n, ""))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(t)["id"].(string)
}

func TestLifecycleAllTypes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		patient := createPatient(t, c, 1)
		for _, typ := range domain.RecordTypes() {
			t.Run(typ, func(t *testing.T) {
				body := func(id, note string) []byte {
					if typ == "Patient" {
						b := patientJSON(t, 2, id)
						return bytes.Replace(b, []byte(`"Kari"`), []byte(fmt.Sprintf("%q", note)), 1)
					}
					return clinical(typ, patient, id, note)
				}
				// create: server-assigned id, version 1
				r := c.do("POST", "/"+typ, body("", "first"))
				require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
				created := r.json(t)
				id := created["id"].(string)
				require.NotEmpty(t, id)
				assert.Equal(t, `W/"1"`, r.header.Get("ETag"))
				assert.NotEmpty(t, r.header.Get("Last-Modified"))
				assert.True(t, strings.HasSuffix(r.header.Get("Location"), "/"+typ+"/"+id+"/_history/1"), r.header.Get("Location"))
				meta := created["meta"].(map[string]any)
				assert.Equal(t, "1", meta["versionId"])
				assert.NotEmpty(t, meta["lastUpdated"])

				// read
				r = c.do("GET", "/"+typ+"/"+id, nil)
				require.Equal(t, http.StatusOK, r.status)
				assert.Contains(t, r.header.Get("Content-Type"), "application/fhir+json")
				assert.Equal(t, `W/"1"`, r.header.Get("ETag"))
				assert.Contains(t, string(r.body), "first")

				// update with the right If-Match
				r = c.do("PUT", "/"+typ+"/"+id, body(id, "second"), "If-Match", `W/"1"`)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				assert.Equal(t, `W/"2"`, r.header.Get("ETag"))

				// update with a stale If-Match: 412, nothing changes
				r = c.do("PUT", "/"+typ+"/"+id, body(id, "stale"), "If-Match", `W/"1"`)
				outcome(t, r, http.StatusPreconditionFailed)
				r = c.do("GET", "/"+typ+"/"+id, nil)
				assert.Equal(t, `W/"2"`, r.header.Get("ETag"))
				assert.NotContains(t, string(r.body), "stale")

				// update without If-Match
				r = c.do("PUT", "/"+typ+"/"+id, body(id, "third"))
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				assert.Equal(t, `W/"3"`, r.header.Get("ETag"))

				// history, newest first
				r = c.do("GET", "/"+typ+"/"+id+"/_history", nil)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				h := r.json(t)
				assert.Equal(t, "history", h["type"])
				entries := h["entry"].([]any)
				require.Len(t, entries, 3)
				assert.Contains(t, fmt.Sprint(entries[0]), "third")
				assert.Contains(t, fmt.Sprint(entries[2]), "first")

				// vread of the first version
				r = c.do("GET", "/"+typ+"/"+id+"/_history/1", nil)
				require.Equal(t, http.StatusOK, r.status)
				assert.Contains(t, string(r.body), "first")

				if typ == "Patient" {
					return // the patient is still needed by the other types
				}
				if typ == "Consent" {
					// privacy settings are lifted, never deleted
					outcome(t, c.do("DELETE", "/"+typ+"/"+id, nil), http.StatusMethodNotAllowed)
					return
				}
				// delete, then read is 410 and history keeps it
				r = c.do("DELETE", "/"+typ+"/"+id, nil)
				require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
				outcome(t, c.do("GET", "/"+typ+"/"+id, nil), http.StatusGone)
				r = c.do("GET", "/"+typ+"/"+id+"/_history", nil)
				entries = r.json(t)["entry"].([]any)
				require.Len(t, entries, 4)
				req := entries[0].(map[string]any)["request"].(map[string]any)
				assert.Equal(t, "DELETE", req["method"])
				r = c.do("GET", "/"+typ+"/"+id+"/_history/2", nil)
				assert.Equal(t, http.StatusOK, r.status)
			})
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		patient := createPatient(t, c, 3)
		r := c.do("POST", "/Flag", clinical("Flag", patient, "", "original"))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		id := r.json(t)["id"].(string)

		huge := append([]byte(`{"resourceType":"Flag","id":"`+id+`","status":"active","code":{"text":"`), bytes.Repeat([]byte("x"), 2<<20)...)
		huge = append(huge, []byte(`"},"subject":{"reference":"Patient/`+patient+`"}}`)...)
		cases := []struct {
			name       string
			method     string
			body       []byte
			status     int
			expression string
		}{
			{"malformed JSON", "PUT", []byte(`{"resourceType":"Flag","id":"` + id + `","status":`), 400, ""},
			{"wrong type", "PUT", []byte(`{"resourceType":"Flag","id":"` + id + `","status":"active","code":{"text":42},"subject":{"reference":"Patient/` + patient + `"}}`), 400, "Flag.code"},
			{"missing required status", "PUT", []byte(`{"resourceType":"Flag","id":"` + id + `","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`), 400, "Flag.status"},
			{"invalid code", "PUT", []byte(`{"resourceType":"Flag","id":"` + id + `","status":"bogus","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`), 400, "Flag.status"},
			{"wrong reference target", "PUT", []byte(`{"resourceType":"Flag","id":"` + id + `","status":"active","code":{"text":"x"},"subject":{"reference":"Practitioner/` + patient + `"}}`), 400, "Flag.subject"},
			{"unknown patient", "PUT", clinical("Flag", "no-such-patient", id, "x"), 400, "Flag.subject"},
			{"id mismatch", "PUT", clinical("Flag", patient, "other-id", "x"), 400, "Flag.id"},
			{"type mismatch", "PUT", clinical("Encounter", patient, id, "x"), 400, ""},
			{"oversized body", "PUT", huge, 413, ""},
			{"empty body", "PUT", []byte{}, 400, ""},
			{"create malformed", "POST", []byte(`[1,2`), 400, ""},
			{"create wrong type", "POST", []byte(`{"resourceType":"Flag","status":true,"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`), 400, "Flag.status"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				path := "/Flag/" + id
				if tc.method == "POST" {
					path = "/Flag"
				}
				issue := outcome(t, c.do(tc.method, path, tc.body), tc.status)
				if tc.expression != "" {
					assert.Contains(t, fmt.Sprint(issue["expression"]), tc.expression, "issue: %v", issue)
				}
				assert.NotEmpty(t, issue["diagnostics"])
				// the store is unchanged
				v, err := st.Read(t.Context(), "Flag", id)
				require.NoError(t, err)
				assert.Equal(t, int64(1), v.VersionID)
				list, err := st.Compartment(t.Context(), patient, "Flag")
				require.NoError(t, err)
				assert.Len(t, list, 1)
			})
		}
		// wrong Content-Type
		r = c.do("PUT", "/Flag/"+id, clinical("Flag", patient, id, "x"), "Content-Type", "application/xml")
		outcome(t, r, http.StatusUnsupportedMediaType)
	})
}

func TestTransaction(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		pat := string(patientJSON(t, 4, ""))
		allergy := strings.Replace(string(clinical("AllergyIntolerance", "X", "", "from transaction")),
			`"reference":"Patient/X"`, `"reference":"urn:uuid:6a1c2f9e-0000-4000-8000-000000000001"`, 1)
		bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		  {"fullUrl":"urn:uuid:6a1c2f9e-0000-4000-8000-000000000002","resource":%s,"request":{"method":"POST","url":"AllergyIntolerance"}},
		  {"fullUrl":"urn:uuid:6a1c2f9e-0000-4000-8000-000000000001","resource":%s,"request":{"method":"POST","url":"Patient"}}]}`, allergy, pat)
		r := c.do("POST", "/", []byte(bundle))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		resp := r.json(t)
		assert.Equal(t, "transaction-response", resp["type"])
		entries := resp["entry"].([]any)
		require.Len(t, entries, 2)
		loc0 := entries[0].(map[string]any)["response"].(map[string]any)["location"].(string)
		loc1 := entries[1].(map[string]any)["response"].(map[string]any)["location"].(string)
		require.True(t, strings.HasPrefix(loc0, "AllergyIntolerance/"), loc0)
		require.True(t, strings.HasPrefix(loc1, "Patient/"), loc1)
		patientID := strings.Split(loc1, "/")[1]
		// the urn:uuid reference now points at the new patient
		r = c.do("GET", "/"+strings.Split(loc0, "/_history")[0], nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, string(r.body), `"Patient/`+patientID+`"`)
		list, err := st.Compartment(t.Context(), patientID, "AllergyIntolerance")
		require.NoError(t, err)
		assert.Len(t, list, 1)

		// one invalid entry: nothing is left behind
		bad := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		  {"resource":%s,"request":{"method":"PUT","url":"Patient/tx-new-patient"}},
		  {"resource":%s,"request":{"method":"PUT","url":"Flag/tx-flag-1"}},
		  {"resource":{"resourceType":"Flag","id":"tx-flag-2","status":"nonsense","code":{"text":"x"},"subject":{"reference":"Patient/tx-new-patient"}},"request":{"method":"PUT","url":"Flag/tx-flag-2"}}]}`,
			patientJSON(t, 5, "tx-new-patient"), clinical("Flag", "tx-new-patient", "tx-flag-1", "ok"))
		issue := outcome(t, c.do("POST", "/", []byte(bad)), http.StatusBadRequest)
		assert.Contains(t, fmt.Sprint(issue["expression"]), "Bundle.entry[2]")
		for _, k := range [][2]string{{"Patient", "tx-new-patient"}, {"Flag", "tx-flag-1"}, {"Flag", "tx-flag-2"}} {
			_, err := st.Read(t.Context(), k[0], k[1])
			assert.ErrorIs(t, err, store.ErrNotFound, "%s/%s", k[0], k[1])
		}

		// a stale If-Match in one entry: the valid entries are not applied either
		stale := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		  {"resource":%s,"request":{"method":"PUT","url":"Flag/tx-flag-3"}},
		  {"resource":%s,"request":{"method":"PUT","url":"Patient/%s","ifMatch":"W/\"7\""}}]}`,
			clinical("Flag", patientID, "tx-flag-3", "ok"), patientJSON(t, 4, patientID), patientID)
		outcome(t, c.do("POST", "/", []byte(stale)), http.StatusPreconditionFailed)
		_, err = st.Read(t.Context(), "Flag", "tx-flag-3")
		assert.ErrorIs(t, err, store.ErrNotFound)
		v, err := st.Read(t.Context(), "Patient", patientID)
		require.NoError(t, err)
		assert.Equal(t, int64(1), v.VersionID)
	})
}

func TestBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		patient := createPatient(t, c, 6)
		bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[
		  {"resource":%s,"request":{"method":"POST","url":"Flag"}},
		  {"resource":{"resourceType":"Flag","status":"bogus"},"request":{"method":"POST","url":"Flag"}},
		  {"request":{"method":"GET","url":"Patient/%s"}},
		  {"request":{"method":"GET","url":"Patient/missing"}}]}`, clinical("Flag", patient, "", "batch"), patient)
		r := c.do("POST", "/", []byte(bundle))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		entries := r.json(t)["entry"].([]any)
		require.Len(t, entries, 4)
		status := func(i int) string {
			return entries[i].(map[string]any)["response"].(map[string]any)["status"].(string)
		}
		assert.True(t, strings.HasPrefix(status(0), "201"), status(0))
		assert.True(t, strings.HasPrefix(status(1), "400"), status(1))
		assert.True(t, strings.HasPrefix(status(2), "200"), status(2))
		assert.True(t, strings.HasPrefix(status(3), "404"), status(3))
		list, err := st.Compartment(t.Context(), patient, "Flag")
		require.NoError(t, err)
		assert.Len(t, list, 1)
	})
}
