package fhir

// SummaryText keeps the narrative (text), id, meta and the mandatory
// top-level elements of the resource's type, and marks the result
// SUBSETTED: _summary=text.
func SummaryText(body []byte) ([]byte, error) { return summaryText(body) }
