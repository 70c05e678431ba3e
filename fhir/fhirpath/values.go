package fhirpath

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Item is one element of a FHIRPath collection. A FHIR node keeps its
// JSON value (map[string]any, string, json.Number or float64, bool) with
// its FHIR type name in T and, for a primitive, the members of its "_name"
// sibling in Ext; a System value (a literal or a computed one) has T ""
// and V one of bool, int64, float64 (Decimal), string, DT, Quantity.
type Item struct {
	V   any
	Ext map[string]any
	T   string
}

// DT is a System Date, DateTime or Time with the precision it was given.
type DT struct {
	Kind  byte // 'D' date, 'T' dateTime, 't' time
	Prec  int8 // 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second, 7 millisecond
	Y     int
	M, D  int8
	H, Mi int8
	S     int8
	Ms    int16
	HasTZ bool
	TZ    int16 // offset in minutes
}

// Quantity is a System Quantity: a decimal with a UCUM or calendar unit.
type Quantity struct {
	Value float64
	Unit  string
}

// parseDT reads a FHIR date, dateTime, instant or time (without '@').
func parseDT(s string, kind byte) (DT, bool) {
	var d DT
	d.Kind = kind
	if kind == 't' {
		return parseTime(s, d)
	}
	if len(s) < 4 || !digits(s[:4]) {
		return d, false
	}
	d.Y, _ = strconv.Atoi(s[:4])
	d.Prec = 1
	s = s[4:]
	if len(s) >= 3 && s[0] == '-' && digits(s[1:3]) {
		d.M = int8(atoi(s[1:3]))
		d.Prec = 2
		s = s[3:]
		if len(s) >= 3 && s[0] == '-' && digits(s[1:3]) {
			d.D = int8(atoi(s[1:3]))
			d.Prec = 3
			s = s[3:]
		}
	}
	if s == "" {
		return d, true
	}
	if s[0] != 'T' {
		return d, false
	}
	d.Kind = 'T'
	if s == "T" {
		return d, true
	}
	t, ok := parseTime(s[1:], d)
	t.Kind = 'T'
	return t, ok
}

func parseTime(s string, d DT) (DT, bool) {
	if len(s) < 2 || !digits(s[:2]) {
		return d, false
	}
	d.H = int8(atoi(s[:2]))
	d.Prec = 4
	s = s[2:]
	if len(s) >= 3 && s[0] == ':' && digits(s[1:3]) {
		d.Mi = int8(atoi(s[1:3]))
		d.Prec = 5
		s = s[3:]
		if len(s) >= 3 && s[0] == ':' && digits(s[1:3]) {
			d.S = int8(atoi(s[1:3]))
			d.Prec = 6
			s = s[3:]
			if len(s) >= 2 && s[0] == '.' {
				i := 1
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					i++
				}
				if i == 1 {
					return d, false
				}
				frac := s[1:i] + "00"
				d.Ms = int16(atoi(frac[:3]))
				d.Prec = 7
				s = s[i:]
			}
		}
	}
	if s == "" {
		return d, true
	}
	if d.Kind == 't' {
		return d, false
	}
	if s == "Z" {
		d.HasTZ = true
		return d, true
	}
	if len(s) == 6 && (s[0] == '+' || s[0] == '-') && digits(s[1:3]) && s[3] == ':' && digits(s[4:6]) {
		d.HasTZ = true
		d.TZ = int16(atoi(s[1:3])*60 + atoi(s[4:6]))
		if s[0] == '-' {
			d.TZ = -d.TZ
		}
		return d, true
	}
	return d, false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (d DT) String() string {
	var b strings.Builder
	if d.Kind != 't' {
		fmt.Fprintf(&b, "%04d", d.Y)
		if d.Prec >= 2 {
			fmt.Fprintf(&b, "-%02d", d.M)
		}
		if d.Prec >= 3 {
			fmt.Fprintf(&b, "-%02d", d.D)
		}
		if d.Kind == 'D' || d.Prec <= 3 {
			if d.Kind == 'T' && d.Prec <= 3 {
				b.WriteString("T")
			}
			return b.String()
		}
		b.WriteString("T")
	}
	fmt.Fprintf(&b, "%02d", d.H)
	if d.Prec >= 5 {
		fmt.Fprintf(&b, ":%02d", d.Mi)
	}
	if d.Prec >= 6 {
		fmt.Fprintf(&b, ":%02d", d.S)
	}
	if d.Prec >= 7 {
		fmt.Fprintf(&b, ".%03d", d.Ms)
	}
	if d.HasTZ {
		if d.TZ == 0 {
			b.WriteString("Z")
		} else {
			tz, sign := d.TZ, '+'
			if tz < 0 {
				tz, sign = -tz, '-'
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, tz/60, tz%60)
		}
	}
	return b.String()
}

// time converts to a time.Time in UTC (zone-less values as if UTC).
func (d DT) time() time.Time {
	m, day := int(d.M), int(d.D)
	if m == 0 {
		m = 1
	}
	if day == 0 {
		day = 1
	}
	t := time.Date(d.Y, time.Month(m), day, int(d.H), int(d.Mi), int(d.S), int(d.Ms)*1e6, time.UTC)
	if d.HasTZ {
		t = t.Add(-time.Duration(d.TZ) * time.Minute)
	}
	return t
}

// fromTime makes a DT of t (UTC) keeping d's kind, precision and zone.
func (d DT) fromTime(t time.Time) DT {
	if d.HasTZ {
		t = t.Add(time.Duration(d.TZ) * time.Minute)
	}
	r := d
	r.Y, r.M, r.D = t.Year(), int8(t.Month()), int8(t.Day())
	r.H, r.Mi, r.S, r.Ms = int8(t.Hour()), int8(t.Minute()), int8(t.Second()), int16(t.Nanosecond()/1e6)
	return r
}

// fields lists the components in order; seconds and milliseconds count as
// one precision (a decimal number of seconds), as FHIRPath compares them.
func (d DT) fields() [6]int {
	if d.Kind == 't' {
		return [6]int{0, 0, 0, int(d.H), int(d.Mi), int(d.S)*1000 + int(d.Ms)}
	}
	return [6]int{d.Y, int(d.M), int(d.D), int(d.H), int(d.Mi), int(d.S)*1000 + int(d.Ms)}
}

func (d DT) level() int {
	if d.Prec >= 6 {
		return 6
	}
	return int(d.Prec)
}

// compareDT returns -1, 0, 1, or ok false when the precisions differ and
// the common part is equal (the answer is then unknown).
func compareDT(a, b DT) (int, bool) {
	if (a.Kind == 't') != (b.Kind == 't') {
		return 0, false
	}
	// With and without a time zone, the order of two times is unknown.
	if a.HasTZ != b.HasTZ && a.Prec >= 4 && b.Prec >= 4 {
		return 0, false
	}
	if a.HasTZ && b.HasTZ && a.Prec >= 4 && b.Prec >= 4 && a.TZ != b.TZ {
		a = a.normalize()
		b = b.normalize()
	}
	fa, fb := a.fields(), b.fields()
	la, lb := a.level(), b.level()
	start := 0
	if a.Kind == 't' {
		start = 3
	}
	n := min(la, lb)
	for i := start; i < n; i++ {
		if fa[i] != fb[i] {
			if fa[i] < fb[i] {
				return -1, true
			}
			return 1, true
		}
	}
	if la != lb {
		return 0, false
	}
	return 0, true
}

func (d DT) normalize() DT {
	t := d.time()
	r := d
	r.HasTZ, r.TZ = true, 0
	return r.fromTime(t)
}

// addQuantity adds a calendar duration to a date/time.
func addQuantity(d DT, q Quantity, sign float64) (DT, bool) {
	v := q.Value * sign
	// The fraction of a calendar quantity is dropped, as FHIRPath says.
	n := int(v)
	t := d.time()
	if d.HasTZ {
		t = t.Add(time.Duration(d.TZ) * time.Minute)
	}
	switch q.Unit {
	case "year", "years":
		t = t.AddDate(n, 0, 0)
	case "month", "months":
		t = t.AddDate(0, n, 0)
	case "week", "weeks", "wk":
		t = t.AddDate(0, 0, 7*n)
	case "day", "days", "d":
		t = t.AddDate(0, 0, n)
	case "hour", "hours", "h":
		t = t.Add(time.Duration(n) * time.Hour)
	case "minute", "minutes", "min":
		t = t.Add(time.Duration(n) * time.Minute)
	case "second", "seconds", "s":
		t = t.Add(time.Duration(n) * time.Second)
	case "millisecond", "milliseconds", "ms":
		t = t.Add(time.Duration(n) * time.Millisecond)
	default:
		return d, false
	}
	r := d
	r.Y, r.M, r.D = t.Year(), int8(t.Month()), int8(t.Day())
	r.H, r.Mi, r.S, r.Ms = int8(t.Hour()), int8(t.Minute()), int8(t.Second()), int16(t.Nanosecond()/1e6)
	if d.Prec < 2 {
		r.M = 0
	}
	if d.Prec < 3 {
		r.D = 0
	}
	return r, true
}

// calendarUnits are the units of FHIRPath's calendar duration keywords and
// their UCUM counterparts where they are the same quantity.
var calendarUCUM = map[string]string{
	"year": "a", "years": "a", "month": "mo", "months": "mo", "week": "wk", "weeks": "wk",
	"day": "d", "days": "d", "hour": "h", "hours": "h", "minute": "min", "minutes": "min",
	"second": "s", "seconds": "s", "millisecond": "ms", "milliseconds": "ms",
}

// unitScale converts a few UCUM units to a base for comparison.
var unitScale = map[string]struct {
	base  string
	scale float64
}{
	"g": {"g", 1}, "mg": {"g", 1e-3}, "kg": {"g", 1e3}, "ug": {"g", 1e-6},
	"m": {"m", 1}, "cm": {"m", 1e-2}, "mm": {"m", 1e-3}, "km": {"m", 1e3},
	"L": {"L", 1}, "mL": {"L", 1e-3}, "dL": {"L", 1e-1},
	"s": {"s", 1}, "ms": {"s", 1e-3}, "min": {"s", 60}, "h": {"s", 3600}, "d": {"s", 86400}, "wk": {"s", 604800},
}

// sameUnit brings two quantities to one unit, if they convert.
func sameUnit(a, b Quantity, equality bool) (float64, float64, bool) {
	ua, ub := a.Unit, b.Unit
	if ua == ub {
		return a.Value, b.Value, true
	}
	// A calendar keyword equals its UCUM unit only for weeks and
	// smaller: a year is not 'a' (365.25 days), as FHIRPath says.
	if c, ok := calendarUCUM[ua]; ok && (c != "a" && c != "mo" || !equality) {
		ua = c
	}
	if c, ok := calendarUCUM[ub]; ok && (c != "a" && c != "mo" || !equality) {
		ub = c
	}
	if ua == ub {
		return a.Value, b.Value, true
	}
	sa, oka := unitScale[ua]
	sb, okb := unitScale[ub]
	if oka && okb && sa.base == sb.base {
		return a.Value * sa.scale, b.Value * sb.scale, true
	}
	return 0, 0, false
}

// system converts an item to its System value: primitives by their FHIR
// type (or, untyped, by their JSON type), Quantity-like objects to
// Quantity. Other objects stay map[string]any.
func system(it Item) any {
	switch v := it.V.(type) {
	case string:
		switch it.T {
		case "date":
			if d, ok := parseDT(v, 'D'); ok {
				return d
			}
		case "dateTime", "instant":
			if d, ok := parseDT(v, 'T'); ok {
				return d
			}
		case "time":
			if d, ok := parseDT(v, 't'); ok {
				return d
			}
		case "integer", "positiveInt", "unsignedInt":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		case "decimal":
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
		return v
	case json.Number:
		if it.T == "decimal" {
			f, _ := v.Float64()
			return f
		}
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case float64:
		if it.T == "integer" || it.T == "positiveInt" || it.T == "unsignedInt" {
			return int64(v)
		}
		return v
	case map[string]any:
		if quantityTypes[it.T] {
			q := Quantity{Unit: "1"}
			switch n := v["value"].(type) {
			case json.Number:
				q.Value, _ = n.Float64()
			case float64:
				q.Value = n
			default:
				return v
			}
			if c, ok := v["code"].(string); ok {
				q.Unit = c
			} else if u, ok := v["unit"].(string); ok {
				q.Unit = u
			}
			return q
		}
		return v
	}
	return it.V
}

// decimalString prints a decimal the way FHIRPath's toString does.
func decimalString(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func quantityString(q Quantity) string {
	u := q.Unit
	if _, cal := calendarUCUM[u]; cal {
		return decimalString(q.Value) + " " + u
	}
	return decimalString(q.Value) + " '" + u + "'"
}

// toStringValue is the String form of a single item, ok false if none.
func toStringValue(it Item) (string, bool) {
	switch v := system(it).(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return decimalString(v), true
	case DT:
		return v.String(), true
	case Quantity:
		return quantityString(v), true
	}
	return "", false
}
