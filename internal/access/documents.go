package access

import (
	"maps"
	"slices"
	"time"
)

// Rule 7's document rules, for the federation that searches the source
// hospitals and opens their documents: which documents may be shown at
// all (the regulation's periods per document group, NORS never), and
// whether a source's own sharing policy covers the requester.

// documentWindows are the document groups (code system 9602) kjernejournal
// shows, with how many years back each is shown, counted on
// DocumentReference.date (forskrift om nasjonal kjernejournal; 0 is
// unlimited). A group that is not listed is never shown.
var documentWindows = map[string]int{
	"A00": 0, // epikriser og sammenfatninger: unlimited
	"C00": 1, // prøvesvar: 1 year
	"I00": 1, // korrespondanse: 1 year
	"D00": 5, // organfunksjon: 5 years
	"E00": 5, // bildediagnostikk: 5 years
}

// DocumentGroups lists the shown document groups, sorted.
func DocumentGroups() []string { return slices.Sorted(maps.Keys(documentWindows)) }

// DocumentWindow is how many years back documents of group are shown (0:
// unlimited); shown is false for a group that is never shown.
func DocumentWindow(group string) (years int, shown bool) {
	years, shown = documentWindows[group]
	return years, shown
}

// DocumentShown decides one document of a patient's record: a document
// marked NORS (blocked) is never shown, a group outside the regulation
// never, and one older than its group's period (or without a date, when
// the period is limited) not any more.
func DocumentShown(group string, blocked bool, date, now time.Time) bool {
	years, shown := documentWindows[group]
	switch {
	case blocked || !shown:
		return false
	case years > 0 && (date.IsZero() || date.Before(now.AddDate(-years, 0, 0))):
		return false
	}
	return true
}

// Sharing is a source hospital's policy: the document types (9602 codes
// or whole groups) it shares, and the organisations and health regions it
// shares them with. Each hospital decides its own; the rules apply it.
type Sharing struct {
	Types         []string
	Organisations []string
	Regions       []string
}

// SharesWith reports whether the policy covers a requester of the
// organisation (its legal entity) or the health region.
func (s Sharing) SharesWith(org, region string) bool {
	return org != "" && slices.Contains(s.Organisations, org) || region != "" && slices.Contains(s.Regions, region)
}

// SharesType reports whether the policy shares documents of the 9602 code
// code, whose group is group.
func (s Sharing) SharesType(code, group string) bool {
	return group != "" && (slices.Contains(s.Types, code) || slices.Contains(s.Types, group))
}
