package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file holds a small JSON scanner for the top level of an object. The
// hot paths (WithMeta inside the store commit, Elements/Summary on reads)
// only need to find and reorder top-level members, so decoding whole
// documents into maps would be wasted work and would lose member order.

var errSyntax = errors.New("fhir: malformed JSON")

// member is one top-level member of an object: its key (unescaped) and the
// raw bytes of its value, both aliasing the scanned input where possible.
type member struct {
	key    []byte // unescaped
	rawKey []byte // as written, with quotes, ready to copy to output
	val    []byte
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString expects b[i] == '"' and returns the index after the closing
// quote, and (if wantEsc) whether the string contained escapes.
func skipString(b []byte, i int, wantEsc bool) (int, bool, error) {
	i++
	escaped := false
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return 0, false, errSyntax
		}
		j += i
		// The quote is escaped if preceded by an odd number of backslashes.
		n := 0
		for k := j - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if wantEsc && !escaped && (n > 0 || bytes.IndexByte(b[i:j], '\\') >= 0) {
			escaped = true
		}
		if n%2 == 0 {
			return j + 1, escaped, nil
		}
		i = j + 1
	}
}

// skipValue returns the index just after the JSON value starting at b[i].
// Nested containers are skipped by counting brackets; their inner syntax
// is not fully validated (the inputs are either our own output or are
// validated by the FHIR parser).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; c {
	case '"':
		j, _, err := skipString(b, i, false)
		return j, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j, _, err := skipString(b, i, false)
				if err != nil {
					return 0, err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errSyntax
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || isSpace(c) {
				break
			}
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// scanObject splits a JSON object into its members, in document order.
func scanObject(b []byte, dst []member) ([]member, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipSpace(b, i+1) != len(b) {
			return nil, errSyntax
		}
		return dst, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, errSyntax
		}
		j, esc, err := skipString(b, i, true)
		if err != nil {
			return nil, err
		}
		key, rawKey := b[i+1:j-1], b[i:j]
		if esc {
			var s string
			if err := json.Unmarshal(b[i:j], &s); err != nil {
				return nil, errSyntax
			}
			key = []byte(s)
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, errSyntax
		}
		i = skipSpace(b, i+1)
		j, err = skipValue(b, i)
		if err != nil {
			return nil, err
		}
		dst = append(dst, member{key: key, rawKey: rawKey, val: b[i:j]})
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, errSyntax
		}
		if b[i] == '}' {
			if skipSpace(b, i+1) != len(b) {
				return nil, errSyntax
			}
			return dst, nil
		}
		if b[i] != ',' {
			return nil, errSyntax
		}
		i = skipSpace(b, i+1)
	}
}

func findMember(ms []member, key string) (member, bool) {
	for _, m := range ms {
		if string(m.key) == key {
			return m, true
		}
	}
	return member{}, false
}

// appendString appends s as a JSON string that is also a valid FHIR
// string: invalid UTF-8 and control characters other than tab, CR and LF
// become U+FFFD; U+2028/2029 are escaped for JavaScript consumers.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				// FHIR strings may not hold other control characters.
				dst = append(dst, `\ufffd`...)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', "0123456789abcdef"[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendMember appends ,"key":value (the comma only when needed).
func appendMember(dst []byte, first *bool, key string, val []byte) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendString(dst, key)
	dst = append(dst, ':')
	return append(dst, val...)
}

// appendRaw appends a scanned member unchanged.
func appendRaw(dst []byte, first *bool, m member) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = append(dst, m.rawKey...)
	dst = append(dst, ':')
	return append(dst, m.val...)
}

// appendStringMember appends ,"key":"value".
func appendStringMember(dst []byte, first *bool, key, val string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendString(dst, key)
	dst = append(dst, ':')
	return appendString(dst, val)
}
