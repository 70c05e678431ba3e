package interaction

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Shape is how the client wants resources shaped: _summary and _elements.
type Shape struct {
	Summary  string // "", "true", "false", "text", "count", "data"
	Elements []string
}

// shapeOf reads _summary and _elements.
func shapeOf(q map[string][]string) (Shape, *Error) {
	var sh Shape
	first := func(name string) string {
		if vs := q[name]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	switch sm := first("_summary"); sm {
	case "", "false", "true", "text", "count", "data":
		sh.Summary = sm
	default:
		e := fail(http.StatusBadRequest, "not-supported", "_summary must be one of true, false, text, count, data; %q is not supported", sm)
		e.Issues[0].Expression = []string{"_summary"}
		return sh, e
	}
	if el := first("_elements"); el != "" {
		for _, name := range strings.Split(el, ",") {
			name = strings.TrimSpace(name)
			if !validElementName(name) {
				return sh, invalid("_elements", "_elements holds an invalid element name %q", name)
			}
			sh.Elements = append(sh.Elements, name)
		}
		if sh.Summary != "" && sh.Summary != "false" {
			return sh, invalid("_elements", "_summary and _elements cannot be combined")
		}
	}
	return sh, nil
}

func validElementName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

// apply shapes one resource's JSON.
func (sh Shape) apply(body []byte) ([]byte, error) {
	switch {
	case len(sh.Elements) > 0:
		return fhir.Elements(body, sh.Elements)
	case sh.Summary == "true":
		return fhir.Summary(body)
	case sh.Summary == "text":
		return fhir.SummaryText(body)
	case sh.Summary == "data":
		return dropText(body)
	}
	return body, nil
}

// dropText removes the narrative (_summary=data).
func dropText(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if _, ok := m["text"]; !ok {
		return body, nil
	}
	delete(m, "text")
	return json.Marshal(m)
}

func (s *Service) read(ctx context.Context, req *Request, c *Call) (*Result, error) {
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	v, err := s.store.Read(ctx, c.Type, c.ID)
	return s.answerVersion(ctx, req, sh, v, err, absent{kind: unknownResource, typ: c.Type, id: c.ID})
}

func (s *Service) vread(ctx context.Context, req *Request, c *Call) (*Result, error) {
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	v, err := s.store.VRead(ctx, c.Type, c.ID, c.Version)
	return s.answerVersion(ctx, req, sh, v, err, absent{kind: unknownVersion, typ: c.Type, id: c.ID, version: c.Version})
}

// answerVersion answers a read or vread: missing when there is no such
// version (and when the rules answer as if there were no record), else
// the version if the decision point lets it through.
func (s *Service) answerVersion(ctx context.Context, req *Request, sh Shape, v store.Version, err error, missing absent) (*Result, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, missing.err()
	case err != nil:
		return nil, err
	}
	if err := s.allowVersion(ctx, req, v, missing); err != nil {
		return nil, err
	}
	if v.Deleted {
		e := fail(http.StatusGone, "deleted", "%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID)
		e.Version = &v
		return nil, e
	}
	body, err := sh.apply(v.Body)
	if err != nil {
		return nil, err
	}
	return &Result{Status: http.StatusOK, Body: body, Version: &v}, nil
}

// allowVersion passes a read of one stored version through the decision
// point, and its granular scope constraints.
func (s *Service) allowVersion(ctx context.Context, req *Request, v store.Version, missing absent) error {
	d, _, err := s.require(ctx, req, ask{in: access.Read, typ: v.Type, patient: v.Patient, current: v, critical: criticalVersion(v)}, missing)
	if err != nil {
		return err
	}
	if !v.Deleted && !s.admits(d, v) {
		return scopeRefusal(req, v.Patient, v.Type, fmt.Sprintf("the token's scopes do not cover %s/%s (granular scope constraint)", v.Type, v.ID))
	}
	return nil
}

// scopeRefusal refuses a resource the permit's granular scope constraints
// do not admit, and records the refusal for the patient.
func scopeRefusal(req *Request, patient, typ, msg string) *Error {
	d := access.NotAdmitted(msg)
	req.Facts.refuse(patient, typ, d)
	return refusal(d, absent{})
}

func (s *Service) history(ctx context.Context, req *Request, c *Call) (*Result, error) {
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	count, since := 100, time.Time{}
	for name := range c.Query {
		switch name {
		case "_count", "_since", "_format", "_pretty", "_summary", "_elements", historyOffset:
		default:
			e := fail(http.StatusBadRequest, "not-supported", "parameter %q is not supported on _history", name)
			e.Issues[0].Expression = []string{name}
			return nil, e
		}
	}
	if cs := c.Query.Get("_count"); cs != "" {
		n, err := strconv.Atoi(cs)
		if err != nil || n < 0 {
			return nil, invalid("_count", "_count must be a non-negative integer, not %q", cs)
		}
		count = min(n, 1000)
	}
	offset := 0
	if off := c.Query.Get(historyOffset); off != "" {
		n, err := strconv.Atoi(off)
		if err != nil || n < 0 {
			return nil, invalid(historyOffset, "%s must be a non-negative integer, not %q", historyOffset, off)
		}
		offset = n
	}
	if ss := c.Query.Get("_since"); ss != "" {
		t, err := parseInstant(ss)
		if err != nil {
			return nil, invalid("_since", "_since must be a FHIR instant such as 2024-05-01T12:00:00Z: %v", err)
		}
		since = t
	}
	missing := absent{kind: unknownResource, typ: c.Type, id: c.ID}
	var versions []store.Version
	if count > 0 || sh.Summary == "count" {
		var err error
		versions, err = s.store.History(ctx, c.Type, c.ID, store.HistoryQuery{Since: since})
		if errors.Is(err, store.ErrNotFound) {
			return nil, missing.err()
		}
		if err != nil {
			return nil, err
		}
	}
	// Every patient whose record a version belongs to passes the decision
	// point (a resource moved between records touches both).
	patients := map[string]bool{}
	for _, v := range versions {
		if !patients[v.Patient] {
			patients[v.Patient] = true
			if err := s.allowVersion(ctx, req, v, missing); err != nil {
				return nil, err
			}
		}
	}
	total := len(versions)
	links := []fhir.Link{{Relation: "self", URL: selfURL(req, c)}}
	if sh.Summary != "count" {
		versions, links = historyPage(req, c, versions, offset, count, links)
	}
	var entries []fhir.BundleEntry
	if sh.Summary != "count" {
		for _, v := range versions {
			e := fhir.BundleEntry{
				FullURL:              req.Base + "/" + v.Type + "/" + v.ID,
				RequestURL:           v.Type + "/" + v.ID,
				ResponseStatus:       "200",
				ResponseETag:         ETag(v.VersionID),
				ResponseLastModified: v.LastUpdated,
			}
			switch {
			case v.Deleted:
				e.RequestMethod, e.ResponseStatus = http.MethodDelete, "204"
			case v.VersionID == 1:
				e.RequestMethod, e.ResponseStatus = http.MethodPost, "201"
				e.RequestURL = v.Type
			default:
				e.RequestMethod = http.MethodPut
			}
			if !v.Deleted {
				b, err := sh.apply(v.Body)
				if err != nil {
					return nil, err
				}
				e.Resource = b
			}
			entries = append(entries, e)
		}
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{
		Type: "history", Total: &total, Links: links, ID: rand.Text(),
	}, entries)}, nil
}

// historyOffset is the paging parameter of a history: the number of
// (newest first) versions the page skips. The next and previous links
// carry it; a client never needs to make it up.
const historyOffset = "_offset"

// historyPage cuts the page of count versions at offset out of versions
// and adds first, previous and next links for the pages around it.
func historyPage(req *Request, c *Call, versions []store.Version, offset, count int, links []fhir.Link) ([]store.Version, []fhir.Link) {
	total := len(versions)
	page := func(rel string, off int) fhir.Link {
		q := url.Values{}
		for k, v := range c.Query {
			q[k] = v
		}
		q.Set("_count", strconv.Itoa(count))
		if off > 0 {
			q.Set(historyOffset, strconv.Itoa(off))
		} else {
			q.Del(historyOffset)
		}
		return fhir.Link{Relation: rel, URL: req.Base + "/" + c.Path + "?" + q.Encode()}
	}
	if count > 0 && (offset > 0 || total > count) {
		links = append(links, page("first", 0))
		if offset > 0 {
			links = append(links, page("previous", max(offset-count, 0)))
		}
		if offset+count < total {
			links = append(links, page("next", offset+count))
		}
	}
	versions = versions[min(offset, total):]
	if len(versions) > count {
		versions = versions[:count]
	}
	return versions, links
}

// selfURL is the absolute URL of the call as requested.
func selfURL(req *Request, c *Call) string {
	u := req.Base + "/" + c.Path
	if c.RawQuery != "" {
		u += "?" + c.RawQuery
	}
	return u
}

// ETag is the weak ETag of a version.
func ETag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// ParseETag reads W/"3" or "3" (If-Match, If-None-Match) into 3.
func ParseETag(h string) (int64, error) {
	t := strings.TrimSpace(h)
	t = strings.TrimPrefix(t, "W/")
	if len(t) < 3 || t[0] != '"' || t[len(t)-1] != '"' {
		return 0, fmt.Errorf("ETag %q is not of the form W/\"<version>\"", h)
	}
	v, err := strconv.ParseInt(t[1:len(t)-1], 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("ETag %q does not name a version", h)
	}
	return v, nil
}

func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a date or instant", s)
}

// datePrefix splits a date search value of the simple searches answered
// here without the registry (usage log, documents) into its FHIR
// comparator (eq when none is given) and its time; timed says whether it
// carried a time of day.
func datePrefix(v string) (prefix string, t time.Time, timed bool, err error) {
	prefix = "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	t, err = parseInstant(v)
	return prefix, t, strings.Contains(v, "T"), err
}

// dayEnd is the last instant of the day that starts at t.
func dayEnd(t time.Time) time.Time { return t.Add(24*time.Hour - time.Nanosecond) }
