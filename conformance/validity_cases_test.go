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

// Our server's $validate against the base R4 profiles agrees with the HL7
// Java validator on fhir-test-cases' R4 validator cases; the figure and
// every disagreement are in the report.
func TestValidatorCasesAgreement(t *testing.T) {
	s := startStack(t, stackOptions{})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupValidity}, Run: "^validity/validator-cases$"})
	r, ok := rep.Result("validity/validator-cases")
	require.True(t, ok, "the suite has a check validity/validator-cases")
	t.Logf("%s%s", r.Message, r.Note)
	assert.Equal(t, conformance.Pass, r.Status, r.Message)
	assert.Contains(t, r.Note, "validator cases: ")
}

// A deployment whose $validate lets everything through (a proxy answers
// "valid" to every base-profile $validate) fails the check, which names
// the cases it got wrong and what the Java validator said.
func TestValidateThatAcceptsEverythingFailsTheValidatorCases(t *testing.T) {
	s := startStack(t, stackOptions{front: func(res *http.Response) error {
		if !strings.HasSuffix(res.Request.URL.Path, "/$validate") {
			return nil
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		body := []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"all fine"}]}`)
		res.StatusCode = http.StatusOK
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		res.Header.Set("Content-Type", "application/fhir+json")
		return nil
	}})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupValidity}, Run: "^validity/validator-cases$"})
	r, ok := rep.Result("validity/validator-cases")
	require.True(t, ok)
	assert.Equal(t, conformance.Fail, r.Status)
	assert.Contains(t, r.Message, "validator cases: ")
	assert.Contains(t, r.Message, "xml-bad-entities-json (cases/xml-bad-entities.json): the Java validator says invalid (Encounter.text.div: Invalid entity in the XHTML ('&reg;')), the server valid")
}
