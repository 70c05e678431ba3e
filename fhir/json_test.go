package fhir

import "testing"

// Maps print as the codec prints resources: no HTML escaping, and
// resourceType, id and meta before the other members.
func TestResourceJSON(t *testing.T) {
	b, err := ResourceJSON(map[string]any{"status": "final", "meta": map[string]any{"tag": []any{}}, "id": "x",
		"code": map[string]any{"text": "<b>Hb & CRP</b>"}, "resourceType": "Observation"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Observation","id":"x","meta":{"tag":[]},"code":{"text":"<b>Hb & CRP</b>"},"status":"final"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, err = JSON(struct {
		A string `json:"a"`
	}{"<&>"})
	if err != nil || string(b) != `{"a":"<&>"}` {
		t.Errorf("JSON: %s %v", b, err)
	}
}
