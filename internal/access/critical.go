package access

// Section is the part of the record the request touches. A Consent is a
// privacy setting unless the caller marked it Critical: a Consent of scope
// adr or treatment (limits of life-prolonging treatment, treatment
// clarifications) is critical information, which a treating HP always
// sees (rule 3) and reports, and which a citizen may restrict like the
// rest of the critical information.
func (r Request) Section() Section {
	if r.Critical && r.ResourceType == "Consent" {
		return Critical
	}
	return SectionOf(r.ResourceType)
}
