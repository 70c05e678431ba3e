package fhir_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
)

func TestWithMeta(t *testing.T) {
	when := time.Date(2024, 12, 31, 23, 59, 59, 987654321, time.UTC)
	tests := []struct {
		name, in, want string
	}{
		{"no meta, order kept",
			`{"resourceType":"Flag","id":"f1","status":"active","code":{"text":"a"}}`,
			`{"resourceType":"Flag","id":"f1","meta":{"versionId":"5","lastUpdated":"2024-12-31T23:59:59.987Z"},"status":"active","code":{"text":"a"}}`},
		{"existing meta replaced, other members kept",
			`{"id":"f1","meta":{"lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"x"}],"versionId":"1","profile":["p"]},"resourceType":"Flag","status":"active"}`,
			`{"resourceType":"Flag","id":"f1","meta":{"versionId":"5","lastUpdated":"2024-12-31T23:59:59.987Z","tag":[{"code":"x"}],"profile":["p"]},"status":"active"}`},
		{"no id, whitespace and tricky strings",
			" {\n \"resourceType\" : \"Patient\" , \"name\" : [ {\"text\":\"a \\\"}{\\\\\" } ] , \"active\":true }\n",
			`{"resourceType":"Patient","meta":{"versionId":"5","lastUpdated":"2024-12-31T23:59:59.987Z"},"name":[ {"text":"a \"}{\\" } ],"active":true}`},
		{"meta null", `{"resourceType":"Patient","meta":null}`,
			`{"resourceType":"Patient","meta":{"versionId":"5","lastUpdated":"2024-12-31T23:59:59.987Z"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fhir.WithMeta([]byte(tc.in), 5, when)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}

	for _, bad := range []string{``, `[]`, `{"a":`, `{"a":1,}`, `{"a" 1}`, `{"meta":[1]}`, `{"a":"unterminated}`, `{"a":1} x`} {
		_, err := fhir.WithMeta([]byte(bad), 1, when)
		assert.Error(t, err, bad)
	}
}

func TestFormatInstant(t *testing.T) {
	oslo := time.FixedZone("CET", 3600)
	assert.Equal(t, "2024-03-01T11:00:00.000Z", fhir.FormatInstant(time.Date(2024, 3, 1, 12, 0, 0, 0, oslo)))
}

func TestPretty(t *testing.T) {
	got := fhir.Pretty([]byte(`{"resourceType":"Flag","code":{"text":"a"},"category":[1,2]}`))
	want := "{\n  \"resourceType\": \"Flag\",\n  \"code\": {\n    \"text\": \"a\"\n  },\n  \"category\": [\n    1,\n    2\n  ]\n}"
	assert.Equal(t, want, string(got))
	assert.Equal(t, "not json", string(fhir.Pretty([]byte("not json"))), "invalid input is returned unchanged")
}

func hasSubsetted(t *testing.T, body []byte) bool {
	t.Helper()
	var m struct {
		Meta struct {
			Tag []struct{ System, Code string }
		}
	}
	require.NoError(t, json.Unmarshal(body, &m))
	n := 0
	for _, tg := range m.Meta.Tag {
		if tg.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && tg.Code == "SUBSETTED" {
			n++
		}
	}
	assert.LessOrEqual(t, n, 1, "tag not duplicated")
	return n == 1
}

func keys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	_, err := dec.Token()
	require.NoError(t, err)
	var ks []string
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err)
		ks = append(ks, k.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return ks
}

func storedForm(t *testing.T, c *fhir.Codec, file string) []byte {
	t.Helper()
	r, err := c.Parse(readTestdata(t, file))
	require.NoError(t, err)
	b, err := c.Marshal(r)
	require.NoError(t, err)
	b, err = fhir.WithMeta(b, 2, time.Date(2024, 5, 2, 8, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return b
}

func TestElements(t *testing.T) {
	c := newCodec(t)
	tests := []struct {
		file  string
		names []string
		want  []string
	}{
		{"patient.json", []string{"name", "birthDate"}, []string{"resourceType", "id", "meta", "name", "birthDate"}},
		{"patient.json", []string{"nosuch"}, []string{"resourceType", "id", "meta"}},
		// Mandatory elements come along so the result stays valid.
		{"flag.json", []string{"period"}, []string{"resourceType", "id", "meta", "status", "code", "subject", "period"}},
		{"medicationstatement.json", []string{"dosage"}, []string{"resourceType", "id", "meta", "status", "medicationCodeableConcept", "subject", "dosage"}},
		{"medicationstatement.json", []string{"effective[x]"}, []string{"resourceType", "id", "meta", "status", "medicationCodeableConcept", "subject", "effectivePeriod"}},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+strings.Join(tc.names, ","), func(t *testing.T) {
			got, err := fhir.Elements(storedForm(t, c, tc.file), tc.names)
			require.NoError(t, err)
			ks := keys(t, got)
			require.GreaterOrEqual(t, len(ks), 3)
			assert.Equal(t, []string{"resourceType", "id", "meta"}, ks[:3])
			assert.ElementsMatch(t, tc.want, ks)
			assert.True(t, hasSubsetted(t, got))
			_, err = c.Parse(got)
			require.NoError(t, err, "subset is still a valid resource: %s", got)
		})
	}

	// Existing tags are kept and SUBSETTED is not added twice.
	in := `{"resourceType":"Patient","id":"p","meta":{"versionId":"1","tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}],"security":[{"code":"R"}]},"active":true,"_active":{"extension":[{"url":"http://x","valueString":"y"}]}}`
	got, err := fhir.Elements([]byte(in), []string{"active"})
	require.NoError(t, err)
	assert.True(t, hasSubsetted(t, got))
	assert.JSONEq(t, in, string(got), "nothing was removed or added")

	_, err = fhir.Elements([]byte(`{"resourceType":`), []string{"a"})
	assert.Error(t, err)
}

func TestSummary(t *testing.T) {
	c := newCodec(t)
	tests := []struct {
		file string
		want []string
	}{
		{"patient.json", []string{"resourceType", "id", "meta", "identifier", "active", "name", "telecom", "gender", "birthDate", "address"}},
		{"allergyintolerance.json", []string{"resourceType", "id", "meta", "clinicalStatus", "verificationStatus", "type", "category", "criticality", "code", "patient", "asserter"}},
		{"flag.json", []string{"resourceType", "id", "meta", "status", "category", "code", "subject", "period", "author"}},
		{"medicationstatement.json", []string{"resourceType", "id", "meta", "identifier", "status", "category", "medicationCodeableConcept", "subject", "effectivePeriod", "dateAsserted"}},
		{"encounter.json", []string{"resourceType", "id", "meta", "identifier", "status", "class", "type", "subject", "reasonCode"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			stored := storedForm(t, c, tc.file)
			got, err := fhir.Summary(stored)
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, keys(t, got))
			assert.True(t, hasSubsetted(t, got))
			var m struct{ Meta struct{ VersionID string } }
			require.NoError(t, json.Unmarshal(got, &m))
			assert.Equal(t, "2", m.Meta.VersionID, "meta is kept")
			_, err = c.Parse(got)
			require.NoError(t, err, "summary is still a valid resource: %s", got)
		})
	}
	_, err := fhir.Summary([]byte(`{"resourceType":"Observation"}`))
	assert.Error(t, err)
}
