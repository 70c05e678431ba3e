package documents

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/narrative"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// SourceStatusSystem codes the per-source outcome issues (Details).
const SourceStatusSystem = "https://kjernejournal.example.no/fhir/CodeSystem/document-source-status"

// Query is a DocumentReference search, already parsed by the REST layer.
type Query struct {
	// Types are 9602 codes (A01) or groups (A00); "system|code" with the
	// 9602 system is accepted too. Empty: all types.
	Types []string
	// Category is a 9602 group (A00); "" for all.
	Category string
	// DateFrom and DateTo bound DocumentReference.date, both inclusive;
	// zero is open.
	DateFrom, DateTo time.Time
	// Count caps the entries returned (newest first); 0 is no cap.
	Count int
	// Admits, if set, is the token's granular scope (e.g.
	// patient/DocumentReference.rs?category=...): a document is kept only
	// if it admits it, asking match about each constraint (a search
	// parameter and value; match answers false for what it cannot
	// evaluate, so an unknown constraint narrows).
	Admits Admits
}

// Admits is a granular scope applied to one result of a federated search
// (access.Decision.Admits, as the REST layer passes it).
type Admits func(match func(param, value string) bool) bool

// admit applies a to a result whose constraints match answers; nil admits
// all.
func (a Admits) admit(match func(param, value string) bool) bool { return a == nil || a(match) }

// Entry is one DocumentReference of the result.
type Entry struct {
	Source  string    // source name
	ID      string    // the DocumentReference id at the source
	Type    string    // 9602 code
	Date    time.Time // DocumentReference.date (zero if absent: A00 only)
	FullURL string
	// Resource is the DocumentReference as re-rendered: attachment URLs
	// point to this server's proxy, id is made unique across sources, the
	// subject is the patient's identifier and custodian names the source.
	Resource []byte
}

// SourceOutcome is how one asked source fared.
type SourceOutcome struct {
	Source string // name
	Label  string // display name and name
	// Status: "ok", "timeout" or "error". "ok" may still carry Detail (a
	// warning, e.g. a truncated result).
	Status  string
	Matches int    // entries kept from this source, before Count
	Detail  string // why it failed or what to warn about; no health data
	Err     error  // the cause, for server logs
}

// Result of a federated search.
type Result struct {
	Entries []Entry // newest first, at most Query.Count
	// Included are the Observations of the matched DiagnosticReports
	// (LabQuery.IncludeResults), each once.
	Included []Entry
	Total    int // entries that passed the rules, before Query.Count
	// Sources lists every source asked (those sharing with the requester
	// and the query's types), in registry order.
	Sources []SourceOutcome
	// Documents are the documents in Entries, for the usage log
	// (audit.Record.Documents).
	Documents []audit.Document
	// items names what the sources hold in the outcome's sentences:
	// "documents" (the default) or "lab results".
	items string
}

// Outcome renders the OperationOutcome naming every source that failed,
// timed out or warned; nil when all went well.
func (r *Result) Outcome() []byte {
	var issues []fhir.Issue
	for _, s := range r.Sources {
		switch {
		case s.Status == "timeout":
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "timeout",
				Diagnostics: fmt.Sprintf("source %s did not answer in time (%s); its %s are missing from this result", s.Label, s.Detail, cmp.Or(r.items, "documents")),
				Details:     fhir.Coding{System: SourceStatusSystem, Code: "source-timeout", Display: s.Source}})
		case s.Status == "error":
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "transient",
				Diagnostics: fmt.Sprintf("source %s failed (%s); its %s are missing from this result", s.Label, s.Detail, cmp.Or(r.items, "documents")),
				Details:     fhir.Coding{System: SourceStatusSystem, Code: "source-error", Display: s.Source}})
		case s.Detail != "":
			issues = append(issues, fhir.Issue{Severity: "information", Code: "informational",
				Diagnostics: fmt.Sprintf("source %s: %s", s.Label, s.Detail),
				Details:     fhir.Coding{System: SourceStatusSystem, Code: "source-warning", Display: s.Source}})
		}
	}
	if len(issues) == 0 {
		return nil
	}
	return fhir.Outcome(issues...)
}

// BundleEntries are the searchset entries: the documents (mode match) and,
// if any source failed, one OperationOutcome (mode outcome).
func (r *Result) BundleEntries() []fhir.BundleEntry {
	out := make([]fhir.BundleEntry, 0, len(r.Entries)+1)
	for _, e := range r.Entries {
		out = append(out, fhir.BundleEntry{FullURL: e.FullURL, Resource: e.Resource, SearchMode: "match"})
	}
	for _, e := range r.Included {
		out = append(out, fhir.BundleEntry{FullURL: e.FullURL, Resource: e.Resource, SearchMode: "include"})
	}
	if oo := r.Outcome(); oo != nil {
		out = append(out, fhir.BundleEntry{Resource: oo, SearchMode: "outcome"})
	}
	return out
}

// plan is what to ask one source and how to filter its answer.
type plan struct {
	src        *Source
	session    string   // Requester.Session, which the document URLs are bound to
	types      []string // query types (codes or groups), normalised
	category   string
	pushType   string    // one code to pass as type=, or ""
	lowerBound time.Time // date=ge..., or zero
}

// allows reports whether a 9602 code may be shown from this source for
// this query: a shown group, shared by the source, asked for.
func (p *plan) allows(code string) bool {
	g := GroupOf(code)
	if _, shown := access.DocumentWindow(g); !shown || !p.src.SharesType(code) {
		return false
	}
	if p.category != "" && g != p.category {
		return false
	}
	return len(p.types) == 0 || slices.Contains(p.types, code) || slices.Contains(p.types, g)
}

func normaliseTypes(in []string) []string {
	out := make([]string, 0, len(in))
	for _, t := range in {
		t = strings.TrimSpace(t)
		if sys, code, ok := strings.Cut(t, "|"); ok {
			if sys != domain.SystemDocumentType && sys != "" {
				// Another code system can match nothing; keep a value that
				// never equals a code so the query stays restrictive.
				out = append(out, "\x00")
				continue
			}
			t = code
		}
		out = append(out, t)
	}
	return out
}

// planFor returns the plan for src, or nil when the source cannot have
// anything for this query (then it is not asked at all).
func (f *Federation) planFor(src *Source, q Query, now time.Time) *plan {
	p := &plan{src: src, types: normaliseTypes(q.Types), category: q.Category}
	// The groups that could be shown from this source for this query.
	maxYears, anyGroup := 0, false
	unlimited := false
	sharesIn := func(g string) bool {
		return slices.ContainsFunc(src.SharedTypes, func(s string) bool { return GroupOf(s) == g })
	}
	for _, g := range access.DocumentGroups() {
		years, _ := access.DocumentWindow(g)
		possible := false
		switch {
		case p.category != "" && p.category != g:
		case len(p.types) == 0:
			possible = sharesIn(g)
		default:
			for _, t := range p.types {
				if GroupOf(t) == g && (t == g && sharesIn(g) || t != g && src.SharesType(t)) {
					possible = true
				}
			}
		}
		if !possible {
			continue
		}
		anyGroup = true
		if years == 0 {
			unlimited = true
		}
		maxYears = max(maxYears, years)
	}
	if !anyGroup {
		return nil
	}
	if len(p.types) == 1 && p.types[0] != GroupOf(p.types[0]) && GroupOf(p.types[0]) != "" {
		p.pushType = p.types[0]
	}
	p.lowerBound = q.DateFrom
	if !unlimited {
		if cut := now.AddDate(-maxYears, 0, 0); cut.After(p.lowerBound) {
			p.lowerBound = cut
		}
	}
	return p
}

// Search fans the query out to the sources that share with the requester,
// in parallel, each bounded by SourceTimeout and all by SearchTimeout,
// and returns the merged result newest first.
//
// The caller must have asked the access policy first (access.Decide for
// DocumentReference, Section Documents): the patient's document-sharing
// block, a blocked visit history and restrictions are decided there, and
// Search must not be called when the decision is a denial.
//
// Rules applied here (../shared/DOMAIN.md rule 7): only sources whose
// shares_with names the requester's organisation or region are asked; a
// document is kept only if its 9602 type is in a shown group (A00
// unlimited; C00 and I00 one year; D00 and E00 five years, counted on
// DocumentReference.date against the clock, inclusive at the boundary;
// every other group never), the source shares that type, it is not
// labelled NORS (securityLabel or meta.security, code system 9603), and it
// is not entered-in-error. A document without a 9602 type, or without a
// date in a time-limited group, is left out: the rules cannot be applied to
// it, so it fails closed.
//
// A source that fails or times out is reported in Result.Sources (and
// Result.Outcome); the error return is only for a cancelled ctx or an
// unusable query.
func (f *Federation) Search(ctx context.Context, req Requester, patientPNR string, q Query) (Result, error) {
	if patientPNR == "" {
		return Result{}, errors.New("documents: search without a patient")
	}
	if q.Category != "" {
		if _, shown := access.DocumentWindow(q.Category); !shown && GroupOf(q.Category) != q.Category {
			return Result{}, fmt.Errorf("documents: category %q is not a 9602 group", q.Category)
		}
	}
	now := f.now()
	plans := map[*Source]*plan{}
	var srcs []*Source
	for _, src := range f.sharing(KindDocuments, req) {
		if p := f.planFor(src, q, now); p != nil {
			p.session = req.Session
			plans[src] = p
			srcs = append(srcs, src)
		}
	}
	answers, outcomes, err := fanOut(ctx, f, srcs, func(ctx context.Context, src *Source) ([]Entry, string, error) {
		return f.searchSource(ctx, plans[src], req, patientPNR, q, now)
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{Sources: outcomes}
	for _, a := range answers {
		res.Entries = append(res.Entries, a...)
	}
	slices.SortFunc(res.Entries, func(a, b Entry) int {
		if c := b.Date.Compare(a.Date); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	res.Total = len(res.Entries)
	if q.Count > 0 && len(res.Entries) > q.Count {
		res.Entries = res.Entries[:q.Count]
	}
	for _, e := range res.Entries {
		src := f.byName[e.Source]
		res.Documents = append(res.Documents, audit.Document{ID: e.ID, Source: src.Organisation, SourceName: cmp.Or(src.DisplayName, src.Name)})
	}
	return res, nil
}

// sharing lists the registered sources of the kind that share with the
// requester, in registry order: for a citizen reading their own record,
// every one (the access policy decides which kinds a citizen may read).
func (f *Federation) sharing(kind string, req Requester) []*Source {
	var out []*Source
	for i := range f.sources {
		if src := &f.sources[i]; src.kind() == kind && (req.Citizen || src.SharesWithRequester(req)) {
			out = append(out, src)
		}
	}
	return out
}

// describe turns a source error into a sentence without internals a user
// cannot act on.
func describe(err error) string {
	var se *SourceError
	if errors.As(err, &se) && se.Detail != "" {
		return se.Detail
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The transport's text names internal addresses; the outcome goes
		// to the client, the full error stays in SourceOutcome.Err.
		return "no connection to the source"
	}
	return err.Error()
}

type bundleIn struct {
	ResourceType string `json:"resourceType"`
	Link         []struct {
		Relation string `json:"relation"`
	} `json:"link"`
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// more reports whether the source has further pages.
func (b *bundleIn) more() bool {
	return slices.ContainsFunc(b.Link, func(l struct {
		Relation string `json:"relation"`
	}) bool {
		return l.Relation == "next"
	})
}

// getBundle asks a source for a search Bundle: a GET of u with a fresh
// assertion about the patient and any extra header, its answer read up to
// MaxSearchResponse and parsed. Every kind of source is asked this way.
// warns has the warning for an answer with more pages than the one asked
// for, naming what the source holds (documents, results).
func (f *Federation) getBundle(ctx context.Context, src *Source, u string, req Requester, pnr string, header http.Header, what string) (b *bundleIn, warns []string, err error) {
	if b, err = f.fetchBundle(ctx, src, u, req, pnr, header); err != nil {
		return nil, nil, err
	}
	if b.more() {
		warns = append(warns, fmt.Sprintf("more than %d %s at the source; only the first %d were considered", f.cfg.PerSourceCount, what, f.cfg.PerSourceCount))
	}
	return b, warns, nil
}

func (f *Federation) fetchBundle(ctx context.Context, src *Source, u string, req Requester, pnr string, header http.Header) (*bundleIn, error) {
	hr, err := f.newRequest(ctx, src, u, req, pnr, "")
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		hr.Header[k] = v
	}
	hr.Header.Set("Accept", "application/fhir+json")
	resp, err := f.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &SourceError{Source: src.Name, Kind: ErrSourceUnavailable, Detail: "HTTP " + resp.Status}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxSearchResponse+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > f.cfg.MaxSearchResponse {
		return nil, &SourceError{Source: src.Name, Kind: ErrTooLarge, Detail: fmt.Sprintf("search answer larger than %d bytes", f.cfg.MaxSearchResponse)}
	}
	var b bundleIn
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		return nil, &SourceError{Source: src.Name, Kind: ErrSourceUnavailable, Detail: "the answer is not a FHIR Bundle", Cause: err}
	}
	return &b, nil
}

func (f *Federation) searchSource(ctx context.Context, p *plan, req Requester, pnr string, q Query, now time.Time) ([]Entry, string, error) {
	src := p.src
	v := url.Values{}
	v.Set("patient.identifier", domain.SystemFNR+"|"+pnr)
	v.Set("_count", strconv.Itoa(f.cfg.PerSourceCount))
	if p.pushType != "" {
		v.Set("type", p.pushType)
	}
	if !p.lowerBound.IsZero() {
		// A day earlier than the bound: the source may read the date in
		// another time zone; the exact bound is applied here.
		v.Set("date", "ge"+p.lowerBound.UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	}
	b, warns, err := f.getBundle(ctx, src, src.BaseURL+"/DocumentReference?"+v.Encode(), req, pnr, nil, "documents")
	if err != nil {
		return nil, "", err
	}
	var out []Entry
	invalid := 0
	for _, e := range b.Entry {
		entry, keep, err := f.filterAndRewrite(e.Resource, p, pnr, q, now)
		if err != nil {
			invalid++
			continue
		}
		if keep {
			out = append(out, entry)
		}
	}
	if invalid > 0 {
		warns = append(warns, fmt.Sprintf("%d unreadable entries left out", invalid))
	}
	return out, strings.Join(warns, "; "), nil
}

// Helpers to walk decoded JSON without panicking on unexpected shapes.
func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func arr(v any) []any          { a, _ := v.([]any); return a }
func str(v any) string         { s, _ := v.(string); return s }

// labelledBlocked reports a NORS confidentiality code in a list of
// CodeableConcept (securityLabel) or Coding (meta.security).
func labelledBlocked(list []any) bool {
	for _, item := range list {
		codings := arr(obj(item)["coding"])
		if codings == nil {
			codings = []any{item} // meta.security holds Codings directly
		}
		for _, c := range codings {
			m := obj(c)
			if str(m["code"]) == Blocked && (str(m["system"]) == domain.SystemConfidentiality || str(m["system"]) == "") {
				return true
			}
		}
	}
	return false
}

// filterAndRewrite applies the rules to one resource and re-renders it.
// keep is false for resources the rules leave out; err is for unreadable
// ones.
func (f *Federation) filterAndRewrite(raw json.RawMessage, p *plan, pnr string, q Query, now time.Time) (Entry, bool, error) {
	m, err := decodeSourceResource(raw)
	if err != nil {
		return Entry{}, false, err
	}
	if str(m["resourceType"]) != "DocumentReference" {
		return Entry{}, false, nil // e.g. the source's own outcome entries
	}
	id := str(m["id"])
	if !idRe.MatchString(id) {
		return Entry{}, false, errors.New("invalid id")
	}
	if str(m["status"]) == "entered-in-error" || str(m["docStatus"]) == "entered-in-error" {
		return Entry{}, false, nil
	}
	blocked := labelledBlocked(arr(m["securityLabel"])) || labelledBlocked(arr(obj(m["meta"])["security"]))
	code := ""
	for _, c := range arr(obj(m["type"])["coding"]) {
		if str(obj(c)["system"]) == domain.SystemDocumentType {
			code = str(obj(c)["code"])
			break
		}
	}
	if !p.allows(code) {
		return Entry{}, false, nil
	}
	var date time.Time
	if s := str(m["date"]); s != "" {
		t, err := parseFHIRDate(s)
		if err != nil {
			return Entry{}, false, err
		}
		date = t
	}
	if !access.DocumentShown(GroupOf(code), blocked, date, now) {
		return Entry{}, false, nil
	}
	if !q.DateFrom.IsZero() && (date.IsZero() || date.Before(q.DateFrom)) ||
		!q.DateTo.IsZero() && (date.IsZero() || date.After(q.DateTo)) {
		return Entry{}, false, nil
	}
	typeCoding := []coding{{domain.SystemDocumentType, code}}
	groupCoding := []coding{{domain.SystemDocumentType, GroupOf(code)}}
	if !q.Admits.admit(func(param, value string) bool {
		switch param {
		case "type":
			return anyToken([]string{value}, typeCoding)
		case "category":
			return anyToken([]string{value}, groupCoding)
		}
		return false
	}) {
		return Entry{}, false, nil
	}

	// Rewrite every attachment URL to the proxy; a URL that is not the
	// source's own {base}/Binary/{id} is dropped, never proxied.
	src := p.src
	for _, c := range arr(m["content"]) {
		att := obj(obj(c)["attachment"])
		if att == nil {
			continue
		}
		u, ok := att["url"].(string)
		if !ok {
			continue
		}
		bin, ok := binaryID(src.BaseURL, u)
		if !ok {
			delete(att, "url")
			continue
		}
		tok := makeToken(f.cfg.TokenKey, docRef{Source: src.Name, ID: bin, Type: code, Expires: now.Add(f.cfg.TokenTTL)}, binding{pnr, p.session})
		att["url"] = f.cfg.BaseURL + "/documents/" + tok
	}
	newID := federatedID(src, id)
	m["id"] = newID
	m["subject"] = map[string]any{"identifier": map[string]any{"system": domain.SystemFNR, "value": pnr}}
	if _, ok := m["custodian"]; !ok {
		m["custodian"] = map[string]any{
			"identifier": map[string]any{"system": domain.SystemOrgNr, "value": src.Organisation},
			"display":    cmp.Or(src.DisplayName, src.Name),
		}
	}
	body, err := fhir.ResourceJSON(m)
	if err != nil {
		return Entry{}, false, err
	}
	return Entry{Source: src.Name, ID: id, Type: code, Date: date,
		FullURL: f.cfg.BaseURL + "/DocumentReference/" + newID, Resource: body}, true, nil
}

// decodeSourceResource reads one resource a source answered. Numbers pass
// through unchanged (attachment sizes, lab values). A narrative that
// breaks FHIR's narrative rules (txt-1: scripts, event handlers, active
// content) is removed, with the contained resources' too: clients show
// narratives as HTML, and what a source wrote must not run in them; the
// structured content stays.
func decodeSourceResource(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if len(narrative.CheckResource(str(m["resourceType"]), raw)) > 0 {
		delete(m, "text")
		for _, c := range arr(m["contained"]) {
			delete(obj(c), "text")
		}
	}
	return m, nil
}

// federatedID is the id a source's resource gets here: unique across
// sources (the source's name first), and within FHIR's 64 characters.
func federatedID(src *Source, id string) string {
	newID := src.Name + "." + id
	if len(newID) > 64 {
		h := sha256.Sum256([]byte(id))
		newID = src.Name + "." + hex.EncodeToString(h[:])[:63-len(src.Name)]
	}
	return newID
}

// binaryID accepts {base}/Binary/{id} (absolute, or relative to base) and
// returns the id.
func binaryID(base, raw string) (string, bool) {
	b, err := url.Parse(base + "/")
	if err != nil {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false
	}
	u = b.ResolveReference(u)
	if u.Scheme != b.Scheme || u.Host != b.Host {
		return "", false
	}
	id, ok := strings.CutPrefix(u.Path, b.Path+"Binary/")
	if !ok || !idRe.MatchString(id) {
		return "", false
	}
	return id, true
}

// parseFHIRDate reads the FHIR date/dateTime/instant forms; a partial
// date stands for its first instant.
func parseFHIRDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly, "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q", s)
}
