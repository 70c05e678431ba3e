package conformance

import (
	"net/http"
	"strings"
)

func init() {
	register(
		Check{GroupREST, "rest/metadata", "GET /metadata answers a CapabilityStatement for FHIR 4.0.1 in application/fhir+json", checkMetadata},
		Check{GroupREST, "rest/etag-read", "a read answers ETag W/\"<versionId>\" matching meta.versionId, and Last-Modified", checkETagRead},
	)
}

func checkMetadata(t *T) {
	res := t.Do(Request{Path: "metadata"})
	if res.Status != http.StatusOK {
		t.Fatalf("GET /metadata: status %d, want 200", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("GET /metadata: Content-Type %q, want application/fhir+json", ct)
	}
	if rt := res.ResourceType(); rt != "CapabilityStatement" {
		t.Fatalf("GET /metadata: resourceType %q, want CapabilityStatement", rt)
	}
	if v := res.JSON()["fhirVersion"]; v != "4.0.1" {
		t.Errorf("CapabilityStatement.fhirVersion %v, want 4.0.1", v)
	}
}

func checkETagRead(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	res := t.Do(Request{Path: "Patient/" + id, As: PersonaGP, Patient: id, Basis: "UNNTAK"})
	if res.Status != http.StatusOK {
		t.Fatalf("GET Patient/%s as the patient's GP: status %d: %s", id, res.Status, Outcome(res))
	}
	meta, _ := res.JSON()["meta"].(map[string]any)
	vid, _ := meta["versionId"].(string)
	if vid == "" {
		t.Fatalf("Patient/%s has no meta.versionId", id)
	}
	if got, want := res.Header.Get("ETag"), `W/"`+vid+`"`; got != want {
		t.Errorf("ETag %q, want %q (from meta.versionId)", got, want)
	}
	if res.Header.Get("Last-Modified") == "" {
		t.Errorf("no Last-Modified header on a read")
	}
}
