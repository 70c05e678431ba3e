package source

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

func TestSeedPatientsAreTheDemoPatients(t *testing.T) {
	ps, err := SeedPatients(7, 5)
	require.NoError(t, err)
	require.Len(t, ps, 5+1, "five generated patients and the demo citizen")
	for i, p := range ps[:5] {
		assert.Equal(t, seed.PatientID(7, i), p.ID)
		assert.True(t, domain.ValidPersonNumber(p.PersonNumber), p.PersonNumber)
	}
	// serve --demo-patients stores the demo citizen next to them.
	assert.Equal(t, Patient{ID: seed.CitizenPatientID, PersonNumber: seed.CitizenPersonNumber}, ps[5])
	var rec struct {
		ID         string
		Identifier []struct{ System, Value string }
	}
	require.NoError(t, json.Unmarshal(seed.CitizenRecord().Patient, &rec))
	assert.Equal(t, rec.ID, ps[5].ID)
	assert.Equal(t, rec.Identifier[0].Value, ps[5].PersonNumber)

	none, err := SeedPatients(7, 0)
	require.NoError(t, err)
	assert.Empty(t, none, "no demo patients, no demo citizen")
}

// TestDemoCitizenDocumentsExerciseTheRules: the conformance suite checks
// the display periods and NORS on the demo citizen's documents, which only
// means something if the sources hold documents the rules must hide.
func TestDemoCitizenDocumentsExerciseTheRules(t *testing.T) {
	ps, err := SeedPatients(1, 3)
	require.NoError(t, err)
	citizen := ps[len(ps)-1]
	require.Equal(t, seed.CitizenPatientID, citizen.ID)
	base := seed.DefaultBase
	for _, name := range SampleSources {
		org, ok := HospitalByName(name)
		require.True(t, ok)
		// kjsource's default: 12 documents per patient.
		docs := Generate(1, []Patient{citizen}, org, 12)
		has := map[string]bool{}
		for _, d := range docs {
			require.Equal(t, citizen.PersonNumber, d.PersonNumber)
			age := base.Sub(d.Date)
			switch {
			case d.Confidentiality == ConfidentialityBlocked:
				has["NORS"] = true
			case age > 366*24*time.Hour && (d.Type.Group == GroupTestResults || d.Type.Group == GroupCorrespondence):
				has[d.Type.Group+" older than 1 year"] = true
			case age > 5*366*24*time.Hour && (d.Type.Group == GroupOrganFunction || d.Type.Group == GroupImaging):
				has[d.Type.Group+" older than 5 years"] = true
			case age < 300*24*time.Hour:
				has[d.Type.Group+" recent"] = true
			}
		}
		for _, want := range []string{"NORS", "C00 older than 1 year", "I00 older than 1 year", "D00 older than 5 years",
			"E00 older than 5 years", "A00 recent", "C00 recent", "D00 recent", "E00 recent", "I00 recent"} {
			assert.True(t, has[want], "%s: the demo citizen has a document %s", name, want)
		}
	}
}

func TestGenerateIsDeterministicAndFollowsThePlan(t *testing.T) {
	ps, err := SeedPatients(1, 40)
	require.NoError(t, err)
	org, ok := HospitalByName("Nordlandssykehuset HF")
	require.True(t, ok)
	assert.Equal(t, "Helse Nord", org.Region)

	require.Len(t, ps, 40+1, "with the demo citizen")
	docs := Generate(1, ps, org, 14)
	assert.Equal(t, docs, Generate(1, ps, org, 14), "same arguments, same documents")
	require.Len(t, docs, 41*14)
	other := Generate(1, ps, Hospitals()[0], 14)
	assert.NotEqual(t, docs[0].ID, other[0].ID, "sources do not share document ids")

	base := seed.DefaultBase
	ids := map[string]bool{}
	nors := 0
	for i, d := range docs {
		k := i % 14
		p := ps[i/14]
		assert.False(t, ids[d.ID], "unique id")
		ids[d.ID] = true
		assert.Equal(t, p.ID, d.PatientID)
		assert.Equal(t, p.PersonNumber, d.PersonNumber)
		assert.Equal(t, org, d.Author)
		assert.Equal(t, d.Type.Code[:1]+"00", d.Type.Group)
		assert.Equal(t, GroupDisplay(d.Type.Group), d.Type.GroupDisplay)
		assert.True(t, d.Date.Before(base), "dated before base")
		assert.True(t, d.Date.After(base.AddDate(-11, 0, 0)), "within about ten years")
		birth, ok := birthDate(d.PersonNumber)
		require.True(t, ok, d.PersonNumber)
		assert.False(t, d.Date.Before(birth), "not before the patient was born")
		var buf sizeCounter
		n, err := d.WriteBody(&buf)
		require.NoError(t, err)
		assert.Equal(t, d.Size, n)
		if d.Confidentiality == ConfidentialityBlocked {
			nors++
		}
		switch {
		case k < 5:
			assert.Equal(t, Groups[k].Code, d.Type.Group)
			assert.Equal(t, ConfidentialityNormal, d.Confidentiality)
			assert.True(t, d.Date.After(base.AddDate(0, 0, -302)), "recent slot %d: %s", k, d.Date)
		case k < 10:
			assert.Equal(t, Groups[k-5].Code, d.Type.Group)
			assert.Equal(t, ConfidentialityNormal, d.Confidentiality)
			if birth.Before(base.AddDate(-6, 0, 0)) {
				assert.True(t, d.Date.Before(base.AddDate(-6, 0, 0)), "old slot %d: %s", k, d.Date)
			}
		case k == 10:
			assert.Equal(t, ConfidentialityBlocked, d.Confidentiality)
			assert.True(t, d.Date.After(base.AddDate(0, 0, -302)))
		}
	}
	assert.Less(t, nors, len(docs)/5, "most documents are N")
	assert.GreaterOrEqual(t, nors, 40)
}

type sizeCounter int64

func (c *sizeCounter) Write(p []byte) (int, error) { *c += sizeCounter(len(p)); return len(p), nil }

func TestBirthDate(t *testing.T) {
	for pnr, want := range map[string]string{
		"02816401618": "1964-01-02", // Tenor: month +80
		"41010112345": "1901-01-01", // D-number: day +40
		"01415099999": "1950-01-01", // NAV: month +40, 900-series
		"15030550012": "2005-03-15",
	} {
		got, ok := birthDate(pnr)
		require.True(t, ok, pnr)
		assert.Equal(t, want, got.Format(time.DateOnly), pnr)
	}
	_, ok := birthDate("123")
	assert.False(t, ok)
}

// TestSamplesAreUpToDate keeps testdata/sources in step with the generator:
// run `go generate ./internal/source` after changing it.
func TestSamplesAreUpToDate(t *testing.T) {
	files, err := SampleListings()
	require.NoError(t, err)
	require.Len(t, files, 2)
	total := 0
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", name))
		require.NoError(t, err, "run go generate ./internal/source")
		assert.Equal(t, string(want), string(got), "%s is stale: run go generate ./internal/source", name)
		total += len(got)
	}
	assert.Less(t, total, 100<<10, "sample listings stay small")
}
