package search

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// appendBinaryV1 is the encoder of format 1, as it was: stores written
// before format 2 hold its indexes.
func appendBinaryV1(b []byte, x *Index) []byte {
	b = append(b, 1)
	b = appendStr(b, x.Type)
	b = appendStr(b, x.ID)
	b = binary.AppendUvarint(b, uint64(len(x.Entries)))
	for _, e := range x.Entries {
		b = appendStr(b, e.Param)
		b = binary.AppendUvarint(b, uint64(len(e.Values)))
		for _, v := range e.Values {
			mask := presence(&v)
			if v.High != 0 {
				mask |= fHigh
			}
			b = append(b, mask)
			for _, s := range [...]struct {
				f byte
				s string
			}{{fSystem, v.System}, {fCode, v.Code}, {fText, v.Text}, {fRaw, v.Raw}, {fRef, v.Ref}} {
				if mask&s.f != 0 {
					b = appendStr(b, s.s)
				}
			}
			if mask&fLow != 0 {
				b = binary.AppendVarint(b, v.Low)
			}
			if mask&fHigh != 0 {
				b = binary.AppendVarint(b, v.High)
			}
		}
	}
	return b
}

// storedIndexes are the indexes an engine stores for the seed's records
// (as ingest extracts them, before the store stamps meta, so without
// _lastUpdated) and for privacy settings of every kind, by type.
func storedIndexes(t testing.TB, patients int) map[string][]Index {
	t.Helper()
	r := testRegistry(t)
	out := map[string][]Index{}
	add := func(typ string, body []byte) {
		x, err := r.Extract(typ, body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		out[typ] = append(out[typ], x)
	}
	for _, rec := range seed.Generate(7, patients) {
		for _, body := range append([][]byte{rec.Patient}, rec.Resources...) {
			var head struct{ ResourceType string }
			if err := json.Unmarshal(body, &head); err != nil {
				t.Fatal(err)
			}
			add(head.ResourceType, body)
		}
	}
	since := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	for i, s := range []privacy.Setting{
		{Kind: privacy.Reservation, Active: true},
		{Kind: privacy.Reservation, Active: true, Automatic: true},
		{Kind: privacy.Restriction, Active: true, Sections: []access.Section{access.Critical, access.Medications}},
		{Kind: privacy.Block, Active: true, BlockedHPR: []string{"990010862", "990014297"}},
		{Kind: privacy.PortalAccessRemoved},
	} {
		// An id as the REST layer gives what it creates (rand.Text()).
		s.ID = fmt.Sprintf("K7QJ3V2NXUZP4WLM6R5TYB%04d", i)
		s.Patient, s.Since = "pas-009395d9f4c3365e", since
		add("Consent", s.Consent())
	}
	return out
}

// edgeIndexes are indexes Extract does not make but the encoding must
// keep: empty strings where they may be, the extremes of dates, strings
// longer than a one-byte length, more strings than the table has room for
// on the stack, words in every field.
func edgeIndexes() []Index {
	long := strings.Repeat("å", 100)
	var many []Value
	for i := range 3 * tableSize {
		many = append(many, Value{Code: fmt.Sprint("c", i), Text: fmt.Sprint("t", i%7)})
	}
	return []Index{
		{},
		{Type: "Patient"},
		{ID: "p1"},
		{Type: "Basic", ID: "Basic", Entries: []Entry{{Param: "", Values: []Value{{Code: "Basic"}}}}},
		{Type: "Flag", ID: "f", Entries: []Entry{
			{Param: "date", Values: []Value{
				{Low: 1, High: -1}, {Low: -1}, {High: 5}, {Low: 7, High: 7}, {High: maxTime}, {Low: minTime},
				{Low: minTime, High: maxTime}, {Low: maxTime, High: minTime}, {Low: 1 << 40, High: maxTime},
				{Low: minTime, High: 0x7fff_0000_0000_0000}, {Low: math.MaxInt64 - 1, High: math.MaxInt64 - 2},
			}},
			{Param: "x", Values: []Value{{}, {System: "active", Code: "active", Text: "active", Raw: "active", Ref: "active"}}},
			{Param: long, Values: []Value{{Text: long, Raw: long + "!", Ref: "Patient/" + long}}},
			{Param: "many", Values: many},
			{Param: "x", Values: []Value{{Code: "c5", Low: 3, High: maxTime}}},
		}},
	}
}

// TestIndexWordsAreFixed: the word list is part of the stored format.
// Appending words needs a new format (wordsIn); this pins what format 2
// means.
func TestIndexWordsAreFixed(t *testing.T) {
	if len(indexWords) != wordsIn(indexFormat) {
		t.Fatalf("%d words, format %d knows %d: a word was appended without a new format",
			len(indexWords), indexFormat, wordsIn(indexFormat))
	}
	for i, w := range indexWords {
		if j, ok := wordIndex(w); !ok || j != i {
			t.Fatalf("word %d %q is found at %d, %v: in the list twice?", i, w, j, ok)
		}
	}
	if slices.Contains(indexWords, "") {
		t.Fatal("the empty string is written as such, not as a word")
	}
	sum := sha256.Sum256([]byte(strings.Join(indexWords[:wordsIn(2)], "\n")))
	if got, want := hex.EncodeToString(sum[:]), format2Words; got != want {
		t.Fatalf("the words of format 2 changed: SHA-256 %s, stored indexes were written with %s", got, want)
	}
	if wordsIn(1) != 0 || wordsIn(3) != 0 {
		t.Fatal("format 1 has no words, format 3 does not exist yet")
	}
}

const format2Words = "bac9a1b4c87986cd773ca0b785884b1f7702e0bcff214f759b323babe3e486af"

// TestIndexBinaryRoundTrip: every index comes back from its encoding,
// which is canonical (the decoded index encodes to the same bytes), and
// the same index written in format 1 by an older build decodes to the
// same.
func TestIndexBinaryRoundTrip(t *testing.T) {
	r := testRegistry(t)
	var xs []Index
	for _, typ := range slices.Sorted(mapKeys(fixtures)) {
		xs = append(xs, fixtureIndexes(t, r, typ)...)
	}
	stored := storedIndexes(t, 100)
	for _, typ := range testTypes {
		if len(stored[typ]) == 0 {
			t.Fatalf("no %s", typ)
		}
		xs = append(xs, stored[typ]...)
	}
	for _, rs := range seedRecords(t, r, 20) { // with _lastUpdated
		for _, s := range rs {
			xs = append(xs, s.idx)
		}
	}
	xs = append(xs, edgeIndexes()...)
	for _, x := range xs {
		bin, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if bin[0] != indexFormat {
			t.Fatalf("format %d", bin[0])
		}
		var back Index
		if err := back.UnmarshalBinary(bin); err != nil {
			t.Fatalf("%s/%s: %v\n%x", x.Type, x.ID, err, bin)
		}
		if !equalIndex(back, x) {
			t.Fatalf("%s/%s back as\n%+v\nnot\n%+v", x.Type, x.ID, back, x)
		}
		if again, _ := back.AppendBinary([]byte("prefix")); !bytes.Equal(again[len("prefix"):], bin) {
			t.Fatalf("%s/%s: the decoded index encodes differently", x.Type, x.ID)
		}
		v1 := appendBinaryV1(nil, &x)
		var old Index
		if err := old.UnmarshalBinary(v1); err != nil || !equalIndex(old, x) {
			t.Fatalf("%s/%s in format 1: %v\n%+v\n%+v", x.Type, x.ID, err, old, x)
		}
		if len(x.Entries) > 0 && len(bin) >= len(v1) {
			t.Errorf("%s/%s: %d bytes in format 2, %d in format 1", x.Type, x.ID, len(bin), len(v1))
		}
	}
}

// TestIndexFormat1Stored: bytes the build before format 2 wrote for the
// fixture MedicationStatement m2 still decode to its index, and are what
// appendBinaryV1 writes, so the round trip test reads true format 1.
func TestIndexFormat1Stored(t *testing.T) {
	const stored = "01134d656469636174696f6e53746174656d656e74026d3208035f69640102026d320c5f6c61737455706461746564" +
		"01608080e9b0d9968806ce8fe9b0d99688060965666665637469766501608080b3dec696bf05feffd19f98c2cd050a6d6564" +
		"69636174696f6e01100f4d656469636174696f6e2f6d6564310770617469656e7401100a50617469656e742f703106736f75" +
		"72636501031d75726e3a6f69643a322e31362e3537382e312e31322e342e312e342e3407373635343332310673746174757301" +
		"020773746f70706564077375626a65637401100a50617469656e742f7031"
	bin, _ := hex.DecodeString(stored)
	want := fixtureIndexes(t, testRegistry(t), "MedicationStatement")[1]
	var got Index
	if err := got.UnmarshalBinary(bin); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v\n%+v\n%+v", err, got, want)
	}
	if v1 := appendBinaryV1(nil, &want); !bytes.Equal(v1, bin) {
		t.Fatalf("appendBinaryV1 writes %x", v1)
	}
	v2, _ := want.MarshalBinary()
	t.Logf("m2: %d bytes in format 1, %d in format 2", len(bin), len(v2))
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// equalIndex is reflect.DeepEqual but for an entry without values, which
// may come back as an empty slice or nil.
func equalIndex(a, b Index) bool {
	if len(a.Entries) != len(b.Entries) || a.Type != b.Type || a.ID != b.ID {
		return false
	}
	for i := range a.Entries {
		ea, eb := a.Entries[i], b.Entries[i]
		if ea.Param != eb.Param || len(ea.Values) != len(eb.Values) ||
			len(ea.Values) > 0 && !reflect.DeepEqual(ea.Values, eb.Values) {
			return false
		}
	}
	return true
}

// TestIndexBinarySize reports the sizes of the stored indexes in both
// formats (go test -v), and holds format 2 to what it achieved.
func TestIndexBinarySize(t *testing.T) {
	stored := storedIndexes(t, 300)
	var sum1, sum2, n int
	for _, typ := range testTypes {
		var s1, s2 int
		for _, x := range stored[typ] {
			bin, _ := x.MarshalBinary()
			s1 += len(appendBinaryV1(nil, &x))
			s2 += len(bin)
		}
		k := len(stored[typ])
		t.Logf("%-20s %4d indexes: format 1 %5.1f bytes, format 2 %5.1f bytes (%.0f%%)",
			typ, k, float64(s1)/float64(k), float64(s2)/float64(k), 100*float64(s2)/float64(s1))
		sum1, sum2, n = sum1+s1, sum2+s2, n+k
	}
	t.Logf("%-20s %4d indexes: format 1 %5.1f bytes, format 2 %5.1f bytes (%.0f%%)",
		"all", n, float64(sum1)/float64(n), float64(sum2)/float64(n), 100*float64(sum2)/float64(sum1))
	// 164.4 before issue 17's base parameters (Patient's address and
	// telecom, meta.profile and meta.source, ...), 189.6 after.
	if avg := float64(sum2) / float64(n); avg > 193 {
		t.Errorf("format 2 takes %.1f bytes an index, was 189.6", avg)
	}
}

// TestIndexBinaryLarge: a resource with tens of thousands of distinct
// values (a body may have 1 MiB) is indexed and read in linear time.
func TestIndexBinaryLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	x := Index{Type: "Patient", ID: "p1", Entries: []Entry{{Param: "identifier"}}}
	for i := range 200_000 {
		x.Entries[0].Values = append(x.Entries[0].Values, Value{System: "urn:x", Code: fmt.Sprint(i)})
	}
	start := time.Now()
	bin, _ := x.MarshalBinary()
	var back Index
	if err := back.UnmarshalBinary(bin); err != nil || !equalIndex(back, x) {
		t.Fatalf("round trip: %v", err)
	}
	// Quadratic, a scan of the table for each string, takes minutes.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%v for %d values", d, len(x.Entries[0].Values))
	}
}

func position(w string) int {
	i, ok := wordIndex(w)
	if !ok {
		panic(w + " is no word")
	}
	return i
}

// TestIndexBinaryDamaged: a damaged index is refused or decodes to an
// index that encodes to exactly the damaged bytes, never a panic; and the
// forms the encoder never writes are refused.
func TestIndexBinaryDamaged(t *testing.T) {
	stored := storedIndexes(t, 100)
	for _, typ := range testTypes {
		x := stored[typ][0]
		bin, _ := x.MarshalBinary()
		for cut := range bin {
			if err := new(Index).UnmarshalBinary(bin[:cut]); err == nil {
				t.Fatalf("%s: %d of %d bytes decoded", typ, cut, len(bin))
			}
		}
		if err := new(Index).UnmarshalBinary(append(slices.Clip(bin), 0)); err == nil {
			t.Fatalf("%s: a trailing byte was accepted", typ)
		}
		for i := range bin {
			for _, flip := range []byte{0x01, 0x02, 0x40, 0x80, 0xff} {
				damaged := slices.Clone(bin)
				damaged[i] ^= flip
				checkCanonical(t, damaged)
			}
		}
	}

	// Hand-written format 2 indexes: the type Patient, the id "p1", and
	// one entry _id of one value with a code, the id again.
	// The table is the strings spelled out so far, then the words: here
	// "p1" only, or nothing where Patient is spelled out too.
	ref := func(i int) []byte { return binary.AppendUvarint(nil, uint64(2*i+1)) }
	word := func(w string) []byte { return ref(1 + position(w)) }
	spell := func(s string) []byte { return append([]byte{byte(2 * len(s))}, s...) }
	local := func(i int) []byte { return ref(i) }
	b := func(bs ...byte) []byte { return bs }
	patient := slices.Concat(b(2), ref(position("Patient")), spell("p1"))
	head := slices.Concat(patient, b(1, 1))
	ok := slices.Concat(head, word("_id"), b(1, fCode), local(0))
	var x Index
	if err := x.UnmarshalBinary(ok); err != nil || !equalIndex(x, Index{Type: "Patient", ID: "p1", Entries: []Entry{{Param: "_id", Values: []Value{{Code: "p1"}}}}}) {
		t.Fatalf("the base case: %v %+v", err, x)
	}
	for name, bin := range map[string][]byte{
		"format 0":                   b(0, 0, 0, 0, 0),
		"format 3":                   b(3, 0, 0, 0, 0),
		"empty":                      {},
		"trailing byte":              slices.Concat(ok, b(0)),
		"a word spelled out":         slices.Concat(b(2), spell("Patient"), spell("p1"), b(1, 1), ref(2+position("_id")), b(1, fCode), local(1)),
		"a word spelled as a code":   slices.Concat(head, word("_id"), b(1, fCode), spell("active")),
		"the id spelled out again":   slices.Concat(head, word("_id"), b(1, fCode), spell("p1")),
		"a reference past the end":   slices.Concat(head, word("_id"), b(1, fCode), ref(1+wordsIn(2))),
		"a present field empty":      slices.Concat(head, word("_id"), b(1, fCode, 0)),
		"an entry count padded":      slices.Concat(patient, b(0x81, 0x00, 1), word("_id"), b(1, fCode), local(0)),
		"a length padded":            slices.Concat(head, word("_id"), b(1, fCode, 0x84, 0x00, 'a', 'b')),
		"values miscounted":          slices.Concat(patient, b(1, 2), word("_id"), b(1, fCode), local(0)),
		"more values than counted":   slices.Concat(patient, b(2, 1), word("_id"), b(1, fCode), local(0), word("date"), b(1, fLow, 2)),
		"Low present and zero":       slices.Concat(head, word("date"), b(1, fLow, 0)),
		"High present and zero":      slices.Concat(head, word("date"), b(1, fHigh, 0)),
		"High Low's and zero":        slices.Concat(head, word("date"), b(1, fLow|fHigh, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
		"High present and open":      slices.Concat(head, word("date"), b(1, fHigh, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
		"High and open at once":      slices.Concat(head, word("date"), b(1, fHigh|fOpen, 2)),
		"a varint too long":          slices.Concat(head, word("date"), b(1, fLow, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)),
		"an entry count past input":  slices.Concat(patient, b(0xff, 0xff, 0x03, 1)),
		"a value count past input":   slices.Concat(patient, b(1, 0xff, 0xff, 0x03)),
		"a length past the input":    slices.Concat(head, word("_id"), b(1, fCode, 0xfe, 0x01, 'a')),
		"an entry's values too many": slices.Concat(patient, b(1, 1), word("_id"), b(2, fCode), local(0), b(0)),
	} {
		if err := new(Index).UnmarshalBinary(bin); err == nil {
			t.Errorf("%s: accepted", name)
		}
		checkCanonical(t, bin)
	}
}

// checkCanonical: b is refused, or decodes to an index that encodes to
// b (format 2), or that survives format 2 (format 1, which was read
// leniently and still is).
func checkCanonical(t *testing.T, b []byte) {
	t.Helper()
	var x Index
	if x.UnmarshalBinary(b) != nil {
		return
	}
	again, _ := x.MarshalBinary()
	if b[0] == 2 && !bytes.Equal(again, b) {
		t.Fatalf("%x decoded to %+v, which encodes as %x", b, x, again)
	}
	var back Index
	if err := back.UnmarshalBinary(again); err != nil || !equalIndex(back, x) {
		t.Fatalf("%x decoded to %+v, and that does not round trip: %v", b, x, err)
	}
}

func FuzzIndexUnmarshal(f *testing.F) {
	stored := storedIndexes(f, 100)
	for _, typ := range testTypes {
		for _, x := range stored[typ][:1] {
			bin, _ := x.MarshalBinary()
			f.Add(bin)
			f.Add(appendBinaryV1(nil, &x))
		}
	}
	for _, x := range edgeIndexes() {
		bin, _ := x.MarshalBinary()
		f.Add(bin)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkCanonical(t, b)
	})
}

// benchIndexes are one stored index of each type, the first the seed
// makes.
func benchIndexes(b *testing.B) []Index {
	stored := storedIndexes(b, 100)
	var xs []Index
	for _, typ := range testTypes {
		xs = append(xs, stored[typ][0])
	}
	return xs
}

func BenchmarkIndexMarshal(b *testing.B) {
	for _, x := range benchIndexes(b) {
		b.Run("format1/"+x.Type, func(b *testing.B) {
			buf := appendBinaryV1(nil, &x)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = appendBinaryV1(buf[:0], &x)
			}
		})
		b.Run("format2/"+x.Type, func(b *testing.B) {
			buf, _ := x.MarshalBinary()
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = x.AppendBinary(buf[:0])
			}
		})
	}
}

// BenchmarkIndexUnmarshal is what a search pays per resource of the
// patient's compartment before matching.
func BenchmarkIndexUnmarshal(b *testing.B) {
	for _, x := range benchIndexes(b) {
		v2, _ := x.MarshalBinary()
		for _, f := range []struct {
			name string
			bin  []byte
		}{{"format1", appendBinaryV1(nil, &x)}, {"format2", v2}} {
			b.Run(f.name+"/"+x.Type, func(b *testing.B) {
				b.SetBytes(int64(len(f.bin)))
				b.ReportAllocs()
				for b.Loop() {
					var y Index
					if err := y.UnmarshalBinary(f.bin); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
