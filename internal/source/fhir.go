package source

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// FHIR R4 JSON shapes this source answers with. Structs rather than maps
// keep the element order FHIR's examples use.

type fCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type fConcept struct {
	Coding []fCoding `json:"coding,omitempty"`
	Text   string    `json:"text,omitempty"`
}

type fIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type fReference struct {
	Reference  string       `json:"reference,omitempty"`
	Type       string       `json:"type,omitempty"`
	Identifier *fIdentifier `json:"identifier,omitempty"`
	Display    string       `json:"display,omitempty"`
}

type fAttachment struct {
	ContentType string `json:"contentType"`
	Language    string `json:"language,omitempty"`
	URL         string `json:"url"`
	Size        int64  `json:"size"`
	Title       string `json:"title,omitempty"`
	Creation    string `json:"creation,omitempty"`
}

type fContent struct {
	Attachment fAttachment `json:"attachment"`
}

type fDocumentReference struct {
	ResourceType  string       `json:"resourceType"`
	ID            string       `json:"id"`
	Status        string       `json:"status"`
	Type          fConcept     `json:"type"`
	Category      []fConcept   `json:"category"`
	Subject       fReference   `json:"subject"`
	Date          string       `json:"date"`
	Author        []fReference `json:"author"`
	Custodian     fReference   `json:"custodian"`
	Description   string       `json:"description,omitempty"`
	SecurityLabel []fConcept   `json:"securityLabel"`
	Content       []fContent   `json:"content"`
}

type fLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type fSearch struct {
	Mode string `json:"mode"`
}

type fEntry struct {
	FullURL  string  `json:"fullUrl"`
	Resource any     `json:"resource"`
	Search   fSearch `json:"search"`
}

type fMeta struct {
	LastUpdated string    `json:"lastUpdated"`
	Tag         []fCoding `json:"tag,omitempty"` // only Faults.HugeSearchBytes's padding
}

type fBundle struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	Meta         fMeta    `json:"meta"`
	Type         string   `json:"type"`
	Total        int      `json:"total"`
	Link         []fLink  `json:"link"`
	Entry        []fEntry `json:"entry,omitempty"`
}

type fIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics"`
}

type fOperationOutcome struct {
	ResourceType string   `json:"resourceType"`
	Issue        []fIssue `json:"issue"`
}

var confidentialityDisplay = map[string]string{
	ConfidentialityNormal:  "Normal",
	ConfidentialityBlocked: "Sperret",
}

func orgReference(o Organisation) fReference {
	return fReference{Type: "Organization", Identifier: &fIdentifier{System: domain.SystemOrgNr, Value: o.Number}, Display: o.Name}
}

// documentReference renders d as a FHIR R4 DocumentReference whose
// attachment points to base/Binary/<id>.
func (d Document) documentReference(base string) fDocumentReference {
	return fDocumentReference{
		ResourceType: "DocumentReference",
		ID:           d.ID,
		Status:       "current",
		Type:         fConcept{Coding: []fCoding{{System: domain.SystemDocumentType, Code: d.Type.Code, Display: d.Type.Display}}},
		Category:     []fConcept{{Coding: []fCoding{{System: domain.SystemDocumentType, Code: d.Type.Group, Display: d.Type.GroupDisplay}}}},
		Subject:      fReference{Type: "Patient", Identifier: &fIdentifier{System: domain.SystemFNR, Value: d.PersonNumber}},
		Date:         d.Date.UTC().Format(time.RFC3339),
		Author:       []fReference{orgReference(d.Author)},
		Custodian:    orgReference(d.Author),
		Description:  d.Title,
		SecurityLabel: []fConcept{{Coding: []fCoding{{
			System: domain.SystemConfidentiality, Code: d.Confidentiality, Display: confidentialityDisplay[d.Confidentiality],
		}}}},
		Content: []fContent{{Attachment: fAttachment{
			ContentType: d.ContentType,
			Language:    "nb-NO",
			URL:         base + "/Binary/" + d.ID,
			Size:        d.Size,
			Title:       d.Title,
			Creation:    d.Date.UTC().Format(time.RFC3339),
		}}},
	}
}

// writeOutcome answers status with a one-issue OperationOutcome.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	writeJSON(w, status, fOperationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []fIssue{{Severity: "error", Code: code, Diagnostics: diagnostics}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	h.Set("Cache-Control", "no-store") // health data: no intermediary keeps a copy
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
