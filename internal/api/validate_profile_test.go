package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// TestValidateProfile: $validate with the base R4 StructureDefinition
// checks base R4 only (a foreign Patient without a Norwegian person number
// is valid R4), in the query or in a Parameters body; kjernejournal's
// profiles keep the kjernejournal rules; an unknown profile is a 400 that
// names it.
func TestValidateProfile(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		tok := s.token("gp", "val-pat")
		validate := func(path string, body []byte) (int, string) {
			r := s.as_(tok, "UNNTAK", "POST", path, body)
			return r.status, string(r.body)
		}
		foreign := []byte(`{"resourceType":"Patient","id":"au-5","name":[{"family":"Simmons"}],"gender":"female"}`)
		const base = "http://hl7.org/fhir/StructureDefinition/Patient"

		status, out := validate("/Patient/$validate", foreign)
		require.Equal(t, http.StatusOK, status, out)
		assert.Contains(t, out, `"severity":"error"`, "kjernejournal's rules by default: a Patient needs a person number")
		assert.Contains(t, out, "Patient.identifier")

		for _, p := range []string{base, base + "|4.0.1"} {
			status, out = validate("/Patient/$validate?profile="+url.QueryEscape(p), foreign)
			require.Equal(t, http.StatusOK, status, out)
			assert.NotContains(t, out, `"severity":"error"`, "base R4 only with profile %s", p)
		}

		// A UTF-8 byte order mark, as Windows editors write, is no error.
		status, out = validate("/Patient/$validate?profile="+url.QueryEscape(base), append([]byte("\xef\xbb\xbf"), foreign...))
		require.Equal(t, http.StatusOK, status, out)
		assert.NotContains(t, out, `"severity":"error"`, "a body with a byte order mark")

		params, err := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": []any{
			map[string]any{"name": "resource", "resource": json.RawMessage(foreign)},
			map[string]any{"name": "profile", "valueUri": base},
		}})
		require.NoError(t, err)
		status, out = validate("/Patient/$validate", params)
		require.Equal(t, http.StatusOK, status, out)
		assert.NotContains(t, out, `"severity":"error"`, "base R4 only with a Parameters body")

		// Base R4 still holds with the base profile: an unknown element.
		status, out = validate("/Patient/$validate?profile="+url.QueryEscape(base), []byte(`{"resourceType":"Patient","unknownElement":1}`))
		require.Equal(t, http.StatusOK, status, out)
		assert.Contains(t, out, `"severity":"error"`)
		assert.Contains(t, out, "Patient.unknownElement")

		flagProfile, ok := profile.URL("Flag")
		require.True(t, ok)
		status, out = validate("/Flag/$validate?profile="+url.QueryEscape(flagProfile), []byte(`{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/val-pat"}}`))
		require.Equal(t, http.StatusOK, status, out)
		assert.Contains(t, out, `"severity":"error"`, "the kjernejournal profile keeps its rules")

		status, out = validate("/Patient/$validate?profile="+url.QueryEscape("http://example.org/StructureDefinition/other"), foreign)
		assert.Equal(t, http.StatusBadRequest, status, out)
		assert.Contains(t, out, "http://example.org/StructureDefinition/other")
		status, out = validate("/Patient/$validate?profile="+url.QueryEscape(flagProfile), foreign)
		assert.Equal(t, http.StatusBadRequest, status, "a Flag profile for a Patient: %s", out)
	})
}
