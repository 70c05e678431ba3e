package ingest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

const fnrSystem = "urn:oid:2.16.578.1.12.4.1.4.1"

func TestIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"none", `{"resourceType":"Patient"}`, nil},
		{"list, sorted and deduplicated",
			`{"identifier":[{"system":"urn:b","value":"2"},{"system":"urn:a","value":"1"},{"system":"urn:b","value":"2"}]}`,
			[]string{"urn:a|1", "urn:b|2"}},
		{"no system", `{"identifier":[{"value":"x"}]}`, []string{"|x"}},
		{"no value is left out", `{"identifier":[{"system":"urn:a"},{"system":"urn:a","value":""}]}`, nil},
		{"single object", `{"identifier":{"system":"urn:a","value":"1"}}`, []string{"urn:a|1"}},
		{"control characters are left out", `{"identifier":[{"system":"urn:a","value":"a\u0000b"},{"system":"urn:a","value":"ok"}]}`, []string{"urn:a|ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ingest.Identifiers([]byte(tc.json))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := ingest.Identifiers([]byte(`{"identifier":"x"}`))
	assert.Error(t, err)
}

// TestPreparerStoresSearchableVersions commits a prepared Patient to a real
// store and checks what a search reads back: the stamped JSON, the index
// (plus lastUpdated from the version) equal to one extracted from that
// JSON, and the identifier lookup.
func TestPreparerStoresSearchableVersions(t *testing.T) {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	reg, err := search.Load(domain.RecordTypes())
	require.NoError(t, err)
	p := &ingest.Preparer{Codec: codec, Search: reg}
	res, err := codec.Parse([]byte(`{"resourceType":"Patient","id":"p1",
		"identifier":[{"system":"` + fnrSystem + `","value":"01017012345"}],
		"name":[{"family":"Nordmann","given":["Kari"]}],"gender":"female","birthDate":"1970-01-01"}`))
	require.NoError(t, err)
	w, err := p.Write(res, 0, true)
	require.NoError(t, err)
	assert.Equal(t, "Patient", w.Type)
	assert.Equal(t, "p1", w.ID)
	assert.Equal(t, "p1", w.Patient)
	assert.True(t, w.Create)
	assert.Equal(t, []string{fnrSystem + "|01017012345"}, w.Identifiers)
	require.NotEmpty(t, w.Index)

	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	vs, err := st.Commit(context.Background(), store.Batch{Writes: []store.Write{w}})
	require.NoError(t, err)
	v, err := st.Read(context.Background(), "Patient", "p1")
	require.NoError(t, err)
	assert.Equal(t, string(vs[0].Body), string(v.Body))
	assert.Contains(t, string(v.Body), `"lastUpdated":"`+fhir.FormatInstant(v.LastUpdated)+`"`)

	var got search.Index
	require.NoError(t, got.UnmarshalBinary(v.Index))
	got.SetLastUpdated(v.LastUpdated)
	want, err := reg.Extract("Patient", v.Body)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	ids, err := st.FindByIdentifier(context.Background(), "Patient", ingest.IdentifierKey(fnrSystem, "01017012345"))
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, ids)

	q, _, err := reg.ParseQuery("Patient", map[string][]string{"_lastUpdated": {"ge" + v.LastUpdated.Add(-time.Second).Format(time.RFC3339)}}, false)
	require.NoError(t, err)
	assert.True(t, q.Match(got), "_lastUpdated matches on the stored index")
}

// Critical information declares its kjernejournal profile whoever wrote
// it (the REST layer, the seed); other types are printed as they are.
func TestPreparerDeclaresProfiles(t *testing.T) {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	reg, err := search.Load(domain.RecordTypes())
	require.NoError(t, err)
	p := &ingest.Preparer{Codec: codec, Search: reg}
	res, err := codec.Parse([]byte(`{"resourceType":"Flag","id":"f1","status":"active",
		"category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat"}]}],
		"code":{"text":"pacemaker"},"period":{"start":"2024-01-10"},"subject":{"reference":"Patient/p1"}}`))
	require.NoError(t, err)
	w, err := p.Write(res, 0, true)
	require.NoError(t, err)
	body, err := w.Render(1, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, err)
	assert.Contains(t, string(body), `"profile":["https://kjernejournal.example.no/fhir/StructureDefinition/KjFlag"]`)
	assert.Contains(t, string(body), `"versionId":"1"`)
	_, err = codec.Parse(body)
	assert.NoError(t, err, "still valid R4: %s", body)
}

// seed.Load stores generated JSON without printing it again
// (WritePrinted): every resource it generates must store exactly as Write
// would have stored it, or a seeded server would serve JSON, indexes or
// identifiers no REST write could produce.
func TestSeedJSONIsPrinted(t *testing.T) {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	reg, err := search.Load(domain.RecordTypes())
	require.NoError(t, err)
	p := &ingest.Preparer{Codec: codec, Search: reg}
	recs := []seed.Record{seed.CitizenRecord()}
	for _, rec := range seed.Generate(7, 400) {
		recs = append(recs, rec)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	types := map[string]int{}
	for _, rec := range recs {
		for _, b := range append([][]byte{rec.Patient}, rec.Resources...) {
			res, err := codec.Parse(b)
			require.NoError(t, err)
			want, err := p.Write(res, 0, false)
			require.NoError(t, err)
			res, err = codec.Parse(b)
			require.NoError(t, err)
			got, err := p.WritePrinted(res, b, 0, false)
			require.NoError(t, err)
			wantBody, err := want.Render(1, at)
			require.NoError(t, err)
			gotBody, err := got.Render(1, at)
			require.NoError(t, err)
			require.Equal(t, string(wantBody), string(gotBody), "%s/%s as generated is not as the codec prints it", res.Type, res.ID)
			require.Equal(t, want.Index, got.Index, "%s/%s", res.Type, res.ID)
			require.Equal(t, want.Identifiers, got.Identifiers, "%s/%s", res.Type, res.ID)
			require.Equal(t, [3]string{want.Type, want.ID, want.Patient}, [3]string{got.Type, got.ID, got.Patient})
			types[res.Type]++
		}
	}
	// The shortcut is taken for the bulk of a load.
	for _, typ := range []string{"Patient", "MedicationStatement", "Encounter"} {
		assert.Greater(t, types[typ], 300, typ)
	}
}
