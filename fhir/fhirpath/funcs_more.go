package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
)

// The FHIRPath 2.0 (STU) functions HL7's R4 suite tests that cost little:
// sort, encode/decode, escape/unescape.

func init() {
	functions["sort"] = fnDef{fSort, 0, 8}
	functions["encode"] = fnDef{strFn(fEncode), 1, 1}
	functions["decode"] = fnDef{strFn(fDecode), 1, 1}
	functions["escape"] = fnDef{strFn(fEscape), 1, 1}
	functions["unescape"] = fnDef{strFn(fUnescape), 1, 1}
}

// fSort orders by each key in turn; a key written -expr sorts descending.
// An item whose key is empty sorts first, either way.
func fSort(ev *evaluator, in []Item, args []*node) ([]Item, error) {
	type keyed struct {
		it   Item
		keys [][]Item
	}
	rows := make([]keyed, len(in))
	desc := make([]bool, len(args))
	exprs := make([]*node, len(args))
	for j, a := range args {
		exprs[j] = a
		if a.kind == nUnary && a.name == "-" {
			desc[j], exprs[j] = true, a.left
		}
	}
	for i, it := range in {
		rows[i].it = it
		if len(args) == 0 {
			rows[i].keys = [][]Item{{it}}
			desc = []bool{false}
			continue
		}
		for _, e := range exprs {
			k, err := ev.lambda(e, it, i)
			if err != nil {
				return nil, err
			}
			rows[i].keys = append(rows[i].keys, k)
		}
	}
	var sortErr error
	slices.SortStableFunc(rows, func(a, b keyed) int {
		for j := range a.keys {
			ka, kb := a.keys[j], b.keys[j]
			switch {
			case len(ka) == 0 && len(kb) == 0:
				continue
			case len(ka) == 0:
				return -1
			case len(kb) == 0:
				return 1
			}
			c, ok, err := compare(ka[0], kb[0])
			if err != nil && sortErr == nil {
				sortErr = err
			}
			if !ok || c == 0 {
				continue
			}
			if desc[j] {
				return -c
			}
			return c
		}
		return 0
	})
	if sortErr != nil {
		return nil, fmt.Errorf("sort(): %w", sortErr)
	}
	out := make([]Item, len(rows))
	for i, r := range rows {
		out[i] = r.it
	}
	return out, nil
}

func fEncode(s string, a []string) []Item {
	switch a[0] {
	case "base64":
		return []Item{{V: base64.StdEncoding.EncodeToString([]byte(s))}}
	case "urlbase64":
		return []Item{{V: base64.URLEncoding.EncodeToString([]byte(s))}}
	case "hex":
		return []Item{{V: hex.EncodeToString([]byte(s))}}
	}
	return nil
}

func fDecode(s string, a []string) []Item {
	var b []byte
	var err error
	switch a[0] {
	case "base64":
		b, err = base64.StdEncoding.DecodeString(s)
	case "urlbase64":
		b, err = base64.URLEncoding.DecodeString(s)
	case "hex":
		b, err = hex.DecodeString(s)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return []Item{{V: string(b)}}
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func fEscape(s string, a []string) []Item {
	switch a[0] {
	case "html":
		return []Item{{V: htmlEscaper.Replace(s)}}
	case "json":
		q := strconv.Quote(s)
		return []Item{{V: q[1 : len(q)-1]}}
	}
	return nil
}

func fUnescape(s string, a []string) []Item {
	switch a[0] {
	case "html":
		return []Item{{V: html.UnescapeString(s)}}
	case "json":
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] != '\\' || i+1 == len(s) {
				b.WriteByte(s[i])
				continue
			}
			next, ok := unescapeAt(&b, s, i+1)
			if !ok {
				// A \u without four hex digits is kept as "u".
				b.WriteByte(s[i+1])
			}
			i = next
		}
		return []Item{{V: b.String()}}
	}
	return nil
}
