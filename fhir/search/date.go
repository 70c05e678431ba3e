package search

import (
	"errors"
	"math"
	"time"
)

// Dates are kept as inclusive ranges of microseconds since the Unix epoch,
// UTC: microseconds cover years 1 to 9999 in an int64 (nanoseconds would
// not) and are finer than any FHIR value the server stores (instants are
// written with milliseconds). An open end of a Period is minTime/maxTime.
const (
	minTime int64 = math.MinInt64
	maxTime int64 = math.MaxInt64
)

var errDate = errors.New("not a FHIR date, dateTime or instant")

// parseDateRange parses a FHIR date, dateTime or instant, or a search value
// in the same syntax, into the range of instants it denotes at its
// precision: "2024" is the whole year, "2024-03" the whole month,
// "2024-03-05T10:00" the whole minute, "…:05.12" 10 ms.
//
// A value without a time zone (a date, or a search value such as
// 2024-03-05T10:00) is read as UTC: the specification says such values are
// in the server's local time, and this server's local time is defined as
// UTC, which keeps results independent of where the server runs. Stored
// dateTimes with a time always carry a zone (FHIR requires it).
func parseDateRange(s string) (lo, hi int64, err error) {
	n := len(s)
	num := func(i, w int) (int, bool) {
		if i+w > n {
			return 0, false
		}
		v := 0
		for j := i; j < i+w; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok || year == 0 {
		return 0, 0, errDate
	}
	month, day, hour, min, sec, nsec := 1, 1, 0, 0, 0, 0
	const (
		pYear = iota
		pMonth
		pDay
		pMinute
		pSecond
		pFraction
	)
	prec, fracDigits := pYear, 0
	i := 4
	if i < n && s[i] == '-' {
		if month, ok = num(i+1, 2); !ok || month < 1 || month > 12 {
			return 0, 0, errDate
		}
		prec, i = pMonth, i+3
		if i < n && s[i] == '-' {
			if day, ok = num(i+1, 2); !ok || day < 1 || day > 31 {
				return 0, 0, errDate
			}
			prec, i = pDay, i+3
		}
	}
	loc := time.UTC
	if prec == pDay && i < n && s[i] == 'T' {
		if hour, ok = num(i+1, 2); !ok || hour > 23 || i+3 >= n || s[i+3] != ':' {
			return 0, 0, errDate
		}
		if min, ok = num(i+4, 2); !ok || min > 59 {
			return 0, 0, errDate
		}
		prec, i = pMinute, i+6
		if i < n && s[i] == ':' {
			if sec, ok = num(i+1, 2); !ok || sec > 59 {
				return 0, 0, errDate
			}
			prec, i = pSecond, i+3
			if i < n && s[i] == '.' {
				i++
				for i < n && s[i] >= '0' && s[i] <= '9' {
					if fracDigits < 9 {
						nsec = nsec*10 + int(s[i]-'0')
						fracDigits++
					}
					i++
				}
				if fracDigits == 0 {
					return 0, 0, errDate
				}
				for k := fracDigits; k < 9; k++ {
					nsec *= 10
				}
				prec = pFraction
			}
		}
		if i < n {
			switch s[i] {
			case 'Z':
				i++
			case '+', '-', ' ':
				// A space is a "+" that the client forgot to escape in
				// the query string; no other reading of it is possible.
				zh, ok1 := num(i+1, 2)
				zm, ok2 := num(i+4, 2)
				if !ok1 || !ok2 || s[i+3] != ':' || zh > 14 || zm > 59 {
					return 0, 0, errDate
				}
				off := zh*3600 + zm*60
				if s[i] == '-' {
					off = -off
				}
				loc = time.FixedZone("", off)
				i += 6
			}
		}
	}
	if i != n {
		return 0, 0, errDate
	}
	start := time.Date(year, time.Month(month), day, hour, min, sec, nsec, loc)
	if start.Day() != day || int(start.Month()) != month {
		return 0, 0, errDate // 2023-02-30
	}
	var end time.Time
	switch prec {
	case pYear:
		end = start.AddDate(1, 0, 0)
	case pMonth:
		end = start.AddDate(0, 1, 0)
	case pDay:
		end = start.AddDate(0, 0, 1)
	case pMinute:
		end = start.Add(time.Minute)
	case pSecond:
		end = start.Add(time.Second)
	default:
		step := time.Duration(1)
		for k := fracDigits; k < 9; k++ {
			step *= 10
		}
		end = start.Add(max(step, time.Microsecond))
	}
	lo = start.UnixMicro()
	hi = end.UnixMicro() - 1
	if hi < lo {
		hi = lo
	}
	return lo, hi, nil
}

// formatMicros renders a range bound for diagnostics and tests.
func formatMicros(us int64) string {
	switch us {
	case minTime:
		return "-inf"
	case maxTime:
		return "+inf"
	}
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.999999Z")
}
