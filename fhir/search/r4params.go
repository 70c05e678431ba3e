package search

import (
	"maps"
	"slices"
	"strings"
)

// R4LeftOut names, per served type, the R4 (4.0.1) base search parameters
// this server does not offer, and why ("Resource": those of every type).
// The CapabilityStatement says the same in each resource's documentation
// (LeftOutDocumentation), and TestRegistryCoversR4 fails when an R4 base
// parameter is neither in the registry nor here, so a parameter is never
// missing silently.
//
// AuditEvent, DocumentReference, DiagnosticReport, Observation and
// Subscription are not in the registry: the usage log and the federated
// searches of documents and lab results take the parameters
// the CapabilityStatement lists for them, and a Subscription is created
// and read, not searched.
var R4LeftOut = map[string]map[string]string{
	"Resource": {
		"_content": "full-text search of the whole resource needs a text index the server does not keep; use the string parameters and :text",
		"_text":    "full-text search of the narrative needs a text index the server does not keep",
		"_query":   "no named queries are defined",
		"_filter":  "the _filter expression language is not supported",
	},
	"Patient": {
		"deceased": "its expression (deceased.exists() and deceased != false) is outside the FHIRPath subset the index evaluates; death-date finds a recorded date of death",
		"link":     "it names another patient's record: searching or including through it would cross patients (rule 1)",
		"phonetic": "needs a phonetic algorithm for Norwegian names that the server does not have; name, family and given already ignore case and diacritics",
	},
	"AuditEvent": leftOutAll(auditEventReason, "action", "address", "agent-name", "agent-role", "altid",
		"entity", "entity-name", "entity-role", "entity-type", "policy", "site", "source", "subtype", "type"),
	"DocumentReference": leftOutAll(documentReason, "authenticator", "author", "contenttype", "custodian",
		"description", "encounter", "event", "facility", "format", "identifier", "language", "location", "period",
		"related", "relatesto", "relation", "relationship", "security-label", "setting", "status", "subject"),
	"DiagnosticReport": leftOutAll(labReason, "based-on", "conclusion", "encounter", "identifier", "issued", "media",
		"performer", "result", "results-interpreter", "specimen"),
	"Observation": leftOutAll(labReason, "based-on", "code-value-concept", "code-value-date", "code-value-quantity",
		"code-value-string", "combo-code", "combo-code-value-concept", "combo-code-value-quantity", "combo-data-absent-reason",
		"combo-value-concept", "combo-value-quantity", "component-code", "component-code-value-concept",
		"component-code-value-quantity", "component-data-absent-reason", "component-value-concept",
		"component-value-quantity", "data-absent-reason", "derived-from", "device", "encounter", "focus", "has-member",
		"identifier", "method", "part-of", "performer", "specimen", "value-concept", "value-date", "value-quantity",
		"value-string"),
	"Subscription": leftOutAll("a Subscription is created and read by its id, not searched",
		"contact", "criteria", "payload", "status", "type", "url"),
}

const (
	auditEventReason = "the usage log is searched by patient, agent (the HPR number), organization, date and outcome: " +
		"its records are stored in a compact, hash-chained form with no general search index"
	documentReason = "documents are not stored here: the search is federated to the source hospitals, " +
		"whose document services answer patient, type, category and date only"
	labReason = "lab results are not stored here: the search is federated to the lab sources, " +
		"and the results they answer are filtered by patient, date, category, code and status only"
)

func leftOutAll(reason string, codes ...string) map[string]string {
	m := make(map[string]string, len(codes))
	for _, c := range codes {
		m[c] = reason
	}
	return m
}

// LeftOutDocumentation is the sentence for the CapabilityStatement
// resource entry of typ listing the R4 base parameters not offered and
// why; R4LeftOut["Resource"] is added for the types searched through the
// registry.
func LeftOutDocumentation(typ string, registry bool) string {
	byReason := map[string][]string{}
	add := func(m map[string]string) {
		for code, why := range m {
			byReason[why] = append(byReason[why], code)
		}
	}
	add(R4LeftOut[typ])
	if registry {
		add(R4LeftOut["Resource"])
	}
	if len(byReason) == 0 {
		return ""
	}
	var parts []string
	for _, why := range slices.Sorted(maps.Keys(byReason)) {
		codes := byReason[why]
		slices.Sort(codes)
		parts = append(parts, strings.Join(codes, ", ")+": "+why)
	}
	slices.Sort(parts)
	return "R4 search parameters not offered: " + strings.Join(parts, "; ") + "."
}
