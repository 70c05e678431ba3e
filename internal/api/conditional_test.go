package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// flagWithIdentifier is a Flag an EHR reports with its own identifier.
func flagWithIdentifier(patient, value string) []byte {
	return bytes.Replace(clinical("Flag", patient, "", "reported twice"), []byte(`"status":"active"`),
		[]byte(`"identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.2.999","value":"`+value+`"}],"status":"active"`), 1)
}

func TestConditionalCreateIsIdempotentUnderConcurrency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		patient := createPatient(t, c, 80)
		const n = 8
		statuses := make([]int, n)
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := c.do("POST", "/Flag", flagWithIdentifier(patient, "ehr-42"), "If-None-Exist", "identifier=urn:oid:2.16.578.1.12.4.1.2.999|ehr-42")
				statuses[i] = r.status
				if r.status < 300 {
					ids[i] = strings.Split(r.header.Get("Location"), "/Flag/")[1]
				}
			}()
		}
		wg.Wait()
		created := 0
		for i := range n {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, statuses[i])
			if statuses[i] == http.StatusCreated {
				created++
			}
			assert.Equal(t, ids[0][:32], ids[i][:32], "every answer names the same Flag")
		}
		assert.Equal(t, 1, created, "one Flag, however often it is reported")
		list, err := st.Compartment(t.Context(), patient, "Flag")
		require.NoError(t, err)
		assert.Len(t, list, 1)
		// another identifier creates another
		r := c.do("POST", "/Flag", flagWithIdentifier(patient, "ehr-43"), "If-None-Exist", "identifier=urn:oid:2.16.578.1.12.4.1.2.999|ehr-43")
		assert.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	})
}

func TestRecorderComesFromTheToken(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	p0 := s.patients[0]
	gp := s.token("gp", p0)
	body := bytes.Replace(clinical("AllergyIntolerance", p0, "", "penicillin"), []byte(`"criticality"`),
		[]byte(`"recorder":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"123456"},"display":"Someone Else"},"criticality"`), 1)
	r := s.as_(gp, "UNNTAK", "POST", "/AllergyIntolerance", body)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	rec := r.json(t)["recorder"].(map[string]any)
	assert.Equal(t, gpPersonaHPR, rec["identifier"].(map[string]any)["value"], "the token's HPR number, not the body's")
	assert.Equal(t, "Gunvor Eriksen", rec["display"])
	assert.NotEmpty(t, r.json(t)["recordedDate"])
	r = s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", p0, "", "implant"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	assert.Contains(t, string(r.body), `"author":{"display":"Gunvor Eriksen","identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"`+gpPersonaHPR+`"}}`)
}

// TestConditionalUpdate: PUT /{type}?query inside the resource's patient
// record: no match creates, one match is updated in place, several are a
// 412; another patient's resource is never matched.
func TestConditionalUpdate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, st store.Store) {
		patient := createPatient(t, c, 81)
		other := createPatient(t, c, 82)
		q := "/Flag?identifier=urn:oid:2.16.578.1.12.4.1.2.999|ehr-7"
		r := c.do("PUT", q, flagWithIdentifier(other, "ehr-7"))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		r = c.do("PUT", q, flagWithIdentifier(patient, "ehr-7"))
		require.Equal(t, http.StatusCreated, r.status, "another patient's Flag is not matched: %s", r.body)
		id := r.json(t)["id"].(string)
		changed := bytes.Replace(flagWithIdentifier(patient, "ehr-7"), []byte("reported twice"), []byte("corrected"), 1)
		r = c.do("PUT", q, changed)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		m := r.json(t)
		assert.Equal(t, id, m["id"])
		assert.Equal(t, "2", m["meta"].(map[string]any)["versionId"])
		assert.Contains(t, string(r.body), "corrected")
		require.Equal(t, http.StatusCreated, c.do("POST", "/Flag", flagWithIdentifier(patient, "ehr-7")).status)
		outcome(t, c.do("PUT", q, changed), http.StatusPreconditionFailed)
	})
}
