package conformance

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Documents group (DOMAIN.md "Documents", access rule 7): documents
// are never stored by the server; a search fans out to the source
// hospitals, and each attachment URL is rewritten to the server's own
// proxy, whose URLs are signed and bound to the patient.
//
// A black-box client cannot name a patient the sources hold documents for
// except one: the citizen persona's patient (seed.CitizenPatientID), whom
// `serve --demo-patients` creates and the development sources (kjsource)
// hold documents for. She is read by the hospital-doctor persona (Oslo
// universitetssykehus, organisation 300010008, with whom the development
// sources share), with UNNTAK: doctors treating a patient in a hospital
// are exempt from consent.
func init() {
	register(
		Check{GroupDocuments, "documents/federated-search",
			"GET /DocumentReference?patient= answers a searchset merging the DocumentReferences of at least two source hospitals, every attachment URL rewritten to the server's own /documents/ proxy, no source URL in the answer",
			checkDocumentsFederatedSearch},
		Check{GroupDocuments, "documents/retrieve",
			"following a rewritten attachment URL streams the document: 200, its content type and size, its bytes (PDF or XML), Cache-Control no-store",
			checkDocumentsRetrieve},
		Check{GroupDocuments, "documents/proxy-tampering",
			"an altered or truncated document URL, a valid one with a token for another patient or of another user, and one without a token are refused (4xx OperationOutcome, 401 without a token) with no byte of the document",
			checkDocumentsProxyTampering},
		Check{GroupDocuments, "documents/display-periods-and-nors",
			"no document labelled NORS is shown, test results (C00) and correspondence (I00) only for 1 year, organ function (D00) and imaging (E00) for 5 years, other groups never",
			checkDocumentsDisplayPeriods},
		Check{GroupDocuments, "documents/partial-failure",
			"with one registered source down (--failing-source), the search still answers 200 with the other sources' documents and an OperationOutcome entry (search.mode outcome) naming the failed source",
			checkDocumentsPartialFailure},
		Check{GroupDocuments, "documents/audited",
			"a document search and a document retrieval each leave one AuditEvent (IHE ITI-67 / ITI-68) naming the documents; the citizen's own usage log shows that documents were viewed, not which",
			checkDocumentsAudited},
	)
}

// Document code systems (DOMAIN.md).
const (
	systemDocumentType    = "urn:oid:2.16.578.1.12.4.1.1.9602"
	systemConfidentiality = "urn:oid:2.16.578.1.12.4.1.1.9603"
	systemIHEEventType    = "urn:ihe:event-type-code"
	systemResourceTypes   = "http://hl7.org/fhir/resource-types"
)

// displayYears is how long each shown document group is shown (0:
// unlimited); groups not listed are never shown.
var displayYears = map[string]int{"A00": 0, "C00": 1, "I00": 1, "D00": 5, "E00": 5}

// dateSlack allows for the server and the suite reading "now" at slightly
// different instants and in different time zones: a document dated a day
// inside the period when the server filtered is still a day inside it
// here. The documents the rules must hide are years outside.
const dateSlack = 48 * time.Hour

// docCase is the patient whose documents the group reads and the requester.
type docCase struct {
	patient, pid string
}

func documentsCase(t *T) docCase {
	id, pid := t.CitizenPatient()
	return docCase{patient: id, pid: pid}
}

// as is a request as the hospital doctor treating the patient.
func (d docCase) as(path string) Request {
	return Request{Path: path, As: PersonaHospitalDoctor, Patient: d.patient, Basis: "UNNTAK"}
}

// fetch is a request for a document URL (any content type accepted).
func (d docCase) fetch(u string) Request {
	r := d.as(u)
	r.Header = http.Header{"Accept": {"*/*"}}
	return r
}

func (d docCase) searchPath() string {
	return "DocumentReference?patient=" + url.QueryEscape(d.patient)
}

// docResult is a DocumentReference search answer taken apart.
type docResult struct {
	res      *Response
	matches  []map[string]any // DocumentReferences, search.mode match
	fullURLs []string
	outcomes []map[string]any // OperationOutcomes, search.mode outcome
	total    int              // Bundle.total, -1 when absent
}

// searchDocuments sends req and requires a searchset Bundle; the
// documents' checks all start from one.
func searchDocuments(t *T, req Request) *docResult {
	return parseDocuments(t, req, t.Do(req))
}

func parseDocuments(t *T, req Request, res *Response) *docResult {
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s as %s with %s: status %d, want 200: %s", req.Path, req.As, req.Basis, res.Status, Outcome(res))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("GET %s: Content-Type %q, want application/fhir+json", req.Path, ct)
	}
	b := res.JSON()
	if b["resourceType"] != "Bundle" || b["type"] != "searchset" {
		t.Fatalf("GET %s: want a searchset Bundle, got resourceType %v type %v", req.Path, b["resourceType"], b["type"])
	}
	out := &docResult{res: res, total: -1}
	if n, ok := b["total"].(float64); ok {
		out.total = int(n)
	}
	for i, e := range alList(b["entry"]) {
		r := alObj(e["resource"])
		mode := alStr(alObj(e["search"]), "mode")
		switch {
		case r["resourceType"] == "OperationOutcome" && mode == "outcome":
			out.outcomes = append(out.outcomes, r)
		case r["resourceType"] == "DocumentReference" && mode == "match":
			out.matches = append(out.matches, r)
			out.fullURLs = append(out.fullURLs, alStr(e, "fullUrl"))
		default:
			t.Errorf("GET %s: entry %d is a %v with search.mode %q; a document search answers DocumentReferences (match) and OperationOutcomes (outcome)", req.Path, i, r["resourceType"], mode)
		}
	}
	return out
}

// requireDocuments ends the check when there is nothing to judge: a
// source failure is a failure, an empty record at every source a skip.
func (r *docResult) requireDocuments(t *T, d docCase) {
	if len(r.matches) > 0 {
		return
	}
	if len(r.outcomes) > 0 {
		t.Fatalf("GET %s: no documents, and the server reports: %s", d.searchPath(), issuesText(r.outcomes))
	}
	t.Skipf("the sources hold no documents for the citizen persona's Patient/%s (person number %s), so there is nothing to check; the development sources (kjsource) hold documents for her", d.patient, d.pid)
}

// failedSources returns the outcome issues that report a failure
// (severity warning or worse), as text.
func (r *docResult) failedSources() []string { return failedSources(r.outcomes) }

// failedSources is the failure issues (severity warning or worse) of a
// federated search's outcome entries, as text.
func (r *labResult) failedSources() []string { return failedSources(r.outcomes) }

func failedSources(outcomes []map[string]any) []string {
	var out []string
	for _, oo := range outcomes {
		for _, is := range alList(oo["issue"]) {
			if sev := alStr(is, "severity"); sev != "information" {
				out = append(out, sev+": "+issueText(is))
			}
		}
	}
	return out
}

func issueText(is map[string]any) string {
	details := alObj(is["details"])
	parts := []string{alStr(is, "diagnostics"), alStr(details, "text")}
	for _, c := range alList(details["coding"]) {
		parts = append(parts, alStr(c, "code"), alStr(c, "display"))
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " | ")
}

func issuesText(oos []map[string]any) string {
	var parts []string
	for _, oo := range oos {
		for _, is := range alList(oo["issue"]) {
			parts = append(parts, alStr(is, "severity")+": "+issueText(is))
		}
	}
	return strings.Join(parts, "; ")
}

// Reading DocumentReferences.

func docTypeCode(dr map[string]any) string {
	for _, c := range alList(alObj(dr["type"])["coding"]) {
		if alStr(c, "system") == systemDocumentType {
			return alStr(c, "code")
		}
	}
	return ""
}

var typeCodeShape = regexp.MustCompile(`^[A-Z][0-9]{2}(-[0-9]{1,3})?$`)

// docGroup is the 9602 group of a type code (A01-1 -> A00), or "".
func docGroup(code string) string {
	if !typeCodeShape.MatchString(code) {
		return ""
	}
	return code[:1] + "00"
}

func docDate(dr map[string]any) (time.Time, bool) {
	s := alStr(dr, "date")
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// labelledNORS reports a NORS confidentiality label in securityLabel
// (CodeableConcepts) or meta.security (Codings).
func labelledNORS(dr map[string]any) bool {
	var codings []map[string]any
	for _, l := range alList(dr["securityLabel"]) {
		codings = append(codings, alList(l["coding"])...)
	}
	codings = append(codings, alList(alObj(dr["meta"])["security"])...)
	return slices.ContainsFunc(codings, func(c map[string]any) bool {
		return alStr(c, "code") == "NORS" && (alStr(c, "system") == systemConfidentiality || alStr(c, "system") == "")
	})
}

func attachments(dr map[string]any) []map[string]any {
	var out []map[string]any
	for _, c := range alList(dr["content"]) {
		if a := alObj(c["attachment"]); a != nil {
			out = append(out, a)
		}
	}
	return out
}

// custodian names the source hospital of a DocumentReference.
func custodian(dr map[string]any) string {
	c := alObj(dr["custodian"])
	if v := alStr(alObj(c["identifier"]), "value"); v != "" {
		return v
	}
	if v := alStr(c, "display"); v != "" {
		return v
	}
	return alStr(c, "reference")
}

func docName(dr map[string]any) string {
	return fmt.Sprintf("DocumentReference/%s (%s, %s)", alStr(dr, "id"), docTypeCode(dr), alStr(dr, "date"))
}

// proxyPrefix is where the server's document URLs must point.
func proxyPrefix(t *T) string { return t.URL("documents/") }

// leakedURLs walks a JSON value and returns every absolute http(s) URL that
// is not under the server's base URL: code systems, profiles and extension
// URLs are names, not addresses, and are left alone.
func leakedURLs(t *T, v any) []string {
	base := t.URL("")
	var out []string
	var walk func(key string, parent map[string]any, v any)
	walk = func(key string, parent map[string]any, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, x, e)
			}
		case []any:
			for _, e := range x {
				walk(key, parent, e)
			}
		case string:
			if !strings.HasPrefix(x, "http://") && !strings.HasPrefix(x, "https://") {
				return
			}
			switch key {
			case "system", "profile":
				return
			case "url":
				if isExtension(parent) {
					return
				}
			}
			if !strings.HasPrefix(x, base) {
				out = append(out, key+": "+x)
			}
		}
	}
	walk("", nil, v)
	return out
}

func isExtension(m map[string]any) bool {
	if _, ok := m["extension"]; ok {
		return true
	}
	for k := range m {
		if strings.HasPrefix(k, "value") {
			return true
		}
	}
	return false
}

// documentBytes reports a body that looks like a document rather than an
// error: what a refusal must never carry.
func documentBytes(res *Response) bool {
	b := bytes.TrimLeft(res.Body, " \t\r\n\ufeff")
	return bytes.HasPrefix(b, []byte("%PDF")) || bytes.HasPrefix(b, []byte("<?xml")) || bytes.HasPrefix(b, []byte("<Clinical"))
}

// firstURL returns the first proxied attachment URL of the result.
func (r *docResult) firstURL(t *T) (string, map[string]any) {
	for _, dr := range r.matches {
		for _, a := range attachments(dr) {
			if u := alStr(a, "url"); strings.HasPrefix(u, proxyPrefix(t)) {
				return u, a
			}
		}
	}
	t.Fatalf("no attachment URL under %s among %d documents", proxyPrefix(t), len(r.matches))
	return "", nil
}

func checkDocumentsFederatedSearch(t *T) {
	d := documentsCase(t)
	req := d.as(d.searchPath())
	r := searchDocuments(t, req)
	r.requireDocuments(t, d)

	if r.total >= 0 && r.total < len(r.matches) {
		t.Errorf("Bundle.total %d is less than the %d documents returned", r.total, len(r.matches))
	}
	sources := map[string]int{}
	prefix := proxyPrefix(t)
	for i, dr := range r.matches {
		name := docName(dr)
		sources[custodian(dr)]++
		if custodian(dr) == "" {
			t.Errorf("%s has no custodian: the reader cannot tell which hospital it comes from", name)
		}
		if fu := r.fullURLs[i]; fu != "" && !strings.HasPrefix(fu, t.URL("")) {
			t.Errorf("%s: fullUrl %q is not under the server's base URL %s", name, fu, t.URL(""))
		}
		// Every document is the patient asked for, by reference or by
		// person number (the sources know the patient by the latter).
		subj := alObj(dr["subject"])
		ref, pnr := alStr(subj, "reference"), alStr(alObj(subj["identifier"]), "value")
		if !strings.HasSuffix(ref, "Patient/"+d.patient) && pnr != d.pid {
			t.Errorf("%s: subject %v is not Patient/%s (person number %s)", name, subj, d.patient, d.pid)
		}
		atts := attachments(dr)
		if len(atts) == 0 {
			t.Errorf("%s has no content.attachment", name)
		}
		for _, a := range atts {
			u := alStr(a, "url")
			token, ok := strings.CutPrefix(u, prefix)
			if !ok || token == "" || strings.ContainsAny(token, "/?#") {
				t.Errorf("%s: attachment URL %q is not rewritten to the server's proxy %s{token}", name, u, prefix)
			}
			if alStr(a, "contentType") == "" {
				t.Errorf("%s: attachment without contentType", name)
			}
		}
	}
	if len(sources) < 2 {
		t.Errorf("the %d documents come from %d source hospital(s) %v; the search must merge the answers of every source sharing with the requester (the development stack has two)", len(r.matches), len(sources), docKeys(sources))
	}
	if leaks := leakedURLs(t, r.res.JSON()); len(leaks) > 0 {
		t.Errorf("the answer names addresses outside the server's base URL %s (source URLs must not leak; documents are fetched through the proxy): %s", t.URL(""), strings.Join(docFirst(leaks, 5), "; "))
	}
	// A healthy source reports nothing; only the source configured as
	// down may be named as failed.
	for _, f := range r.failedSources() {
		if fs := t.env.cfg.FailingSource; fs == "" || !strings.Contains(f, fs) {
			t.Errorf("the search reports a source failure that is not the configured failing source %q: %s", fs, f)
		}
	}
}

func checkDocumentsRetrieve(t *T) {
	d := documentsCase(t)
	r := searchDocuments(t, d.as(d.searchPath()))
	r.requireDocuments(t, d)
	// One document of each content type the sources serve (PDF and the
	// structured XML), so both kinds are seen streaming.
	picked := map[string]map[string]any{}
	var order []string
	for _, dr := range r.matches {
		for _, a := range attachments(dr) {
			ct := docMediaType(alStr(a, "contentType"))
			if _, ok := picked[ct]; !ok && strings.HasPrefix(alStr(a, "url"), proxyPrefix(t)) {
				picked[ct] = a
				order = append(order, ct)
			}
		}
	}
	if len(order) == 0 {
		t.Fatalf("no attachment URL under %s to follow", proxyPrefix(t))
	}
	for _, ct := range order {
		a := picked[ct]
		u := alStr(a, "url")
		res := t.Do(d.fetch(u))
		what := fmt.Sprintf("GET %s (%s)", u, ct)
		if res.Status != http.StatusOK {
			t.Errorf("%s: status %d, want 200: %s", what, res.Status, Outcome(res))
			continue
		}
		if got := docMediaType(res.Header.Get("Content-Type")); got != ct {
			t.Errorf("%s: Content-Type %q, want the attachment's %q", what, res.Header.Get("Content-Type"), ct)
		}
		if len(res.Body) == 0 {
			t.Errorf("%s: empty body", what)
			continue
		}
		if size, ok := a["size"].(float64); ok && int64(size) != int64(len(res.Body)) {
			t.Errorf("%s: %d bytes, but attachment.size says %d", what, len(res.Body), int64(size))
		}
		if cl := res.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(res.Body)) {
			t.Errorf("%s: Content-Length %s, but %d bytes arrived", what, cl, len(res.Body))
		}
		if h := alStr(a, "hash"); h != "" {
			sum := sha1.Sum(res.Body)
			if base64.StdEncoding.EncodeToString(sum[:]) != h {
				t.Errorf("%s: the bytes do not match attachment.hash", what)
			}
		}
		body := bytes.TrimLeft(res.Body, " \t\r\n\ufeff")
		switch {
		case ct == "application/pdf" && !bytes.HasPrefix(body, []byte("%PDF-")):
			t.Errorf("%s: the body is not a PDF (starts %q)", what, docHead(body))
		case strings.HasSuffix(ct, "xml") && !bytes.HasPrefix(body, []byte("<")):
			t.Errorf("%s: the body is not XML (starts %q)", what, docHead(body))
		}
		// Health data passes through; no cache on the way may keep it.
		if cc := strings.ToLower(res.Header.Get("Cache-Control")); !strings.Contains(cc, "no-store") {
			t.Errorf("%s: Cache-Control %q, want no-store", what, res.Header.Get("Cache-Control"))
		}
	}
}

func checkDocumentsProxyTampering(t *T) {
	d := documentsCase(t)
	r := searchDocuments(t, d.as(d.searchPath()))
	r.requireDocuments(t, d)
	u, _ := r.firstURL(t)
	prefix := proxyPrefix(t)
	token := strings.TrimPrefix(u, prefix)

	// The genuine URL opens, so every refusal below is the tampering's.
	if res := t.Do(d.fetch(u)); res.Status != http.StatusOK {
		t.Fatalf("GET %s as the treating doctor: status %d, want 200 before tampering with it: %s", u, res.Status, Outcome(res))
	}

	refused := func(what string, req Request, want func(int) bool, wantText string) {
		res := t.Do(req)
		switch {
		case !want(res.Status):
			t.Errorf("%s: status %d, want %s", what, res.Status, wantText)
		case res.ResourceType() != "OperationOutcome":
			t.Errorf("%s: status %d without an OperationOutcome: %s", what, res.Status, Outcome(res))
		}
		if documentBytes(res) {
			t.Errorf("%s: the answer carries the document (status %d, starts %q)", what, res.Status, docHead(res.Body))
		}
	}
	clientError := func(s int) bool { return s >= 400 && s < 500 }
	mid := len(token) / 2
	flipped := token[:mid] + docFlip(token[mid]) + token[mid+1:]
	refused("a document URL with one character of its token changed", d.fetch(prefix+flipped), clientError, "4xx")
	refused("a document URL with its token cut short", d.fetch(prefix+token[:len(token)-6]), clientError, "4xx")
	// A token that is itself an address: the proxy must never fetch what
	// a client names (no SSRF).
	refused("a document URL whose token is another address", d.fetch(prefix+url.PathEscape("http://127.0.0.1:1/Binary/x")), clientError, "4xx")

	// The same valid URL, opened by the doctor with another patient in
	// context: the URL is bound to the patient it was found for.
	other, _ := t.NewPatient(PatientSpec{})
	req := d.fetch(u)
	req.Patient = other
	refused("a valid document URL with a token for another patient", req, clientError, "4xx")

	// A valid URL of a document another health worker may open too (her
	// GP, with consent, opens it through her own URL), opened by that
	// health worker: rule 7, a document link is valid only for the user
	// and session that received it.
	gpReq := func(path string) Request {
		r := d.fetch(path)
		r.As, r.Basis = PersonaGP, "SAMTYKKE"
		return r
	}
	gp := searchDocuments(t, gpReq(d.searchPath()))
	doctorURL := map[string]string{}
	for _, dr := range r.matches {
		for _, a := range attachments(dr) {
			doctorURL[alStr(dr, "id")] = alStr(a, "url")
		}
	}
	shared := ""
	for _, dr := range gp.matches {
		for _, a := range attachments(dr) {
			if mine, theirs := alStr(a, "url"), doctorURL[alStr(dr, "id")]; mine != "" && theirs != "" && shared == "" {
				if res := t.Do(gpReq(mine)); res.Status == http.StatusOK {
					shared = theirs
				}
			}
		}
	}
	if shared == "" {
		t.Fatalf("the GP (with SAMTYKKE) can open none of the documents the doctor was listed; nothing to check the binding with")
	}
	refused("a valid document URL opened by another user (the patient's GP, who opens the same document through her own URL)", gpReq(shared), clientError, "4xx")

	// No token: not a byte without authentication.
	noToken := Request{Path: u, Header: http.Header{"Accept": {"*/*"}}}
	refused("a document URL without a token", noToken, func(s int) bool { return s == http.StatusUnauthorized }, "401")
}

// docFlip changes one base64url character into another one. It is used in
// the middle of a token, where every character carries six bits of it (the
// last one may carry padding bits a decoder ignores).
func docFlip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func checkDocumentsDisplayPeriods(t *T) {
	d := documentsCase(t)
	r := searchDocuments(t, d.as(d.searchPath()))
	r.requireDocuments(t, d)
	now := time.Now()
	// The development sources hold, for every demo patient, a NORS
	// document, test results and correspondence older than a year, and
	// organ-function and imaging documents older than five years
	// (internal/source: TestDemoCitizenDocumentsExerciseTheRules), so each
	// rule below has something to hide.
	for _, dr := range r.matches {
		name := docName(dr)
		if labelledNORS(dr) {
			t.Errorf("%s is labelled NORS (blocked) and must never be shown", name)
		}
		code := docTypeCode(dr)
		g := docGroup(code)
		years, shown := displayYears[g]
		if !shown {
			t.Errorf("%s: type %q (group %q) is not among the groups shown (A00, C00, D00, E00, I00)", name, code, g)
			continue
		}
		if years == 0 {
			continue
		}
		at, ok := docDate(dr)
		if !ok {
			t.Errorf("%s: group %s is shown for %d year(s) only, but the document has no readable date", name, g, years)
			continue
		}
		if at.Before(now.AddDate(-years, 0, 0).Add(-dateSlack)) {
			t.Errorf("%s: group %s is shown for %d year(s), but the document is dated %s", name, g, years, at.Format(time.DateOnly))
		}
	}
}

func checkDocumentsPartialFailure(t *T) {
	failing := t.env.cfg.FailingSource
	if failing == "" {
		t.Skipf("no failing source configured: register a source that is down in the server's sources registry and name it with --failing-source")
	}
	d := documentsCase(t)
	req := d.as(d.searchPath())
	r := searchDocuments(t, req)
	if len(r.matches) == 0 {
		t.Errorf("with source %q down, the other sources' documents are missing: a failed source must not take the others' answers with it", failing)
	}
	named := false
	for _, oo := range r.outcomes {
		for _, is := range alList(oo["issue"]) {
			if !strings.Contains(issueText(is), failing) {
				continue
			}
			named = true
			if sev := alStr(is, "severity"); sev == "information" || sev == "" {
				t.Errorf("the outcome names source %q with severity %q; a failed source is a warning or an error: %s", failing, sev, issueText(is))
			}
		}
	}
	if !named {
		t.Errorf("no OperationOutcome entry (search.mode outcome) names the failed source %q; outcomes: %s", failing, or(issuesText(r.outcomes), "none"))
	}
	if leaks := leakedURLs(t, r.res.JSON()); len(leaks) > 0 {
		t.Errorf("the answer names addresses outside the server's base URL (a failed source's address must not leak either): %s", strings.Join(docFirst(leaks, 5), "; "))
	}
}

func checkDocumentsAudited(t *T) {
	d := documentsCase(t)
	search := d.as(d.searchPath())
	res, searchID := t.DoAudited(search)
	r := parseDocuments(t, search, res)
	r.requireDocuments(t, d)
	u, _ := r.firstURL(t)
	doc, readID := t.DoAudited(d.fetch(u))
	if doc.Status != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %s", u, doc.Status, Outcome(doc))
	}
	hpr := ""
	if c, err := Claims(t.Token(PersonaHospitalDoctor, d.patient)); err == nil {
		hpr, _ = c["helseid://claims/hpr/hpr_number"].(string)
	}

	// The auditor's view: one event each, with the documents named.
	want := WantAudit{Patient: d.patient, Outcome: "0", Basis: "UNNTAK", AgentHPR: hpr}
	searched := t.ExpectAudit("the document search", searchID, want)
	read := t.ExpectAudit("the document retrieval", readID, want)
	if !hasSubtype(searched, systemIHEEventType, "ITI-67") {
		t.Errorf("the document search's %s is not coded as IHE ITI-67 (Find Document References)", searched)
	}
	if !hasSubtype(read, systemIHEEventType, "ITI-68") {
		t.Errorf("the document retrieval's %s is not coded as IHE ITI-68 (Retrieve Document)", read)
	}
	listed := documentEntities(searched)
	if len(listed) != len(r.matches) {
		t.Errorf("the document search returned %d documents, but its %s names %d", len(r.matches), searched, len(listed))
	}
	opened := documentEntities(read)
	if len(opened) != 1 {
		t.Errorf("the document retrieval's %s names %d documents, want the 1 opened", read, len(opened))
	}

	// The citizen's view: that documents were viewed, not which.
	var mine []AuditEvent
	for _, ev := range t.SearchAuditEvents(PersonaCitizen, url.Values{"patient": {d.patient}, "_count": {"200"}}) {
		if id := ev.RequestID(); id == searchID || id == readID {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 2 {
		t.Fatalf("the citizen's usage log shows %d of the two document accesses (request ids %s, %s), want both", len(mine), searchID, readID)
	}
	for _, ev := range mine {
		what := "the citizen's view of the document search"
		if ev.RequestID() == readID {
			what = "the citizen's view of the document retrieval"
		}
		if !slices.Contains(ev.Tags(), "documents-viewed") {
			t.Errorf("%s: %s is not marked documents-viewed (tags %v)", what, ev, ev.Tags())
		}
		raw, _ := json.Marshal(ev)
		for _, id := range append(slices.Clone(listed), opened...) {
			if id != "" && bytes.Contains(raw, []byte(id)) {
				t.Errorf("%s: %s names document %s; the citizen sees that documents were viewed, not which", what, ev.ID(), id)
			}
		}
		for _, en := range alList(ev["entity"]) {
			if en["query"] != nil {
				t.Errorf("%s: %s keeps the search query, which tells which documents were looked for", what, ev.ID())
			}
		}
	}
}

// hasSubtype reports a subtype coding of the event.
func hasSubtype(ev AuditEvent, system, code string) bool {
	return slices.ContainsFunc(alList(ev["subtype"]), func(c map[string]any) bool {
		return alStr(c, "system") == system && alStr(c, "code") == code
	})
}

// documentEntities returns the identifiers of the DocumentReference
// entities of an event (what.identifier.value, else what.reference).
func documentEntities(ev AuditEvent) []string {
	var out []string
	for _, en := range alList(ev["entity"]) {
		typ := alObj(en["type"])
		if alStr(typ, "system") != systemResourceTypes || alStr(typ, "code") != "DocumentReference" {
			continue
		}
		what := alObj(en["what"])
		out = append(out, or(alStr(alObj(what["identifier"]), "value"), alStr(what, "reference")))
	}
	return out
}

func docMediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

func docHead(b []byte) string {
	if len(b) > 24 {
		b = b[:24]
	}
	return string(b)
}

func docKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func docFirst(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
