package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

func TestCriticalInformationProfiles(t *testing.T) {
	c := embeddedServer(t, api.Config{})
	patient := createPatient(t, c, 90)

	// a valid report gets its profile declared
	r := c.do("POST", "/Flag", clinical("Flag", patient, "", "pacemaker"))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	assert.Contains(t, string(r.body), "https://kjernejournal.example.no/fhir/StructureDefinition/KjFlag")

	// several violated rules: 422 naming every one, nothing stored
	bad := bytes.Replace(clinical("Flag", patient, "", "x"), []byte(`"period":{"start":"2024-01-10T08:00:00Z"},`), nil, 1)
	bad = bytes.Replace(bad, []byte(`"code":"implantat"`), []byte(`"code":"no-such-type"`), 1)
	r = c.do("POST", "/Flag", bad)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
	m := r.json(t)
	issues := m["issue"].([]any)
	require.GreaterOrEqual(t, len(issues), 2)
	all := fmt.Sprint(issues)
	assert.Contains(t, all, "Flag.period.start")
	assert.Contains(t, all, "Flag.category")
	// an AllergyIntolerance without criticality
	noCrit := bytes.Replace(clinical("AllergyIntolerance", patient, "", "x"), []byte(`"criticality":"high",`), nil, 1)
	r = c.do("POST", "/AllergyIntolerance", noCrit)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
	assert.Contains(t, string(r.body), "AllergyIntolerance.criticality")

	// $validate answers the same without writing
	r = c.do("POST", "/Flag/$validate", bad)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), "Flag.period.start")
	r = c.do("POST", "/Flag/$validate", clinical("Flag", patient, "", "ok"))
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), "is valid")

	// the profiles and code systems are served
	for _, path := range []string{"/StructureDefinition/KjFlag", "/StructureDefinition/KjAllergyIntolerance", "/CodeSystem/kritisk-info-type"} {
		r = c.do("GET", path, nil)
		require.Equal(t, http.StatusOK, r.status, path)
		validR4(t, r.body)
	}
	outcome(t, c.do("GET", "/StructureDefinition/nope", nil), http.StatusNotFound)
}

// TestCorrectionAndEnteredInError: a wrong report is corrected with
// If-Match and finally marked entered-in-error; history shows every step
// and $kj-status follows at once.
func TestCorrectionAndEnteredInError(t *testing.T) {
	forEachEngine(t, func(t *testing.T, c *client, _ store.Store) {
		patient := createPatient(t, c, 91)
		r := c.do("POST", "/Flag", clinical("Flag", patient, "", "pacemaker"))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		id := r.json(t)["id"].(string)
		r = c.do("PUT", "/Flag/"+id, clinical("Flag", patient, id, "pacemaker, MR-conditional"), "If-Match", `W/"1"`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		wrong := bytes.Replace(clinical("Flag", patient, id, "pacemaker, MR-conditional"), []byte(`"status":"active"`), []byte(`"status":"entered-in-error"`), 1)
		r = c.do("PUT", "/Flag/"+id, wrong, "If-Match", `W/"2"`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		outcome(t, c.do("PUT", "/Flag/"+id, clinical("Flag", patient, id, "late"), "If-Match", `W/"2"`), http.StatusPreconditionFailed)
		r = c.do("GET", "/Flag/"+id+"/_history", nil)
		require.Equal(t, http.StatusOK, r.status)
		entries := r.json(t)["entry"].([]any)
		require.Len(t, entries, 3, "every step is kept")
		assert.Contains(t, fmt.Sprint(entries[0]), "entered-in-error")
		assert.Contains(t, fmt.Sprint(entries[2]), "pacemaker")
		r = c.do("GET", "/Patient/"+patient+"/$kj-status", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Contains(t, string(r.body), `"hasCriticalInformation","valueBoolean":true`)
	})
}
