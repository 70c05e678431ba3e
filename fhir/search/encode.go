package search

import (
	"encoding/binary"
	"errors"
)

// The binary form of an Index is what an engine stores next to every
// resource version, so it is kept small and quick to decode, without
// reflection:
//
//	format Type ID entries values (Param n (mask field...)...)...
//
// format is one byte, 2 for what AppendBinary writes; format 1 is still
// read. entries and values are uvarint counts: the entries, and the
// values of all entries together, so that the decoder allocates the
// values in one piece. Each entry has its Param and its number of values,
// and each value a mask byte of the fields present, then those fields.
//
// A string is a uvarint v. An odd v refers to entry v>>1 of a table that
// starts with every string this index has spelled out so far, in order,
// followed by the words of the format (indexWords, encodewords.go); an
// even v is a string of v>>1 bytes that follow, which then joins the
// table. A string the table holds is always written as the reference,
// and the decoder refuses it spelled out, so an Index has one encoding.
// Parameter names, systems and common codes are words, _id repeats the
// ID, patient the Ref of subject, Raw mostly Text: most strings of an
// index take one byte or two. (The index's own strings come first because
// they are few: a reference to them is one byte.) The empty string, v 0,
// never joins the table and is written for Type, ID and Param only: an
// empty field of a value is left out of the mask.
//
// Low is a varint; High, when Low is there too, the uvarint of its
// distance from Low, wrapping (the distance is a date's precision or a
// period, small beside the instant); an open end, High the largest int64,
// is the mask bit fOpen alone. An index of our resources is 161 bytes on
// average, 37% of format 1 (TestIndexBinarySize).
//
// Format 1 wrote every string as uvarint length and bytes, had no count
// of all values and no fOpen, and wrote High as a varint.
const indexFormat = 2

const (
	fSystem = 1 << iota
	fCode
	fText
	fRaw
	fRef
	fLow
	fHigh
	// fOpen (format 2): High is maxTime, an open end, and not written.
	fOpen
)

// wordsIn is how many of indexWords an index of the format refers to.
// Words are appended with a new format, so an index reads with its own
// format's words only: a word appended later would otherwise turn a
// string it spelled out into a known word spelled out, which is refused.
func wordsIn(format byte) int {
	if format == 2 {
		return 209
	}
	return 0
}

var errIndex = errors.New("search: malformed index")

// MarshalBinary encodes the index compactly.
func (x *Index) MarshalBinary() ([]byte, error) {
	return x.AppendBinary(make([]byte, 0, 256))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (x *Index) AppendBinary(b []byte) ([]byte, error) {
	var e encoder
	e.b = append(b, indexFormat)
	e.str(x.Type)
	e.str(x.ID)
	total := 0
	for i := range x.Entries {
		total += len(x.Entries[i].Values)
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(x.Entries)))
	e.b = binary.AppendUvarint(e.b, uint64(total))
	for i := range x.Entries {
		en := &x.Entries[i]
		e.str(en.Param)
		e.b = binary.AppendUvarint(e.b, uint64(len(en.Values)))
		for j := range en.Values {
			e.value(&en.Values[j])
		}
	}
	return e.b, nil
}

type encoder struct {
	b       []byte
	spelled strTable
}

// presence is the mask bits of the fields v has, but for High, whose
// bits differ between formats.
func presence(v *Value) byte {
	var mask byte
	for _, f := range [...]struct {
		bit byte
		has bool
	}{{fSystem, v.System != ""}, {fCode, v.Code != ""}, {fText, v.Text != ""}, {fRaw, v.Raw != ""},
		{fRef, v.Ref != ""}, {fLow, v.Low != 0}} {
		if f.has {
			mask |= f.bit
		}
	}
	return mask
}

func (e *encoder) value(v *Value) {
	mask := presence(v)
	switch v.High {
	case 0:
	case maxTime:
		mask |= fOpen
	default:
		mask |= fHigh
	}
	e.b = append(e.b, mask)
	if mask&fSystem != 0 {
		e.str(v.System)
	}
	if mask&fCode != 0 {
		e.str(v.Code)
	}
	if mask&fText != 0 {
		e.str(v.Text)
	}
	if mask&fRaw != 0 {
		e.str(v.Raw)
	}
	if mask&fRef != 0 {
		e.str(v.Ref)
	}
	if mask&fLow != 0 {
		e.b = binary.AppendVarint(e.b, v.Low)
	}
	if mask&fHigh != 0 {
		if mask&fLow != 0 {
			e.b = binary.AppendUvarint(e.b, uint64(v.High)-uint64(v.Low))
		} else {
			e.b = binary.AppendVarint(e.b, v.High)
		}
	}
}

func (e *encoder) str(s string) {
	if s == "" {
		e.b = append(e.b, 0)
		return
	}
	// No word is ever spelled out, so the two never both hold s; most
	// strings are words, and looking them up first is the quicker order.
	if i, ok := wordIndex(s); ok {
		e.b = binary.AppendUvarint(e.b, uint64(e.spelled.len()+i)<<1|1)
		return
	}
	if i := e.spelled.index(s); i >= 0 {
		e.b = binary.AppendUvarint(e.b, uint64(i)<<1|1)
		return
	}
	e.spelled.add(s)
	e.b = binary.AppendUvarint(e.b, uint64(len(s))<<1)
	e.b = append(e.b, s...)
}

// UnmarshalBinary decodes what MarshalBinary produces, and what it
// produced in format 1. Every length and count is checked against the
// input, so a damaged record gives an error, not a panic or an allocation
// beyond a small multiple of its size. A format 2 record that is not the
// encoding of its Index (a string of the table spelled out, a varint
// longer than it needs to be, a field in the mask that is empty or zero)
// is refused as damaged; format 1 is read as leniently as before, but for
// overlong varints, which its encoder did not write either.
//
// The strings of the result share one copy of data and the values of all
// entries one slice (each entry's part capped, so an append to one cannot
// overwrite the next): an index of our resources decodes with three
// allocations, one of format 1 with two and one per entry (the decoder
// before format 2 made one per string and entry).
func (x *Index) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != 1 && data[0] != 2 {
		return errIndex
	}
	d := decoder{b: data, s: string(data), i: 1, format: data[0], words: wordsIn(data[0])}
	out := Index{Type: d.str(), ID: d.str()}
	n := d.count(2)
	var all []Value
	total := -1 // format 1 has no count of all values
	if d.format >= 2 {
		total = d.count(1)
		if total > 0 {
			all = make([]Value, total)
		}
	}
	if n > 0 {
		out.Entries = make([]Entry, 0, n)
	}
	used := 0
	for range n {
		e := Entry{Param: d.str()}
		if total < 0 {
			e.Values = make([]Value, d.count(1))
		} else {
			nv := d.count(1)
			if nv > total-used {
				d.fail()
				break
			}
			e.Values = all[used : used+nv : used+nv]
			used += nv
		}
		for j := range e.Values {
			d.value(&e.Values[j])
		}
		if d.err {
			break
		}
		out.Entries = append(out.Entries, e)
	}
	if d.err || d.i != len(d.b) || total >= 0 && used != total {
		return errIndex
	}
	*x = out
	return nil
}

// plainDecoder reads strings as format 1 wrote them, uvarint length and
// bytes, as the cursors of page.go are written too.
func plainDecoder(b []byte) decoder {
	return decoder{b: b, s: string(b), format: 1}
}

// appendStr is a string as plainDecoder reads it.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b      []byte
	s      string // a copy of b, which the decoded strings share
	i      int    // the next byte to read
	err    bool
	format byte
	words  int      // wordsIn(format)
	table  strTable // format 2
}

func (d *decoder) fail() {
	d.err = true
	d.i = len(d.b)
}

func (d *decoder) value(v *Value) {
	mask := d.byte()
	if d.format == 1 {
		mask &^= fOpen // never written in format 1; it ignored the bit
	}
	if mask&fSystem != 0 {
		v.System = d.field()
	}
	if mask&fCode != 0 {
		v.Code = d.field()
	}
	if mask&fText != 0 {
		v.Text = d.field()
	}
	if mask&fRaw != 0 {
		v.Raw = d.field()
	}
	if mask&fRef != 0 {
		v.Ref = d.field()
	}
	if mask&fLow != 0 {
		v.Low = d.varint()
	}
	if mask&fHigh != 0 {
		if d.format >= 2 && mask&fLow != 0 {
			v.High = int64(uint64(v.Low) + d.uvarint())
		} else {
			v.High = d.varint()
		}
	}
	if mask&fOpen != 0 {
		v.High = maxTime
	}
	// What the encoder writes as an absent field is not also written as
	// a present one.
	if d.format >= 2 && (mask&fLow != 0 && v.Low == 0 ||
		mask&fHigh != 0 && (v.High == 0 || v.High == maxTime || mask&fOpen != 0)) {
		d.fail()
	}
}

// field is a string of a value: in format 2 never empty.
func (d *decoder) field() string {
	s := d.str()
	if s == "" && d.format >= 2 {
		d.fail()
	}
	return s
}

func (d *decoder) byte() byte {
	if d.i >= len(d.b) {
		d.fail()
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

// uvarint reads a uvarint and refuses one written in more bytes than it
// needs (a last byte of zero), which no encoder writes.
func (d *decoder) uvarint() uint64 {
	if d.i < len(d.b) && d.b[d.i] < 0x80 {
		c := d.b[d.i]
		d.i++
		return uint64(c)
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 || d.b[d.i+n-1] == 0 {
		d.fail()
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// count reads a number of items each taking at least minSize bytes, and
// refuses counts the remaining input cannot hold.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64((len(d.b)-d.i)/minSize) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	v := d.uvarint()
	if d.format == 1 {
		return d.take(v)
	}
	if v&1 == 1 {
		i := v >> 1
		if n := uint64(d.table.len()); i < n {
			return d.table.at(int(i))
		} else if i -= n; i < uint64(d.words) {
			return indexWords[i]
		}
		d.fail()
		return ""
	}
	s := d.take(v >> 1)
	if s == "" {
		return ""
	}
	if i, known := wordIndex(s); known && i < d.words {
		d.fail()
		return ""
	}
	if d.table.index(s) >= 0 {
		d.fail()
		return ""
	}
	d.table.add(s)
	return s
}

// take reads the n bytes of a string whose length was just read.
func (d *decoder) take(n uint64) string {
	if n > uint64(len(d.b)-d.i) {
		d.fail()
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

// strTable is the strings an index has spelled out so far, the start of
// its table. The first tableSize are in the struct, which the encoder and
// decoder keep on the stack: the indexes of our resources spell out 7 on
// average and at most 11.
type strTable struct {
	n     int
	fixed [tableSize]string
	more  []string
	// pos holds every position once fixed is full, so that a resource
	// with thousands of distinct values (a body may have 1 MiB) costs
	// linear time to index and to read, not quadratic.
	pos map[string]int
}

const tableSize = 16

func (t *strTable) len() int { return t.n + len(t.more) }

func (t *strTable) at(i int) string {
	if i < t.n {
		return t.fixed[i]
	}
	return t.more[i-t.n]
}

// index is the position of s in the table, or -1. For the few strings of
// an index a scan, mostly of lengths that differ, is much quicker than a
// map: 0.35 µs against 1.1 µs and four allocations to encode the index of
// a MedicationStatement.
func (t *strTable) index(s string) int {
	if t.pos != nil {
		if i, ok := t.pos[s]; ok {
			return i
		}
		return -1
	}
	for i := range t.n {
		if t.fixed[i] == s {
			return i
		}
	}
	return -1
}

func (t *strTable) add(s string) {
	if t.n < len(t.fixed) {
		t.fixed[t.n] = s
		t.n++
		return
	}
	if t.pos == nil {
		t.pos = make(map[string]int, 4*tableSize)
		for i, u := range t.fixed {
			t.pos[u] = i
		}
	}
	t.pos[s] = t.len()
	t.more = append(t.more, s)
}
