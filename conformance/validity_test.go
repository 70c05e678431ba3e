package conformance

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The validity group's own machinery, on bodies made here: the schema
// must reject what is wrong and name where, and accept what a FHIR R4
// server sends; the Bundle rules likewise. The suite's stack tests show
// the checks on a real server.

var testSchema = sync.OnceValues(func() (*fhirSchema, error) {
	return loadFHIRSchema("../testdata/fhir/fhir.schema.json")
})

func schemaForTest(t *testing.T) *fhirSchema {
	t.Helper()
	s, err := testSchema()
	require.NoError(t, err)
	return s
}

const (
	validFlag = `{"resourceType":"Flag","id":"f1","meta":{"versionId":"2","lastUpdated":"2026-01-05T10:00:00.123Z",
	  "profile":["https://kjernejournal.example.no/fhir/StructureDefinition/KjFlag"]},
	  "status":"active","category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat"}]}],
	  "code":{"text":"Pacemaker"},"period":{"start":"2024-01-10T08:00:00Z"},"subject":{"reference":"Patient/p1"}}`
	validOutcome = `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"suppressed","diagnostics":"restricted"}]}`
)

func TestFHIRSchemaAcceptsWhatAnR4ServerSends(t *testing.T) {
	s := schemaForTest(t)
	t.Logf("the FHIR R4 JSON Schema was read and compiled in %s", s.Compile)
	for name, body := range map[string]string{
		"Patient": `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13116900216"}],
		  "name":[{"family":"Nordmann","given":["Kari"]}],"gender":"female","birthDate":"1969-11-13",
		  "extension":[{"url":"https://kjernejournal.example.no/fhir/StructureDefinition/secret-address","valueBoolean":true}]}`,
		"Flag": validFlag,
		// 4.0.1 is added in memory to the 4.0.0 schema's enum.
		"CapabilityStatement 4.0.1": `{"resourceType":"CapabilityStatement","status":"active","date":"2026-01-01","kind":"instance","fhirVersion":"4.0.1","format":["json"]}`,
		"searchset": `{"resourceType":"Bundle","type":"searchset","total":1,"link":[{"relation":"self","url":"http://kj/Flag?patient=p1"}],
		  "entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"search":{"mode":"match"}},
		           {"resource":` + validOutcome + `,"search":{"mode":"outcome"}}]}`,
		"contained and Parameters": `{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Flag","status":"active",
		  "code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p"}]}},
		  {"name":"nested","part":[{"name":"o","resource":` + validOutcome + `}]}]}`,
		// _elements answers leave required elements out and say so.
		"subsetted": `{"resourceType":"Flag","id":"f1","meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]},"status":"active"}`,
	} {
		errs, err := s.Validate([]byte(body))
		require.NoError(t, err, name)
		assert.Empty(t, errs, name)
	}
}

func TestFHIRSchemaNamesEachViolation(t *testing.T) {
	s := schemaForTest(t)
	for _, tc := range []struct {
		name, body, pointer, message string
	}{
		{"enum", `{"resourceType":"Patient","gender":"kvinne"}`, "/gender", "must be one of"},
		{"pattern", `{"resourceType":"Patient","birthDate":"1969-13-13"}`, "/birthDate", "does not match pattern"},
		{"type", `{"resourceType":"Patient","name":[{"family":3}]}`, "/name/0/family", "want string"},
		{"unknown element", `{"resourceType":"Patient","fodselsnummer":"1"}`, "", "additional properties 'fodselsnummer'"},
		{"required", `{"resourceType":"Flag","status":"active","code":{"text":"x"}}`, "", "missing property 'subject'"},
		{"unknown type", `{"resourceType":"Pasient"}`, "/resourceType", "not a FHIR R4 resource type"},
		{"no resourceType", `{"id":"x"}`, "/resourceType", "missing"},
		{"not an object", `[]`, "", "not a JSON object"},
		{"not JSON", `{"resourceType":`, "", "not JSON"},
		{"only 4.0.1 added", `{"resourceType":"CapabilityStatement","status":"active","date":"2026","kind":"instance","fhirVersion":"4.0.2","format":["json"]}`, "/fhirVersion", "must be one of"},
		{"entry resource", `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + validFlag + `},{"resource":{"resourceType":"Flag","status":"bogus","code":{},"subject":{}}}]}`,
			"/entry/1/resource/status", "must be one of"},
		{"entry outcome", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"400","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"bad","code":"invalid"}]}}}]}`,
			"/entry/0/response/outcome/issue/0/severity", "must be one of"},
		{"Bundle element", `{"resourceType":"Bundle","type":"searchzet"}`, "/type", "must be one of"},
		{"contained", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","gender":"f"}]}`,
			"/contained/0/gender", "must be one of"},
		{"parameter part", `{"resourceType":"Parameters","parameter":[{"name":"a","part":[{"name":"b","resource":{"resourceType":"Patient","active":"yes"}}]}]}`,
			"/parameter/0/part/0/resource/active", "want boolean"},
	} {
		errs, err := s.Validate([]byte(tc.body))
		require.NoError(t, err, tc.name)
		require.NotEmpty(t, errs, tc.name)
		assert.Equal(t, tc.pointer, errs[0].Pointer, tc.name)
		assert.Contains(t, errs[0].Message, tc.message, tc.name)
	}
}

// A resource validated once is not validated again, but each place it is
// served at is still named.
func TestFHIRSchemaCacheKeepsEachPlace(t *testing.T) {
	s := schemaForTest(t)
	bad := `{"resourceType":"Patient","gender":"kvinne"}`
	for _, tc := range []struct{ body, pointer string }{
		{bad, "/gender"},
		{`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + bad + `}]}`, "/entry/0/resource/gender"},
		{`{"resourceType":"Bundle","type":"searchset","entry":[{},{"resource":` + bad + `}]}`, "/entry/1/resource/gender"},
	} {
		errs, err := s.Validate([]byte(tc.body))
		require.NoError(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, tc.pointer, errs[0].Pointer)
	}
}

func TestBundleRules(t *testing.T) {
	self := `"link":[{"relation":"self","url":"http://kj/Flag?patient=p1"}]`
	for _, tc := range []struct {
		name, body, want string // want: "" for no problem, else a substring of one
	}{
		{"good searchset", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"search":{"mode":"match"}},{"resource":` + validOutcome + `,"search":{"mode":"outcome"}}]}`, ""},
		{"good history", `{"resourceType":"Bundle","type":"history","total":2,"entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"request":{"method":"PUT","url":"Flag/f1"},"response":{"status":"200"}},{"fullUrl":"http://kj/Flag/f1","request":{"method":"DELETE","url":"Flag/f1"},"response":{"status":"204"}}]}`, ""},
		{"not searchset", `{"resourceType":"Bundle","type":"collection",` + self + `}`, "want searchset"},
		{"no self link", `{"resourceType":"Bundle","type":"searchset"}`, "without a self link"},
		{"no mode", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `}]}`, "search.mode"},
		{"no fullUrl", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"resource":` + validFlag + `,"search":{"mode":"match"}}]}`, "has no fullUrl"},
		{"relative fullUrl", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"fullUrl":"Flag/f1","resource":` + validFlag + `,"search":{"mode":"match"}}]}`, "not absolute"},
		{"fullUrl of another", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"fullUrl":"http://kj/Flag/f2","resource":` + validFlag + `,"search":{"mode":"match"}}]}`, "does not end with"},
		{"fullUrl twice", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"search":{"mode":"match"}},{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"search":{"mode":"include"}}]}`, "bdl-7"},
		{"history without request", `{"resourceType":"Bundle","type":"history","entry":[{"fullUrl":"http://kj/Flag/f1","resource":` + validFlag + `,"response":{"status":"200"}}]}`, "bdl-3"},
		{"total in a batch-response", `{"resourceType":"Bundle","type":"batch-response","total":1}`, "bdl-1"},
		{"search outside searchset", `{"resourceType":"Bundle","type":"batch-response","entry":[{"search":{"mode":"match"},"response":{"status":"200"}}]}`, "bdl-2"},
		{"outcome without code", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"x"}]}`, "has no code"},
		{"outcome without issue", `{"resourceType":"OperationOutcome","issue":[]}`, "without an issue"},
		{"entry outcome without severity", `{"resourceType":"Bundle","type":"searchset",` + self + `,"entry":[{"resource":{"resourceType":"OperationOutcome","issue":[{"code":"x"}]},"search":{"mode":"outcome"}}]}`, "entry[0].resource: OperationOutcome.issue[0].severity"},
	} {
		// Bodies that say searchset are checked as the answer to a
		// search, and so is "not searchset", which is one of another type.
		problems := resourceRules([]byte(tc.body), "searchset")
		if !strings.Contains(tc.body, `"type":"searchset"`) && tc.name != "not searchset" {
			problems = resourceRules([]byte(tc.body), "")
		}
		if tc.want == "" {
			assert.Empty(t, problems, tc.name)
			continue
		}
		assert.True(t, strings.Contains(strings.Join(problems, "\n"), tc.want), "%s: %q, want one containing %q", tc.name, problems, tc.want)
	}
}

// Without the schema file the schema checks are skipped, saying why and
// how to point at it, rather than failing or passing on nothing.
func TestMissingSchemaSkips(t *testing.T) {
	e := &env{cfg: Config{SchemaFile: t.TempDir() + "/fhir.schema.json"}}
	res := e.run(context.Background(), Check{Group: GroupValidity, ID: "validity/x", Run: func(t *T) { t.FHIRSchema() }})
	assert.Equal(t, Skip, res.Status)
	assert.Contains(t, res.Message, "--fhir-schema")
}
