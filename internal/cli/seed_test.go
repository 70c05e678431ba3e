package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
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

// seed --server loads the generated patients into a running server as the
// feeder (its own token from the built-in authorisation server, transaction
// Bundles), the server's searches find them, and a second run stores the
// same records again instead of adding copies.
func TestSeedIntoRunningServer(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	addr := freePort(t)
	base := "http://" + addr
	srv := startServer(t, t.TempDir(), "--addr", addr, "--auth-server",
		"--smart-key-file", filepath.Join(root, smart.DefaultKeyFile),
		"--smart-clients", filepath.Join(root, smart.DefaultClientsFile),
		"--smart-personas", filepath.Join(root, smart.DefaultPersonasFile))
	require.Equal(t, base, srv.base)

	const patients = 12
	args := []string{"--server", base, "--patients", fmt.Sprint(patients), "--seed", "7", "--bundle-patients", "5",
		"--client-key", filepath.Join(root, "testdata/smart/feeder-dev-key.pem")}
	// What the feeder may write: Patient, MedicationStatement, Encounter,
	// and no clinical data for a patient with a secret address.
	want := map[string]map[string]int{}
	for _, rec := range seed.Generate(7, patients) {
		var p struct{ ID string }
		require.NoError(t, json.Unmarshal(rec.Patient, &p))
		want[p.ID] = map[string]int{}
		if hasSecretAddress(rec.Patient) {
			continue
		}
		for _, b := range rec.Resources {
			var r struct{ ResourceType string }
			require.NoError(t, json.Unmarshal(b, &r))
			want[p.ID][r.ResourceType]++
		}
	}
	found := func() map[string]map[string]int {
		got := map[string]map[string]int{}
		for id := range want {
			var tok bytes.Buffer
			require.NoError(t, smart.TokenCommand(context.Background(), []string{"--as", "hospital-doctor", "--patient", id,
				"--issuer", base, "--key-file", filepath.Join(root, smart.DefaultKeyFile),
				"--personas", filepath.Join(root, smart.DefaultPersonasFile), "--clients", filepath.Join(root, smart.DefaultClientsFile)}, &tok, io.Discard))
			got[id] = map[string]int{}
			for _, typ := range []string{"Patient", "MedicationStatement", "Encounter"} {
				path := "/" + typ + "?patient=" + id
				if typ == "Patient" {
					path = "/Patient?_id=" + id
				}
				req, err := http.NewRequest(http.MethodGet, base+path, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
				req.Header.Set("nhn-access-basis", "UNNTAK")
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				var b struct {
					Entry []struct {
						Resource struct{ ResourceType string }
					}
				}
				require.NoError(t, json.NewDecoder(res.Body).Decode(&b))
				res.Body.Close()
				require.Equal(t, http.StatusOK, res.StatusCode, path)
				for _, e := range b.Entry {
					if e.Resource.ResourceType == typ {
						got[id][typ]++
					}
				}
			}
		}
		return got
	}
	wanted := map[string]map[string]int{}
	for id, m := range want {
		wanted[id] = map[string]int{"Patient": 1}
		for _, typ := range []string{"MedicationStatement", "Encounter"} {
			if m[typ] > 0 {
				wanted[id][typ] = m[typ]
			}
		}
	}
	clinical := 0
	for _, m := range wanted {
		clinical += m["MedicationStatement"] + m["Encounter"]
	}
	require.Positive(t, clinical, "the seed gives these patients medications and visits")

	var out bytes.Buffer
	require.NoError(t, Seed(context.Background(), args, &out, io.Discard))
	assert.Contains(t, out.String(), fmt.Sprintf("seeded %d patients", patients))
	assert.Contains(t, out.String(), "into "+base)
	assert.Contains(t, out.String(), "left out", "critical information is not the feeder's to write")
	assert.Equal(t, wanted, found())

	out.Reset()
	require.NoError(t, Seed(context.Background(), args, &out, io.Discard))
	assert.Equal(t, wanted, found(), "a second run duplicates nothing")
}

// seed on a data directory a running server holds says which process
// holds it and how to load into that server instead.
func TestSeedOnALockedDataDirNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	var out bytes.Buffer
	err := Seed(context.Background(), []string{"--data-dir", dir, "--patients", "2"}, &out, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("in use by process %d", srv.cmd.Process.Pid))
	assert.Contains(t, err.Error(), "seed --server")
}

// When stderr is a log rather than a terminal, progress comes as plain
// lines with patients, resources and rate, not a redrawn bar.
func TestSeedProgressInALog(t *testing.T) {
	var log bytes.Buffer
	p := newProgress(&log, 10)
	p.every = 0
	p.set(5, 21)
	p.set(10, 44)
	p.done()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "5/10 patients, 21 resources")
	assert.Contains(t, lines[1], "10/10 patients, 44 resources")
	assert.NotContains(t, log.String(), "\r")
}
