package fhir_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// parseWithLibrary validates any R4 resource (Bundle and OperationOutcome
// included) with the google/fhir parser, independently of Codec.
func parseWithLibrary(t *testing.T, body []byte) *bcrpb.ContainedResource {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	pb, err := u.Unmarshal(body)
	require.NoError(t, err, "library rejects %s", body)
	return pb.(*bcrpb.ContainedResource)
}

func TestOutcome(t *testing.T) {
	got := fhir.Outcome(
		fhir.Issue{Severity: "error", Code: "required", Diagnostics: "Flag.status: missing \"status\"\n", Expression: []string{"Flag.status"}},
		fhir.Issue{Code: "not-found", Diagnostics: "Flag/1 finnes ikke"},
	)
	want := `{"resourceType":"OperationOutcome","issue":[` +
		`{"severity":"error","code":"required","diagnostics":"Flag.status: missing \"status\"\n","expression":["Flag.status"]},` +
		`{"severity":"error","code":"not-found","diagnostics":"Flag/1 finnes ikke"}]}`
	assert.Equal(t, want, string(got))
	oo := parseWithLibrary(t, got).GetOperationOutcome()
	require.Len(t, oo.GetIssue(), 2)
	assert.Equal(t, "Flag.status", oo.GetIssue()[0].GetExpression()[0].GetValue())

	empty := fhir.Outcome()
	parseWithLibrary(t, empty)
	assert.Contains(t, string(empty), `"severity":"information"`)

	// Control characters and invalid UTF-8 still give valid JSON.
	odd := fhir.Outcome(fhir.Issue{Severity: "error", Code: "value", Diagnostics: "a\x00b\xffc\u2028"})
	assert.True(t, json.Valid(odd), string(odd))
	parseWithLibrary(t, odd)
}

func TestValidationErrorOutcomeIsValid(t *testing.T) {
	c := newCodec(t)
	_, err := c.Parse([]byte(`{"resourceType":"Flag","status":"bogus","code":{"text":1}}`))
	ve := validationError(t, err)
	parseWithLibrary(t, fhir.Outcome(ve.Issues...))
}

func TestBundleSearchset(t *testing.T) {
	c := newCodec(t)
	total := 2
	flag := storedForm(t, c, "flag.json")
	allergy := storedForm(t, c, "allergyintolerance.json")
	out := fhir.Bundle(fhir.BundleOptions{
		Type:  "searchset",
		Total: &total,
		ID:    "b1",
		Links: []fhir.Link{
			{Relation: "self", URL: "https://kj.example.no/fhir/Flag?patient=kari-nordmann"},
			{Relation: "next", URL: "https://kj.example.no/fhir/Flag?patient=kari-nordmann&_cursor=abc&_count=1"},
		},
	}, []fhir.BundleEntry{
		{FullURL: "https://kj.example.no/fhir/Flag/anestesikomplikasjon", Resource: flag, SearchMode: "match"},
		{FullURL: "https://kj.example.no/fhir/AllergyIntolerance/penicillin-allergi", Resource: allergy, SearchMode: "include"},
		{Resource: fhir.Outcome(fhir.Issue{Severity: "warning", Code: "processing", Diagnostics: "ukjent parameter ignorert"}), SearchMode: "outcome"},
	})
	b := parseWithLibrary(t, out).GetBundle()
	require.NotNil(t, b)
	assert.Equal(t, "b1", b.GetId().GetValue())
	assert.Equal(t, "SEARCHSET", b.GetType().GetValue().String())
	assert.Equal(t, uint32(2), b.GetTotal().GetValue())
	require.Len(t, b.GetLink(), 2)
	assert.Equal(t, "next", b.GetLink()[1].GetRelation().GetValue())
	require.Len(t, b.GetEntry(), 3)
	assert.Equal(t, "anestesikomplikasjon", b.GetEntry()[0].GetResource().GetFlag().GetId().GetValue())
	assert.Equal(t, "2", b.GetEntry()[0].GetResource().GetFlag().GetMeta().GetVersionId().GetValue())
	assert.Equal(t, "INCLUDE", b.GetEntry()[1].GetSearch().GetMode().GetValue().String())
	assert.NotNil(t, b.GetEntry()[2].GetResource().GetOperationOutcome())
	assert.NotNil(t, b.GetTimestamp())
	assert.NotNil(t, b.GetMeta().GetLastUpdated())

	// The stored bytes are embedded verbatim.
	assert.Contains(t, string(out), `"resource":`+string(flag))

	empty := fhir.Bundle(fhir.BundleOptions{Type: "searchset", Total: new(int)}, nil)
	eb := parseWithLibrary(t, empty).GetBundle()
	assert.Empty(t, eb.GetEntry())
	assert.Contains(t, string(empty), `"total":0`)
}

func TestBundleTransactionResponseAndHistory(t *testing.T) {
	c := newCodec(t)
	when := time.Date(2024, 5, 2, 8, 0, 0, 0, time.UTC)
	out := fhir.Bundle(fhir.BundleOptions{Type: "transaction-response"}, []fhir.BundleEntry{
		{
			FullURL: "https://kj.example.no/fhir/Flag/f1", Resource: storedForm(t, c, "flag.json"),
			ResponseStatus: "201 Created", ResponseLocation: "Flag/f1/_history/1", ResponseETag: `W/"1"`, ResponseLastModified: when,
		},
		{ResponseStatus: "204 No Content"},
		{ResponseStatus: "412 Precondition Failed", ResponseOutcome: fhir.Outcome(fhir.Issue{Severity: "error", Code: "conflict", Diagnostics: "versjonskonflikt"})},
	})
	b := parseWithLibrary(t, out).GetBundle()
	require.Len(t, b.GetEntry(), 3)
	r0 := b.GetEntry()[0].GetResponse()
	assert.Equal(t, "201 Created", r0.GetStatus().GetValue())
	assert.Equal(t, "Flag/f1/_history/1", r0.GetLocation().GetValue())
	assert.Equal(t, `W/"1"`, r0.GetEtag().GetValue())
	assert.Equal(t, when.UnixMicro(), r0.GetLastModified().GetValueUs())
	assert.Nil(t, b.GetTotal())
	assert.NotNil(t, b.GetEntry()[2].GetResponse().GetOutcome().GetOperationOutcome())

	hist := fhir.Bundle(fhir.BundleOptions{Type: "history", Total: new(int)}, []fhir.BundleEntry{
		{FullURL: "https://kj.example.no/fhir/Flag/f1", Resource: storedForm(t, c, "flag.json"), RequestMethod: "PUT", RequestURL: "Flag/f1", ResponseStatus: "200 OK", ResponseLastModified: when},
		{FullURL: "https://kj.example.no/fhir/Flag/f1", RequestMethod: "DELETE", RequestURL: "Flag/f1", ResponseStatus: "410 Gone"},
	})
	hb := parseWithLibrary(t, hist).GetBundle()
	require.Len(t, hb.GetEntry(), 2)
	assert.Equal(t, "DELETE", hb.GetEntry()[1].GetRequest().GetMethod().GetValue().String())
	assert.Equal(t, "Flag/f1", hb.GetEntry()[1].GetRequest().GetUrl().GetValue())
}

func TestParseRequestBundle(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":"Patient","active":true},
		 "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:2.16.578.1.12.4.1.4.1|13837197685"}},
		{"resource":{"resourceType":"Flag","id":"f1"},"request":{"method":"PUT","url":"/Flag/f1","ifMatch":"W/\"3\""}},
		{"request":{"method":"DELETE","url":"AllergyIntolerance/a1"}},
		{"request":{"method":"GET","url":"Patient/1/Flag?status=active"}}]}`
	typ, entries, err := fhir.ParseRequestBundle([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, "transaction", typ)
	require.Len(t, entries, 4)
	assert.Equal(t, "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", entries[0].FullURL)
	assert.Equal(t, "POST", entries[0].Method)
	assert.Equal(t, "Patient", entries[0].URL)
	assert.Equal(t, "identifier=urn:oid:2.16.578.1.12.4.1.4.1|13837197685", entries[0].IfNoneExist)
	assert.JSONEq(t, `{"resourceType":"Patient","active":true}`, string(entries[0].Resource))
	assert.Equal(t, "Flag/f1", entries[1].URL, "leading slash dropped")
	assert.Equal(t, `W/"3"`, entries[1].IfMatch)
	assert.Nil(t, entries[2].Resource)
	assert.Equal(t, "DELETE", entries[2].Method)
	assert.Equal(t, "Patient/1/Flag?status=active", entries[3].URL)

	// The raw resource parses with the codec.
	r, err := newCodec(t).Parse(entries[0].Resource)
	require.NoError(t, err)
	assert.Equal(t, "Patient", r.Type)

	typ, entries, err = fhir.ParseRequestBundle([]byte(`{"resourceType":"Bundle","type":"batch"}`))
	require.NoError(t, err)
	assert.Equal(t, "batch", typ)
	assert.Empty(t, entries)
}

func TestParseRequestBundleErrors(t *testing.T) {
	tests := []struct {
		name, body, code, expr string
	}{
		{"malformed", `{"resourceType":"Bundle",`, "structure", ""},
		{"array", `[]`, "structure", ""},
		{"wrong resourceType", `{"resourceType":"Patient","type":"batch"}`, "invalid", "Bundle.resourceType"},
		{"missing type", `{"resourceType":"Bundle","entry":[]}`, "required", "Bundle.type"},
		{"wrong type", `{"resourceType":"Bundle","type":"searchset"}`, "value", "Bundle.type"},
		{"type not a string", `{"resourceType":"Bundle","type":1}`, "value", "Bundle.type"},
		{"entry not array", `{"resourceType":"Bundle","type":"batch","entry":{}}`, "structure", "Bundle.entry"},
		{"entry not object", `{"resourceType":"Bundle","type":"batch","entry":[1]}`, "structure", "Bundle.entry[0]"},
		{"missing request", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Flag"}},{"resource":{"resourceType":"Flag"}}]}`, "required", "Bundle.entry[1].request"},
		{"missing method", `{"resourceType":"Bundle","type":"transaction","entry":[{},{},{"request":{"url":"Flag"}}]}`, "required", "Bundle.entry[2].request.method"},
		{"invalid method", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"FETCH","url":"Flag"}}]}`, "code-invalid", "Bundle.entry[0].request.method"},
		{"lowercase method", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"get","url":"Flag"}}]}`, "code-invalid", "Bundle.entry[0].request.method"},
		{"patch", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PATCH","url":"Flag/1"}}]}`, "not-supported", "Bundle.entry[0].request.method"},
		{"method not string", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":true,"url":"Flag"}}]}`, "value", "Bundle.entry[0].request.method"},
		{"missing url", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET"}}]}`, "required", "Bundle.entry[0].request.url"},
		{"absolute url", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"https://x.example/fhir/Flag"}}]}`, "value", "Bundle.entry[0].request.url"},
		{"POST without resource", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Flag"}}]}`, "required", "Bundle.entry[0].resource"},
		{"resource not object", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":"x","request":{"method":"POST","url":"Flag"}}]}`, "structure", "Bundle.entry[0].resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, entries, err := fhir.ParseRequestBundle([]byte(tc.body))
			assert.Nil(t, entries)
			ve := validationError(t, err)
			var got []string
			for _, is := range ve.Issues {
				if is.Code == tc.code && (tc.expr == "" || (len(is.Expression) == 1 && is.Expression[0] == tc.expr)) {
					return
				}
				got = append(got, is.Code+" "+is.Diagnostics)
			}
			t.Errorf("want %s at %q, got %q", tc.code, tc.expr, got)
		})
	}
}
