package cli

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// The demo seed includes the demo citizen (the citizen persona's patient),
// and a store seeded before she existed gets her on the next start without
// its generated patients being written again.
func TestDemoSeedIncludesTheCitizen(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	prep, err := preparer(codec)
	require.NoError(t, err)

	// An older demo store: generated patients only.
	_, err = seed.Load(ctx, st, codec, seed.LoadOptions{Seed: 1, Patients: 2, Preparer: prep})
	require.NoError(t, err)
	_, err = st.Read(ctx, "Patient", seed.CitizenPatientID)
	require.ErrorIs(t, err, store.ErrNotFound)
	first, err := st.Read(ctx, "Patient", seed.PatientID(1, 0))
	require.NoError(t, err)

	n, err := seedIfEmpty(ctx, st, codec, 1, 2)
	require.NoError(t, err)
	assert.Zero(t, n, "the generated patients are there already")
	again, err := st.Read(ctx, "Patient", seed.PatientID(1, 0))
	require.NoError(t, err)
	assert.Equal(t, first.VersionID, again.VersionID, "not written again")
	citizen, err := st.Read(ctx, "Patient", seed.CitizenPatientID)
	require.NoError(t, err)
	assert.Contains(t, string(citizen.Body), seed.CitizenPersonNumber)
	for _, id := range []string{"al1", "fl2", "ms3", "ms4", "en5", "en6"} {
		typ := map[string]string{"al": "AllergyIntolerance", "fl": "Flag", "ms": "MedicationStatement", "en": "Encounter"}[id[:2]]
		_, err := st.Read(ctx, typ, seed.CitizenPatientID+"-"+id)
		assert.NoError(t, err, "%s/%s-%s", typ, seed.CitizenPatientID, id)
	}

	n, err = seedIfEmpty(ctx, st, codec, 1, 2)
	require.NoError(t, err)
	assert.Zero(t, n)
	same, err := st.Read(ctx, "Patient", seed.CitizenPatientID)
	require.NoError(t, err)
	assert.Equal(t, citizen.VersionID, same.VersionID, "seeded once")
}
