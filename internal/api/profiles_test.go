package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
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
