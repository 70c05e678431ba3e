package seed

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// The demo citizen's ids must be the citizen persona's, and her GP the gp
// persona: the built-in authorisation server issues tokens from that file,
// and the conformance suite reaches her through them.
func TestCitizenIsThePersonaOfTheAuthorisationServer(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "smart", "personas.json"))
	require.NoError(t, err)
	var f struct {
		Personas []struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			PID    string `json:"pid"`
			HPR    string `json:"hpr"`
			FHIRID string `json:"fhir_id"`
		} `json:"personas"`
	}
	require.NoError(t, json.Unmarshal(raw, &f))
	var pat jPatient
	require.NoError(t, json.Unmarshal(CitizenRecord().Patient, &pat))
	found := 0
	for _, p := range f.Personas {
		switch p.ID {
		case "citizen":
			found++
			assert.Equal(t, CitizenPatientID, p.FHIRID)
			assert.Equal(t, CitizenPersonNumber, p.PID)
			assert.Equal(t, p.Name, pat.Name[0].Text)
		case "gp":
			found++
			assert.Equal(t, CitizenGPHPR, p.HPR)
			assert.Equal(t, p.Name, pat.GeneralPractitioner[0].Display)
		}
	}
	assert.Equal(t, 2, found, "personas citizen and gp")
}

func TestCitizenRecordIsValidAndFixed(t *testing.T) {
	rec := CitizenRecord()
	again := CitizenRecord()
	require.Equal(t, rec, again, "the same bytes every time")

	assert.True(t, domain.ValidPersonNumber(CitizenPersonNumber))
	birth, err := time.Parse(time.DateOnly, "1983-09-02")
	require.NoError(t, err)
	pnr, err := PersonNumber(birth, 212, true)
	require.NoError(t, err)
	assert.Equal(t, CitizenPersonNumber, pnr, "birth date and sex agree with the person number")
	assert.Equal(t, CitizenGPHPR, GeneralPractitioners()[0].HPR, "the gp persona is the pool's first GP")

	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	counts := map[string]int{}
	for _, body := range append([][]byte{rec.Patient}, rec.Resources...) {
		_, err := u.Unmarshal(body)
		require.NoError(t, err, "%s", body)
		var res struct {
			ResourceType, ID string
			Patient          struct{ Reference string }
			Subject          struct{ Reference string }
		}
		require.NoError(t, json.Unmarshal(body, &res))
		counts[res.ResourceType]++
		assert.Regexp(t, idPattern, res.ID)
		switch res.ResourceType {
		case "Patient":
			assert.Equal(t, CitizenPatientID, res.ID)
		case "AllergyIntolerance":
			assert.Equal(t, "Patient/"+CitizenPatientID, res.Patient.Reference)
		default:
			assert.Equal(t, "Patient/"+CitizenPatientID, res.Subject.Reference)
			assert.True(t, strings.HasPrefix(res.ID, CitizenPatientID+"-"), res.ID)
		}
		// Critical information is held to the project's profiles on every
		// write; seeded data is no exception.
		if res.ResourceType == "AllergyIntolerance" || res.ResourceType == "Flag" {
			assert.Empty(t, profile.Check(res.ResourceType, body), "%s", body)
		}
		// Dated in the past of DefaultBase, like the generated records.
		for _, d := range dates(body) {
			assert.True(t, d.Before(DefaultBase), "%s %s: %s", res.ResourceType, res.ID, d)
		}
	}
	assert.Equal(t, map[string]int{"Patient": 1, "AllergyIntolerance": 1, "Flag": 1, "MedicationStatement": 2, "Encounter": 2}, counts)
}

// dates returns every date and dateTime value of a resource.
func dates(body []byte) []time.Time {
	var out []time.Time
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			for _, layout := range []string{time.RFC3339, time.DateOnly} {
				if t, err := time.Parse(layout, x); err == nil {
					out = append(out, t)
				}
			}
		}
	}
	var m any
	_ = json.Unmarshal(body, &m)
	walk(m)
	return out
}
