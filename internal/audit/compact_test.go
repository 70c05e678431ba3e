package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// compactCases are records of every shape the log holds: reads, searches
// with hostile queries, refusals, unverified tokens, documents, several
// patients, emergencies and restricted openings.
func compactCases() map[string]Record {
	return map[string]Record{
		"read": with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" }),
		"vread in an emergency, restricted part opened": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID, r.VersionID = VRead, "MedicationStatement", "m1", "3"
			r.Basis, r.OpenedRestricted, r.PurposeOfUse = access.ForhoyetAkutt, true, "ETREAT"
			r.Outcome.Reason = access.OKRestrictedOpened
		}),
		"id from the request id": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.RequestID, r.ID = "Q5ZK3W7LXR2B4N6M8P0T2V4X6Z", "Q5ZK3W7LXR2B4N6M8P0T2V4X6Z-3-1"
		}),
		"search with a hostile query": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "Flag", "patient=pas-1&x=%00&y=<script>\xff\n"
			r.CorrelationID = "ehr-trace-42"
		}),
		"refused without a verified token": {ID: "ae-401", Time: t0, RequestID: "req-401", Interaction: Read, ResourceType: "Flag",
			ResourceID: "f1", Patients: []string{patient}, Claimed: &Claimed{Subject: "persona:x", ClientID: "c", Issuer: "https://evil.example", HPR: "1"},
			Outcome: Outcome{Refused: true, Reason: access.NotAuthenticated, Message: "token signature invalid", HTTPStatus: 401}},
		"routing refusal": {ID: "ae-404", Time: t0, RequestID: "req-404", Request: "GET /no/such", Outcome: Outcome{HTTPStatus: 404, Message: "Not Found"}},
		"documents, two patients, emergency flag": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType = DocumentRead, "DocumentReference"
			r.Patients = []string{patient, "pas-2", patient}
			r.Emergency = true
			r.Documents = []Document{{ID: "ous.1", Source: "300010008", SourceName: "Oslo universitetssykehus HF"}, {ID: "n.2", Source: "300011268"}}
		}),
		"operation by a citizen": {ID: "ae-op", Time: t0.Add(time.Nanosecond), Interaction: Operation, Operation: "$kj-status", ResourceType: "Patient",
			ResourceID: patient, Patients: []string{patient}, User: User{Role: access.Citizen, PID: pidCitizen},
			Outcome: Outcome{Reason: access.OK, HTTPStatus: 200}},
		"hostile input": {ID: "ae-h", Time: t0, RequestID: "r\x00\n\u2028", Interaction: Read, ResourceType: "Flag", ResourceID: "../../etc/passwd",
			Patients: []string{"a b"}, User: User{Role: access.Practitioner, HPR: "1\"2", Name: "Ola \\ \"Test\"\t", HPCategory: " L E"},
			PurposeOfUse: "TREAT\n", ClientID: "c", Issuer: "not a uri",
			Outcome: Outcome{Refused: true, Reason: "weird reason ", Message: "\x01", HTTPStatus: 400}},
	}
}

// TestCompactRendersTheSameEvent: the AuditEvent rendered from a stored
// compact record is byte for byte the one the JSON form stored, its chain
// link aside, which carries the compact record's own hash.
func TestCompactRendersTheSameEvent(t *testing.T) {
	for name, r := range compactCases() {
		t.Run(name, func(t *testing.T) {
			want := Events(r)
			got := Compact(r)
			require.Len(t, got, len(want), "one stored record per patient")
			prev := ""
			for i := range got {
				linked, hash, err := Link(prev, got[i])
				require.NoError(t, err)
				assert.True(t, IsCompact(linked))
				ev, err := Render(linked)
				require.NoError(t, err)
				l, err := readLink(ev)
				require.NoError(t, err)
				assert.Equal(t, string(want[i]), string(l.canonical))
				assert.Equal(t, prev, l.prev)
				assert.Equal(t, hash, l.hash)
				assert.Less(t, len(linked), len(want[i]), "the stored form is smaller than the event")
				prev = hash
			}
		})
	}
	// A JSON record (written before the compact form) reads as it is.
	old, _, err := Link("", Event(doctor()))
	require.NoError(t, err)
	ev, err := Render(old)
	require.NoError(t, err)
	assert.Equal(t, string(old), string(ev))
}

// TestVerifyAcrossForms: a store written in the JSON form that goes on in
// the compact form verifies as one chain, and tampering with a compact
// record is found as with a JSON one.
func TestVerifyAcrossForms(t *testing.T) {
	evs := chainOf(t, 3) // JSON form
	head := ""
	for _, ev := range evs {
		l, err := readLink(ev)
		require.NoError(t, err)
		head = l.hash
	}
	c := NewChain(head)
	for i := range 4 {
		r := with(doctor(), func(r *Record) {
			r.ID = fmt.Sprintf("cae-%d", i)
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
		linked, _, err := c.Next(Compact(r)[0])
		require.NoError(t, err)
		evs = append(evs, linked)
	}
	last, err := VerifyFrom("", seq(evs))
	require.NoError(t, err)
	assert.Equal(t, c.Head(), last)

	brokenAt := func(t *testing.T, evs [][]byte) *BrokenLinkError {
		t.Helper()
		var be *BrokenLinkError
		require.ErrorAs(t, Verify(seq(evs)), &be)
		return be
	}
	clone := func() [][]byte {
		out := make([][]byte, len(evs))
		for i, ev := range evs {
			out[i] = append([]byte(nil), ev...)
		}
		return out
	}
	altered := clone()
	k := len(altered[4]) / 3
	altered[4][k] ^= 0x01
	be := brokenAt(t, altered)
	assert.Equal(t, 4, be.Index)
	assert.Contains(t, []string{"hash", "format"}, be.Problem)

	// The record rewritten with another name under its old link: only
	// the hash tells.
	renamed := clone()
	orig := renamed[5]
	trailer := orig[len(orig)-1-32-int(orig[len(orig)-1]):]
	forged := with(doctor(), func(r *Record) {
		r.ID = "cae-2"
		r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		r.User.Name = "Lege Testeson"
	})
	renamed[5] = append(Compact(forged)[0], trailer...)
	be = brokenAt(t, renamed)
	assert.Equal(t, 5, be.Index)
	assert.Equal(t, "hash", be.Problem)
	assert.Equal(t, "cae-2", be.ID, "the broken record is named by its AuditEvent id")

	removed := append(clone()[:4], clone()[5:]...)
	be = brokenAt(t, removed)
	assert.Equal(t, 4, be.Index)
	assert.Equal(t, "previous", be.Problem)

	for name, mangle := range map[string]func([]byte) []byte{
		"trailer cut":          func(b []byte) []byte { return b[:len(b)-1] },
		"bytes after the link": func(b []byte) []byte { return append(b, 0) },
		"unknown version":      func(b []byte) []byte { b[1] = 9; return b },
		"no link":              func([]byte) []byte { return Compact(doctor())[0] },
	} {
		t.Run(name, func(t *testing.T) {
			m := clone()
			m[6] = mangle(m[6])
			be := brokenAt(t, m)
			assert.Equal(t, 6, be.Index)
			assert.Equal(t, "format", be.Problem)
			_, err := Render(m[6])
			assert.Error(t, err, "a damaged record does not render")
		})
	}
}

// FuzzCompactDecode: no stored bytes make the reader panic, and fields
// that decode encode back to the same bytes.
func FuzzCompactDecode(f *testing.F) {
	for _, r := range compactCases() {
		for _, c := range Compact(r) {
			f.Add(c)
			linked, _, _ := Link("", c)
			f.Add(linked)
		}
		f.Add(encodeFields(nil, &r, first(r.Patients), "ae-1"))
	}
	f.Add([]byte{compactMagic, compactVersion})
	f.Add([]byte{compactMagic, compactVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = decodeCompact(b)
		_, _ = Render(b)
		r, id, err := decodeFields(b)
		if err != nil {
			return
		}
		again := encodeFields(nil, &r, first(r.Patients), id)
		// Varints may be written longer than needed; the decoder takes
		// them and the encoder never writes them (the chain's hash covers
		// the stored bytes either way), so only equal lengths must match.
		if len(again) == len(b) && string(again) != string(b) {
			t.Fatalf("re-encoded fields differ: %x vs %x", again, b)
		}
	})
}

// TestCompactStoresRequestIDSuffix: an event id made from the request id
// is stored as its suffix, and a suffix without a request id is refused.
func TestCompactStoresRequestIDSuffix(t *testing.T) {
	r := compactCases()["id from the request id"]
	random := r
	random.ID = "Z9Y8X7W6V5U4T3S2R1Q0P9O8N7"
	short, long := Compact(r)[0], Compact(random)[0]
	assert.Equal(t, len(long)-len(random.ID)+len("3-1"), len(short))
	got, id, err := decodeCompact(short)
	require.NoError(t, err)
	assert.Equal(t, r.ID, id)
	assert.Equal(t, r.ID, got.ID)

	orphan := r
	orphan.RequestID = ""
	fields := encodeFields(nil, &orphan, first(orphan.Patients), "3-1")
	// Set the flag by hand: the encoder never writes it without a request id.
	c := &compactReader{b: fields, words: true}
	c.str("id")
	c.varint("time")
	for _, word := range []bool{false, false, false, true, true, false, false, false, false, false} {
		if word {
			c.word("")
		} else {
			c.str("")
		}
	}
	require.NoError(t, c.err)
	fields[c.i] |= flagRequestID
	_, _, err = decodeFields(fields)
	assert.Error(t, err)
}

// TestCompactWordsAreFixed: the vocabulary is part of the stored format.
// Appending needs a new format version; this pins what version 2 means.
func TestCompactWordsAreFixed(t *testing.T) {
	require.Len(t, compactWords, 87)
	assert.Equal(t, "read", compactWords[0])
	assert.Equal(t, "access permitted", compactWords[58])
	assert.Equal(t, "FORHOYET_AKUTT", compactWords[86])
	assert.Len(t, compactWordIndex, len(compactWords), "no word twice")
}

// TestCompactVersion1StillReads: records written before the vocabulary
// (version 1: every field a string) render and verify as before, and a
// version-2 record spelling out a known word is refused.
func TestCompactVersion1StillReads(t *testing.T) {
	r := compactCases()["vread in an emergency, restricted part opened"]
	v2 := Compact(r)[0]
	// Version 1 is the same fields with every word spelled out.
	v1 := append([]byte{compactMagic, 1}, encodeFieldsV1(&r, first(r.Patients), r.ID)...)
	assert.Less(t, len(v2), len(v1))
	for name, rec := range map[string][]byte{"v1": v1, "v2": v2} {
		linked, _, err := Link("", rec)
		require.NoError(t, err, name)
		ev, err := Render(linked)
		require.NoError(t, err, name)
		l, err := readLink(ev)
		require.NoError(t, err, name)
		assert.Equal(t, string(Events(r)[0]), string(l.canonical), name)
		_, err = VerifyFrom("", seq([][]byte{linked}))
		assert.NoError(t, err, name)
	}
	spelled := append([]byte{compactMagic, compactVersion}, encodeFieldsV1(&r, first(r.Patients), r.ID)...)
	_, _, err := decodeCompact(spelled)
	assert.Error(t, err, "a known word spelled out in version 2 is not the canonical form")
}

// encodeFieldsV1 writes fields as version 1 did: every value a string.
func encodeFieldsV1(r *Record, patient, id string) []byte {
	return encodeFieldsAs(nil, r, patient, id, false)
}
