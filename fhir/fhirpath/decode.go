package fhirpath

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting, as the FHIR parser does (64), with room for
// the decoder's own levels.
const maxDepth = 128

// DecodeJSON decodes a JSON object into the values encoding/json gives
// with UseNumber (map[string]any, []any, string, json.Number, bool, nil),
// several times faster: the write path decodes every body once for the
// invariants, and the budget for that is a few microseconds. Member names
// that are FHIR element names are shared, not allocated. Repeated members
// keep the last, as encoding/json does. TestDecodeJSONAsEncodingJSON
// proves the results equal.
func DecodeJSON(b []byte) (map[string]any, error) {
	d := decoder{b: b}
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, d.errorf("a JSON object was expected")
	}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, d.errorf("data after the JSON object")
	}
	return v.(map[string]any), nil
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at byte %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errorf("nested too deep")
	}
	d.space()
	if d.i >= len(d.b) {
		return nil, d.errorf("unexpected end")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		m := make(map[string]any, 8)
		d.space()
		if d.i < len(d.b) && d.b[d.i] == '}' {
			d.i++
			return m, nil
		}
		for {
			d.space()
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				return nil, d.errorf("a member name was expected")
			}
			k, err := d.str(true)
			if err != nil {
				return nil, err
			}
			d.space()
			if d.i >= len(d.b) || d.b[d.i] != ':' {
				return nil, d.errorf("':' was expected")
			}
			d.i++
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
			d.space()
			if d.i >= len(d.b) {
				return nil, d.errorf("unexpected end in an object")
			}
			if d.b[d.i] == ',' {
				d.i++
				continue
			}
			if d.b[d.i] == '}' {
				d.i++
				return m, nil
			}
			return nil, d.errorf("',' or '}' was expected")
		}
	case c == '[':
		d.i++
		a := make([]any, 0, 4)
		d.space()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return a, nil
		}
		for {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
			d.space()
			if d.i >= len(d.b) {
				return nil, d.errorf("unexpected end in an array")
			}
			if d.b[d.i] == ',' {
				d.i++
				continue
			}
			if d.b[d.i] == ']' {
				d.i++
				return a, nil
			}
			return nil, d.errorf("',' or ']' was expected")
		}
	case c == '"':
		return d.str(false)
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, d.errorf("unexpected %q", d.b[d.i])
}

func (d *decoder) literal(word string, v any) (any, error) {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return nil, d.errorf("invalid literal")
	}
	d.i += len(word)
	return v, nil
}

// number reads a JSON number (RFC 8259 grammar) as a json.Number.
func (d *decoder) number() (any, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, d.errorf("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.errorf("invalid number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.errorf("invalid number")
		}
	}
	return json.Number(d.b[start:d.i]), nil
}

// str reads a string; a member name (key) that is a known element name
// is the table's copy.
func (d *decoder) str(key bool) (string, error) {
	d.i++ // the opening quote
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			raw := d.b[start:d.i]
			d.i++
			if key {
				if s, ok := elementNames[string(raw)]; ok {
					return s, nil
				}
			}
			return string(raw), nil
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c >= 0x80:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				// encoding/json replaces invalid UTF-8; so does this.
				return d.escaped(start)
			}
			d.i += n
		default:
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

// escaped reads the rest of a string that has escapes or invalid UTF-8.
func (d *decoder) escaped(start int) (string, error) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return "", d.errorf("unterminated string")
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						var ok2 bool
						if r2, ok2 = d.hex4(); !ok2 {
							return "", d.errorf("invalid \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							continue
						}
						d.i = save
					}
					out = utf8.AppendRune(out, utf8.RuneError)
					continue
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", d.errorf("invalid escape \\%c", e)
			}
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c >= 0x80:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[d.i:d.i+n]...)
			}
			d.i += n
		default:
			out = append(out, c)
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// elementNames are the member names of FHIR JSON (element names, their
// choice forms and "_" siblings, resourceType), shared by every decode.
var elementNames = func() map[string]string {
	m := map[string]string{"resourceType": "resourceType", "url": "url", "value": "value"}
	for _, t := range typeTable {
		for k := range t.keys {
			m[k] = k
			m["_"+k] = "_" + k
		}
	}
	return m
}()
