package fhir

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func keysOf(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestSummaryText: _summary=text keeps the narrative, id, meta (tagged
// SUBSETTED) and the mandatory elements, nothing else.
func TestSummaryText(t *testing.T) {
	flag := []byte(`{"resourceType":"Flag","id":"f1","meta":{"versionId":"2"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Malign hypertermi</div>"},
	  "status":"active","category":[{"text":"x"}],"code":{"text":"Malign hypertermi"},"subject":{"reference":"Patient/p1"},"period":{"start":"2020"}}`)
	out, err := SummaryText(flag)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, out), []string{"code", "id", "meta", "resourceType", "status", "subject", "text"}; !slices.Equal(got, want) {
		t.Errorf("Flag: %v, want %v", got, want)
	}
	if !strings.Contains(string(out), `"SUBSETTED"`) || !strings.Contains(string(out), `"versionId":"2"`) {
		t.Errorf("Flag: meta not kept and tagged: %s", out)
	}
	pr, err := SummaryText([]byte(`{"resourceType":"Practitioner","id":"9144900","name":[{"family":"Lege"}],"qualification":[{"code":{"text":"LE"}}]}`))
	if err != nil {
		t.Fatalf("Practitioner (GET Practitioner/{hpr}?_summary=text): %v", err)
	}
	if got, want := keysOf(t, pr), []string{"id", "meta", "resourceType"}; !slices.Equal(got, want) {
		t.Errorf("Practitioner: %v, want %v", got, want)
	}
	if _, err := SummaryText([]byte(`{"resourceType":"Basic","id":"b"}`)); err == nil || !strings.Contains(err.Error(), "Basic") {
		t.Errorf("an unknown type: %v", err)
	}
}

// TestSummaryAuditAndDocuments: _summary=true on the usage log's
// AuditEvents and on DocumentReferences keeps R4's summary elements and
// the mandatory ones (AuditEvent agent and source), drops the rest.
func TestSummaryAuditAndDocuments(t *testing.T) {
	ev := []byte(`{"resourceType":"AuditEvent","id":"ae1","type":{"code":"rest"},"subtype":[{"code":"search-type"}],"action":"E",
	  "recorded":"2024-01-01T00:00:00Z","outcome":"0","purposeOfEvent":[{"text":"TREAT"}],
	  "agent":[{"who":{"identifier":{"value":"1234567"}},"requestor":true}],"source":{"observer":{"display":"kj"}},
	  "entity":[{"what":{"reference":"Patient/p1"}}]}`)
	out, err := Summary(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, out), []string{"action", "agent", "id", "meta", "outcome", "purposeOfEvent", "recorded", "resourceType", "source", "subtype", "type"}; !slices.Equal(got, want) {
		t.Errorf("AuditEvent: %v, want %v", got, want)
	}
	doc := []byte(`{"resourceType":"DocumentReference","id":"d1","status":"current","type":{"text":"Epikrise"},"subject":{"reference":"Patient/p1"},
	  "date":"2024-01-01T00:00:00Z","content":[{"attachment":{"url":"https://x/documents/t"}}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
	  "contained":[{"resourceType":"Organization","id":"o"}],"context":{"facilityType":{"text":"sykehus"}}}`)
	out, err = Summary(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, out), []string{"content", "context", "date", "id", "meta", "resourceType", "status", "subject", "type"}; !slices.Equal(got, want) {
		t.Errorf("DocumentReference: %v, want %v", got, want)
	}
	out, err = SummaryText(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, out), []string{"content", "id", "meta", "resourceType", "status", "text"}; !slices.Equal(got, want) {
		t.Errorf("DocumentReference text: %v, want %v", got, want)
	}
}
