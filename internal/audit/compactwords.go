package audit

// compactWords are the values the fixed vocabularies of a record take
// (interaction, resource type, reason, the permit's message, role, HP
// category, purpose of use, access basis, and from version 3 the token
// issuer): a compact record of version 2 or later stores one of them as
// its position here, one byte (two from the 65th word on), instead of the
// string. The list is part of the stored format: entries are only ever appended, in a new format
// version, never changed or removed (TestCompactWordsAreFixed pins them),
// and each version knows only the words it was written with (wordsIn).
var compactWords = []string{
	// interactions
	"read", "vread", "search", "history", "create", "update", "delete", "batch", "transaction",
	"operation", "document-search", "document-read", "privacy-change",
	// resource types
	"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent", "AuditEvent",
	"DocumentReference", "Subscription", "Practitioner", "StructureDefinition", "CodeSystem", "ValueSet",
	// reasons
	"ok", "ok-restricted-opened", "ok-restricted-hidden", "not-authenticated", "insufficient-scope",
	"no-hpr-number", "security-level-too-low", "no-patient-bound", "patient-not-in-context",
	"access-basis-missing", "access-basis-unknown", "unntak-not-supported", "akutt-not-supported",
	"no-record", "reserved-no-new-data", "section-restricted", "hp-blocked", "documents-unavailable",
	"not-own-record", "portal-access-removed", "system-no-clinical-read", "role-not-allowed",
	"privacy-by-citizen-only", "blocks-by-support-only", "hp-writes-critical-only",
	"feeder-writes-own-fields", "not-own-user", "documents-for-hp", "automatic-reservation-locked",
	"privacy-kind-changed", "privacy-datetime-stale", "portal-restored-by-support",
	// the permit's message
	"access permitted",
	// roles
	"practitioner", "citizen", "system", "citizen-support", "auditor",
	// HP categories (urn:oid:2.16.578.1.12.4.1.1.9060)
	"LE", "SP", "JO", "TL", "PS", "FT", "HE", "AA", "BI", "KI", "ET", "VP", "RA", "OT",
	// purposes of use
	"TREAT", "ETREAT", "COC", "BTG",
	// access bases
	"UNNTAK", "SAMTYKKE", "AKUTT", "FORHOYET_SAMTYKKE", "FORHOYET_AKUTT",
	// version 3: token issuers, HelseID in production and in its test
	// environment (the server's own SMART issuer is flagged instead)
	"https://helseid-sts.nhn.no", "https://helseid-sts.test.nhn.no",
}

// wordsIn is how many of compactWords a format version knows (0 for
// version 1: every value a string). A record reads with its own version's
// words only: a later word would otherwise turn a value an older record
// spells out into "a known word spelled out", refused, or make an index
// it never wrote readable.
func wordsIn(version byte) int {
	switch version {
	case 2:
		return 87
	case 3, 4:
		// Version 4 added a field, no words.
		return 89
	}
	return 0
}

var compactWordIndex = func() map[string]int {
	m := make(map[string]int, len(compactWords))
	for i, w := range compactWords {
		m[w] = i
	}
	return m
}()
