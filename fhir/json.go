package fhir

import (
	"bytes"
	"encoding/json"
)

// JSON encodes v as FHIR JSON is printed: without encoding/json's HTML
// escaping of <, > and & (FHIR's JSON does not escape them, and the codec
// does not), and without a trailing newline.
func JSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ResourceJSON is JSON of a resource built as a map: resourceType, id and
// meta first, as the codec prints resources, then the other members in
// key order.
func ResourceJSON(m map[string]any) ([]byte, error) {
	b, err := JSON(m)
	if err != nil {
		return nil, err
	}
	return headFirst(b)
}
