package audit

import (
	"strconv"
	"unicode/utf8"
)

// w appends JSON to a byte slice. The AuditEvent is built by hand rather
// than through encoding/json because it is written for every request,
// before any data leaves the server: reflection would cost more than the
// policy decision it records.
type w struct{ b []byte }

const hexDigits = "0123456789abcdef"

// str appends s as a JSON string that is also a valid FHIR string: invalid
// UTF-8 and control characters other than tab, CR and LF become U+FFFD;
// U+2028 and U+2029 are escaped so the bytes are also safe in JavaScript.
func (e *w) str(s string) {
	e.b = append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			e.b = append(e.b, s[start:i]...)
			switch c {
			case '"', '\\':
				e.b = append(e.b, '\\', c)
			case '\n':
				e.b = append(e.b, '\\', 'n')
			case '\r':
				e.b = append(e.b, '\\', 'r')
			case '\t':
				e.b = append(e.b, '\\', 't')
			default:
				// FHIR strings may not hold other control characters;
				// the raw query keeps them (base64), nothing else needs to.
				e.b = append(e.b, `\ufffd`...)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, `\u202`...)
			e.b = append(e.b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	e.b = append(e.b, s[start:]...)
	e.b = append(e.b, '"')
}

// raw appends pre-built JSON.
func (e *w) raw(s string) { e.b = append(e.b, s...) }

func (e *w) int(n int) { e.b = strconv.AppendInt(e.b, int64(n), 10) }

func (e *w) comma() { e.b = append(e.b, ',') }

// coding appends a Coding; code must already be a valid FHIR code.
func (e *w) coding(system, code, display string) {
	e.raw(`{"system":`)
	e.str(system)
	e.raw(`,"code":`)
	e.str(code)
	if display != "" {
		e.raw(`,"display":`)
		e.str(display)
	}
	e.b = append(e.b, '}')
}

// concept appends a CodeableConcept holding one coding, or only text when
// the code is not a valid FHIR code (token claims are not ours to trust:
// an invalid code would make the whole AuditEvent invalid, and a request
// must never fail to be logged because of what its token carried).
func (e *w) concept(system, code, display string) {
	if validCode(code) {
		e.raw(`{"coding":[`)
		e.coding(system, code, display)
		e.raw(`]}`)
		return
	}
	e.raw(`{"text":`)
	e.str(code)
	e.b = append(e.b, '}')
}

// validCode reports whether s matches FHIR's code grammar
// [^\s]+( [^\s]+)*: non-empty, no leading, trailing or repeated whitespace,
// no whitespace other than single spaces.
func validCode(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	prevSpace := true // forbids a leading space
	for _, r := range s {
		switch r {
		case ' ':
			if prevSpace {
				return false
			}
			prevSpace = true
		case '\t', '\n', '\r', '\v', '\f', 0x85, 0xA0:
			return false
		default:
			if r < 0x20 {
				return false
			}
			prevSpace = false
		}
	}
	return !prevSpace
}

// validID reports whether s is a FHIR id ([A-Za-z0-9\-\.]{1,64}).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validType reports whether s looks like a FHIR resource type name.
func validType(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
