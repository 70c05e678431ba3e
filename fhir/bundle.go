package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

func bundle(o BundleOptions, entries []BundleEntry) []byte {
	size := 256 + 128*len(o.Links)
	for _, e := range entries {
		size += len(e.Resource) + len(e.ResponseOutcome) + 192
	}
	out := make([]byte, 0, size)
	now := appendInstant(nil, time.Now())

	out = append(out, `{"resourceType":"Bundle"`...)
	first := false
	if o.ID != "" {
		out = appendStringMember(out, &first, "id", o.ID)
	}
	out = append(out, `,"meta":{"lastUpdated":"`...)
	out = append(out, now...)
	out = append(out, '"')
	if len(o.Security) > 0 {
		out = append(out, `,"security":[`...)
		for i, c := range o.Security {
			if i > 0 {
				out = append(out, ',')
			}
			f := true
			out = append(out, '{')
			out = appendStringMember(out, &f, "system", c.System)
			out = appendStringMember(out, &f, "code", c.Code)
			if c.Display != "" {
				out = appendStringMember(out, &f, "display", c.Display)
			}
			out = append(out, '}')
		}
		out = append(out, ']')
	}
	out = append(out, '}')
	out = appendStringMember(out, &first, "type", o.Type)
	out = append(out, `,"timestamp":"`...)
	out = append(out, now...)
	out = append(out, '"')
	if o.Total != nil {
		out = append(out, `,"total":`...)
		out = fmt.Appendf(out, "%d", *o.Total)
	}
	if len(o.Links) > 0 {
		out = append(out, `,"link":[`...)
		for i, l := range o.Links {
			if i > 0 {
				out = append(out, ',')
			}
			f := true
			out = append(out, '{')
			out = appendStringMember(out, &f, "relation", l.Relation)
			out = appendStringMember(out, &f, "url", l.URL)
			out = append(out, '}')
		}
		out = append(out, ']')
	}
	if len(entries) > 0 {
		out = append(out, `,"entry":[`...)
		for i := range entries {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendEntry(out, &entries[i])
		}
		out = append(out, ']')
	}
	return append(out, '}')
}

func appendEntry(out []byte, e *BundleEntry) []byte {
	first := true
	out = append(out, '{')
	if e.FullURL != "" {
		out = appendStringMember(out, &first, "fullUrl", e.FullURL)
	}
	if r := bytes.TrimSpace(e.Resource); len(r) > 0 {
		out = appendMember(out, &first, "resource", r)
	}
	if e.SearchMode != "" {
		out = appendMember(out, &first, "search", nil)
		f := true
		out = append(out, '{')
		out = appendStringMember(out, &f, "mode", e.SearchMode)
		out = append(out, '}')
	}
	if e.RequestMethod != "" || e.RequestURL != "" {
		out = appendMember(out, &first, "request", nil)
		f := true
		out = append(out, '{')
		out = appendStringMember(out, &f, "method", e.RequestMethod)
		out = appendStringMember(out, &f, "url", e.RequestURL)
		out = append(out, '}')
	}
	oc := bytes.TrimSpace(e.ResponseOutcome)
	if e.ResponseStatus != "" || e.ResponseLocation != "" || e.ResponseETag != "" ||
		!e.ResponseLastModified.IsZero() || len(oc) > 0 {
		out = appendMember(out, &first, "response", nil)
		f := true
		out = append(out, '{')
		out = appendStringMember(out, &f, "status", e.ResponseStatus)
		if e.ResponseLocation != "" {
			out = appendStringMember(out, &f, "location", e.ResponseLocation)
		}
		if e.ResponseETag != "" {
			out = appendStringMember(out, &f, "etag", e.ResponseETag)
		}
		if !e.ResponseLastModified.IsZero() {
			out = appendMember(out, &f, "lastModified", nil)
			out = append(out, '"')
			out = appendInstant(out, e.ResponseLastModified)
			out = append(out, '"')
		}
		if len(oc) > 0 {
			out = appendMember(out, &f, "outcome", oc)
		}
		out = append(out, '}')
	}
	return append(out, '}')
}

// requestMethods are the Bundle.entry.request.method values the server
// carries out; HEAD and PATCH are valid FHIR verbs it does not support.
var requestMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true}

type bundleErrs struct{ issues []Issue }

func (b *bundleErrs) add(code, expr, format string, args ...any) {
	b.issues = append(b.issues, Issue{
		Severity:    "error",
		Code:        code,
		Diagnostics: expr + ": " + fmt.Sprintf(format, args...),
		Expression:  []string{expr},
	})
}

// str decodes an optional JSON string member, reporting a wrong type.
func (b *bundleErrs) str(obj map[string]json.RawMessage, key, expr string) string {
	raw, ok := obj[key]
	if !ok || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.add("value", expr, "expected a string")
		return ""
	}
	return s
}

func (b *bundleErrs) object(raw json.RawMessage, expr string) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		b.add("structure", expr, "expected a JSON object")
		return nil, false
	}
	return obj, true
}

func parseRequestBundle(body []byte) (string, []RequestEntry, error) {
	var b bundleErrs
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		msg := "body is not a JSON object"
		if err != nil {
			msg = "malformed JSON: " + err.Error()
		}
		return "", nil, &ValidationError{Issues: []Issue{{Severity: "error", Code: "structure", Diagnostics: msg}}}
	}
	switch rt := b.str(top, "resourceType", "Bundle.resourceType"); rt {
	case "Bundle":
	case "":
		if len(b.issues) == 0 {
			b.add("required", "Bundle.resourceType", "missing resourceType")
		}
	default:
		b.add("invalid", "Bundle.resourceType", "expected a Bundle, got %q", rt)
	}
	bt := b.str(top, "type", "Bundle.type")
	switch bt {
	case "batch", "transaction":
	case "":
		if _, present := top["type"]; !present || string(top["type"]) == "null" {
			b.add("required", "Bundle.type", "missing Bundle.type (batch or transaction)")
		}
	default:
		b.add("value", "Bundle.type", "Bundle.type must be batch or transaction, got %q", bt)
	}

	var raws []json.RawMessage
	if raw, ok := top["entry"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &raws); err != nil {
			b.add("structure", "Bundle.entry", "expected an array")
		}
	}
	entries := make([]RequestEntry, 0, len(raws))
	for i, raw := range raws {
		p := fmt.Sprintf("Bundle.entry[%d]", i)
		obj, ok := b.object(raw, p)
		if !ok {
			continue
		}
		var e RequestEntry
		e.FullURL = b.str(obj, "fullUrl", p+".fullUrl")
		if res, ok := obj["resource"]; ok && string(res) != "null" {
			if t := bytes.TrimSpace(res); len(t) == 0 || t[0] != '{' {
				b.add("structure", p+".resource", "expected a JSON object")
			} else {
				e.Resource = t
			}
		}
		reqRaw, ok := obj["request"]
		if !ok || string(reqRaw) == "null" {
			b.add("required", p+".request", "every entry of a %s needs a request", orDefault(bt, "batch or transaction"))
			entries = append(entries, e)
			continue
		}
		req, ok := b.object(reqRaw, p+".request")
		if !ok {
			entries = append(entries, e)
			continue
		}
		e.Method = b.str(req, "method", p+".request.method")
		e.URL = b.str(req, "url", p+".request.url")
		e.IfMatch = b.str(req, "ifMatch", p+".request.ifMatch")
		e.IfNoneExist = b.str(req, "ifNoneExist", p+".request.ifNoneExist")
		switch {
		case e.Method == "" && !hasValue(req, "method"):
			b.add("required", p+".request.method", "missing request method")
		case e.Method == "HEAD" || e.Method == "PATCH":
			b.add("not-supported", p+".request.method", "method %s is not supported in a %s", e.Method, orDefault(bt, "batch"))
		case e.Method != "" && !requestMethods[e.Method]:
			b.add("code-invalid", p+".request.method", "unknown method %q (expected GET, POST, PUT or DELETE)", e.Method)
		}
		// Clients differ in whether they write a leading slash; the
		// URL is relative to the base either way.
		e.URL = strings.TrimPrefix(e.URL, "/")
		switch {
		case e.URL == "" && !hasValue(req, "url"):
			b.add("required", p+".request.url", "missing request url")
		case e.URL == "":
			b.add("value", p+".request.url", "empty request url")
		case strings.Contains(e.URL, "://"):
			b.add("value", p+".request.url", "request url must be relative to the server base, got %q", e.URL)
		}
		if (e.Method == "POST" || e.Method == "PUT") && e.Resource == nil && !hasValue(obj, "resource") {
			b.add("required", p+".resource", "%s needs a resource", e.Method)
		}
		entries = append(entries, e)
	}
	if len(b.issues) > 0 {
		return bt, nil, &ValidationError{Issues: b.issues}
	}
	return bt, entries, nil
}

func hasValue(obj map[string]json.RawMessage, key string) bool {
	raw, ok := obj[key]
	return ok && string(raw) != "null"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
