package search

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Quantity parameters (Encounter length, Condition onset-age and
// abatement-age). A value is indexed as the range its precision implies,
// in millionths of its unit, with the unit's system and code: "5.4" covers
// [5.35, 5.45], as R4 search reads a number, and a Range from the implied
// low end of low to the high end of high (open where one is missing). The
// search value gets the same range, so the prefixes mean what they mean
// for dates (dateMatch), and _sort orders by the range like a date. Units
// are not converted: 90 min does not match 1.5 h.

const quantityScale = 1e6

// numberRange is the range a decimal's precision implies, scaled.
func numberRange(s string) (lo, hi int64, ok bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || math.Abs(v) > 9e12 {
		return 0, 0, false
	}
	digits := 0
	mant := strings.ToLower(s)
	if i := strings.IndexByte(mant, 'e'); i >= 0 {
		mant = mant[:i] // an exponent: the mantissa's digits are the precision, roughly
	}
	if _, frac, found := strings.Cut(mant, "."); found {
		digits = len(frac)
	}
	half := 0.5 * math.Pow10(-digits) * quantityScale
	return int64(math.Floor(v*quantityScale - half)), int64(math.Ceil(v*quantityScale + half)), true
}

func appendQuantity(dst []Value, v any) []Value {
	m, ok := v.(map[string]any)
	if !ok {
		return dst
	}
	low, lok := m["low"].(map[string]any)
	high, hok := m["high"].(map[string]any)
	if lok || hok { // a Range
		val := Value{Low: minTime, High: maxTime}
		unit := low
		if lok {
			if n, ok := low["value"].(json.Number); ok {
				if l, _, ok := numberRange(n.String()); ok {
					val.Low = l
				}
			}
		} else {
			unit = high
		}
		if hok {
			if n, ok := high["value"].(json.Number); ok {
				if _, h, ok := numberRange(n.String()); ok {
					val.High = h
				}
			}
		}
		if val.Low == minTime && val.High == maxTime {
			return dst
		}
		val.System, val.Code = quantityUnit(unit)
		return append(dst, val)
	}
	n, ok := m["value"].(json.Number)
	if !ok {
		return dst
	}
	lo, hi, ok := numberRange(n.String())
	if !ok {
		return dst
	}
	val := Value{Low: lo, High: hi}
	val.System, val.Code = quantityUnit(m)
	return append(dst, val)
}

// quantityUnit is the unit a quantity is searched by: its coded unit, or
// the human unit when there is no code.
func quantityUnit(m map[string]any) (system, code string) {
	if m == nil {
		return "", ""
	}
	if c := str(m, "code"); c != "" {
		return str(m, "system"), c
	}
	return "", str(m, "unit")
}

// parseQuantity parses [prefix]number[|system|code].
func (p *parser) parseQuantity(raw string) (qvalue, string) {
	parts := splitUnescaped(raw, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return qvalue{}, fmt.Sprintf("%q is not [prefix]number or [prefix]number|system|code", truncate(raw))
	}
	v := qvalue{prefix: "eq"}
	num := parts[0]
	if len(num) >= 2 && num[0] >= 'a' && num[0] <= 'z' {
		if !isPrefix(num[:2]) {
			return v, fmt.Sprintf("unknown prefix %q", truncate(num[:2]))
		}
		v.prefix, num = num[:2], num[2:]
	}
	lo, hi, ok := numberRange(num)
	if !ok || strings.ContainsAny(num, "eE") {
		return v, fmt.Sprintf("%q is not a decimal number", truncate(num))
	}
	v.lo, v.hi = lo, hi
	if v.prefix == "ap" {
		// Approximately: within 10% of the value, as the R4 search page
		// suggests, and never stricter than eq.
		mid := (lo + hi) / 2
		d := max(abs64(mid)/10, (hi-lo)/2)
		v.lo, v.hi = lo-d, hi+d
	}
	if len(parts) == 3 {
		v.system, v.code = unescape(parts[1]), unescape(parts[2])
		if v.code == "" {
			return v, fmt.Sprintf("%q names a unit system but no unit code", truncate(raw))
		}
		v.mode = tokNoSys
		if v.system != "" {
			v.mode = tokSysCode
		}
	}
	return v, ""
}

func isPrefix(s string) bool {
	for _, p := range datePrefixes {
		if p == s {
			return true
		}
	}
	return false
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func (q *qvalue) matchQuantity(x *Value) bool {
	switch q.mode {
	case tokSysCode:
		if x.System != q.system || x.Code != q.code {
			return false
		}
	case tokNoSys:
		if x.Code != q.code {
			return false
		}
	}
	return dateMatch(q.prefix, q.lo, q.hi, x.Low, x.High)
}
