package search

import (
	"encoding/binary"
	"errors"
)

// The binary form of an Index is what an engine stores next to the
// resource: a version byte, then length-prefixed strings and varints, and
// per value a bit mask of the fields present, so an index of a typical
// resource is a few hundred bytes and decodes without reflection.
const indexFormat = 1

const (
	fSystem = 1 << iota
	fCode
	fText
	fRaw
	fRef
	fLow
	fHigh
)

var errIndex = errors.New("search: malformed index")

// MarshalBinary encodes the index compactly.
func (x *Index) MarshalBinary() ([]byte, error) {
	return x.AppendBinary(make([]byte, 0, 256))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (x *Index) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, indexFormat)
	b = appendStr(b, x.Type)
	b = appendStr(b, x.ID)
	b = binary.AppendUvarint(b, uint64(len(x.Entries)))
	for _, e := range x.Entries {
		b = appendStr(b, e.Param)
		b = binary.AppendUvarint(b, uint64(len(e.Values)))
		for _, v := range e.Values {
			var mask byte
			if v.System != "" {
				mask |= fSystem
			}
			if v.Code != "" {
				mask |= fCode
			}
			if v.Text != "" {
				mask |= fText
			}
			if v.Raw != "" {
				mask |= fRaw
			}
			if v.Ref != "" {
				mask |= fRef
			}
			if v.Low != 0 {
				mask |= fLow
			}
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
	return b, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes what MarshalBinary produced. It checks every
// length against the input, so a damaged record gives an error, not a
// panic or a huge allocation.
func (x *Index) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if d.byte() != indexFormat {
		return errIndex
	}
	out := Index{Type: d.str(), ID: d.str()}
	n := d.count(2)
	if n > 0 {
		out.Entries = make([]Entry, 0, n)
	}
	for range n {
		e := Entry{Param: d.str()}
		nv := d.count(1)
		e.Values = make([]Value, 0, nv)
		for range nv {
			mask := d.byte()
			var v Value
			if mask&fSystem != 0 {
				v.System = d.str()
			}
			if mask&fCode != 0 {
				v.Code = d.str()
			}
			if mask&fText != 0 {
				v.Text = d.str()
			}
			if mask&fRaw != 0 {
				v.Raw = d.str()
			}
			if mask&fRef != 0 {
				v.Ref = d.str()
			}
			if mask&fLow != 0 {
				v.Low = d.varint()
			}
			if mask&fHigh != 0 {
				v.High = d.varint()
			}
			e.Values = append(e.Values, v)
		}
		out.Entries = append(out.Entries, e)
	}
	if d.err || len(d.b) != 0 {
		return errIndex
	}
	*x = out
	return nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items each taking at least minSize bytes, and
// refuses counts the remaining input cannot hold.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.err = true
		d.b = nil
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
