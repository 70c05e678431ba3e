package access

import "time"

// Lab results (prøvesvar, DiagnosticReport and Observation) are, like
// journal documents, looked up at their sources in real time and never
// stored; these are the rules the federation applies to each result.

// DefaultLabWindowYears is how many years back lab results are shown when
// the configuration does not say otherwise: the regulation's period for
// the document group of test results (C00, prøvesvar), so that a result
// is not shown longer as a lab result than as a document.
func DefaultLabWindowYears() int { return documentWindows["C00"] }

// LabResultShown decides one lab result: one entered in error is never
// shown, and with a window of years (0: unlimited) one taken before the
// window, or without a date to tell, not any more.
func LabResultShown(status string, date, now time.Time, years int) bool {
	switch {
	case status == "entered-in-error":
		return false
	case years > 0 && (date.IsZero() || date.Before(now.AddDate(-years, 0, 0))):
		return false
	}
	return true
}
