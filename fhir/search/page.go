package search

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Candidate is a matched resource waiting to be sorted and paged. Body is
// carried along for the caller (the stored JSON); sorting reads Index only.
type Candidate struct {
	Index *Index
	Body  []byte
}

// Paging is keyset paging: a cursor is the sort key and id of the entry a
// page ended (or began) at, not an offset, so pages neither skip nor repeat
// entries when others are added or deleted between requests. With the
// default order (_lastUpdated ascending, then id) a resource created or
// updated while a client pages gets the newest lastUpdated and so appears
// after every entry already served: a client paging forward sees it at
// the end (an updated resource may then be seen in both versions, which is
// correct, not a repeat of one version). With other orders an entry added
// before the cursor position is not shown on later pages, and one added
// after it is, exactly once. Nothing already served is shown again and
// nothing that existed when paging began is skipped unless it was deleted
// or its own sort key changed.

const cursorFormat = 1

type sortVal struct {
	present bool
	n       int64
	s       string
}

type cursor struct {
	prev bool // the page ends before this position
	keys []sortVal
	id   string
}

var errCursor = errors.New("search: invalid cursor")

func (q *Query) sortKeys() []SortKey {
	if len(q.SortBy) == 0 {
		return []SortKey{{Param: "_lastUpdated"}}
	}
	return q.SortBy
}

func (q *Query) sortSignature() uint32 {
	h := fnv.New32a()
	h.Write([]byte(q.Type))
	for _, k := range q.sortKeys() {
		if k.Desc {
			h.Write([]byte{'-'})
		}
		h.Write([]byte(k.Param))
		h.Write([]byte{','})
	}
	return h.Sum32()
}

func (q *Query) keysOf(idx *Index) []sortVal {
	return q.keysWith(q.sortTypes(), idx)
}

// sortTypes is the parameter type of each sort key, looked up once per
// sort rather than once per candidate; "" is a range, a date (the
// default _lastUpdated) or a quantity, and "id" the resource id.
func (q *Query) sortTypes() []string {
	sk := q.sortKeys()
	out := make([]string, len(sk))
	for i, k := range sk {
		switch {
		case k.Param == "_id":
			out[i] = "id"
		case k.Param == lastUpdatedParam || q.reg == nil:
		default:
			if p := q.reg.param(q.Type, k.Param); p != nil && p.Type != "date" && p.Type != "quantity" {
				out[i] = p.Type
			}
		}
	}
	return out
}

// maxSortText bounds the text of one sort key, so that a cursor stays
// short whatever the data holds. Every comparison uses the bounded key,
// so values that differ only after it are ordered by id, consistently on
// every page.
const maxSortText = 64

func (q *Query) keysWith(types []string, idx *Index) []sortVal {
	sk := q.sortKeys()
	out := make([]sortVal, len(sk))
	for i, k := range sk {
		switch types[i] {
		case "id":
			out[i] = sortVal{present: true, s: idx.ID}
			continue
		case "":
		default:
			if s, ok := textSortKey(types[i], idx.Values(k.Param)); ok {
				out[i] = sortVal{present: true, s: s}
			}
			continue
		}
		vals := idx.Values(k.Param)
		if len(vals) == 0 {
			continue
		}
		// Ascending orders by the earliest instant a value covers,
		// descending by the latest, so an ongoing Period sorts as most
		// recent.
		n := int64(math.MaxInt64)
		if k.Desc {
			n = math.MinInt64
		}
		for _, v := range vals {
			if k.Desc {
				n = max(n, v.High)
			} else {
				n = min(n, v.Low)
			}
		}
		out[i] = sortVal{present: true, n: n}
	}
	return out
}

// textSortKey is the sort key of a string, token, reference or uri
// parameter: its first value in the element's order (for a name, the
// family name of the first HumanName), the same in both directions, as
// the order a reader sees in the resource:
//
//	string:    the folded text, so case and accents do not decide the order
//	token:     the code, then the system (codes of different systems
//	           interleave by code; text-only values are skipped)
//	reference: the reference as indexed ("Type/id" or the literal URL)
//	uri:       the uri as stored
//
// A resource without such a value has no key and sorts last.
func textSortKey(typ string, vals []Value) (string, bool) {
	for i := range vals {
		v := &vals[i]
		var s string
		switch typ {
		case "string":
			s = v.Text
		case "token":
			if v.Code != "" {
				s = v.Code + "\x00" + v.System
			}
		case "reference", "uri":
			s = v.Ref
		}
		if s != "" {
			return truncateKey(s), true
		}
	}
	return "", false
}

func truncateKey(s string) string {
	if len(s) <= maxSortText {
		return s
	}
	i := maxSortText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// compareKeys orders two positions; missing values sort last in either
// direction, and the id breaks ties so the order is total.
func (q *Query) compareKeys(a []sortVal, aid string, b []sortVal, bid string) int {
	for i, k := range q.sortKeys() {
		x, y := a[i], b[i]
		if x.present != y.present {
			if x.present {
				return -1
			}
			return 1
		}
		if !x.present {
			continue
		}
		c := strings.Compare(x.s, y.s)
		if x.n != y.n {
			c = -1
			if x.n > y.n {
				c = 1
			}
		}
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(aid, bid)
}

type keyed struct {
	c    Candidate
	keys []sortVal
}

func (q *Query) keyed(cs []Candidate) []keyed {
	ks := make([]keyed, len(cs))
	types := q.sortTypes()
	for i, c := range cs {
		ks[i] = keyed{c, q.keysWith(types, c.Index)}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return q.compareKeys(a.keys, a.c.Index.ID, b.keys, b.c.Index.ID)
	})
	return ks
}

// Sort orders candidates by the query's _sort (default _lastUpdated), ties
// broken by id, in place.
func (q *Query) Sort(cs []Candidate) {
	for i, k := range q.keyed(cs) {
		cs[i] = k.c
	}
}

// CursorAfter returns the cursor of the position just after idx, for a
// next link.
func (q *Query) CursorAfter(idx *Index) string {
	return q.encodeCursor(cursor{keys: q.keysOf(idx), id: idx.ID})
}

// After keeps the candidates that come after the cursor in sort order
// (from CursorAfter or a next link), sorted.
func (q *Query) After(cs []Candidate, c string) ([]Candidate, error) {
	cur, err := q.decodeCursor(c)
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for _, k := range q.keyed(cs) {
		if q.compareKeys(k.keys, k.c.Index.ID, cur.keys, cur.id) > 0 {
			out = append(out, k.c)
		}
	}
	return out, nil
}

// Page sorts the matched candidates and cuts the page the query's _cursor
// and _count select. next and prev are cursors for the next and previous
// links ("" when there is no such page); put them in a link as _cursor
// next to Values().
func (q *Query) Page(matches []Candidate) (page []Candidate, next, prev string) {
	ks := q.keyed(matches)
	start, end := 0, len(ks)
	if c := q.cursor; c != nil {
		pos, _ := slices.BinarySearchFunc(ks, c, func(k keyed, c *cursor) int {
			if r := q.compareKeys(k.keys, k.c.Index.ID, c.keys, c.id); r != 0 {
				return r
			}
			if c.prev {
				return 0
			}
			return -1 // the cursor's own entry was served: start after it
		})
		if c.prev {
			end = pos
			start = max(0, end-q.Count)
		} else {
			start = pos
		}
	}
	end = min(end, start+q.Count)
	if q.Count == 0 {
		return nil, "", ""
	}
	for _, k := range ks[start:end] {
		page = append(page, k.c)
	}
	if end < len(ks) && len(page) > 0 {
		last := ks[end-1]
		next = q.encodeCursor(cursor{keys: last.keys, id: last.c.Index.ID})
	}
	if start > 0 {
		if len(page) > 0 {
			first := ks[start]
			prev = q.encodeCursor(cursor{prev: true, keys: first.keys, id: first.c.Index.ID})
		} else if q.cursor != nil {
			c := *q.cursor
			c.prev = true
			prev = q.encodeCursor(c)
		}
	}
	return page, next, prev
}

func (q *Query) encodeCursor(c cursor) string {
	b := make([]byte, 0, 64)
	b = append(b, cursorFormat)
	if c.prev {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, q.sortSignature())
	b = binary.AppendUvarint(b, uint64(len(c.keys)))
	for _, k := range c.keys {
		if !k.present {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendVarint(b, k.n)
		b = appendStr(b, k.s)
	}
	b = appendStr(b, c.id)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor checks a cursor against the query: the signature of the
// sort order must match and it must hold one key per sort key, so a forged
// cursor is refused rather than compared out of range.
func (q *Query) decodeCursor(s string) (*cursor, error) {
	sig, nkeys := q.sortSignature(), len(q.sortKeys())
	if len(s) > 512 {
		return nil, errCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 6 || raw[0] != cursorFormat || raw[1] > 1 {
		return nil, errCursor
	}
	if binary.BigEndian.Uint32(raw[2:6]) != sig {
		return nil, errCursor
	}
	d := plainDecoder(raw[6:])
	c := &cursor{prev: raw[1] == 1}
	n := d.count(1)
	for range n {
		switch d.byte() {
		case 0:
			c.keys = append(c.keys, sortVal{})
		case 1:
			c.keys = append(c.keys, sortVal{present: true, n: d.varint(), s: d.str()})
		default:
			return nil, errCursor
		}
	}
	c.id = d.str()
	if d.err || d.i != len(d.b) || !isID(c.id) || len(c.keys) != nkeys {
		return nil, errCursor
	}
	return c, nil
}
