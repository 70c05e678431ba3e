package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
)

// The hash chain.
//
// Each stored AuditEvent carries, as the first element of its root
// "extension" array, the link
//
//	{"url":ExtChain,"extension":[{"url":"previous","valueString":<hex>},{"url":"hash","valueString":<hex>}]}
//
// (no "previous" in the first record) where
//
//	hash = hex(SHA-256(previous hash, 32 raw bytes; nothing for the first record || event bytes))
//
// and the event bytes are the stored JSON with exactly that element cut
// out: the bytes as handed to Link. The canonical form is therefore the
// stored form itself, which both storage engines keep verbatim; nothing is
// re-serialised, so no JSON library's key order or number format can break
// the chain. An event with no root extension gets the link appended as the
// last member (",\"extension\":[link]}").
//
// A record in the compact form (compact.go) keeps its link as a raw
// trailer under the same hash rule; the event rendered from one of
// version 3 carries only "hash", as that version stores no previous hash.
//
// The chain lives in the extension rather than meta.tag or meta.security:
// those are labels about the resource that servers may add to or strip,
// while the link is part of the record's content.

// Link is the pure step of the chain: it returns event with the link to
// prev embedded, and the new hash. prev is the previous record's hash (hex),
// "" for the first record. It is a pure function so that a store's render
// step, which may run more than once when a commit is retried, can call it
// safely.
func Link(prev string, event []byte) (withHash []byte, hash string, err error) {
	prevRaw, err := decodeHash(prev)
	if err != nil {
		return nil, "", err
	}
	if IsCompact(event) {
		// Not decoded here: that would inflate the record once more on
		// the write path. A damaged or doubly linked record fails
		// Render and Verify, which decode it whole.
		withHash, hash = linkCompact(prevRaw, event)
		return withHash, hash, nil
	}
	loc, err := locate(event)
	if err != nil {
		return nil, "", err
	}
	if loc.chainStart >= 0 {
		return nil, "", errors.New("audit: the event already carries a chain link")
	}
	sum := digest(prevRaw, event)
	hash = hex.EncodeToString(sum[:])
	return insertLink(event, loc, prev, hash), hash, nil
}

// Chain holds the head of the hash chain for the one appender of a log.
//
// It is not safe for concurrent use, by design: the order in which Next is
// called must be the order in which records are stored, so the appender
// (the store's committer, which already serialises group commits) must
// call Next under the same lock or on the same goroutine that fixes the
// storage order. When a batch fails to commit, the appender rewinds with
// Reset(head saved before the batch); a store whose render step may be
// retried should use Link with a saved head instead of Next.
type Chain struct {
	head string
}

// NewChain resumes a chain after the record whose hash is head ("" for an
// empty log). The store reads head from its last record on start.
func NewChain(head string) *Chain { return &Chain{head: head} }

// Head is the hash of the last record appended.
func (c *Chain) Head() string { return c.head }

// Reset sets the head, to rewind after a failed commit.
func (c *Chain) Reset(head string) { c.head = head }

// Next links event to the chain and advances the head. On error the head
// is unchanged.
func (c *Chain) Next(event []byte) (withHash []byte, hash string, err error) {
	withHash, hash, err = Link(c.head, event)
	if err == nil {
		c.head = hash
	}
	return withHash, hash, err
}

// BrokenLinkError names the first record at which the chain breaks.
type BrokenLinkError struct {
	Index int    // position as given by the iterator
	ID    string // the AuditEvent id, if it could be read
	// Problem says what is wrong: "previous" (the record does not follow
	// the one before it: one was removed, inserted or reordered), "hash"
	// (the record's content does not match its hash: it was altered),
	// "hash or previous" (either, for a compact record of version 3,
	// which keeps no previous hash to tell them apart) or "format" (no
	// readable link).
	Problem  string
	Expected string
	Found    string
}

func (e *BrokenLinkError) Error() string {
	switch e.Problem {
	case "previous":
		return fmt.Sprintf("audit chain broken at record %d (AuditEvent/%s): it links to previous hash %q, but the record before it has hash %q: a record was removed, inserted or reordered before it", e.Index, e.ID, e.Found, e.Expected)
	case "hash":
		return fmt.Sprintf("audit chain broken at record %d (AuditEvent/%s): stored hash %q, but the content hashes to %q: the record was altered", e.Index, e.ID, e.Found, e.Expected)
	case "hash or previous":
		return fmt.Sprintf("audit chain broken at record %d (AuditEvent/%s): stored hash %q, but the content after the record before it hashes to %q: the record was altered, or a record before it was removed, inserted or reordered (its stored form keeps no previous hash to tell which)", e.Index, e.ID, e.Found, e.Expected)
	}
	return fmt.Sprintf("audit chain broken at record %d (AuditEvent/%s): %s", e.Index, e.ID, e.Found)
}

// Verify checks a whole log from its first record, in storage order.
func Verify(events iter.Seq2[int, []byte]) error {
	_, err := VerifyFrom("", events)
	return err
}

// VerifyFrom checks a log segment that follows the record with hash prev
// and returns the hash of its last record. Compare head with the head the
// store keeps elsewhere to detect records cut off at the end, which no
// chain can reveal on its own.
func VerifyFrom(prev string, events iter.Seq2[int, []byte]) (head string, err error) {
	if _, err := decodeHash(prev); err != nil {
		return "", err
	}
	head = prev
	for i, ev := range events {
		// Records of both stored forms may follow each other: a store
		// written before the compact form goes on in it.
		var l link
		var err error
		if IsCompact(ev) {
			_, _, l, err = readCompactLink(ev)
		} else {
			l, err = readLink(ev)
		}
		if err != nil {
			return head, &BrokenLinkError{Index: i, ID: storedID(ev), Problem: "format", Found: err.Error()}
		}
		if !l.prevUnknown && l.prev != head {
			return head, &BrokenLinkError{Index: i, ID: storedID(ev), Problem: "previous", Expected: head, Found: l.prev}
		}
		prevRaw, _ := decodeHash(head)
		sum := digest(prevRaw, l.canonical)
		want := hex.EncodeToString(sum[:])
		if want != l.hash {
			problem := "hash"
			if l.prevUnknown {
				problem = "hash or previous"
			}
			return head, &BrokenLinkError{Index: i, ID: storedID(ev), Problem: problem, Expected: want, Found: l.hash}
		}
		// The link itself must be exactly what Link writes, so that nothing
		// can hide in it (whitespace, extra members, a second link).
		relinked, _, err := Link(head, l.canonical)
		if err != nil || !bytes.Equal(relinked, ev) {
			return head, &BrokenLinkError{Index: i, ID: storedID(ev), Problem: "format", Found: "the chain link is not in its canonical form"}
		}
		head = l.hash
	}
	return head, nil
}

func decodeHash(h string) ([]byte, error) {
	if h == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("audit: %q is not a SHA-256 hash in hex", h)
	}
	return b, nil
}

func digest(prev, event []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(event)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func appendLink(b []byte, prev, hash string) []byte {
	b = append(b, `{"url":"`+ExtChain+`","extension":[`...)
	if prev != "" {
		b = append(b, `{"url":"previous","valueString":"`...)
		b = append(b, prev...)
		b = append(b, `"},`...)
	}
	b = append(b, `{"url":"hash","valueString":"`...)
	b = append(b, hash...)
	return append(b, `"}]}`...)
}

// location is where the root members of an event are.
type location struct {
	close      int // index of the closing '}'
	extArray   int // index of '[' of the root "extension", -1 if none
	extEnd     int // index after its ']'
	extKey     int // index of the '"' starting the "extension" key
	chainStart int // start of a chain link as first extension element, -1 if none
	chainEnd   int
}

func insertLink(event []byte, loc location, prev, hash string) []byte {
	out := make([]byte, 0, len(event)+len(ExtChain)+200)
	if loc.extArray >= 0 {
		out = append(out, event[:loc.extArray+1]...)
		out = appendLink(out, prev, hash)
		out = append(out, ',')
		return append(out, event[loc.extArray+1:]...)
	}
	out = append(out, event[:loc.close]...)
	out = append(out, `,"extension":[`...)
	out = appendLink(out, prev, hash)
	out = append(out, ']')
	return append(out, event[loc.close:]...)
}

type link struct {
	prev, hash string
	canonical  []byte
	// prevUnknown: the record does not store the previous hash (compact
	// version 3); only its own hash, which covers it, tells whether it
	// follows the record before.
	prevUnknown bool
}

// readLink finds the chain link in a stored event and cuts it out.
func readLink(ev []byte) (link, error) {
	loc, err := locate(ev)
	if err != nil {
		return link{}, err
	}
	if loc.chainStart < 0 {
		return link{}, errors.New("no chain link")
	}
	var ext struct {
		URL       string `json:"url"`
		Extension []struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	}
	if err := json.Unmarshal(ev[loc.chainStart:loc.chainEnd], &ext); err != nil {
		return link{}, fmt.Errorf("unreadable chain link: %v", err)
	}
	var l link
	for _, x := range ext.Extension {
		switch x.URL {
		case "previous":
			l.prev = x.ValueString
		case "hash":
			l.hash = x.ValueString
		}
	}
	if l.hash == "" {
		return link{}, errors.New("chain link without hash")
	}
	canon := make([]byte, 0, len(ev))
	rest := loc.chainEnd
	if rest < len(ev) && ev[rest] == ',' {
		// Other extensions follow the link: cut the link and its comma.
		canon = append(canon, ev[:loc.chainStart]...)
		canon = append(canon, ev[rest+1:]...)
	} else {
		// The link was the only extension: cut the whole member and the
		// comma before it.
		start := loc.extKey
		for start > 0 && ev[start-1] != ',' {
			start--
		}
		if start > 0 {
			start--
		}
		canon = append(canon, ev[:start]...)
		canon = append(canon, ev[loc.extEnd:]...)
	}
	l.canonical = canon
	return l, nil
}

var chainURLPrefix = []byte(`{"url":"` + ExtChain + `"`)

// locate scans the root object's members without decoding them.
func locate(b []byte) (location, error) {
	loc := location{extArray: -1, chainStart: -1}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return loc, errors.New("audit: the event is not a JSON object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return loc, errors.New("audit: the event is an empty object")
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return loc, errors.New("audit: malformed JSON object")
		}
		keyStart := i
		end, err := skipString(b, i)
		if err != nil {
			return loc, err
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return loc, errors.New("audit: malformed JSON object")
		}
		i = skipWS(b, i+1)
		vStart := i
		i, err = skipValue(b, i, 0)
		if err != nil {
			return loc, err
		}
		if string(key) == "extension" {
			if loc.extArray >= 0 || b[vStart] != '[' {
				return loc, errors.New("audit: the root extension is not one array")
			}
			loc.extArray, loc.extEnd, loc.extKey = vStart, i, keyStart
			j := skipWS(b, vStart+1)
			if j < len(b) && b[j] == ']' {
				return loc, errors.New("audit: empty extension array")
			}
			if bytes.HasPrefix(b[j:], chainURLPrefix) {
				e, err := skipValue(b, j, 0)
				if err != nil {
					return loc, err
				}
				loc.chainStart, loc.chainEnd = j, e
			}
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return loc, errors.New("audit: truncated JSON object")
		}
		if b[i] == '}' {
			loc.close = i
			if skipWS(b, i+1) != len(b) {
				return loc, errors.New("audit: data after the JSON object")
			}
			return loc, nil
		}
		if b[i] != ',' {
			return loc, errors.New("audit: malformed JSON object")
		}
		i = skipWS(b, i+1)
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for i++; i <= len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			break
		}
		q += i
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		i = q + 1
	}
	return 0, errors.New("audit: unterminated string")
}

// skipValue returns the index after the JSON value starting at b[i]. It
// checks structure, not every literal: the full parse happens on read.
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > 64 {
		return 0, errors.New("audit: JSON nested too deeply")
	}
	if i >= len(b) {
		return 0, errors.New("audit: truncated JSON")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		obj := b[i] == '{'
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			var err error
			if obj {
				if i >= len(b) || b[i] != '"' {
					return 0, errors.New("audit: malformed JSON object")
				}
				if i, err = skipString(b, i); err != nil {
					return 0, err
				}
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, errors.New("audit: malformed JSON object")
				}
				i = skipWS(b, i+1)
			}
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, errors.New("audit: truncated JSON")
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errors.New("audit: malformed JSON")
			}
			i = skipWS(b, i+1)
		}
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, errors.New("audit: malformed JSON value")
		}
		return j, nil
	}
}

// EventID reads a stored AuditEvent's id ("" when it has none), for error
// messages and for the fullUrl of search entries.
func EventID(ev []byte) string {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(ev, &head)
	return head.ID
}
