package privacy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

func reservation(since time.Time, active bool) Setting {
	return Setting{ID: "res", Patient: pat, Kind: Reservation, Active: active, Since: since}
}

func restriction(active bool, secs ...access.Section) Setting {
	return Setting{ID: "sperr", Patient: pat, Kind: Restriction, Active: active, Since: setTime, Sections: secs}
}

func block(active bool, hpr ...string) Setting {
	return Setting{ID: "blokk", Patient: pat, Kind: Block, Active: active, Since: setTime, BlockedHPR: hpr}
}

func portal(active bool) Setting {
	return Setting{ID: "portal", Patient: pat, Kind: PortalAccessRemoved, Active: active, Since: setTime}
}

// settingsFrom goes through the Consent JSON, so that State is tested on
// what Parse really produces.
func settingsFrom(t *testing.T, ss ...Setting) []Setting {
	t.Helper()
	var bodies [][]byte
	for _, s := range ss {
		b := s.Consent()
		require.NoError(t, r4(t, b))
		bodies = append(bodies, b)
	}
	out, err := ParseAll(bodies)
	require.NoError(t, err)
	return out
}

func TestState(t *testing.T) {
	now := setTime.Add(24 * time.Hour)
	earlier := setTime.Add(-48 * time.Hour)
	cases := []struct {
		name     string
		settings []Setting
		secret   bool
		want     Summary
	}{
		{name: "no settings", want: Summary{}},
		{name: "reserved", settings: []Setting{reservation(setTime, true)},
			want: Summary{Reserved: true, ReservedSince: setTime, PurgeAt: setTime.Add(ReservationRetention)}},
		{name: "lifted reservation is ignored", settings: []Setting{reservation(setTime, false)}, want: Summary{}},
		{name: "earliest active reservation counts", settings: []Setting{reservation(setTime, true), reservation(earlier, true), reservation(earlier.Add(-time.Hour), false)},
			want: Summary{Reserved: true, ReservedSince: earlier, PurgeAt: earlier.Add(ReservationRetention)}},
		{name: "secret address without a Consent yet", secret: true,
			want: Summary{Reserved: true, SecretAddress: true}},
		{name: "secret address with its automatic reservation", secret: true,
			settings: []Setting{{Patient: pat, Kind: Reservation, Active: true, Since: setTime, Automatic: true}},
			want:     Summary{Reserved: true, SecretAddress: true, AutomaticReservation: true, ReservedSince: setTime, PurgeAt: setTime.Add(ReservationRetention)}},
		{name: "restricted sections merge in canonical order", settings: []Setting{restriction(true, access.VisitHistory), restriction(true, access.Critical, access.VisitHistory)},
			want: Summary{Restricted: []access.Section{access.Critical, access.VisitHistory}}},
		{name: "whole-record restriction is all sections, documents blocked", settings: settingsFrom(t, restriction(true, AllSections...)),
			want: Summary{Restricted: AllSections, DocumentsBlocked: true}},
		{name: "documents restricted", settings: []Setting{restriction(true, access.Documents)},
			want: Summary{Restricted: []access.Section{access.Documents}, DocumentsBlocked: true}},
		{name: "lifted restriction is ignored", settings: []Setting{restriction(false, AllSections...), restriction(true, access.Medications)},
			want: Summary{Restricted: []access.Section{access.Medications}}},
		{name: "blocks merge, lifted block ignored", settings: []Setting{block(true, hprB), block(true, hprA, hprB), block(false, "991000199")},
			want: Summary{BlockedHPR: []string{hprA, hprB}}},
		{name: "portal access removed", settings: []Setting{portal(true)}, want: Summary{PortalAccessRemoved: true}},
		{name: "portal access restored", settings: []Setting{portal(false)}, want: Summary{}},
		{name: "reserved, restricted and blocked at once", settings: settingsFrom(t,
			reservation(setTime, true), restriction(true, access.Medications), block(true, hprA), portal(true), restriction(false, access.Documents)),
			want: Summary{Reserved: true, ReservedSince: setTime, PurgeAt: setTime.Add(ReservationRetention),
				Restricted: []access.Section{access.Medications}, BlockedHPR: []string{hprA}, PortalAccessRemoved: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, State(tc.settings, tc.secret, now))
		})
	}
}

func TestFillLeavesPatientFields(t *testing.T) {
	st := access.PatientState{Exists: true, PersonNumber: "17837012345", GPHPR: hprB, Reserved: true, BlockedHPR: []string{"991000199"}}
	sum := State([]Setting{restriction(true, access.Documents), block(true, hprA)}, false, setTime)
	sum.Fill(&st)
	assert.Equal(t, access.PatientState{
		Exists: true, PersonNumber: "17837012345", GPHPR: hprB,
		Restricted: []access.Section{access.Documents}, BlockedHPR: []string{hprA}, DocumentsBlocked: true,
	}, st)
	st.BlockedHPR[0] = "changed"
	assert.Equal(t, []string{hprA}, sum.BlockedHPR, "Fill must not share slices with the summary")
}

func TestPurgeDue(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name     string
		settings []Setting
		after    time.Duration // now = setTime + after
		due      bool
		at       time.Time
	}{
		{"no reservation", []Setting{restriction(true, access.Medications)}, 40 * day, false, time.Time{}},
		{"fresh reservation", []Setting{reservation(setTime, true)}, 0, false, setTime.Add(30 * day)},
		{"29 days 23 hours", []Setting{reservation(setTime, true)}, 29*day + 23*time.Hour, false, setTime.Add(30 * day)},
		{"one second short of 30 days", []Setting{reservation(setTime, true)}, 30*day - time.Second, false, setTime.Add(30 * day)},
		{"30 days", []Setting{reservation(setTime, true)}, 30 * day, true, setTime.Add(30 * day)},
		{"31 days", []Setting{reservation(setTime, true)}, 31 * day, true, setTime.Add(30 * day)},
		{"lifted within 30 days: never due", []Setting{reservation(setTime, false)}, 31 * day, false, time.Time{}},
		{"lifted then reserved again: counts from the new one", []Setting{reservation(setTime.Add(-20*day), false), reservation(setTime, true)}, 29 * day, false, setTime.Add(30 * day)},
		{"automatic reservation is purged too", []Setting{{Kind: Reservation, Active: true, Automatic: true, Since: setTime}}, 30 * day, true, setTime.Add(30 * day)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			due, at := PurgeDue(tc.settings, setTime.Add(tc.after))
			assert.Equal(t, tc.due, due)
			assert.Equal(t, tc.at, at)
			sum := State(tc.settings, false, setTime.Add(tc.after))
			assert.Equal(t, tc.due, sum.PurgeDue)
			assert.Equal(t, tc.at, sum.PurgeAt)
		})
	}
}

// The settings, through State and Fill, drive the real access policy.
func TestStateDrivesPolicy(t *testing.T) {
	p := &access.Policy{}
	gp := access.Subject{Role: access.Practitioner, HPR: hprB, SecurityLevel: 4, HPCategory: "LE", PurposeOfUse: "ETREAT", Patients: []string{pat}}
	blocked := gp
	blocked.HPR = hprA
	citizen := access.Subject{Role: access.Citizen, PID: "17837012345", SecurityLevel: 4}
	read := func(typ string, b access.Basis) access.Request {
		return access.Request{Interaction: access.Read, ResourceType: typ, Patient: pat, Basis: b, BasisHeader: string(b)}
	}
	cases := []struct {
		name     string
		s        access.Subject
		r        access.Request
		settings []Setting
		secret   bool
		reason   access.Reason
	}{
		{"GP reads medications", gp, read("MedicationStatement", access.Unntak), nil, false, access.OK},
		{"reserved: as if no record", gp, read("Flag", access.Unntak), []Setting{reservation(setTime, true)}, false, access.NoRecord},
		{"reservation lifted: back again", gp, read("Flag", access.Unntak), []Setting{reservation(setTime, false)}, false, access.OK},
		{"secret address: as if no record", gp, read("Flag", access.Unntak), nil, true, access.NoRecord},
		{"restricted medications", gp, read("MedicationStatement", access.Unntak), []Setting{restriction(true, access.Medications)}, false, access.SectionRestricted},
		{"restricted medications opened", gp, read("MedicationStatement", access.ForhoyetAkutt), []Setting{restriction(true, AllSections...)}, false, access.OKRestrictedOpened},
		{"blocked HP in an emergency", blocked, read("Flag", access.Akutt), []Setting{block(true, hprA)}, false, access.HPBlocked},
		{"block lifted", blocked, read("Flag", access.Akutt), []Setting{block(false, hprA)}, false, access.OK},
		{"documents restricted", gp, read("DocumentReference", access.ForhoyetAkutt), []Setting{restriction(true, access.Documents)}, false, access.DocumentsUnavailable},
		{"citizen without portal access", citizen, read("Flag", ""), []Setting{portal(true)}, false, access.PortalAccessRemoved},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := access.PatientState{Exists: true, PersonNumber: "17837012345", GPHPR: hprB}
			State(tc.settings, tc.secret, setTime).Fill(&st)
			assert.Equal(t, tc.reason, p.Decide(tc.s, tc.r, st).Reason)
		})
	}
}
