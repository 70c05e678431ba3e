package search

// indexWords are the strings that recur across the indexes of all
// resources: parameter names, resource types, code and identifier systems,
// and the codes and folded displays of the value sets our resources use.
// An index of format 2 or later writes one of them as its position here
// instead of its bytes (encode.go).
//
// The list is part of the stored format. Stored indexes refer to these
// positions, so entries are only ever appended, never changed, removed or
// reordered, and an index reads with the words of its own format only
// (wordsIn): appending words needs a new format number, or an index that
// spelled out a word that did not exist yet would be refused as not
// canonical. TestIndexWordsAreFixed pins the list.
//
// A reference is one byte while the word's position plus the number of
// strings the index spelled out before it (7 on average) is below 64, so
// the words nearly every index holds come first.
var indexWords = []string{
	// 0: the parameters of the registry (profiles/search-parameters.json)
	"_id", "_lastUpdated", "patient", "subject", "status", "code", "category", "date",
	"type", "identifier", "name", "given", "family", "birthdate", "gender",
	"general-practitioner", "effective", "source", "medication", "class",
	"service-provider", "reason-code", "clinical-status", "verification-status",
	"criticality", "manifestation", "recorder", "author", "encounter",
	// 29: the types of a patient's record (domain.RecordTypes)
	"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent",
	// 35: the systems of nearly every record
	"urn:oid:2.16.578.1.12.4.1.4.4",    // HPR number
	"urn:oid:2.16.578.1.12.4.1.4.1",    // fødselsnummer
	"urn:oid:2.16.578.1.12.4.1.4.101",  // organisasjonsnummer
	"urn:oid:2.16.578.1.12.4.1.1.7110", // ICD-10
	"http://www.whocc.no/atc",
	"http://snomed.info/sct",
	"http://terminology.hl7.org/CodeSystem/medication-statement-category",
	"http://terminology.hl7.org/CodeSystem/v3-ActCode",
	"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
	"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
	// 45: the most common codes, Encounter.class with its folded display,
	// and the Norwegian kinds of contact (Encounter.type text, folded)
	"active", "completed", "stopped", "finished", "community", "male", "female",
	"allergy", "low", "confirmed",
	"IMP", "AMB", "EMER", "inpatient encounter", "ambulatory", "emergency",
	"dognopphold", "poliklinisk konsultasjon", "oyeblikkelig hjelp",

	// 64: always two bytes from here on. The kjernejournal code systems
	"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type",
	"https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting",
	"https://kjernejournal.example.no/fhir/CodeSystem/record-section",
	"https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting-source",
	"https://kjernejournal.example.no/fhir/CodeSystem/access-reason",
	// 69: the other codes of our resources' value sets
	"inactive", "entered-in-error", "unconfirmed", "refuted", "resolved",
	"intolerance", "food", "environment", "biologic",
	"high", "unable-to-assess",
	"intended", "on-hold", "not-taken", "unknown", "inpatient", "outpatient",
	"patientspecified", "patient specified",
	"planned", "arrived", "triaged", "in-progress", "onleave", "cancelled",
	"FLD", "HH", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR",
	"field", "home health", "inpatient acute", "inpatient non-acute", "observation encounter",
	"pre-admission", "short stay", "virtual", "dagbehandling",
	"draft", "proposed", "rejected",
	"other", "true", "false",
	// 117: kritisk-info-type and privacy-setting codes and folded displays
	"anestesikomplikasjon", "kritisk-tilstand", "pagaende-behandling", "implantat",
	"endret-behandlingsrutine", "smitte", "kritisk tilstand", "pagaende behandling",
	"endret behandlingsrutine",
	"reservasjon", "sperring", "blokkering", "portaltilgang", "fjernet portaltilgang",
	// 131: other systems
	"urn:oid:2.16.578.1.12.4.1.4.2",    // D-nummer
	"urn:oid:2.16.578.1.12.4.1.4.102",  // RESH id
	"urn:oid:2.16.578.1.12.4.1.1.9060", // helsepersonellkategori
	"urn:oid:2.16.578.1.12.4.1.1.9601",
	"urn:oid:2.16.578.1.12.4.1.1.9602",     // document type
	"urn:oid:2.16.578.1.12.4.1.1.9603",     // confidentiality
	"urn:oid:2.16.840.1.113883.1.11.20448", // purpose of use
	"http://loinc.org",
	"http://hl7.org/fhir/sid/icd-10",
	"http://terminology.hl7.org/CodeSystem/consentscope",
	"http://terminology.hl7.org/CodeSystem/consentcategorycodes",
	"http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
	"http://terminology.hl7.org/CodeSystem/flag-category",
	"http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
	// 145: the types a record refers to, and the others the server stores
	"Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Medication",
	"Device", "Group", "Location", "DocumentReference", "AuditEvent", "Subscription",
	// 156: the parameters of every resource (R4)
	"_tag", "_profile", "_security", "_source", "_text", "_content", "_list", "_has", "_type",
	// 165: the other R4 parameters of our resource types
	"address", "address-city", "address-country", "address-postalcode",
	"address-state", "address-use", "death-date", "deceased", "email", "language", "link",
	"organization", "phone", "phonetic", "telecom",
	"asserter", "last-date", "onset", "route", "severity",
	"context", "part-of",
	"account", "appointment", "based-on", "diagnosis", "episode-of-care", "length",
	"location", "location-period", "participant", "participant-type", "practitioner",
	"reason-reference", "special-arrangement",
	"action", "actor", "consentor", "data", "period", "purpose", "scope",
	"security-label", "source-reference",
}

// wordIndex is the position of s in indexWords. The encoder looks up
// nearly every string it writes, and the decoder every one spelled out,
// so this is an open-addressing table on a hash of the length and a few
// bytes rather than a map[string]int: 7 ns a lookup instead of 12, for
// the strings of our indexes. A string that is no word mostly finds an
// empty slot at once, and a word is compared once.
func wordIndex(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for h := wordHash(s); ; h = (h + 1) & (len(wordSlots) - 1) {
		p := wordSlots[h]
		if p == 0 {
			return 0, false
		}
		if indexWords[p-1] == s {
			return int(p - 1), true
		}
	}
}

const wordSlotBits = 10 // a fifth full: few probes, for hits and misses

// wordSlots holds at a word's hash its position + 1, 0 where empty.
var wordSlots = func() (t [1 << wordSlotBits]uint16) {
	for i, w := range indexWords {
		h := wordHash(w)
		for t[h] != 0 {
			h = (h + 1) & (len(t) - 1)
		}
		t[h] = uint16(i + 1)
	}
	return t
}()

func wordHash(s string) int {
	n := len(s)
	k := uint64(n) | uint64(s[0])<<8 | uint64(s[n/4])<<16 | uint64(s[n/2])<<24 |
		uint64(s[3*n/4])<<32 | uint64(s[7*n/8])<<40 | uint64(s[n-1])<<48
	return int(k * 0x9e3779b97f4a7c15 >> (64 - wordSlotBits))
}
