package search

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/fhirpath"
)

// Index holds the search values of one resource version, extracted once
// (at write time, or from the stored JSON when an engine kept no index).
// It is what Match, Sort and the cursor helpers read; they never look at
// the resource JSON again.
type Index struct {
	Type    string  `json:"type"`
	ID      string  `json:"id"`
	Entries []Entry `json:"entries,omitempty"` // sorted by Param, no empty ones
}

// Entry is the values of one parameter.
type Entry struct {
	Param  string  `json:"p"`
	Values []Value `json:"v"`
}

// Value is one indexed value. Which fields are set depends on the
// parameter's type:
//
//	token:     System, Code (a code, Coding, Identifier value, id, boolean),
//	           Text (folded Coding.display, CodeableConcept.text or
//	           Identifier.type.text, for :text), Raw (an Identifier's type
//	           coding as system|code, one value per coding, for :of-type)
//	date:      Low, High (inclusive range in microseconds since the epoch,
//	           UTC; open Period ends are the int64 extremes)
//	reference: Ref ("Type/id", or the literal reference when it is not one),
//	           System, Code (Reference.identifier, for :identifier)
//	string:    Text (Fold of the value), Raw (the value as stored, for :exact)
//	uri:       Ref (the uri or canonical as stored)
//	quantity:  Low, High (the range the value's precision implies, in
//	           millionths of the unit; quantity.go), System, Code (the unit)
type Value struct {
	System string `json:"s,omitempty"`
	Code   string `json:"c,omitempty"`
	Text   string `json:"t,omitempty"`
	Raw    string `json:"r,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Low    int64  `json:"lo,omitempty"`
	High   int64  `json:"hi,omitempty"`
}

// Values returns the values indexed for a parameter.
func (x *Index) Values(param string) []Value {
	for i := range x.Entries {
		if x.Entries[i].Param == param {
			return x.Entries[i].Values
		}
	}
	return nil
}

// Extract computes the index of a resource from its JSON (as stored, with
// meta.lastUpdated). Values that do not parse (a malformed date in data
// that bypassed validation) are left out rather than failing the write:
// they cannot match a search, which is the safe outcome.
func (r *Registry) Extract(resourceType string, resourceJSON []byte) (Index, error) {
	// DecodeJSON is encoding/json with UseNumber, faster: this is on
	// every write.
	root, err := fhirpath.DecodeJSON(resourceJSON)
	if err != nil {
		return Index{}, fmt.Errorf("search: extract: %w", err)
	}
	return r.ExtractDecoded(resourceType, root)
}

// ExtractDecoded is Extract of a resource already decoded with
// fhirpath.DecodeJSON, for a caller that reads the same JSON for more
// than its index (the write path: its identifiers too). It does not
// change root.
func (r *Registry) ExtractDecoded(resourceType string, root map[string]any) (Index, error) {
	if rt, _ := root["resourceType"].(string); rt != resourceType {
		return Index{}, fmt.Errorf("search: extract: resourceType %q, want %q", rt, resourceType)
	}
	ps, ok := r.byType[resourceType]
	if !ok {
		return Index{}, fmt.Errorf("search: extract: %q is not a served type", resourceType)
	}
	x := Index{Type: resourceType}
	x.ID, _ = root["id"].(string)
	var nodes []node
	for _, p := range ps { // sorted by name, so Entries are too
		nodes = nodes[:0]
		for i := range p.paths {
			nodes = p.paths[i].eval(root, nodes)
		}
		var vals []Value
		for _, n := range nodes {
			vals = appendValues(vals, p.Type, n)
		}
		if len(vals) > 0 {
			x.Entries = append(x.Entries, Entry{Param: p.Name, Values: dedup(vals)})
		}
	}
	return x, nil
}

// lastUpdatedParam is the parameter whose value is meta.lastUpdated.
const lastUpdatedParam = "_lastUpdated"

// SetLastUpdated sets the _lastUpdated values to t, exactly as Extract
// reads them from the meta.lastUpdated that fhir.WithMeta writes for t.
//
// An index extracted at write time comes from the JSON before the store
// has assigned the version's time (the store stamps meta inside its
// commit), so it has no _lastUpdated; the reader adds it from the stored
// version (store.Version.LastUpdated) before matching and sorting. On an
// index that has the value already, it is replaced.
func (x *Index) SetLastUpdated(t time.Time) {
	lo, hi, err := parseDateRange(fhir.FormatInstant(t))
	if err != nil {
		return // a year outside 1..9999: no FHIR instant either
	}
	e := Entry{Param: lastUpdatedParam, Values: []Value{{Low: lo, High: hi}}}
	i, found := slices.BinarySearchFunc(x.Entries, lastUpdatedParam, func(e Entry, p string) int { return strings.Compare(e.Param, p) })
	if found {
		x.Entries[i] = e
		return
	}
	x.Entries = slices.Insert(x.Entries, i, e)
}

func dedup(vs []Value) []Value {
	if len(vs) < 2 {
		return vs
	}
	out := vs[:1]
	for _, v := range vs[1:] {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func appendValues(dst []Value, typ string, n node) []Value {
	switch typ {
	case "token":
		return appendToken(dst, n.v)
	case "date":
		return appendDate(dst, n)
	case "reference":
		return appendRef(dst, n.v)
	case "string":
		return appendString(dst, n.v)
	case "quantity":
		return appendQuantity(dst, n.v)
	case "uri":
		if u, ok := n.v.(string); ok && u != "" {
			return append(dst, Value{Ref: u})
		}
	}
	return dst
}

func appendToken(dst []Value, v any) []Value {
	switch v := v.(type) {
	case string:
		return append(dst, Value{Code: v})
	case bool:
		return append(dst, Value{Code: strconv.FormatBool(v)})
	case json.Number:
		return append(dst, Value{Code: v.String()})
	case map[string]any:
		if _, isIdentifier := v["value"]; isIdentifier {
			val := Value{System: str(v, "system"), Code: str(v, "value")}
			t, _ := v["type"].(map[string]any)
			if t != nil {
				val.Text = Fold(str(t, "text"))
			}
			// One value per coding of Identifier.type, the coding in Raw
			// as system|code, for :of-type; an untyped identifier is one
			// value without Raw.
			typed := false
			codings, _ := t["coding"].([]any)
			for _, c := range codings {
				if cm, ok := c.(map[string]any); ok && str(cm, "code") != "" {
					tv := val
					tv.Raw = str(cm, "system") + "|" + str(cm, "code")
					dst = append(dst, tv)
					typed = true
				}
			}
			if !typed {
				dst = append(dst, val)
			}
			return dst
		}
		coding, isConcept := v["coding"].([]any)
		if _, hasText := v["text"]; isConcept || hasText {
			for _, c := range coding {
				if cm, ok := c.(map[string]any); ok {
					dst = appendCoding(dst, cm)
				}
			}
			if t := str(v, "text"); t != "" {
				dst = append(dst, Value{Text: Fold(t)})
			}
			return dst
		}
		return appendCoding(dst, v)
	}
	return dst
}

func appendCoding(dst []Value, c map[string]any) []Value {
	code, sys := str(c, "code"), str(c, "system")
	disp := Fold(str(c, "display"))
	if code == "" && sys == "" && disp == "" {
		return dst
	}
	return append(dst, Value{System: sys, Code: code, Text: disp})
}

func appendDate(dst []Value, n node) []Value {
	switch v := n.v.(type) {
	case string:
		lo, hi, err := parseDateRange(v)
		if err != nil {
			return dst
		}
		return append(dst, Value{Low: lo, High: hi})
	case map[string]any:
		// A Period: an absent start or end is open (the spec reads a
		// missing end as "ongoing").
		lo, hi := minTime, maxTime
		if s := str(v, "start"); s != "" {
			l, _, err := parseDateRange(s)
			if err != nil {
				return dst
			}
			lo = l
		}
		if e := str(v, "end"); e != "" {
			_, h, err := parseDateRange(e)
			if err != nil {
				return dst
			}
			hi = h
		}
		if lo == minTime && hi == maxTime {
			return dst
		}
		return append(dst, Value{Low: lo, High: hi})
	}
	return dst
}

func appendRef(dst []Value, v any) []Value {
	switch v := v.(type) {
	case string: // canonical or uri
		return append(dst, Value{Ref: v})
	case map[string]any:
		val := Value{Ref: normaliseRef(str(v, "reference"))}
		if id, ok := v["identifier"].(map[string]any); ok {
			val.System, val.Code = str(id, "system"), str(id, "value")
		}
		if val.Ref == "" && val.Code == "" {
			return dst
		}
		return append(dst, val)
	}
	return dst
}

func normaliseRef(s string) string {
	if t, id, ok := splitRef(s); ok {
		return t + "/" + id
	}
	return s
}

// stringSkip are the members of complex types (HumanName, Address) that are
// not text a person would search for.
var stringSkip = []string{"use", "type", "period", "id", "extension"}

func appendString(dst []Value, v any) []Value {
	switch v := v.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return dst
		}
		return append(dst, Value{Text: Fold(v), Raw: v})
	case []any:
		for _, e := range v {
			dst = appendString(dst, e)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			if !slices.Contains(stringSkip, k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys) // map order is random; the index must not be
		for _, k := range keys {
			switch e := v[k].(type) {
			case string, []any:
				dst = appendString(dst, e)
			}
		}
	}
	return dst
}
