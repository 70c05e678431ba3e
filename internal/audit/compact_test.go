package audit

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
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
		"token from the server's own issuer": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.Issuer = r.Server
		}),
		"token from HelseID": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.Issuer = "https://helseid-sts.nhn.no"
		}),
		"from a named source system": with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "AllergyIntolerance", "clinical-status=active"
			r.SourceSystem = "DIPS Arena 21.4 \"Ullevål\""
		}),
		"hostile input": {ID: "ae-h", Time: t0, RequestID: "r\x00\n\u2028", Interaction: Read, ResourceType: "Flag", ResourceID: "../../etc/passwd",
			Patients: []string{"a b"}, User: User{Role: access.Practitioner, HPR: "1\"2", Name: "Ola \\ \"Test\"\t", HPCategory: " L E"},
			PurposeOfUse: "TREAT\n", ClientID: "c", Issuer: "not a uri",
			Outcome: Outcome{Refused: true, Reason: "weird reason ", Message: "\x01", HTTPStatus: 400}},
	}
}

// TestCompactRendersTheSameEvent: the AuditEvent rendered from a stored
// compact record is byte for byte the one the JSON form stored, but for
// its chain link, which carries the compact record's own hash and, as
// version 3 stores no previous hash, no "previous".
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
				loc, err := locate(want[i])
				require.NoError(t, err)
				assert.Equal(t, string(insertLink(want[i], loc, "", hash)), string(ev))
				l, err := readLink(ev)
				require.NoError(t, err)
				assert.Equal(t, string(want[i]), string(l.canonical))
				assert.Empty(t, l.prev, "no previous hash in the rendered link")
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

// TestVerifyAcrossForms: a store written in the JSON form that went on in
// compact version 2 and goes on in version 3 verifies as one chain, and
// tampering with a compact record of either version is found as with a
// JSON one; for version 3 an altered record and a removed, inserted or
// reordered one are one problem.
func TestVerifyAcrossForms(t *testing.T) {
	evs := chainOf(t, 3) // JSON form
	head := ""
	for _, ev := range evs {
		l, err := readLink(ev)
		require.NoError(t, err)
		head = l.hash
	}
	c := NewChain(head)
	rec := func(i int) Record {
		return with(doctor(), func(r *Record) {
			r.ID = fmt.Sprintf("cae-%d", i)
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
	}
	// 3, 4: version 2; 5 to 8: version 3.
	for i := 3; i < 9; i++ {
		body := Compact(rec(i))[0]
		if i < 5 {
			body = compactAs(rec(i), 2)
		}
		linked, _, err := c.Next(body)
		require.NoError(t, err)
		evs = append(evs, linked)
	}
	require.EqualValues(t, 2, evs[4][1])
	require.EqualValues(t, compactVersion, evs[5][1])
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
	for _, k := range []int{4, 6} {
		altered := clone()
		altered[k][len(altered[k])/3] ^= 0x01
		be := brokenAt(t, altered)
		assert.Equal(t, k, be.Index)
		assert.Contains(t, []string{"hash", "hash or previous", "format"}, be.Problem)
	}

	// The record rewritten with another name under its old link: only
	// the hash tells.
	forge := func(i int, trailer []byte, version byte) []byte {
		r := with(rec(i), func(r *Record) { r.User.Name = "Lege Testeson" })
		return append(compactAs(r, version), trailer...)
	}
	renamed := clone()
	orig := renamed[4]
	renamed[4] = forge(4, orig[len(orig)-1-32-int(orig[len(orig)-1]):], 2)
	be := brokenAt(t, renamed)
	assert.Equal(t, 4, be.Index)
	assert.Equal(t, "hash", be.Problem)
	assert.Equal(t, "cae-4", be.ID, "the broken record is named by its AuditEvent id")

	renamed = clone()
	orig = renamed[6]
	renamed[6] = forge(6, orig[len(orig)-32:], compactVersion)
	be = brokenAt(t, renamed)
	assert.Equal(t, 6, be.Index)
	assert.Equal(t, "hash or previous", be.Problem)
	assert.Equal(t, "cae-6", be.ID)
	assert.Contains(t, be.Error(), "altered, or a record before it was removed, inserted or reordered")
	assert.Contains(t, be.Error(), be.Expected)
	assert.Contains(t, be.Error(), be.Found)

	for _, tc := range []struct {
		name    string
		mutate  func([][]byte) [][]byte
		index   int
		id      string
		problem string
	}{
		{"version 2 record removed before a version 2 one", func(e [][]byte) [][]byte { return slices.Delete(e, 3, 4) }, 3, "cae-4", "previous"},
		{"version 2 record removed before a version 3 one", func(e [][]byte) [][]byte { return slices.Delete(e, 4, 5) }, 4, "cae-5", "hash or previous"},
		{"JSON record removed before a version 2 one", func(e [][]byte) [][]byte { return slices.Delete(e, 2, 3) }, 2, "cae-3", "previous"},
		{"version 3 record removed", func(e [][]byte) [][]byte { return slices.Delete(e, 6, 7) }, 6, "cae-7", "hash or previous"},
		{"version 3 records reordered", func(e [][]byte) [][]byte { e[6], e[7] = e[7], e[6]; return e }, 6, "cae-7", "hash or previous"},
		{"version 3 record inserted twice", func(e [][]byte) [][]byte { return slices.Insert(e, 7, e[6]) }, 7, "cae-6", "hash or previous"},
		{"first version 3 record removed, rest in order", func(e [][]byte) [][]byte { return slices.Delete(e, 5, 6) }, 5, "cae-6", "hash or previous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := brokenAt(t, tc.mutate(clone()))
			assert.Equal(t, tc.index, be.Index)
			assert.Equal(t, tc.id, be.ID)
			assert.Equal(t, tc.problem, be.Problem)
			assert.NotEqual(t, be.Expected, be.Found)
		})
	}

	for name, mangle := range map[string]func([]byte) []byte{
		"trailer cut":          func(b []byte) []byte { return b[:len(b)-1] },
		"bytes after the link": func(b []byte) []byte { return append(b, 0) },
		"unknown version":      func(b []byte) []byte { b[1] = 9; return b },
		"version 0":            func(b []byte) []byte { b[1] = 0; return b },
		"no link":              func([]byte) []byte { return Compact(doctor())[0] },
	} {
		for _, k := range []int{4, 7} {
			t.Run(fmt.Sprintf("%s, version %d", name, evs[k][1]), func(t *testing.T) {
				m := clone()
				m[k] = mangle(m[k])
				be := brokenAt(t, m)
				assert.Equal(t, k, be.Index)
				assert.Equal(t, "format", be.Problem)
				_, err := Render(m[k])
				assert.Error(t, err, "a damaged record does not render")
			})
		}
	}
	// A version 3 record given the trailer of version 2 is not canonical.
	m := clone()
	prev, _ := hex.DecodeString(mustHash(t, m[6]))
	fields := m[7][:len(m[7])-32]
	m[7] = append(append(append(append([]byte(nil), fields...), prev...), m[7][len(m[7])-32:]...), 32)
	be = brokenAt(t, m)
	assert.Equal(t, 7, be.Index)
	assert.Equal(t, "format", be.Problem)
}

// mustHash is the hash a stored compact record of version 3 ends with.
func mustHash(t *testing.T, stored []byte) string {
	t.Helper()
	_, _, l, err := readCompactLink(stored)
	require.NoError(t, err)
	return l.hash
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
		for _, v := range []byte{1, 2, 3} {
			linked, _, _ := Link("", compactAs(r, v))
			f.Add(linked)
		}
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
	c := newCompactReader(fields, compactVersion)
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
// Appending needs a new format version; this pins what versions 2 and 3
// mean.
func TestCompactWordsAreFixed(t *testing.T) {
	require.Len(t, compactWords, 89)
	assert.Equal(t, "read", compactWords[0])
	assert.Equal(t, "access permitted", compactWords[58])
	assert.Equal(t, "FORHOYET_AKUTT", compactWords[86])
	assert.Equal(t, "https://helseid-sts.nhn.no", compactWords[87])
	assert.Equal(t, "https://helseid-sts.test.nhn.no", compactWords[88])
	assert.Len(t, compactWordIndex, len(compactWords), "no word twice")
	assert.Equal(t, 0, wordsIn(1))
	assert.Equal(t, 87, wordsIn(2))
	assert.Equal(t, len(compactWords), wordsIn(compactVersion), "a word appended without a new version")
}

// TestCompactOlderVersionsStillRead: records written before the vocabulary
// (version 1: every field a string) and before version 3 (version 2: the
// previous hash in the trailer) render and verify as before, in one chain
// with version 3 records, and a known word spelled out is refused.
func TestCompactOlderVersionsStillRead(t *testing.T) {
	cases := compactCases()
	r := cases["vread in an emergency, restricted part opened"]
	own := cases["token from the server's own issuer"]
	v1 := compactAs(r, 1)
	v2 := compactAs(r, 2)
	v3 := Compact(r)[0]
	assert.Less(t, len(v2), len(v1))
	assert.Less(t, len(v3), len(v2)+len("https://helseid.test.example"), "the issuer is no shorter in version 3")
	assert.Less(t, len(Compact(own)[0]), len(compactAs(own, 2))-len(own.Issuer), "the server as issuer is not stored twice")

	// One chain: v1, v2 (the issuer the server: version 2 stores it),
	// v4, v2, v4, v3, v3 (the issuer the server), v4.
	type stored struct {
		r    Record
		body []byte
	}
	order := []stored{{r, v1}, {own, compactAs(own, 2)}, {r, v3}, {r, v2}, {own, Compact(own)[0]},
		{r, compactAs(r, 3)}, {own, compactAs(own, 3)}, {r, Compact(r)[0]}}
	var evs [][]byte
	prev := ""
	for i, s := range order {
		linked, hash, err := Link(prev, s.body)
		require.NoError(t, err, i)
		ev, err := Render(linked)
		require.NoError(t, err, i)
		l, err := readLink(ev)
		require.NoError(t, err, i)
		assert.Equal(t, string(Events(s.r)[0]), string(l.canonical), i)
		assert.Equal(t, hash, l.hash, i)
		if s.body[1] < 3 {
			// Versions 1 and 2 render as before: the previous hash too.
			assert.Equal(t, prev, l.prev, i)
			assert.Equal(t, len(prev)/2+32+1, len(linked)-len(s.body), "version %d's trailer", s.body[1])
		} else {
			assert.Empty(t, l.prev, i)
			assert.Equal(t, 32, len(linked)-len(s.body), "version 3's trailer")
		}
		evs = append(evs, linked)
		prev = hash
	}
	head, err := VerifyFrom("", seq(evs))
	require.NoError(t, err)
	assert.Equal(t, prev, head)

	spelled := append([]byte{compactMagic, compactVersion}, encodeFieldsAs(nil, &r, first(r.Patients), r.ID, 1)...)
	_, _, err = decodeCompact(spelled)
	assert.Error(t, err, "a known word spelled out in version 3 is not the canonical form")
	spelled[1] = 2
	_, _, err = decodeCompact(spelled)
	assert.Error(t, err, "a known word spelled out in version 2 is not the canonical form")

	// Words appended for version 3 do not change what version 2 means:
	// spelled out there they are its canonical form, and their indexes
	// are none of its words.
	odd := with(r, func(r *Record) { r.PurposeOfUse = "https://helseid-sts.nhn.no" })
	v2odd := compactAs(odd, 2)
	got, _, err := decodeCompact(v2odd)
	require.NoError(t, err)
	assert.Equal(t, odd.PurposeOfUse, got.PurposeOfUse)
	assert.Less(t, len(Compact(odd)[0]), len(v2odd))
	v3spelled := append([]byte{compactMagic, compactVersion}, v2odd[2:]...)
	_, _, err = decodeCompact(v3spelled)
	assert.Error(t, err, "the same word spelled out in version 3")
	// (No issuer: the one field stored differently in the two versions
	// is then the same byte.)
	v3odd := Compact(with(odd, func(r *Record) { r.Issuer = "" }))[0]
	v2index := append([]byte{compactMagic, 2}, v3odd[2:]...)
	_, _, err = decodeCompact(v2index)
	assert.ErrorContains(t, err, "no such word", "a version 3 word's index in version 2")
}

// TestCompactIssuer: the issuer is not stored when it is the server, is two
// bytes when it is HelseID, and either way round only the one form the
// encoder writes is read.
func TestCompactIssuer(t *testing.T) {
	base := with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" })
	size := func(issuer, server string) int {
		return len(Compact(with(base, func(r *Record) { r.Issuer, r.Server = issuer, server }))[0])
	}
	none := size("", base.Server)
	assert.Equal(t, none-1, size(base.Server, base.Server), "the server as issuer: no byte at all")
	// Past the 64th word a position takes a second byte.
	assert.Equal(t, none+1, size("https://helseid-sts.nhn.no", base.Server), "HelseID: two bytes")
	assert.Equal(t, none+1, size("https://helseid-sts.test.nhn.no", base.Server))
	assert.Equal(t, none+len(base.Issuer), size(base.Issuer, base.Server), "another issuer spelled out")

	for _, issuer := range []string{"", base.Server, "https://helseid-sts.nhn.no", base.Issuer} {
		r := with(base, func(r *Record) { r.Issuer = issuer })
		got, _, err := decodeCompact(Compact(r)[0])
		require.NoError(t, err, issuer)
		assert.Equal(t, issuer, got.Issuer)
		assert.Equal(t, r.Server, got.Server)
	}

	// fieldsAt finds, in an unlinked record, the flags byte and the
	// issuer field (its start and end).
	fieldsAt := func(t *testing.T, rec []byte) (flags, issuer, issuerEnd int) {
		t.Helper()
		c := newCompactReader(rec[2:], rec[1])
		c.str("id")
		c.varint("time")
		for _, word := range []bool{false, false, false, true, true, false, false, false, false, false} {
			if word {
				c.word("")
			} else {
				c.str("")
			}
		}
		flags = 2 + c.i
		fl := c.byte1("flags")
		c.word("reason")
		c.word("message")
		c.uvarint("status")
		c.word("role")
		c.str("")
		c.str("")
		c.str("")
		c.word("HP category")
		for range 4 {
			c.str("")
		}
		if fl&flagClaimed != 0 {
			for range 4 {
				c.str("")
			}
		}
		c.str("client id")
		issuer = 2 + c.i
		if rec[1] < 3 {
			c.str("issuer")
		} else if fl&flagIssuerIsServer == 0 {
			c.word("issuer")
		}
		require.NoError(t, c.err)
		return flags, issuer, 2 + c.i
	}
	splice := func(rec []byte, from, to int, with ...byte) []byte {
		return append(append(append([]byte(nil), rec[:from]...), with...), rec[to:]...)
	}
	refused := func(t *testing.T, rec []byte, why string) {
		t.Helper()
		_, _, err := decodeCompact(rec)
		assert.ErrorContains(t, err, why)
		linked, _, err := Link("", rec)
		require.NoError(t, err)
		_, err = Render(linked)
		assert.Error(t, err)
		assert.Error(t, Verify(seq([][]byte{linked})))
	}

	t.Run("the server stored again, not flagged", func(t *testing.T) {
		rec := Compact(with(base, func(r *Record) { r.Issuer = "" }))[0]
		_, at, end := fieldsAt(t, rec)
		word := append(binary.AppendUvarint(nil, uint64(2*len(base.Server))), base.Server...)
		refused(t, splice(rec, at, end, word...), "the server's name stored again")
	})
	t.Run("flagged with no server", func(t *testing.T) {
		rec := Compact(with(base, func(r *Record) { r.Issuer, r.Server = "", "" }))[0]
		flags, at, end := fieldsAt(t, rec)
		require.Equal(t, at+1, end, "the empty issuer, one byte")
		rec = splice(rec, at, end)
		rec[flags] |= flagIssuerIsServer
		refused(t, rec, "said to be the server")
	})
	t.Run("flagged while another issuer is stored", func(t *testing.T) {
		// The flag says there is no issuer field, so the stored issuer is
		// read as the fields after it: the record falls apart rather than
		// carry an issuer other than the server under the flag.
		rec := Compact(base)[0]
		flags, _, _ := fieldsAt(t, rec)
		rec[flags] |= flagIssuerIsServer
		refused(t, rec, "cannot read")
	})
	t.Run("the flag in version 2", func(t *testing.T) {
		rec := compactAs(with(base, func(r *Record) { r.Issuer = r.Server }), 2)
		flags, _, _ := fieldsAt(t, rec)
		rec[flags] |= flagIssuerIsServer
		refused(t, rec, "unknown bits")
	})
	t.Run("an unknown flag in version 3", func(t *testing.T) {
		rec := compactAs(base, 3)
		flags, _, _ := fieldsAt(t, rec)
		rec[flags] |= flagIssuerIsServer << 1
		refused(t, rec, "unknown bits")
	})
	t.Run("an unknown flag in version 4", func(t *testing.T) {
		rec := Compact(base)[0]
		flags, _, _ := fieldsAt(t, rec)
		rec[flags] |= flagSourceSystem << 1
		refused(t, rec, "unknown bits")
	})
}

// compactAs writes r's unlinked compact record (its first patient) as a
// version wrote it: 1 and 2 for tests that stores written before version
// 3 still read.
func compactAs(r Record, version byte) []byte {
	return encodeFieldsAs([]byte{compactMagic, version}, &r, first(r.Patients), r.ID, version)
}

// TestCompactSourceSystem: version 4 stores the source system
// (nhn-source-system) as a flagged last field, renders it as the client
// agent's who.display, costs nothing when there is none, and reads only
// the one form the encoder writes; a version 3 record reads and renders
// as it did.
func TestCompactSourceSystem(t *testing.T) {
	base := with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" })
	named := with(base, func(r *Record) { r.SourceSystem = "DIPS Arena" })

	v4 := Compact(named)[0]
	require.EqualValues(t, 4, v4[1])
	got, _, err := decodeCompact(v4)
	require.NoError(t, err)
	assert.Equal(t, "DIPS Arena", got.SourceSystem)
	assert.Equal(t, len(Compact(base)[0])+1+len("DIPS Arena"), len(v4), "the field: its length and bytes")

	// Without a source system version 4 is version 3's bytes but for the
	// version byte: no byte more.
	plain, v3 := Compact(base)[0], compactAs(base, 3)
	assert.Equal(t, v3[2:], plain[2:])

	linked, _, err := Link("", v4)
	require.NoError(t, err)
	ev, err := Render(linked)
	require.NoError(t, err)
	var e struct {
		Agent []struct {
			Type struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"type"`
			Who struct {
				Identifier struct{ Value string } `json:"identifier"`
				Display    string                 `json:"display"`
			} `json:"who"`
		} `json:"agent"`
	}
	require.NoError(t, json.Unmarshal(ev, &e), string(ev))
	var client []string
	for _, a := range e.Agent {
		if len(a.Type.Coding) == 1 && a.Type.Coding[0].Code == "110153" {
			client = append(client, a.Who.Identifier.Value+" / "+a.Who.Display)
		}
	}
	assert.Equal(t, []string{base.ClientID + " / DIPS Arena"}, client, "the client agent names the source system")
	l, err := readLink(ev)
	require.NoError(t, err)
	assert.Equal(t, string(Events(named)[0]), string(l.canonical), "rendered as the record's own event")

	// A version 3 record (no source system) renders as version 3 did.
	linked3, _, err := Link("", v3)
	require.NoError(t, err)
	ev3, err := Render(linked3)
	require.NoError(t, err)
	l3, err := readLink(ev3)
	require.NoError(t, err)
	assert.Equal(t, string(Events(base)[0]), string(l3.canonical))
	assert.NotContains(t, string(ev3), "DIPS")

	refused := func(t *testing.T, rec []byte, why string) {
		t.Helper()
		_, _, err := decodeCompact(rec)
		assert.ErrorContains(t, err, why)
		linked, _, err := Link("", rec)
		require.NoError(t, err)
		_, err = Render(linked)
		assert.Error(t, err)
		assert.Error(t, Verify(seq([][]byte{linked})))
	}
	// The flags byte: the last field before it is the patient.
	flagsAt := func(t *testing.T, rec []byte) int {
		t.Helper()
		c := newCompactReader(rec[2:], rec[1])
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
		return 2 + c.i
	}
	t.Run("flagged but empty", func(t *testing.T) {
		rec := append(slices.Clone(plain), 0)
		rec[flagsAt(t, rec)] |= flagSourceSystem
		refused(t, rec, "flagged, but empty")
	})
	t.Run("flagged without the field", func(t *testing.T) {
		rec := slices.Clone(plain)
		rec[flagsAt(t, rec)] |= flagSourceSystem
		refused(t, rec, "source system")
	})
	t.Run("the flag in version 3", func(t *testing.T) {
		rec := append([]byte{compactMagic, 3}, v4[2:]...)
		refused(t, rec, "")
	})
	t.Run("a source system not flagged", func(t *testing.T) {
		rec := slices.Clone(v4)
		rec[flagsAt(t, rec)] &^= flagSourceSystem
		refused(t, rec, "bytes after the last field")
	})
}
