package conformance

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The Lab results group (prøvesvar, DOMAIN.md "Prøvesvar" and rules 4–8):
// DiagnosticReport and Observation are never stored by the server; a
// search fans out to the lab sources and is filtered by the same rules as
// every other part of the record, and by the window for test results (one
// year unless the server is configured otherwise).
//
// As for documents, the one patient a black-box client can expect the
// lab sources to hold results for is the citizen persona's patient, read
// by the hospital-doctor persona with UNNTAK.
func init() {
	register(
		Check{GroupLab, "lab/federated-search",
			"GET DiagnosticReport?patient= and Observation?patient= answer searchsets merging the results of at least two lab sources, newest first, each tagged with its source, about the patient, coded with NLK or LOINC; a result is not read by id (404)",
			checkLabFederatedSearch},
		Check{GroupLab, "lab/include-and-paging",
			"_include=DiagnosticReport:result adds each referenced Observation once (search.mode include); _count pages with next links whose pages together are the whole result; _sort=date reverses the order",
			checkLabIncludeAndPaging},
		Check{GroupLab, "lab/window",
			"no lab result taken more than a year ago is shown (test results' period), and a search for older ones finds none",
			checkLabWindow},
		Check{GroupLab, "lab/restriction",
			"rule 5: with lab results restricted by the citizen, a search leaves them out (200, no matches, an outcome saying so, REDACTED), FORHOYET_SAMTYKKE opens them and the opening is logged; other sections stay visible",
			checkLabRestriction},
		Check{GroupLab, "lab/reservation",
			"rule 4: a reserved record's lab results answer exactly as an unknown patient's, and are back when the reservation is undone",
			checkLabReservation},
		Check{GroupLab, "lab/blocked-hp",
			"rule 6: an HP the patient blocked gets no lab results, also with FORHOYET_AKUTT",
			checkLabBlockedHP},
		Check{GroupLab, "lab/every-route",
			"the rules hold on every route to lab results: a batch entry and the Patient compartment (Patient/{id}/DiagnosticReport) answer as the search does, restricted results left out",
			checkLabEveryRoute},
		Check{GroupLab, "lab/partial-failure",
			"with one registered lab source down (--failing-lab-source), the search answers 200 with the other sources' results and an OperationOutcome entry naming the failed source",
			checkLabPartialFailure},
		Check{GroupLab, "lab/audited",
			"a lab search leaves one AuditEvent naming the results listed; the citizen's own usage log shows that lab results were viewed, not which",
			checkLabAudited},
		Check{GroupLab, "lab/citizen-reads-own",
			"rule 8: the citizen reads their own lab results, and no one else's",
			checkLabCitizenReadsOwn},
	)
}

// Lab result code systems.
const (
	systemNLK       = "urn:oid:2.16.578.1.12.4.1.1.7280"
	systemLOINC     = "http://loinc.org"
	systemLabSource = "https://kjernejournal.example.no/fhir/CodeSystem/lab-source"
)

// labWindow is how far back lab results are shown by default.
const labWindow = 365 * 24 * time.Hour

// labResult is a lab search answer taken apart.
type labResult struct {
	res      *Response
	matches  []map[string]any
	included []map[string]any
	fullURLs []string // of the matches
	outcomes []map[string]any
	total    int
	next     string
}

func (d docCase) lab(path, basis string) Request {
	return Request{Path: path, As: PersonaHospitalDoctor, Patient: d.patient, Basis: basis}
}

func searchLab(t *T, req Request) *labResult {
	res := t.Do(req)
	return parseLab(t, req, res)
}

func parseLab(t *T, req Request, res *Response) *labResult {
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s as %s with %s: status %d, want 200: %s", req.Path, req.As, req.Basis, res.Status, Outcome(res))
	}
	b := res.JSON()
	if alStr(b, "resourceType") != "Bundle" || alStr(b, "type") != "searchset" {
		t.Fatalf("GET %s: not a searchset Bundle", req.Path)
	}
	r := &labResult{res: res, total: -1}
	if n, ok := b["total"].(float64); ok {
		r.total = int(n)
	}
	for _, l := range alList(b["link"]) {
		if alStr(l, "relation") == "next" {
			r.next = alStr(l, "url")
		}
	}
	for _, e := range alList(b["entry"]) {
		res := alObj(e["resource"])
		switch alStr(alObj(e["search"]), "mode") {
		case "match":
			r.matches = append(r.matches, res)
			r.fullURLs = append(r.fullURLs, alStr(e, "fullUrl"))
		case "include":
			r.included = append(r.included, res)
		case "outcome":
			r.outcomes = append(r.outcomes, res)
		}
	}
	return r
}

// requireResults ends the check when there is nothing to judge.
func (r *labResult) requireResults(t *T, d docCase, what string) {
	if len(r.matches) > 0 {
		return
	}
	if len(r.outcomes) > 0 {
		t.Fatalf("%s: no lab results, and the server reports: %s", what, issuesText(r.outcomes))
	}
	t.Skipf("%s: the lab sources hold no results for the citizen persona's Patient/%s from the last year; the development lab sources (kjsource, {base}/lab) hold results for her", what, d.patient)
}

// labSource is the source a result is tagged with.
func labSource(res map[string]any) string {
	for _, tag := range alList(alObj(res["meta"])["tag"]) {
		if alStr(tag, "system") == systemLabSource {
			return alStr(tag, "code")
		}
	}
	return ""
}

// labDate is when a result was taken.
func labDate(res map[string]any) (time.Time, bool) {
	s := cmp.Or(alStr(res, "effectiveDateTime"), alStr(alObj(res["effectivePeriod"]), "start"), alStr(res, "issued"))
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly, "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func checkLabFederatedSearch(t *T) {
	d := documentsCase(t)
	for _, typ := range []string{"DiagnosticReport", "Observation"} {
		path := typ + "?patient=" + url.QueryEscape(d.patient)
		r := searchLab(t, d.lab(path, "UNNTAK"))
		r.requireResults(t, d, "GET "+path)
		if f := r.failedSources(); len(f) > 0 && t.env.cfg.FailingLabSource == "" {
			t.Errorf("GET %s: sources failed: %v", path, f)
		}
		sources := map[string]bool{}
		var prev time.Time
		coded := false
		for i, m := range r.matches {
			if alStr(m, "resourceType") != typ {
				t.Errorf("GET %s: match %d is a %s", path, i, alStr(m, "resourceType"))
			}
			src := labSource(m)
			if src == "" {
				t.Errorf("GET %s: %s is not tagged with its lab source (meta.tag %s)", path, alStr(m, "id"), systemLabSource)
			}
			sources[src] = true
			if ref := alStr(alObj(m["subject"]), "reference"); ref != "Patient/"+d.patient {
				t.Errorf("GET %s: %s has subject %q, want Patient/%s", path, alStr(m, "id"), ref, d.patient)
			}
			date, ok := labDate(m)
			if !ok {
				t.Errorf("GET %s: %s has no date", path, alStr(m, "id"))
			} else if i > 0 && date.After(prev) {
				t.Errorf("GET %s: not newest first: %s (%s) after one of %s", path, alStr(m, "id"), date.Format(time.RFC3339), prev.Format(time.RFC3339))
			}
			prev = date
			for _, c := range alList(alObj(m["code"])["coding"]) {
				coded = coded || alStr(c, "system") == systemNLK || alStr(c, "system") == systemLOINC
			}
		}
		if len(sources) < 2 {
			t.Errorf("GET %s: results from %d lab source(s) (%v), want at least two merged", path, len(sources), sources)
		}
		if typ == "Observation" && !coded {
			t.Errorf("GET %s: no Observation is coded with NLK (%s) or LOINC", path, systemNLK)
		}
		if r.total < len(r.matches) {
			t.Errorf("GET %s: total %d, fewer than the %d matches", path, r.total, len(r.matches))
		}
		if leaked := leakedURLs(t, r.res.JSON()); len(leaked) > 0 {
			t.Errorf("GET %s: the answer names the sources' own URLs: %v", path, leaked)
		}
		id := alStr(r.matches[0], "id")
		res := t.Do(d.lab(typ+"/"+id, "UNNTAK"))
		if res.Status != http.StatusNotFound {
			t.Errorf("GET %s/%s: status %d, want 404 (lab results are not stored, so not read by id)", typ, id, res.Status)
		}
	}
}

func checkLabIncludeAndPaging(t *T) {
	d := documentsCase(t)
	path := "DiagnosticReport?patient=" + url.QueryEscape(d.patient) + "&_include=DiagnosticReport:result"
	r := searchLab(t, d.lab(path, "UNNTAK"))
	r.requireResults(t, d, "GET "+path)
	included := map[string]int{}
	for _, o := range r.included {
		if alStr(o, "resourceType") != "Observation" {
			t.Errorf("GET %s: an included %s, want Observations only", path, alStr(o, "resourceType"))
		}
		included["Observation/"+alStr(o, "id")]++
	}
	for ref, n := range included {
		if n > 1 {
			t.Errorf("GET %s: %s included %d times, want once", path, ref, n)
		}
	}
	for _, m := range r.matches {
		for _, res := range alList(m["result"]) {
			ref := alStr(res, "reference")
			if ref != "" && included[ref] == 0 {
				t.Errorf("GET %s: %s names result %s, which is not included", path, alStr(m, "id"), ref)
			}
		}
	}

	// Paging: the pages together are the whole result, in order.
	all := searchLab(t, d.lab("Observation?patient="+url.QueryEscape(d.patient), "UNNTAK"))
	if len(all.matches) < 3 {
		t.Skipf("fewer than 3 Observations for Patient/%s: too few to page", d.patient)
	}
	var paged []string
	req := d.lab("Observation?patient="+url.QueryEscape(d.patient)+"&_count=2", "UNNTAK")
	for range 100 {
		p := searchLab(t, req)
		if len(p.matches) > 2 {
			t.Fatalf("GET %s: %d matches on a page of _count=2", req.Path, len(p.matches))
		}
		if p.total != all.total {
			t.Errorf("GET %s: total %d, the unpaged search says %d", req.Path, p.total, all.total)
		}
		for _, m := range p.matches {
			paged = append(paged, alStr(m, "id"))
		}
		if p.next == "" {
			break
		}
		req.Path = p.next
	}
	var want []string
	for _, m := range all.matches {
		want = append(want, alStr(m, "id"))
	}
	if !slices.Equal(paged, want) {
		t.Errorf("the pages of _count=2 give %d results %v, the unpaged search %d %v", len(paged), paged, len(want), want)
	}
	asc := searchLab(t, d.lab("Observation?patient="+url.QueryEscape(d.patient)+"&_sort=date", "UNNTAK"))
	var got []string
	for _, m := range asc.matches {
		got = append(got, alStr(m, "id"))
	}
	first, _ := labDate(asc.matches[0])
	last, _ := labDate(asc.matches[len(asc.matches)-1])
	if first.After(last) {
		t.Errorf("Observation?_sort=date: the first result (%s) is newer than the last (%s)", first, last)
	}
	if len(got) != len(want) {
		t.Errorf("Observation?_sort=date: %d results, _sort=-date %d", len(got), len(want))
	}
	res := t.Do(d.lab("Observation?patient="+url.QueryEscape(d.patient)+"&_sort=code", "UNNTAK"))
	if res.Status != http.StatusBadRequest || res.ResourceType() != "OperationOutcome" {
		t.Errorf("Observation?_sort=code: status %d, want 400 with an OperationOutcome (lab results sort by date only)", res.Status)
	}
}

func checkLabWindow(t *T) {
	d := documentsCase(t)
	oldest := time.Now().Add(-labWindow - dateSlack)
	for _, typ := range []string{"DiagnosticReport", "Observation"} {
		path := typ + "?patient=" + url.QueryEscape(d.patient)
		r := searchLab(t, d.lab(path, "UNNTAK"))
		r.requireResults(t, d, "GET "+path)
		for _, m := range r.matches {
			if date, ok := labDate(m); ok && date.Before(oldest) {
				t.Errorf("GET %s: %s taken %s, more than a year ago", path, alStr(m, "id"), date.Format(time.DateOnly))
			}
			if alStr(m, "status") == "entered-in-error" {
				t.Errorf("GET %s: %s is entered in error", path, alStr(m, "id"))
			}
		}
		old := path + "&date=lt" + time.Now().AddDate(-1, 0, -7).Format(time.DateOnly)
		r = searchLab(t, d.lab(old, "UNNTAK"))
		if len(r.matches) > 0 {
			t.Errorf("GET %s: %d results older than a year, want none", old, len(r.matches))
		}
	}
}

func checkLabRestriction(t *T) {
	d := documentsCase(t)
	path := "DiagnosticReport?patient=" + url.QueryEscape(d.patient)
	before := searchLab(t, d.lab(path, "UNNTAK"))
	before.requireResults(t, d, "GET "+path)
	r := setPrivacy(t, PersonaCitizen, d.patient, privacyRestriction, []string{"lab-results"}, nil)
	res := accessChecked(t, d.lab(path, "UNNTAK"), http.StatusOK,
		WantAudit{Patient: d.patient, AgentHPR: hprHospitalDoctor, Reason: "ok-restricted-hidden", Opened: alBool(false)})
	hidden := parseLab(t, d.lab(path, "UNNTAK"), res)
	if len(hidden.matches) != 0 {
		t.Errorf("GET %s with lab results restricted: %d matches, want none", path, len(hidden.matches))
	}
	said := false
	for _, oo := range hidden.outcomes {
		said = said || slices.Contains(accessReasons(&Response{parsed: oo}), "ok-restricted-hidden")
	}
	if !said {
		t.Errorf("GET %s with lab results restricted: no OperationOutcome entry says restricted information exists", path)
	}
	if !redacted(res) {
		t.Errorf("GET %s with lab results restricted: the Bundle has no REDACTED security label", path)
	}
	// An elevated basis opens them, and the opening is logged.
	res = accessChecked(t, d.lab(path, "FORHOYET_SAMTYKKE"), http.StatusOK,
		WantAudit{Patient: d.patient, AgentHPR: hprHospitalDoctor, Reason: "ok-restricted-opened", Opened: alBool(true)})
	if opened := parseLab(t, d.lab(path, "FORHOYET_SAMTYKKE"), res); len(opened.matches) == 0 {
		t.Errorf("GET %s with FORHOYET_SAMTYKKE: no results; the elevated basis opens restricted lab results", path)
	}
	// Other sections stay visible.
	res = t.Do(d.lab("Encounter?patient="+url.QueryEscape(d.patient), "UNNTAK"))
	if res.Status != http.StatusOK || redacted(res) {
		t.Errorf("Encounter?patient= with only lab results restricted: status %d, redacted %v, want 200 and not redacted", res.Status, redacted(res))
	}
	r.lift(t)
	if after := searchLab(t, d.lab(path, "UNNTAK")); len(after.matches) == 0 {
		t.Errorf("GET %s after the citizen lifted the restriction: no results", path)
	}

	// A restricted visit history leaves lab results as they are unless
	// the server says otherwise: a server configured to close them
	// (--lab-follows-visit-history) answers lab-results-unavailable.
	v := setPrivacy(t, PersonaCitizen, d.patient, privacyRestriction, []string{"visits"}, nil)
	res = t.Do(d.lab(path, "UNNTAK"))
	switch {
	case res.Status == http.StatusOK:
	case res.Status == http.StatusForbidden && slices.Contains(accessReasons(res), "lab-results-unavailable"):
	default:
		t.Errorf("GET %s with the visit history restricted: status %d, want 200 or 403 lab-results-unavailable: %s", path, res.Status, Outcome(res))
	}
	v.lift(t)
}

func checkLabReservation(t *T) {
	d := documentsCase(t)
	path := "Observation?patient=" + url.QueryEscape(d.patient)
	searchLab(t, d.lab(path, "UNNTAK")).requireResults(t, d, "GET "+path)
	r := setPrivacy(t, PersonaCitizen, d.patient, privacyReservation, nil, nil)
	hiddenAccess(t, PersonaHospitalDoctor, hprHospitalDoctor, path, d.patient, "UNNTAK")
	hiddenAccess(t, PersonaHospitalDoctor, hprHospitalDoctor, "DiagnosticReport?patient="+url.QueryEscape(d.patient)+"&_include=DiagnosticReport:result", d.patient, "UNNTAK")
	r.lift(t)
	if after := searchLab(t, d.lab(path, "UNNTAK")); len(after.matches) == 0 {
		t.Errorf("GET %s after the citizen undid the reservation: no results", path)
	}
}

func checkLabBlockedHP(t *T) {
	d := documentsCase(t)
	path := "DiagnosticReport?patient=" + url.QueryEscape(d.patient)
	b := setPrivacy(t, PersonaSupport, d.patient, privacyBlock, nil, []string{hprEmergency})
	res := accessChecked(t, Request{Path: path, As: PersonaEmergency, Patient: d.patient, Basis: "FORHOYET_AKUTT"},
		http.StatusForbidden, WantAudit{Patient: d.patient, AgentHPR: hprEmergency, Refused: alBool(true)}, "hp-blocked")
	if bytes.Contains(res.Body, []byte(`"DiagnosticReport"`)) {
		t.Errorf("the refusal of the blocked HP carries DiagnosticReports")
	}
	// Only the named HP is blocked.
	if r := searchLab(t, d.lab(path, "UNNTAK")); len(r.matches) == 0 && len(r.outcomes) > 0 {
		t.Errorf("GET %s as the hospital doctor (not blocked): %s", path, issuesText(r.outcomes))
	}
	b.lift(t)
}

func checkLabEveryRoute(t *T) {
	d := documentsCase(t)
	direct := searchLab(t, d.lab("DiagnosticReport?patient="+url.QueryEscape(d.patient), "UNNTAK"))
	direct.requireResults(t, d, "GET DiagnosticReport?patient=")
	ids := func(r *labResult) []string {
		var out []string
		for _, m := range r.matches {
			out = append(out, alStr(m, "id"))
		}
		return out
	}
	compartment := func() *labResult {
		return searchLab(t, d.lab("Patient/"+d.patient+"/DiagnosticReport", "UNNTAK"))
	}
	batch := func() *labResult {
		body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"request": map[string]any{"method": "GET", "url": "DiagnosticReport?patient=" + d.patient}},
		}})
		req := Request{Method: http.MethodPost, Path: "", As: PersonaHospitalDoctor, Patient: d.patient, Basis: "UNNTAK", Body: body}
		res := t.Do(req)
		if res.Status != http.StatusOK {
			t.Fatalf("POST a batch with GET DiagnosticReport?patient=: status %d, want 200: %s", res.Status, Outcome(res))
		}
		entries := alList(res.JSON()["entry"])
		if len(entries) != 1 {
			t.Fatalf("the batch answer has %d entries, want 1", len(entries))
		}
		if st := alStr(alObj(entries[0]["response"]), "status"); !strings.HasPrefix(st, "200") {
			t.Fatalf("the batch entry GET DiagnosticReport?patient=: status %q, want 200", st)
		}
		inner, _ := json.Marshal(entries[0]["resource"])
		return parseLab(t, req, &Response{Status: http.StatusOK, Body: inner})
	}
	if got := ids(compartment()); len(got) != len(direct.matches) {
		t.Errorf("GET Patient/%s/DiagnosticReport: %d results, DiagnosticReport?patient= %d", d.patient, len(got), len(direct.matches))
	}
	if got := ids(batch()); len(got) != len(direct.matches) {
		t.Errorf("a batch entry GET DiagnosticReport?patient=: %d results, the search %d", len(got), len(direct.matches))
	}
	setPrivacy(t, PersonaCitizen, d.patient, privacyRestriction, []string{"lab-results"}, nil)
	if got := ids(compartment()); len(got) != 0 {
		t.Errorf("GET Patient/%s/DiagnosticReport with lab results restricted: %d results, want none", d.patient, len(got))
	}
	if got := ids(batch()); len(got) != 0 {
		t.Errorf("a batch entry GET DiagnosticReport?patient= with lab results restricted: %d results, want none", len(got))
	}
}

func checkLabPartialFailure(t *T) {
	failing := t.env.cfg.FailingLabSource
	if failing == "" {
		t.Skipf("no failing lab source configured: register a lab source that is down in the server's sources registry and name it with --failing-lab-source")
	}
	d := documentsCase(t)
	path := "Observation?patient=" + url.QueryEscape(d.patient)
	r := searchLab(t, d.lab(path, "UNNTAK"))
	r.requireResults(t, d, "GET "+path)
	f := r.failedSources()
	if !slices.ContainsFunc(f, func(s string) bool { return strings.Contains(s, failing) }) {
		t.Errorf("GET %s with lab source %s down: no outcome entry names it (outcomes: %v)", path, failing, f)
	}
	for _, m := range r.matches {
		if labSource(m) == failing {
			t.Errorf("GET %s: a result tagged with the failed source %s", path, failing)
		}
	}
}

func checkLabAudited(t *T) {
	d := documentsCase(t)
	req := d.lab("DiagnosticReport?patient="+url.QueryEscape(d.patient), "UNNTAK")
	res, rid := t.DoAudited(req)
	r := parseLab(t, req, res)
	r.requireResults(t, d, "GET "+req.Path)
	ev := t.ExpectAudit("the lab search", rid, WantAudit{Patient: d.patient, Outcome: "0", Basis: "UNNTAK", AgentHPR: hprHospitalDoctor})
	var listed []string
	for _, en := range alList(ev["entity"]) {
		typ := alObj(en["type"])
		if alStr(typ, "system") == systemResourceTypes && alStr(typ, "code") == "DiagnosticReport" {
			listed = append(listed, alStr(alObj(alObj(en["what"])["identifier"]), "value"))
		}
	}
	if len(listed) != len(r.matches) {
		t.Errorf("the lab search returned %d results, its %s names %d", len(r.matches), ev, len(listed))
	}
	var mine []AuditEvent
	for _, ev := range t.SearchAuditEvents(PersonaCitizen, url.Values{"patient": {d.patient}, "_count": {"200"}}) {
		if ev.RequestID() == rid {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("the citizen's usage log shows %d events of the lab search (request id %s), want 1", len(mine), rid)
	}
	if !slices.Contains(mine[0].Tags(), "lab-results-viewed") {
		t.Errorf("the citizen's view of the lab search: %s is not marked lab-results-viewed (tags %v)", mine[0], mine[0].Tags())
	}
	raw, _ := json.Marshal(mine[0])
	for _, id := range listed {
		if id != "" && bytes.Contains(raw, []byte(id)) {
			t.Errorf("the citizen's view of the lab search names result %s; the citizen sees that lab results were viewed, not which", id)
		}
	}
	for _, en := range alList(mine[0]["entity"]) {
		if en["query"] != nil {
			t.Errorf("the citizen's view of the lab search keeps the query")
		}
	}
}

func checkLabCitizenReadsOwn(t *T) {
	d := documentsCase(t)
	path := "Observation?patient=" + url.QueryEscape(d.patient)
	req := Request{Path: path, As: PersonaCitizen}
	r := searchLab(t, req)
	r.requireResults(t, d, "GET "+path+" as the citizen")
	other, _ := t.NewPatient(PatientSpec{})
	res := t.Do(Request{Path: "Observation?patient=" + other, As: PersonaCitizen})
	if res.Status != http.StatusForbidden && res.Status != http.StatusNotFound {
		t.Errorf("GET Observation?patient=%s (someone else) as the citizen: status %d, want 403 or 404: %s", other, res.Status, Outcome(res))
	}
}
