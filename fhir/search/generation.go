package search

// Parameters added after indexes were first stored (issue 17: the rest of
// the R4 base parameters of the served types). Every index is extracted
// at write time and stored with the version, and the binary format has no
// room for the registry's version (format 2 and its word list are
// fixed), so an index stored by an earlier build simply lacks these
// parameters: read as is, it would never match them (and :missing=true
// would match wrongly). A query that uses one of them, in a clause, _sort,
// _include or _revinclude, therefore asks for the index to be extracted
// again from the stored body (Query.Reextract); every other query reads
// the stored index. A compartment is one patient's records, so that costs
// one Extract (about 25 µs) per resource searched.
//
// When parameters are added again, list them here too (Type.code;
// Resource for the ones every type has).
var addedLater = map[string]bool{
	"AllergyIntolerance.asserter":   true,
	"AllergyIntolerance.last-date":  true,
	"AllergyIntolerance.onset":      true,
	"AllergyIntolerance.route":      true,
	"AllergyIntolerance.severity":   true,
	"Consent.action":                true,
	"Consent.actor":                 true,
	"Consent.consentor":             true,
	"Consent.data":                  true,
	"Consent.date":                  true,
	"Consent.identifier":            true,
	"Consent.organization":          true,
	"Consent.period":                true,
	"Consent.purpose":               true,
	"Consent.security-label":        true,
	"Consent.source-reference":      true,
	"Encounter.account":             true,
	"Encounter.appointment":         true,
	"Encounter.based-on":            true,
	"Encounter.diagnosis":           true,
	"Encounter.episode-of-care":     true,
	"Encounter.length":              true,
	"Encounter.location":            true,
	"Encounter.location-period":     true,
	"Encounter.part-of":             true,
	"Encounter.participant":         true,
	"Encounter.participant-type":    true,
	"Encounter.practitioner":        true,
	"Encounter.reason-reference":    true,
	"Encounter.special-arrangement": true,
	"MedicationStatement.context":   true,
	"MedicationStatement.part-of":   true,
	"Patient.active":                true,
	"Patient.address":               true,
	"Patient.address-city":          true,
	"Patient.address-country":       true,
	"Patient.address-postalcode":    true,
	"Patient.address-state":         true,
	"Patient.address-use":           true,
	"Patient.death-date":            true,
	"Patient.email":                 true,
	"Patient.language":              true,
	"Patient.organization":          true,
	"Patient.phone":                 true,
	"Patient.telecom":               true,
	"Resource._profile":             true,
	"Resource._security":            true,
	"Resource._source":              true,
	"Resource._tag":                 true,
	// Issue 17, search: the rest of Condition's and Procedure's.
	"Condition.abatement-age":          true,
	"Condition.abatement-date":         true,
	"Condition.abatement-string":       true,
	"Condition.asserter":               true,
	"Condition.body-site":              true,
	"Condition.encounter":              true,
	"Condition.evidence":               true,
	"Condition.evidence-detail":        true,
	"Condition.onset-age":              true,
	"Condition.onset-date":             true,
	"Condition.onset-info":             true,
	"Condition.recorded-date":          true,
	"Condition.severity":               true,
	"Condition.stage":                  true,
	"Condition.verification-status":    true,
	"Procedure.based-on":               true,
	"Procedure.date":                   true,
	"Procedure.encounter":              true,
	"Procedure.instantiates-canonical": true,
	"Procedure.instantiates-uri":       true,
	"Procedure.location":               true,
	"Procedure.part-of":                true,
	"Procedure.performer":              true,
	"Procedure.reason-code":            true,
	"Procedure.reason-reference":       true,
}

func (p *Param) addedLater(resourceType string) bool {
	return addedLater[resourceType+"."+p.Name] || addedLater["Resource."+p.Name]
}

// Reextract reports whether the query uses a parameter that indexes
// stored before it was added lack (addedLater), so that the caller must
// extract each candidate's index from its body instead of reading the
// stored one.
func (q *Query) Reextract() bool {
	if q == nil || q.reg == nil {
		return false
	}
	for i := range q.clauses {
		if q.clauses[i].p != nil && q.clauses[i].p.addedLater(q.Type) {
			return true
		}
		if q.clauses[i].modifier == "of-type" {
			// Indexes stored before :of-type lack the identifier's type
			// codings (Value.Raw of an identifier).
			return true
		}
	}
	for _, k := range q.SortBy {
		if p := q.reg.param(q.Type, k.Param); p != nil && p.addedLater(q.Type) {
			return true
		}
	}
	for _, in := range append(q.Include[:len(q.Include):len(q.Include)], q.RevInclude...) {
		if p := q.reg.param(in.Source, in.Param); p != nil && p.addedLater(in.Source) {
			return true
		}
	}
	return false
}
