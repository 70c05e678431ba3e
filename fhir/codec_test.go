package fhir_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// recordTypes are the types the tests' codecs accept: the ones
// kjernejournal stores.
var recordTypes = []string{"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent"}

func newCodec(t testing.TB) *fhir.Codec {
	t.Helper()
	c, err := fhir.NewCodec(recordTypes...)
	require.NoError(t, err)
	return c
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func validationError(t *testing.T, err error) *fhir.ValidationError {
	t.Helper()
	require.Error(t, err)
	var ve *fhir.ValidationError
	require.True(t, errors.As(err, &ve), "want *ValidationError, got %T: %v", err, err)
	require.NotEmpty(t, ve.Issues)
	return ve
}

func TestParseValidExamples(t *testing.T) {
	c := newCodec(t)
	tests := []struct {
		file, typ, id, patient string
		refs                   []string
	}{
		{"patient.json", "Patient", "kari-nordmann", "kari-nordmann", []string{"Practitioner/fastlege-9144889"}},
		{"allergyintolerance.json", "AllergyIntolerance", "penicillin-allergi", "kari-nordmann",
			[]string{"Patient/kari-nordmann", "Practitioner/lege-1234567", "Patient/kari-nordmann"}},
		{"flag.json", "Flag", "anestesikomplikasjon", "kari-nordmann", []string{"Patient/kari-nordmann", "Practitioner/lege-1234567"}},
		{"medicationstatement.json", "MedicationStatement", "metoprolol-e-resept", "kari-nordmann", []string{"Patient/kari-nordmann"}},
		{"encounter.json", "Encounter", "innleggelse-ous-2024", "kari-nordmann", []string{"Patient/kari-nordmann"}},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			r, err := c.Parse(readTestdata(t, tc.file))
			require.NoError(t, err)
			assert.Equal(t, tc.typ, r.Type)
			assert.Equal(t, tc.id, r.ID)
			assert.Equal(t, tc.patient, r.Patient)
			assert.ElementsMatch(t, tc.refs, r.References())
		})
	}
}

func TestParseInvalid(t *testing.T) {
	c := newCodec(t)
	tests := []struct {
		name string
		body string
		code string
		expr string // "" when the issue names no element
	}{
		{"malformed JSON", `{"resourceType":"Flag",`, "structure", ""},
		{"not an object", `[1,2]`, "structure", ""},
		{"empty body", ``, "structure", ""},
		{"string for boolean", `{"resourceType":"Patient","active":"yes"}`, "value", "Patient.active"},
		{"number for string", `{"resourceType":"Patient","name":[{"family":3}]}`, "value", "Patient.name[0].family"},
		{"bad date", `{"resourceType":"Patient","birthDate":"1990-13-45"}`, "value", "Patient.birthDate"},
		{"object for array", `{"resourceType":"Patient","identifier":{"value":"1"}}`, "structure", "Patient.identifier"},
		{"unknown element", `{"resourceType":"Patient","favouriteColour":"blue"}`, "structure", "Patient.favouriteColour"},
		{"Flag without status", `{"resourceType":"Flag","code":{"text":"x"},"subject":{"reference":"Patient/1"}}`, "required", "Flag.status"},
		{"Flag without code", `{"resourceType":"Flag","status":"active","subject":{"reference":"Patient/1"}}`, "required", "Flag.code"},
		{"AllergyIntolerance without patient", `{"resourceType":"AllergyIntolerance","code":{"text":"Peanøtter"}}`, "required", "AllergyIntolerance.patient"},
		{"Encounter without class", `{"resourceType":"Encounter","status":"finished"}`, "required", "Encounter.class"},
		{"invalid status code", `{"resourceType":"Flag","status":"bogus","code":{"text":"x"},"subject":{"reference":"Patient/1"}}`, "code-invalid", "Flag.status"},
		{"invalid gender code", `{"resourceType":"Patient","gender":"unknownish"}`, "code-invalid", "Patient.gender"},
		{"wrong reference type", `{"resourceType":"AllergyIntolerance","patient":{"reference":"Practitioner/1"}}`, "invalid", "AllergyIntolerance.patient"},
		{"wrong subject type", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Observation/1"}}`, "invalid", "Flag.subject"},
		{"unknown resource type", `{"resourceType":"Bogus","id":"1"}`, "not-supported", "resourceType"},
		{"unserved resource type", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, "not-supported", "resourceType"},
		{"missing resourceType", `{"id":"1"}`, "required", "resourceType"},
		{"bad id", `{"resourceType":"Patient","id":"has space"}`, "value", "Patient.id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Parse([]byte(tc.body))
			assert.Nil(t, r)
			ve := validationError(t, err)
			found := false
			for _, is := range ve.Issues {
				assert.Equal(t, "error", is.Severity)
				assert.NotEmpty(t, is.Diagnostics)
				if is.Code == tc.code && (tc.expr == "" || assert.ObjectsAreEqual([]string{tc.expr}, is.Expression)) {
					found = true
				}
			}
			assert.True(t, found, "want issue code=%s expr=%q, got %+v", tc.code, tc.expr, ve.Issues)
			assert.Contains(t, err.Error(), "invalid resource")
		})
	}
}

func TestParseCollectsAllIssues(t *testing.T) {
	c := newCodec(t)
	_, err := c.Parse([]byte(`{"resourceType":"Patient","active":"yes","birthDate":"nope","gender":"x"}`))
	ve := validationError(t, err)
	var exprs []string
	for _, is := range ve.Issues {
		exprs = append(exprs, is.Expression...)
	}
	assert.Equal(t, []string{"Patient.active", "Patient.birthDate", "Patient.gender"}, exprs, "sorted, all reported")

	_, err = c.Parse([]byte(`{"resourceType":"Flag"}`))
	ve = validationError(t, err)
	exprs = nil
	for _, is := range ve.Issues {
		assert.Equal(t, "required", is.Code)
		exprs = append(exprs, is.Expression...)
	}
	assert.Equal(t, []string{"Flag.code", "Flag.status", "Flag.subject"}, exprs)
}

func TestPatientCompartment(t *testing.T) {
	c := newCodec(t)
	tests := []struct {
		name, body, patient string
	}{
		{"relative", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`, "p1"},
		{"versioned", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1/_history/4"}}`, "p1"},
		{"absolute", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"https://other.example/fhir/Patient/p1"}}`, ""},
		{"urn", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"urn:uuid:0b7b1f8c-6b4e-4d4e-9f6e-8f6f6c1b2a3d"}}`, ""},
		{"identifier only", `{"resourceType":"MedicationStatement","status":"active","medicationCodeableConcept":{"text":"x"},"subject":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13837197685"}}}`, ""},
		{"encounter", `{"resourceType":"Encounter","status":"planned","class":{"code":"AMB"},"subject":{"reference":"Patient/e9"}}`, "e9"},
		{"patient without id", `{"resourceType":"Patient"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Parse([]byte(tc.body))
			require.NoError(t, err)
			assert.Equal(t, tc.patient, r.Patient)
		})
	}
}

func TestSetID(t *testing.T) {
	c := newCodec(t)
	r, err := c.Parse(readTestdata(t, "patient.json"))
	require.NoError(t, err)
	r.SetID("ny-id")
	assert.Equal(t, "ny-id", r.ID)
	assert.Equal(t, "ny-id", r.Patient)
	b, err := c.Marshal(r)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), `{"resourceType":"Patient","id":"ny-id",`), string(b))

	r.SetID("")
	b, err = c.Marshal(r)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"id":"ny-id"`)
	assert.Empty(t, r.ID)
}

func TestMarshalClearsVersionMeta(t *testing.T) {
	c := newCodec(t)
	r, err := c.Parse(readTestdata(t, "patient.json"))
	require.NoError(t, err)
	b, err := c.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	meta := m["meta"].(map[string]any)
	assert.NotContains(t, meta, "versionId")
	assert.NotContains(t, meta, "lastUpdated")
	assert.Equal(t, []any{"http://hl7.no/fhir/StructureDefinition/no-basis-Patient"}, meta["profile"])
	assert.True(t, strings.HasPrefix(string(b), `{"resourceType":"Patient","id":"kari-nordmann","meta":{`), string(b))
	assert.NotContains(t, string(b), "\n", "compact")

	// Marshal must not change the parsed resource: a second call still
	// sees the original meta only through the same cleared output.
	b2, err := c.Marshal(r)
	require.NoError(t, err)
	assert.Equal(t, b, b2)

	// A meta with nothing but version data disappears.
	r, err = c.Parse([]byte(`{"resourceType":"Patient","id":"a","meta":{"versionId":"7","lastUpdated":"2024-01-01T00:00:00Z"},"active":true}`))
	require.NoError(t, err)
	b, err = c.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"resourceType":"Patient","id":"a","active":true}`, string(b))
}

func TestRoundTripWithMeta(t *testing.T) {
	c := newCodec(t)
	for _, f := range []string{"patient.json", "allergyintolerance.json", "flag.json", "medicationstatement.json", "encounter.json"} {
		t.Run(f, func(t *testing.T) {
			r, err := c.Parse(readTestdata(t, f))
			require.NoError(t, err)
			stored, err := c.Marshal(r)
			require.NoError(t, err)
			when := time.Date(2024, 5, 2, 10, 15, 30, 123456789, time.FixedZone("CEST", 2*3600))
			withMeta, err := fhir.WithMeta(stored, 12, when)
			require.NoError(t, err)
			require.True(t, json.Valid(withMeta), string(withMeta))

			r2, err := c.Parse(withMeta)
			require.NoError(t, err, string(withMeta))
			assert.Equal(t, r.Type, r2.Type)
			assert.Equal(t, r.ID, r2.ID)
			assert.Equal(t, r.Patient, r2.Patient)

			var m struct {
				ResourceType string `json:"resourceType"`
				Meta         struct {
					VersionID   string `json:"versionId"`
					LastUpdated string `json:"lastUpdated"`
				} `json:"meta"`
			}
			require.NoError(t, json.Unmarshal(withMeta, &m))
			assert.Equal(t, "12", m.Meta.VersionID)
			assert.Equal(t, "2024-05-02T08:15:30.123Z", m.Meta.LastUpdated)

			// Marshal of the re-parsed resource gives back the stored form.
			again, err := c.Marshal(r2)
			require.NoError(t, err)
			assert.JSONEq(t, string(stored), string(again))
		})
	}
}

func TestReferencesAndRewrite(t *testing.T) {
	c := newCodec(t)
	body := `{"resourceType":"AllergyIntolerance",
		"patient":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
		"recorder":{"reference":"urn:uuid:aa0c8b4d-cd1b-4d29-9a3d-0d2b1a7f5f10"},
		"asserter":{"reference":"Practitioner/p7"},
		"encounter":{"reference":"https://ehr.example.no/fhir/Encounter/9"},
		"code":{"text":"Jordnøtter"}}`
	r, err := c.Parse([]byte(body))
	require.NoError(t, err)
	assert.Empty(t, r.Patient, "urn:uuid is not a patient id yet")
	assert.ElementsMatch(t, []string{
		"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
		"urn:uuid:aa0c8b4d-cd1b-4d29-9a3d-0d2b1a7f5f10",
		"Practitioner/p7",
		"https://ehr.example.no/fhir/Encounter/9",
	}, r.References())

	r.RewriteReferences(map[string]string{
		"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a": "Patient/123",
		"urn:uuid:aa0c8b4d-cd1b-4d29-9a3d-0d2b1a7f5f10": "Practitioner/456",
		"urn:uuid:not-used":                             "Patient/999",
	})
	assert.Equal(t, "123", r.Patient)
	assert.ElementsMatch(t, []string{"Patient/123", "Practitioner/456", "Practitioner/p7", "https://ehr.example.no/fhir/Encounter/9"}, r.References())

	b, err := c.Marshal(r)
	require.NoError(t, err)
	var m struct {
		Patient  struct{ Reference string } `json:"patient"`
		Recorder struct{ Reference string } `json:"recorder"`
	}
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, "Patient/123", m.Patient.Reference)
	assert.Equal(t, "Practitioner/456", m.Recorder.Reference)

	// The rewritten resource is still valid, including reference types.
	r2, err := c.Parse(b)
	require.NoError(t, err)
	assert.Equal(t, "123", r2.Patient)
}

func TestRewriteReferencesInContainedAndExtensions(t *testing.T) {
	c := newCodec(t)
	body := `{"resourceType":"Patient","id":"p",
		"contained":[{"resourceType":"Organization","id":"org","partOf":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}],
		"managingOrganization":{"reference":"#org"},
		"extension":[{"url":"http://example.no/ext","valueReference":{"reference":"urn:uuid:22222222-2222-4222-8222-222222222222"}}]}`
	r, err := c.Parse([]byte(body))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"#org", "urn:uuid:11111111-1111-4111-8111-111111111111", "urn:uuid:22222222-2222-4222-8222-222222222222"}, r.References())
	r.RewriteReferences(map[string]string{
		"urn:uuid:11111111-1111-4111-8111-111111111111": "Organization/o1",
		"urn:uuid:22222222-2222-4222-8222-222222222222": "Practitioner/x",
	})
	b, err := c.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"reference":"Organization/o1"`)
	assert.Contains(t, string(b), `"reference":"Practitioner/x"`)
	assert.Contains(t, string(b), `"reference":"#org"`)
	assert.NotContains(t, string(b), "urn:uuid")
	_, err = c.Parse(b)
	require.NoError(t, err)
}

func TestRewriteToWrongTypeIsCaughtOnReparse(t *testing.T) {
	// RewriteReferences trusts its map; the type check is the parser's, so a
	// transaction that maps a patient urn to a Practitioner fails when the
	// stored form is validated again.
	c := newCodec(t)
	r, err := c.Parse([]byte(`{"resourceType":"AllergyIntolerance","patient":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}}`))
	require.NoError(t, err)
	r.RewriteReferences(map[string]string{"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a": "Practitioner/1"})
	assert.Empty(t, r.Patient)
	b, err := c.Marshal(r)
	require.NoError(t, err)
	_, err = c.Parse(b)
	ve := validationError(t, err)
	assert.Equal(t, []string{"AllergyIntolerance.patient"}, ve.Issues[0].Expression)
}

func TestCodecConcurrentUse(t *testing.T) {
	c := newCodec(t)
	body := readTestdata(t, "flag.json")
	done := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				r, err := c.Parse(body)
				if err != nil {
					done <- err
					return
				}
				if _, err := c.Marshal(r); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}
