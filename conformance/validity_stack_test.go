package conformance_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/conformance"
)

// A deployment that serves invalid resources fails the validity checks
// named for it: a reverse proxy in front of the server writes a gender
// outside the R4 value set into every Patient, drops our profile from
// every Flag's meta.profile and makes $validate accept anything.
func TestServingInvalidResourcesFailsTheValidityChecks(t *testing.T) {
	const kjFlag = `"profile":["https://kjernejournal.example.no/fhir/StructureDefinition/KjFlag"]`
	s := startStack(t, stackOptions{front: func(res *http.Response) error {
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/fhir+json") {
			return nil
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		if strings.HasSuffix(res.Request.URL.Path, "/$validate") {
			body = []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"all fine"}]}`)
		}
		body = bytes.ReplaceAll(body, []byte(`"gender":"female"`), []byte(`"gender":"kvinne"`))
		body = bytes.ReplaceAll(body, []byte(kjFlag), []byte(`"profile":["https://example.org/fhir/StructureDefinition/SomeFlag"]`))
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupValidity}})

	for _, id := range []string{"validity/json-schema-types", "validity/json-schema-served"} {
		r, ok := rep.Result(id)
		require.True(t, ok, "the suite has a check %s", id)
		assert.Equal(t, conformance.Fail, r.Status, id)
		assert.Contains(t, r.Message, "/gender: value must be one of", id)
	}
	r, ok := rep.Result("validity/json-schema-served")
	require.True(t, ok)
	assert.Contains(t, r.Message, "validity/json-schema-types got from GET /Patient/", "names the check and request that got the body")

	r, ok = rep.Result("validity/profiles")
	require.True(t, ok)
	assert.Equal(t, conformance.Fail, r.Status)
	assert.Contains(t, r.Message, "does not declare https://kjernejournal.example.no/fhir/StructureDefinition/KjFlag")
	assert.Contains(t, r.Message, "$validate accepts a copy of the sample's Flag without category")
	assert.Contains(t, r.Message, "$validate accepts a copy of the sample's AllergyIntolerance without criticality")

	// What the proxy did not break still passes.
	r, ok = rep.Result("validity/bundle-rules")
	require.True(t, ok)
	assert.Equal(t, conformance.Pass, r.Status, r.Message)
}
