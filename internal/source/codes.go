package source

// Confidentiality codes (volven 9603) the generator uses.
const (
	ConfidentialityNormal  = "N"
	ConfidentialityBlocked = "NORS" // sperret: never shown through kjernejournal
)

// Document groups of code system 9602. The regulation on kjernejournal
// shows each group for its own period, which is why every document carries
// its group as category: the consumer filters on it without a code table.
const (
	GroupDischarge      = "A00" // epikriser og sammenfatninger: unlimited
	GroupTestResults    = "C00" // prøvesvar: 1 year
	GroupOrganFunction  = "D00" // organfunksjon: 5 years
	GroupImaging        = "E00" // bildediagnostikk: 5 years
	GroupCorrespondence = "I00" // korrespondanse: 1 year
)

// DocumentType is one code of code system 9602 with its group.
type DocumentType struct {
	Code         string `json:"code"`
	Display      string `json:"display"`
	Group        string `json:"group"`
	GroupDisplay string `json:"groupDisplay"`
}

// Groups lists the document groups in the order of the code system.
var Groups = []struct{ Code, Display string }{
	{GroupDischarge, "Epikriser og sammenfatninger"},
	{GroupTestResults, "Prøvesvar"},
	{GroupOrganFunction, "Organfunksjon"},
	{GroupImaging, "Bildediagnostikk"},
	{GroupCorrespondence, "Korrespondanse"},
}

// GroupDisplay returns the display text of a group code, or "".
func GroupDisplay(group string) string {
	for _, g := range Groups {
		if g.Code == group {
			return g.Display
		}
	}
	return ""
}

// DocumentTypes are the types this source produces. Codes follow the shape
// of code system 9602 as it is used in production (a group code ending in
// 00, and type codes "<letter>01-<n>" below it, as in J01-2 "Sykmeldinger og
// trygdesaker"); the full published table was not available to check every
// type code against, so consumers should rely on the group (category, or the
// code's first letter) rather than on individual type codes.
var DocumentTypes = []DocumentType{
	{"A01-1", "Epikrise", GroupDischarge, "Epikriser og sammenfatninger"},
	{"A01-2", "Poliklinisk notat", GroupDischarge, "Epikriser og sammenfatninger"},
	{"C01-1", "Laboratoriesvar, medisinsk biokjemi", GroupTestResults, "Prøvesvar"},
	{"C01-2", "Mikrobiologisvar", GroupTestResults, "Prøvesvar"},
	{"C01-3", "Patologisvar", GroupTestResults, "Prøvesvar"},
	{"D01-1", "EKG", GroupOrganFunction, "Organfunksjon"},
	{"D01-2", "Spirometri", GroupOrganFunction, "Organfunksjon"},
	{"D01-3", "Ekkokardiografi", GroupOrganFunction, "Organfunksjon"},
	{"E01-1", "Røntgensvar", GroupImaging, "Bildediagnostikk"},
	{"E01-2", "CT-svar", GroupImaging, "Bildediagnostikk"},
	{"E01-3", "MR-svar", GroupImaging, "Bildediagnostikk"},
	{"E01-4", "Ultralydsvar", GroupImaging, "Bildediagnostikk"},
	{"I01-1", "Henvisning", GroupCorrespondence, "Korrespondanse"},
	{"I01-2", "Svar på henvisning", GroupCorrespondence, "Korrespondanse"},
}

// typesOf returns the types of one group.
func typesOf(group string) []DocumentType {
	var out []DocumentType
	for _, t := range DocumentTypes {
		if t.Group == group {
			out = append(out, t)
		}
	}
	return out
}

// typeByCode returns the type with the code; the code must exist.
func typeByCode(code string) DocumentType {
	for _, t := range DocumentTypes {
		if t.Code == code {
			return t
		}
	}
	panic("source: unknown document type " + code)
}
