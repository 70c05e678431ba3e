package documents

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Lab results (prøvesvar): DiagnosticReport and Observation, searched at
// the lab sources (Kind KindLab) in real time and never stored, under the
// same fan-out, assertion and failure reporting as documents.
//
// The wire contract with a lab source (internal/source serves one under
// {base}/lab):
//
//	GET {base}/DiagnosticReport?date=ge<YYYY-MM-DD>&_count=<n>[&_include=DiagnosticReport:result]
//	GET {base}/Observation?date=ge<YYYY-MM-DD>&_count=<n>
//	Authorization: Bearer <assertion>   (see Signer; patient = the person number)
//	nhn-patient-nin: <person number>    (never in the URL)
//	nhn-access-basis: <basis>           (health personnel only)
//
// Only the lower date bound (the window, or the query's) is asked of the
// source; every filter is applied here, so a source that filters less
// than asked shows nothing it should not.

// LabSourceSystem tags every lab result with the source it came from
// (meta.tag: code the source's name, display its label).
const LabSourceSystem = domain.Base + "CodeSystem/lab-source"

// LabQuery is a DiagnosticReport or Observation search, already parsed by
// the REST layer.
type LabQuery struct {
	// Type is "DiagnosticReport" or "Observation".
	Type string
	// DateFrom and DateTo bound the result's date (effective[x], else
	// issued), both inclusive; zero is open.
	DateFrom, DateTo time.Time
	// Categories, Codes and Statuses are OR-lists of tokens: "code",
	// "system|code", "|code" (no system) or "system|" (any code of the
	// system); statuses are plain codes. Empty lists do not filter.
	Categories, Codes, Statuses []string
	// IncludeResults adds the Observations of each matched
	// DiagnosticReport (_include=DiagnosticReport:result).
	IncludeResults bool
	// Ascending sorts oldest first (_sort=date); the default is newest
	// first (_sort=-date).
	Ascending bool
	// Offset and Count select the page of the merged, sorted matches;
	// Count 0 returns none (a count-only search).
	Offset, Count int
	// Admits, if set, is the token's granular scope (e.g.
	// patient/Observation.rs?category=laboratory), applied to every result,
	// included ones too, before counting and paging.
	Admits Admits
}

// SearchLab fans a lab result search out to the lab sources that share
// with the requester (every lab source for a citizen reading their own
// results), in parallel, and returns the page of merged matches, with the
// included Observations when asked, each marked with its source.
//
// The caller must have asked the access policy first (access.Decide for
// the type, section LabResults): reservation, blocks, restriction and the
// visit-history rule are decided there. Applied here: a result entered in
// error, or older than the configured window (LabWindowYears, counted on
// its date against the clock), is never shown; a result without a date is
// left out when there is a window, and a result whose subject names
// another person is left out as unreadable.
//
// A source that fails or times out is reported in Result.Sources (and
// Result.Outcome); the error return is for a cancelled ctx or an unusable
// query.
func (f *Federation) SearchLab(ctx context.Context, req Requester, patientPNR, patientID string, q LabQuery) (Result, error) {
	if patientPNR == "" || patientID == "" {
		return Result{}, errors.New("documents: lab search without a patient")
	}
	if q.Type != "DiagnosticReport" && q.Type != "Observation" {
		return Result{}, fmt.Errorf("documents: %q is not a type of lab results", q.Type)
	}
	now := f.now()
	from := q.DateFrom
	if years := f.cfg.LabWindowYears; years > 0 {
		if cut := now.AddDate(-years, 0, 0); cut.After(from) {
			from = cut
		}
	}
	answers, outcomes, err := fanOut(ctx, f, f.sharing(KindLab, req), func(ctx context.Context, src *Source) ([]labEntry, string, error) {
		return f.searchLabSource(ctx, src, req, patientPNR, patientID, q, from, now)
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{Sources: outcomes, items: "lab results"}
	var matches []labEntry
	included := map[string]labEntry{} // by "source/Observation/id" at the source
	for _, a := range answers {
		for _, e := range a {
			if e.include {
				included[e.Source+"/"+e.ID] = e
			} else {
				matches = append(matches, e)
			}
		}
	}
	slices.SortFunc(matches, func(a, b labEntry) int {
		c := b.Date.Compare(a.Date)
		if q.Ascending {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	res.Total = len(matches)
	page := matches[min(q.Offset, len(matches)):]
	page = page[:min(q.Count, len(page))]
	seen := map[string]bool{}
	for _, m := range page {
		res.Entries = append(res.Entries, m.Entry)
		src := f.byName[m.Source]
		res.Documents = append(res.Documents, audit.Document{ID: m.ID, Source: src.Organisation, SourceName: cmp.Or(src.DisplayName, src.Name)})
		if !q.IncludeResults {
			continue
		}
		for _, id := range m.results {
			k := m.Source + "/" + id
			if inc, ok := included[k]; ok && !seen[k] {
				seen[k] = true
				res.Included = append(res.Included, inc.Entry)
			}
		}
	}
	return res, nil
}

// labEntry is one result as a source answered it, rewritten.
type labEntry struct {
	Entry
	include bool     // an Observation the source included, not a match
	results []string // a DiagnosticReport's Observation ids at the source
	status  string
	// categories and codes are the result's codings, for the filters.
	categories, codes []coding
}

func (f *Federation) searchLabSource(ctx context.Context, src *Source, req Requester, pnr, patientID string, q LabQuery, from, now time.Time) ([]labEntry, string, error) {
	v := url.Values{}
	v.Set("_count", strconv.Itoa(f.cfg.PerSourceCount))
	if !from.IsZero() {
		// A day earlier than the bound: the source may read the date in
		// another time zone; the exact bound is applied here.
		v.Set("date", "ge"+from.UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	}
	if q.IncludeResults && q.Type == "DiagnosticReport" {
		v.Set("_include", "DiagnosticReport:result")
	}
	h := http.Header{}
	h.Set("nhn-patient-nin", pnr)
	if req.AccessBasis != "" {
		h.Set("nhn-access-basis", req.AccessBasis)
	}
	b, warns, err := f.getBundle(ctx, src, src.BaseURL+"/"+q.Type+"?"+v.Encode(), req, pnr, h, "results")
	if err != nil {
		return nil, "", err
	}
	var out []labEntry
	invalid := 0
	for _, e := range b.Entry {
		include := e.Search.Mode == "include"
		want := q.Type
		if include {
			want = "Observation"
		}
		le, keep, err := f.labResult(e.Resource, src, want, pnr, patientID, now)
		if err != nil {
			invalid++
			continue
		}
		if !keep {
			continue
		}
		// The window and the token's scope hold for included results too;
		// the query's own filters choose the matches only.
		if !q.Admits.admit(le.constraint) || !include && !q.matches(le, from) {
			continue
		}
		le.include = include
		out = append(out, le)
	}
	if invalid > 0 {
		warns = append(warns, fmt.Sprintf("%d unreadable results left out", invalid))
	}
	return out, strings.Join(warns, "; "), nil
}

// matches applies the query's filters to a result the rules keep.
func (q LabQuery) matches(e labEntry, from time.Time) bool {
	switch {
	case !from.IsZero() && e.Date.Before(from):
		return false
	case !q.DateTo.IsZero() && e.Date.After(q.DateTo):
		return false
	case len(q.Statuses) > 0 && !slices.Contains(q.Statuses, e.status):
		return false
	case len(q.Categories) > 0 && !anyToken(q.Categories, e.categories):
		return false
	case len(q.Codes) > 0 && !anyToken(q.Codes, e.codes):
		return false
	}
	return true
}

// constraint reports whether a result has a granular scope's value for
// one search parameter; false for a parameter it cannot evaluate.
func (e labEntry) constraint(param, value string) bool {
	switch param {
	case "category":
		return anyToken([]string{value}, e.categories)
	case "code":
		return anyToken([]string{value}, e.codes)
	case "status":
		return e.status == value
	}
	return false
}

// coding is a system and a code.
type coding struct{ system, code string }

// anyToken reports whether any token matches any coding.
func anyToken(tokens []string, codings []coding) bool {
	for _, t := range tokens {
		sys, code, hasSys := strings.Cut(t, "|")
		if !hasSys {
			code, sys = t, ""
		}
		for _, c := range codings {
			switch {
			case !hasSys && c.code == code:
				return true
			case hasSys && sys == "" && c.system == "" && c.code == code:
				return true
			case hasSys && sys != "" && c.system == sys && (code == "" || c.code == code):
				return true
			}
		}
	}
	return false
}

// codingsOf reads the codings of a CodeableConcept or a list of them.
func codingsOf(v any) []coding {
	var out []coding
	list := arr(v)
	if list == nil && v != nil {
		list = []any{v}
	}
	for _, cc := range list {
		for _, c := range arr(obj(cc)["coding"]) {
			out = append(out, coding{str(obj(c)["system"]), str(obj(c)["code"])})
		}
	}
	return out
}

// labResult applies the rules to one resource from a lab source and
// re-renders it. keep is false for resources the rules leave out; err is
// for unreadable ones.
func (f *Federation) labResult(raw json.RawMessage, src *Source, want, pnr, patientID string, now time.Time) (labEntry, bool, error) {
	m, err := decodeSourceResource(raw)
	if err != nil {
		return labEntry{}, false, err
	}
	if str(m["resourceType"]) != want {
		return labEntry{}, false, nil // e.g. the source's own outcome entries
	}
	id := str(m["id"])
	if !idRe.MatchString(id) {
		return labEntry{}, false, errors.New("invalid id")
	}
	// A result about someone else must never be shown as this patient's,
	// nor one that does not say whose it is.
	ident := obj(obj(m["subject"])["identifier"])
	if ident == nil || str(ident["system"]) != domain.SystemFNR || str(ident["value"]) != pnr {
		return labEntry{}, false, errors.New("subject is not the patient")
	}
	status := str(m["status"])
	date, err := labDate(m)
	if err != nil {
		return labEntry{}, false, err
	}
	if !access.LabResultShown(status, date, now, f.cfg.LabWindowYears) {
		return labEntry{}, false, nil
	}
	e := labEntry{Entry: Entry{Source: src.Name, ID: id, Date: date}}
	e.status = status
	e.categories = codingsOf(m["category"])
	e.codes = codingsOf(m["code"])
	// References between results of one source become references between
	// their ids here; references to what this server does not serve keep
	// their display only.
	for _, key := range []string{"result", "hasMember", "derivedFrom"} {
		for _, r := range arr(m[key]) {
			ref := obj(r)
			target, ok := strings.CutPrefix(str(ref["reference"]), "Observation/")
			if !ok || !idRe.MatchString(target) {
				delete(ref, "reference")
				continue
			}
			if key == "result" {
				e.results = append(e.results, target)
			}
			ref["reference"] = "Observation/" + federatedID(src, target)
		}
	}
	for _, key := range []string{"basedOn", "specimen", "encounter", "focus"} {
		for _, r := range append(arr(m[key]), obj(m[key])) {
			delete(obj(r), "reference")
		}
	}
	newID := federatedID(src, id)
	m["id"] = newID
	m["subject"] = map[string]any{"reference": "Patient/" + patientID,
		"identifier": map[string]any{"system": domain.SystemFNR, "value": pnr}}
	meta := obj(m["meta"])
	if meta == nil {
		meta = map[string]any{}
		m["meta"] = meta
	}
	meta["tag"] = append(arr(meta["tag"]), map[string]any{"system": LabSourceSystem, "code": src.Name, "display": cmp.Or(src.DisplayName, src.Name)})
	body, err := fhir.ResourceJSON(m)
	if err != nil {
		return labEntry{}, false, err
	}
	e.FullURL = f.cfg.BaseURL + "/" + want + "/" + newID
	e.Resource = body
	return e, true, nil
}

// labDate is when a result was taken: effectiveDateTime, the start of
// effectivePeriod, effectiveInstant, else issued; zero if none.
func labDate(m map[string]any) (time.Time, error) {
	s := cmp.Or(str(m["effectiveDateTime"]), str(obj(m["effectivePeriod"])["start"]), str(m["effectiveInstant"]), str(m["issued"]))
	if s == "" {
		return time.Time{}, nil
	}
	return parseFHIRDate(s)
}
