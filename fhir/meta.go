package fhir

import (
	"fmt"
	"strconv"
	"time"
)

// instantLayout is the FHIR instant format the server writes: UTC with
// millisecond precision, the precision HTTP clients and most FHIR servers
// use, which jsonformat parses back exactly.
const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatInstant formats t as a FHIR instant the way meta.lastUpdated is
// written, so the REST layer can produce matching values elsewhere (e.g.
// Bundle.timestamp, _since links).
func FormatInstant(t time.Time) string { return string(appendInstant(nil, t)) }

func appendInstant(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, instantLayout)
}

// isHeadKey reports whether a top-level key is one that WithMeta and
// Marshal place first; those members are written explicitly.
func isHeadKey(k []byte) bool {
	return string(k) == "resourceType" || string(k) == "id" || string(k) == "meta"
}

func withMeta(body []byte, versionID int64, lastUpdated time.Time) ([]byte, error) {
	var stack [48]member
	ms, err := scanObject(body, stack[:0])
	if err != nil {
		return nil, fmt.Errorf("fhir: WithMeta: %w", err)
	}
	var metaStack [8]member
	var metaMembers []member
	if m, ok := findMember(ms, "meta"); ok && string(m.val) != "null" {
		if metaMembers, err = scanObject(m.val, metaStack[:0]); err != nil {
			return nil, fmt.Errorf("fhir: WithMeta: meta: %w", err)
		}
	}

	out := make([]byte, 0, len(body)+80)
	out = append(out, '{')
	first := true
	if m, ok := findMember(ms, "resourceType"); ok {
		out = appendRaw(out, &first, m)
	}
	if m, ok := findMember(ms, "id"); ok {
		out = appendRaw(out, &first, m)
	}
	if !first {
		out = append(out, ',')
	}
	first = false
	out = append(out, `"meta":{"versionId":"`...)
	out = strconv.AppendInt(out, versionID, 10)
	out = append(out, `","lastUpdated":"`...)
	out = appendInstant(out, lastUpdated)
	out = append(out, '"')
	for _, m := range metaMembers {
		if k := string(m.key); k == "versionId" || k == "lastUpdated" {
			continue
		}
		out = append(out, ',')
		out = append(out, m.rawKey...)
		out = append(out, ':')
		out = append(out, m.val...)
	}
	out = append(out, '}')
	for _, m := range ms {
		if !isHeadKey(m.key) {
			out = appendRaw(out, &first, m)
		}
	}
	return append(out, '}'), nil
}

// headFirst rewrites a compact object so that resourceType, id and meta
// come first (jsonformat prints keys alphabetically, which buries
// resourceType at the end).
func headFirst(body []byte) ([]byte, error) {
	var stack [48]member
	ms, err := scanObject(body, stack[:0])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body))
	out = append(out, '{')
	first := true
	for _, k := range [...]string{"resourceType", "id", "meta"} {
		if m, ok := findMember(ms, k); ok {
			out = appendRaw(out, &first, m)
		}
	}
	for _, m := range ms {
		if !isHeadKey(m.key) {
			out = appendRaw(out, &first, m)
		}
	}
	return append(out, '}'), nil
}
