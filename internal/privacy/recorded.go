package privacy

import (
	"bytes"
	"strconv"
	"time"
	"unicode"

	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// The server owns Consent.dateTime of a privacy setting. The 30 days
// before a reserved record is deleted (DOMAIN.md rule 4) run from when the
// server recorded the reservation: a client that sent a dateTime 31 days
// back would otherwise get its record deleted at the next purge run, and
// the citizen's undo window would never exist. So the REST layer stamps
// every privacy Consent it writes with StampSince before validating it,
// and the stored dateTime (Setting.Since) is always the server's.

// instantLayout is how the server writes the time it recorded a setting:
// UTC with milliseconds, like meta.lastUpdated.
const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// IsSetting reports whether a Consent's body is meant as a privacy
// setting: every Consent that is not critical information (the one test
// of which is profile.CriticalConsent; a treatment limit's scope is adr or
// treatment). A body that is not a valid setting is still one meant as
// such: the parser refuses it.
func IsSetting(body []byte) bool { return !profile.CriticalConsent(body) }

// StampSince returns body with Consent.dateTime set by the server; the
// client's dateTime, if any, is overridden. prev is the stored current
// version the write replaces (nil for a new setting).
//
//   - A new setting, or one whose state changes (put in force or lifted),
//     gets now: that is when the server recorded it.
//   - An update that leaves the setting's kind and state as they were
//     (e.g. a block's list of HPR numbers edited) keeps the stored
//     dateTime, so re-sending a reservation does not restart its 30 days.
//   - The time never goes backwards for one setting, and putting a lifted
//     setting in force again gets a later time than the lifting, as the
//     access rules demand (access.StaleDateTime); a server clock that
//     stepped back gets the stored time plus a millisecond.
//
// A body that does not parse as a setting keeps its dateTime alone apart
// from the stamp, and validation reports what is wrong with it.
func StampSince(body, prev []byte, now time.Time) []byte {
	stamped := withDateTime(body, now)
	if prev == nil {
		return stamped
	}
	old, err := Parse(prev)
	if err != nil {
		return stamped
	}
	s, err := Parse(stamped)
	if err != nil {
		return stamped
	}
	if s.Kind == old.Kind && s.Active == old.Active {
		return withDateTime(body, old.Since)
	}
	if !now.After(old.Since) {
		return withDateTime(body, old.Since.Add(time.Millisecond))
	}
	return stamped
}

// withDateTime appends "dateTime" as the object's last member: every JSON
// reader here (the FHIR parser, Parse) takes the last of repeated members,
// and the stored JSON is printed from the parsed resource, so it has the
// member once. A body that is not a JSON object is returned unchanged.
func withDateTime(body []byte, t time.Time) []byte {
	obj := bytes.TrimSpace(body)
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return body
	}
	inner := bytes.TrimRightFunc(obj[:len(obj)-1], unicode.IsSpace)
	out := make([]byte, 0, len(inner)+48)
	out = append(out, inner...)
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"dateTime":`...)
	out = strconv.AppendQuote(out, t.UTC().Format(instantLayout))
	return append(out, '}')
}
