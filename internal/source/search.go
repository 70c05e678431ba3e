package source

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// query is a parsed DocumentReference search.
type query struct {
	person     string
	types      [][]string // AND of OR-lists of type or group codes
	categories [][]string // AND of OR-lists of group codes
	dates      []dateBound
	count      int // -1: all
}

type dateBound struct {
	prefix string
	lo, hi time.Time // the value's precision as a half-open range
}

// parseSearch accepts exactly the parameters of the contract (see the
// package documentation); anything else is an error, because silently
// ignoring a filter would hand back documents the caller did not ask for.
func parseSearch(raw string) (*query, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed query string: %v", err)
	}
	q := &query{count: -1}
	for name, vs := range vals {
		switch name {
		case "patient.identifier":
			if len(vs) != 1 {
				return nil, errors.New("give patient.identifier exactly once: a search is for one patient")
			}
			sys, val, ok := strings.Cut(vs[0], "|")
			if !ok || sys != domain.SystemFNR || val == "" || strings.Contains(val, ",") {
				return nil, fmt.Errorf("patient.identifier must be %s|<person number>", domain.SystemFNR)
			}
			q.person = val
		case "type", "category":
			for _, v := range vs {
				var codes []string
				for tok := range strings.SplitSeq(v, ",") {
					code, err := codeToken(name, tok)
					if err != nil {
						return nil, err
					}
					codes = append(codes, code)
				}
				if name == "type" {
					q.types = append(q.types, codes)
				} else {
					q.categories = append(q.categories, codes)
				}
			}
		case "date":
			for _, v := range vs {
				b, err := parseDateParam(v)
				if err != nil {
					return nil, err
				}
				q.dates = append(q.dates, b)
			}
		case "_count":
			if len(vs) != 1 {
				return nil, errors.New("give _count at most once")
			}
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 {
				return nil, errors.New("_count must be a non-negative integer")
			}
			q.count = n
		default:
			return nil, fmt.Errorf("unknown search parameter %q; supported: patient.identifier, type, category, date, _count", name)
		}
	}
	if q.person == "" {
		return nil, fmt.Errorf("patient.identifier=%s|<person number> is required", domain.SystemFNR)
	}
	return q, nil
}

func codeToken(param, tok string) (string, error) {
	code := tok
	if sys, c, ok := strings.Cut(tok, "|"); ok {
		if sys != domain.SystemDocumentType {
			return "", fmt.Errorf("%s: code system must be %s", param, domain.SystemDocumentType)
		}
		code = c
	}
	if code == "" {
		return "", fmt.Errorf("%s: empty code", param)
	}
	return code, nil
}

// parseDateParam reads [prefix]value with value a date of year, month or
// day precision or a dateTime.
func parseDateParam(v string) (dateBound, error) {
	b := dateBound{prefix: "eq"}
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		b.prefix, v = v[:2], v[2:]
	}
	switch b.prefix {
	case "eq", "ge", "le", "gt", "lt":
	default:
		return b, fmt.Errorf("date: prefix %q is not supported (eq, ge, le, gt, lt)", b.prefix)
	}
	layouts := []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{time.RFC3339Nano, func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, v); err == nil {
			if l.layout == time.RFC3339Nano && t.Nanosecond() != 0 {
				b.lo, b.hi = t, t.Add(time.Nanosecond)
			} else {
				b.lo, b.hi = t, l.next(t)
			}
			return b, nil
		}
	}
	return b, fmt.Errorf("date: %q is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with zone)", v)
}

// match reports whether d passes every filter of q (the patient is
// matched by the caller's index).
func (q *query) match(d *Document) bool {
	for _, alts := range q.types {
		ok := false
		for _, c := range alts {
			// A group code names the whole group, as a parent code
			// subsumes its children in the hierarchical code system.
			if c == d.Type.Code || c == d.Type.Group {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	for _, alts := range q.categories {
		ok := false
		for _, c := range alts {
			if c == d.Type.Group {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	for _, b := range q.dates {
		if !b.matches(d.Date) {
			return false
		}
	}
	return true
}

// matches compares t with the bound's value, taken as the range of time
// its precision covers (2025 is all of 2025).
func (b dateBound) matches(t time.Time) bool {
	switch b.prefix {
	case "eq":
		return !t.Before(b.lo) && t.Before(b.hi)
	case "ge":
		return !t.Before(b.lo)
	case "gt":
		return !t.Before(b.hi)
	case "le":
		return t.Before(b.hi)
	case "lt":
		return t.Before(b.lo)
	}
	return false
}
