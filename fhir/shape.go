package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

func pretty(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body) * 2)
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return body
	}
	return buf.Bytes()
}

// subsettedTag is the meta.tag FHIR requires on resources that were
// returned incompletely because of _elements or _summary.
const subsettedTag = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"Resource encoded in summary mode"}`

// mandatoryElements are the top-level elements with minimum cardinality 1
// in R4; servers should return them even when _elements leaves them out,
// so that the subsetted resource is still valid.
var mandatoryElements = map[string][]string{
	"Patient":             nil,
	"AllergyIntolerance":  {"patient"},
	"Flag":                {"status", "code", "subject"},
	"MedicationStatement": {"status", "medication[x]", "subject"},
	"Encounter":           {"status", "class"},
	"Condition":           {"subject"},
	"Procedure":           {"status", "subject"},
	"Consent":             {"status", "scope", "category"},
	"Subscription":        {"status", "reason", "criteria", "channel"},
	"AuditEvent":          {"type", "recorded", "agent", "source"},
	"DocumentReference":   {"status", "content"},
}

// summaryElements lists, per served type, the top-level elements the FHIR
// R4 (4.0.1) resource definitions mark isSummary (the "Σ" flag in the
// resource content tables at hl7.org/fhir/R4/<type>.html). id, meta and
// implicitRules (summary in Resource) are always kept. Nested elements of
// a summary backbone element are kept whole.
var summaryElements = map[string][]string{
	"Patient": {
		"identifier", "active", "name", "telecom", "gender", "birthDate",
		"deceased[x]", "address", "managingOrganization", "link",
	},
	"AllergyIntolerance": {
		"identifier", "clinicalStatus", "verificationStatus", "type", "category",
		"criticality", "code", "patient", "asserter",
	},
	"Flag": {
		"identifier", "status", "category", "code", "subject", "period",
		"encounter", "author",
	},
	"MedicationStatement": {
		"identifier", "basedOn", "partOf", "status", "category", "medication[x]",
		"subject", "context", "effective[x]", "dateAsserted",
	},
	"Encounter": {
		"identifier", "status", "class", "type", "serviceType", "subject",
		"episodeOfCare", "participant", "appointment", "reasonCode",
		"reasonReference", "diagnosis",
	},
	"Condition": {
		"identifier", "clinicalStatus", "verificationStatus", "category", "severity",
		"code", "bodySite", "subject", "encounter", "onset[x]", "abatement[x]",
		"recordedDate",
	},
	"Procedure": {
		"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf",
		"status", "statusReason", "category", "code", "subject", "encounter",
		"performed[x]", "recorder", "asserter", "performer", "location", "reasonCode",
		"reasonReference", "bodySite", "outcome",
	},
	"Consent": {
		"identifier", "status", "scope", "category", "patient", "dateTime", "performer",
		"organization", "source[x]", "policyRule", "provision",
	},
	"Subscription": {
		"status", "contact", "end", "reason", "criteria", "error", "channel",
	},
	"AuditEvent": {
		"type", "subtype", "action", "recorded", "outcome", "outcomeDesc", "purposeOfEvent",
	},
	// The signed-in practitioner's own, built from the token.
	"Practitioner": {
		"identifier", "active", "name", "telecom", "address", "gender", "birthDate",
	},
	"DocumentReference": {
		"masterIdentifier", "identifier", "status", "docStatus", "type", "category",
		"subject", "date", "author", "relatesTo", "description", "securityLabel",
		"content", "context",
	},
}

// nameMatcher matches top-level JSON keys against element names, where a
// choice element "value[x]" matches valueString, valueQuantity, ..., and
// every element also brings along its "_name" primitive extension twin.
type nameMatcher struct {
	exact   map[string]bool
	choices []string
}

func newNameMatcher(names ...[]string) *nameMatcher {
	m := &nameMatcher{exact: map[string]bool{}}
	for _, ns := range names {
		for _, n := range ns {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if p, ok := strings.CutSuffix(n, "[x]"); ok {
				m.choices = append(m.choices, p)
				continue
			}
			m.exact[n] = true
		}
	}
	return m
}

func (m *nameMatcher) match(key string) bool {
	key = strings.TrimPrefix(key, "_")
	if m.exact[key] {
		return true
	}
	for _, p := range m.choices {
		if rest, ok := strings.CutPrefix(key, p); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}

func elements(body []byte, names []string) ([]byte, error) {
	ms, err := scanObject(body, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir: Elements: %w", err)
	}
	typ := resourceTypeOf(ms)
	return subset(ms, len(body), newNameMatcher(names, mandatoryElements[typ]))
}

func summary(body []byte) ([]byte, error) {
	ms, err := scanObject(body, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir: Summary: %w", err)
	}
	typ := resourceTypeOf(ms)
	list, ok := summaryElements[typ]
	if !ok {
		return nil, fmt.Errorf("fhir: Summary: no summary definition for resource type %q", typ)
	}
	// The mandatory elements too (AuditEvent.agent and source are not
	// summary elements), so that a summary is still a valid resource.
	return subset(ms, len(body), newNameMatcher(list, mandatoryElements[typ], []string{"implicitRules"}))
}

// summaryText is _summary=text: the narrative, id, meta and the
// mandatory top-level elements, which the R4 search page asks for so
// that the result is still a valid resource.
func summaryText(body []byte) ([]byte, error) {
	ms, err := scanObject(body, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir: SummaryText: %w", err)
	}
	typ := resourceTypeOf(ms)
	if _, ok := summaryElements[typ]; !ok {
		return nil, fmt.Errorf("fhir: SummaryText: no summary definition for resource type %q", typ)
	}
	return subset(ms, len(body), newNameMatcher([]string{"text", "implicitRules"}, mandatoryElements[typ]))
}

func resourceTypeOf(ms []member) string {
	m, ok := findMember(ms, "resourceType")
	if !ok {
		return ""
	}
	var s string
	_ = json.Unmarshal(m.val, &s)
	return s
}

// subset writes resourceType, id, meta (tagged SUBSETTED) and the members
// keep accepts, in their original order.
func subset(ms []member, sizeHint int, keep *nameMatcher) ([]byte, error) {
	out := make([]byte, 0, sizeHint+len(subsettedTag)+32)
	out = append(out, '{')
	first := true
	for _, k := range [...]string{"resourceType", "id"} {
		if m, ok := findMember(ms, k); ok {
			out = appendRaw(out, &first, m)
		}
	}
	var metaVal []byte
	if m, ok := findMember(ms, "meta"); ok {
		metaVal = m.val
	}
	meta, err := tagSubsetted(metaVal)
	if err != nil {
		return nil, err
	}
	out = appendMember(out, &first, "meta", meta)
	for _, m := range ms {
		if isHeadKey(m.key) || !keep.match(string(m.key)) {
			continue
		}
		out = appendRaw(out, &first, m)
	}
	return append(out, '}'), nil
}

// tagSubsetted returns meta with the SUBSETTED tag added to meta.tag
// (unless it is already there).
func tagSubsetted(meta []byte) ([]byte, error) {
	if len(meta) == 0 || string(meta) == "null" {
		return []byte(`{"tag":[` + subsettedTag + `]}`), nil
	}
	ms, err := scanObject(meta, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir: meta: %w", err)
	}
	out := make([]byte, 0, len(meta)+len(subsettedTag)+16)
	out = append(out, '{')
	first := true
	tagged := false
	for _, m := range ms {
		if string(m.key) != "tag" {
			out = appendRaw(out, &first, m)
			continue
		}
		tagged = true
		var tags []json.RawMessage
		if err := json.Unmarshal(m.val, &tags); err != nil {
			return nil, fmt.Errorf("fhir: meta.tag: %w", err)
		}
		out = appendMember(out, &first, "tag", nil)
		out = append(out, '[')
		has := false
		for i, t := range tags {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, t...)
			var c struct{ System, Code string }
			if json.Unmarshal(t, &c) == nil && c.Code == "SUBSETTED" &&
				c.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" {
				has = true
			}
		}
		if !has {
			if len(tags) > 0 {
				out = append(out, ',')
			}
			out = append(out, subsettedTag...)
		}
		out = append(out, ']')
	}
	if !tagged {
		out = appendMember(out, &first, "tag", []byte("["+subsettedTag+"]"))
	}
	return append(out, '}'), nil
}
