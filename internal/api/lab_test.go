package api_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/source"
)

// labNow is the instant the lab tests' federation clock stands still at
// (sourceOptions.labAt); the lab services' results are generated back
// from it, so which of them the window shows is known exactly.
var labNow = time.Date(2026, time.March, 2, 12, 0, 0, 0, time.UTC)

// withLab starts the two source hospitals with their lab services.
func withLab(t *testing.T, tune func(*documents.Config)) (*secured, map[string]*source.Server) {
	t.Helper()
	return withSourcesConfig(t, sourceOptions{labAt: labNow, tune: tune})
}

// labWant is one lab result as a search should list it.
type labWant struct {
	ref    string // Type/id as this server names it
	srcID  string // its id at the lab source
	source string // the lab source's name
	lab    string // the lab's name, as users see it
	org    string // the lab's organisation number
	at     time.Time
}

// wantLab lists what the lab services of hs hold for the citizen persona
// as results of typ (DiagnosticReport or Observation), newest first (ties
// by source, then id at the source): shown are those a window of years
// (0: none) ending at labNow shows, old those it hides. A result entered
// in error is in neither. The rules are written out here rather than
// taken from package access: this is what the user must see.
func wantLab(hs []sourceHospital, typ string, years int) (shown, old []labWant) {
	for _, h := range hs {
		for _, rep := range labReports(h, labNow) {
			add := func(id, status string) {
				w := labWant{ref: typ + "/" + h.labName() + "." + id, srcID: id, source: h.labName(), lab: h.display, org: h.org, at: rep.Effective}
				switch {
				case status == "entered-in-error":
				case years > 0 && rep.Effective.Before(labNow.AddDate(-years, 0, 0)):
					old = append(old, w)
				default:
					shown = append(shown, w)
				}
			}
			if typ == "DiagnosticReport" {
				add(rep.ID, rep.Status)
				continue
			}
			for _, res := range rep.Results {
				add(res.ID, res.Status)
			}
		}
	}
	order := func(a, b labWant) int {
		return cmp.Or(b.at.Compare(a.at), cmp.Compare(a.source, b.source), cmp.Compare(a.srcID, b.srcID))
	}
	slices.SortFunc(shown, order)
	slices.SortFunc(old, order)
	return shown, old
}

func refs(ws []labWant) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ref
	}
	return out
}

// labResource is the part of a lab result the tests read.
type labResource struct {
	ResourceType      string `json:"resourceType"`
	ID                string `json:"id"`
	EffectiveDateTime string `json:"effectiveDateTime"`
	Meta              struct {
		Tag []struct{ System, Code, Display string } `json:"tag"`
	} `json:"meta"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	Result []struct {
		Reference string `json:"reference"`
	} `json:"result"`
}

// labResources decodes the entries of the search mode.
func (b searchset) labResources(t *testing.T, mode string) []labResource {
	t.Helper()
	var out []labResource
	for _, e := range b.Entry {
		if e.Search.Mode == mode {
			var r labResource
			require.NoError(t, json.Unmarshal(e.Resource, &r))
			out = append(out, r)
		}
	}
	return out
}

// labRoutes are the ways of asking for the patient's DiagnosticReports:
// the REST search, the Patient compartment and a read entry of a batch or
// of a transaction.
var labRoutes = []string{"search", "compartment", "batch", "transaction"}

// askLab searches the patient's DiagnosticReports on route, with more
// parameters (params: "&name=value..."). A Bundle entry's answer comes
// back as if it were its own request: the entry's status and its resource
// (or outcome) as body.
func askLab(t *testing.T, s *secured, route, tok, basis, patient, params string) response {
	t.Helper()
	switch route {
	case "search":
		return s.as_(tok, basis, "GET", "/DiagnosticReport?patient="+patient+params, nil)
	case "compartment":
		path := "/Patient/" + patient + "/DiagnosticReport"
		if params != "" {
			path += "?" + strings.TrimPrefix(params, "&")
		}
		return s.as_(tok, basis, "GET", path, nil)
	case "batch", "transaction":
		body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": route, "entry": []any{
			map[string]any{"request": map[string]any{"method": "GET", "url": "DiagnosticReport?patient=" + patient + params}}}})
		require.NoError(t, err)
		r := s.as_(tok, basis, "POST", "/", body)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var b struct {
			Type  string `json:"type"`
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
				Response struct {
					Status  string          `json:"status"`
					Outcome json.RawMessage `json:"outcome"`
				} `json:"response"`
			} `json:"entry"`
		}
		require.NoError(t, json.Unmarshal(r.body, &b))
		require.Equal(t, route+"-response", b.Type)
		require.Len(t, b.Entry, 1, "body: %s", r.body)
		e := b.Entry[0]
		code, _, _ := strings.Cut(e.Response.Status, " ")
		status, err := strconv.Atoi(code)
		require.NoError(t, err, "entry status %q", e.Response.Status)
		body = e.Resource
		if len(body) == 0 {
			body = e.Response.Outcome
		}
		return response{status: status, header: r.header, body: body}
	}
	t.Fatalf("no lab route %q", route)
	return response{}
}

// TestLabSearchOverHTTP: a health worker's search merges the results of
// both lab sources, newest first, each tagged with its source and naming
// the patient; _include brings each Observation of the listed reports
// once; _count and the next links walk every result once; lab results
// are not read by id.
func TestLabSearchOverHTTP(t *testing.T) {
	s, _ := withLab(t, nil)
	doc := s.token("hospital-doctor", citizenPatient)
	hs := sourceHospitals[:2]
	reports, _ := wantLab(hs, "DiagnosticReport", 1)
	observations, _ := wantLab(hs, "Observation", 1)
	for _, h := range hs {
		require.True(t, slices.ContainsFunc(reports, func(w labWant) bool { return w.source == h.labName() }), "the fixture has results at %s", h.labName())
	}

	r := s.as_(doc, "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient, nil)
	b := bundleOf(t, r)
	validR4(t, r.body)
	assert.Equal(t, refs(reports), b.ids("match"), "both sources' reports, merged newest first")
	require.NotNil(t, b.Total)
	assert.Equal(t, len(reports), *b.Total)
	assert.Empty(t, b.outcomeIssues(t), "every source answered")
	sources := map[string]bool{}
	for i, res := range b.labResources(t, "match") {
		assert.Equal(t, "Patient/"+citizenPatient, res.Subject.Reference, res.ID)
		require.Len(t, res.Meta.Tag, 1, res.ID)
		tag := res.Meta.Tag[0]
		assert.Equal(t, documents.LabSourceSystem, tag.System, res.ID)
		assert.Equal(t, reports[i].source, tag.Code, "%s is tagged with the source it came from", res.ID)
		assert.Equal(t, reports[i].lab, tag.Display, "the tag names the lab as users know it")
		sources[tag.Code] = true
		at, err := time.Parse(time.RFC3339, res.EffectiveDateTime)
		require.NoError(t, err)
		assert.True(t, at.Equal(reports[i].at), res.ID)
	}
	assert.Len(t, sources, 2, "results from both lab sources")

	// An offset past the end is an empty last page, whatever its size:
	// no next link back to the first page.
	for _, off := range []string{"1000", "9223372036854775807"} {
		b := bundleOf(t, s.as_(doc, "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient+"&_offset="+off, nil))
		assert.Empty(t, b.ids("match"), off)
		assert.Empty(t, b.link("next"), "_offset=%s", off)
		assert.NotEmpty(t, b.link("previous"), "_offset=%s", off)
	}

	// POST _search with a form body is the same search.
	r = s.do("POST", "/DiagnosticReport/_search", []byte("patient="+citizenPatient), "Authorization", "Bearer "+doc,
		"nhn-access-basis", "UNNTAK", "Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, refs(reports), bundleOf(t, r).ids("match"), "POST DiagnosticReport/_search")

	// The Observations, searched on their own.
	r = s.as_(doc, "UNNTAK", "GET", "/Observation?patient="+citizenPatient, nil)
	b = bundleOf(t, r)
	validR4(t, r.body)
	assert.Equal(t, refs(observations), b.ids("match"))
	for _, res := range b.labResources(t, "match") {
		assert.Equal(t, "Patient/"+citizenPatient, res.Subject.Reference, res.ID)
	}

	// _include=DiagnosticReport:result: each Observation a listed report
	// refers to, once, and nothing else.
	r = s.as_(doc, "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient+"&_count=4&_include=DiagnosticReport:result", nil)
	b = bundleOf(t, r)
	validR4(t, r.body)
	assert.Equal(t, refs(reports[:4]), b.ids("match"))
	var referred []string
	for _, res := range b.labResources(t, "match") {
		require.NotEmpty(t, res.Result, res.ID)
		for _, ref := range res.Result {
			referred = append(referred, ref.Reference)
		}
	}
	included := b.ids("include")
	assert.ElementsMatch(t, referred, included, "each referenced Observation is included")
	assert.Len(t, included, len(slices.Compact(slices.Sorted(slices.Values(included)))), "each once")
	for _, inc := range b.labResources(t, "include") {
		assert.Equal(t, "Observation", inc.ResourceType)
		assert.Equal(t, "Patient/"+citizenPatient, inc.Subject.Reference, inc.ID)
		require.Len(t, inc.Meta.Tag, 1)
		assert.True(t, strings.HasPrefix(inc.ID, inc.Meta.Tag[0].Code+"."), "%s is tagged with its source", inc.ID)
	}

	// Paging: _count and the next links cover every result once, in order.
	var paged []string
	next := "/DiagnosticReport?patient=" + citizenPatient + "&_count=3"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, len(reports), "the next links end")
		b = bundleOf(t, s.as_(doc, "UNNTAK", "GET", next, nil))
		require.NotNil(t, b.Total)
		assert.Equal(t, len(reports), *b.Total, "the total on every page")
		page := b.ids("match")
		require.NotEmpty(t, page)
		assert.LessOrEqual(t, len(page), 3)
		paged = append(paged, page...)
		next = ""
		if l := b.link("next"); l != "" {
			require.True(t, strings.HasPrefix(l, s.base), l)
			next = strings.TrimPrefix(l, s.base)
		}
	}
	assert.Equal(t, refs(reports), paged)

	// Nothing is stored here: no read by id.
	for _, ref := range []string{reports[0].ref, observations[0].ref} {
		outcome(t, s.as_(doc, "UNNTAK", "GET", "/"+ref, nil), http.StatusNotFound)
	}
}

// TestLabRulesOnEveryRoute: the REST search, the Patient compartment and
// a batch entry hold the same rules: the citizen's restriction of lab
// results leaves them out (and says so) until FORHOYET_SAMTYKKE opens
// them; a block set by citizen support refuses the blocked health worker
// whatever the basis; a reserved patient answers as an unknown one.
func TestLabRulesOnEveryRoute(t *testing.T) {
	s, _ := withLab(t, nil)
	doc, gp := s.token("hospital-doctor", citizenPatient), s.token("gp", citizenPatient)
	citizen, support := s.token("citizen", ""), s.token("citizen-support", "")
	reports, _ := wantLab(sourceHospitals[:2], "DiagnosticReport", 1)
	now := time.Now().UTC().Truncate(time.Second)
	noResults := func(t *testing.T, body []byte) {
		t.Helper()
		for _, w := range reports {
			require.NotContains(t, string(body), w.srcID, "no lab result leaks")
		}
	}

	for _, route := range labRoutes {
		b := bundleOf(t, askLab(t, s, route, doc, "UNNTAK", citizenPatient, ""))
		require.Equal(t, refs(reports), b.ids("match"), "%s: open before the restriction", route)
	}

	// The citizen restricts the lab results.
	r := s.as_(citizen, "", "POST", "/Consent", consent(privacy.Restriction, true, now, []access.Section{access.LabResults}))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	for _, route := range labRoutes {
		t.Run("restricted/"+route, func(t *testing.T) {
			r := askLab(t, s, route, doc, "UNNTAK", citizenPatient, "")
			b := bundleOf(t, r)
			validR4(t, r.body)
			assert.Empty(t, b.ids("match"), "no results")
			require.NotNil(t, b.Total)
			assert.Zero(t, *b.Total)
			issues := b.outcomeIssues(t)
			require.Len(t, issues, 1, "an outcome says something is left out: %s", r.body)
			assert.Equal(t, "suppressed", issues[0]["code"])
			assert.Contains(t, fmt.Sprint(issues[0]["details"]), string(access.OKPartsHidden))
			assert.Contains(t, string(r.body), `"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED"`)
			noResults(t, r.body)

			r = askLab(t, s, route, doc, "FORHOYET_SAMTYKKE", citizenPatient, "")
			b = bundleOf(t, r)
			assert.Equal(t, refs(reports), b.ids("match"), "FORHOYET_SAMTYKKE opens them")
			assert.NotContains(t, string(r.body), "REDACTED")
		})
	}

	// Citizen support blocks the hospital doctor: refused on every route,
	// whatever the basis; the GP is not blocked.
	r = s.as_(support, "", "POST", "/Consent", consent(privacy.Block, true, now, nil, doctorHPR))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	for _, route := range labRoutes {
		t.Run("blocked/"+route, func(t *testing.T) {
			for _, basis := range []string{"UNNTAK", "FORHOYET_SAMTYKKE", "FORHOYET_AKUTT"} {
				r := askLab(t, s, route, doc, basis, citizenPatient, "")
				assert.Equal(t, http.StatusForbidden, r.status, "%s: body: %s", basis, r.body)
				assert.Equal(t, string(access.HPBlocked), reasonOf(t, r), basis)
				noResults(t, r.body)
			}
			b := bundleOf(t, askLab(t, s, route, gp, "FORHOYET_SAMTYKKE", citizenPatient, ""))
			assert.Equal(t, refs(reports), b.ids("match"), "another health worker is not blocked")
		})
	}

	// The citizen reserves themself: every route answers exactly as for a
	// patient kjernejournal has no record of, to the GP and to the blocked
	// doctor alike.
	r = s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, now, nil))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	const unknown = "no-such-patient"
	for _, route := range labRoutes {
		t.Run("reserved/"+route, func(t *testing.T) {
			for _, persona := range []string{"gp", "hospital-doctor"} {
				reserved := askLab(t, s, route, s.token(persona, citizenPatient), "UNNTAK", citizenPatient, "")
				other := askLab(t, s, route, s.token(persona, unknown), "UNNTAK", unknown, "")
				outcome(t, other, http.StatusNotFound)
				assert.Equal(t, other.status, reserved.status, persona)
				assert.Equal(t, strings.ReplaceAll(string(other.body), unknown, citizenPatient), string(reserved.body), "%s: as if unknown", persona)
				noResults(t, reserved.body)
			}
		})
	}
}

// TestLabFailingSource: a lab source that is down, answers garbage or an
// answer larger than the federation takes is named in an outcome entry,
// and the other source's results still come, complete.
func TestLabFailingSource(t *testing.T) {
	const limit = 256 << 10
	s, srcs := withLab(t, func(c *documents.Config) { c.MaxSearchResponse = limit })
	doc := s.token("hospital-doctor", citizenPatient)
	failing, healthy := sourceHospitals[1], sourceHospitals[0]
	for _, tc := range []struct {
		name   string
		faults source.Faults
		detail string
		count  func(source.Stats) int64
	}{
		{"down", source.Faults{Down: true}, "HTTP 503", func(st source.Stats) int64 { return st.RefusedDown }},
		{"garbage", source.Faults{Garbage: true}, "not a FHIR Bundle", func(st source.Stats) int64 { return st.GarbageAnswers }},
		{"huge", source.Faults{HugeSearchBytes: 4 * limit}, fmt.Sprintf("larger than %d bytes", limit), func(st source.Stats) int64 { return st.PaddedAnswers }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, srcs[failing.name].SetFaults(tc.faults))
			t.Cleanup(func() { require.NoError(t, srcs[failing.name].SetFaults(source.Faults{})) })
			for _, typ := range []string{"DiagnosticReport", "Observation"} {
				want, _ := wantLab([]sourceHospital{healthy}, typ, 1)
				before := tc.count(srcs[failing.name].Stats())
				r := s.as_(doc, "UNNTAK", "GET", "/"+typ+"?patient="+citizenPatient, nil)
				b := bundleOf(t, r)
				validR4(t, r.body)
				assert.Equal(t, before+1, tc.count(srcs[failing.name].Stats()), "%s: the fault was applied", typ)
				assert.Equal(t, refs(want), b.ids("match"), "%s: the healthy source's results, all of them", typ)
				issues := b.outcomeIssues(t)
				require.Len(t, issues, 1, "%s: one issue, for the failing source: %s", typ, r.body)
				assert.Equal(t, "warning", issues[0]["severity"], "the search itself succeeded")
				assert.Contains(t, fmt.Sprint(issues[0]["details"]), "source-error")
				assert.Contains(t, fmt.Sprint(issues[0]["details"]), "display:"+failing.labName(), "the issue names the source")
				diag, _ := issues[0]["diagnostics"].(string)
				assert.Contains(t, diag, failing.display+" ("+failing.labName()+")", "readable for the user")
				assert.Contains(t, diag, tc.detail)
				assert.Contains(t, diag, "lab results are missing")
				assert.NotContains(t, diag, "127.0.0.1", "no internal addresses")
			}
		})
	}
	// Healthy again: nothing is missing, nothing is reported.
	want, _ := wantLab(sourceHospitals[:2], "DiagnosticReport", 1)
	b := bundleOf(t, s.as_(doc, "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient, nil))
	assert.Equal(t, refs(want), b.ids("match"))
	assert.Empty(t, b.outcomeIssues(t))
}

// TestLabWindow: a result taken before the window (LabWindowYears; 0 is
// the default of one year, negative none) never appears, whatever the
// query asks, while the sources do hold such results: exactly the
// sources' results inside the window come, on both types.
func TestLabWindow(t *testing.T) {
	for _, tc := range []struct {
		name         string
		config, want int // LabWindowYears as configured; the window in years (0: none)
	}{
		{"default one year", 0, 1},
		{"two years", 2, 2},
		{"no window", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := withLab(t, func(c *documents.Config) { c.LabWindowYears = tc.config })
			doc := s.token("hospital-doctor", citizenPatient)
			hs := sourceHospitals[:2]
			for _, typ := range []string{"DiagnosticReport", "Observation"} {
				shown, old := wantLab(hs, typ, tc.want)
				if tc.want == 1 {
					// source.GenerateLab gives every patient a report 13.5
					// to 32 months old at each lab.
					require.NotEmpty(t, old, "the sources hold %ss older than the window", typ)
				}
				if tc.want == 0 {
					_, beyond := wantLab(hs, typ, 1)
					require.NotEmpty(t, beyond)
					assert.Subset(t, refs(shown), refs(beyond), "without a window the old results come")
				}
				t.Logf("%s: %d shown, %d older than the window", typ, len(shown), len(old))
				b := bundleOf(t, s.as_(doc, "UNNTAK", "GET", "/"+typ+"?patient="+citizenPatient+"&_count=1000", nil))
				assert.Equal(t, refs(shown), b.ids("match"), typ)
				if tc.want == 0 {
					continue
				}
				// Asking for old results explicitly does not bring them.
				cut := labNow.AddDate(-tc.want, 0, 0)
				b = bundleOf(t, s.as_(doc, "UNNTAK", "GET", "/"+typ+"?patient="+citizenPatient+"&date=lt"+cut.Format(time.RFC3339), nil))
				assert.Empty(t, b.ids("match"), "%s before the window", typ)
				require.NotNil(t, b.Total)
				assert.Zero(t, *b.Total)
				b = bundleOf(t, s.as_(doc, "UNNTAK", "GET", "/"+typ+"?patient="+citizenPatient+"&_count=1000&date=ge2000-01-01", nil))
				assert.Equal(t, refs(shown), b.ids("match"), "%s since 2000: the window still holds", typ)
			}
		})
	}
}

// TestLabUsageLog: each lab search leaves one AuditEvent naming each
// result it listed; the citizen reads their own lab results, and their
// view of the usage log shows that lab results were viewed, not which.
func TestLabUsageLog(t *testing.T) {
	s, _ := withLab(t, nil)
	doc := s.token("hospital-doctor", citizenPatient)
	hs := sourceHospitals[:2]
	for _, tc := range []struct {
		typ, params string
		page        func([]labWant) []labWant
	}{
		{"DiagnosticReport", "", func(w []labWant) []labWant { return w }},
		{"DiagnosticReport", "&_count=3&_offset=2&_include=DiagnosticReport:result", func(w []labWant) []labWant { return w[2:5] }},
		{"Observation", "&_count=4", func(w []labWant) []labWant { return w[:4] }},
	} {
		all, _ := wantLab(hs, tc.typ, 1)
		listed := tc.page(all)
		before := auditHead(t, s.st)
		r := s.as_(doc, "UNNTAK", "GET", "/"+tc.typ+"?patient="+citizenPatient+tc.params, nil)
		require.Equal(t, refs(listed), bundleOf(t, r).ids("match"))
		require.Equal(t, before+1, auditHead(t, s.st), "%s%s: one AuditEvent", tc.typ, tc.params)
		ev := lastAudit(t, s.st)
		var named []string
		for _, en := range ev["entity"].([]any) {
			e := en.(map[string]any)
			typ, _ := e["type"].(map[string]any)
			if typ["system"] != "http://hl7.org/fhir/resource-types" {
				continue
			}
			assert.Equal(t, tc.typ, typ["code"], "the entity is a %s", tc.typ)
			what := e["what"].(map[string]any)["identifier"].(map[string]any)
			assigner := what["assigner"].(map[string]any)["identifier"].(map[string]any)
			named = append(named, fmt.Sprint(assigner["value"], "/", what["value"]))
		}
		var want []string
		for _, w := range listed {
			want = append(want, w.org+"/"+w.srcID)
		}
		assert.Equal(t, want, named, "%s%s: each listed result, by its lab and its id there", tc.typ, tc.params)
		assert.Contains(t, fmt.Sprint(ev), string(audit.LabSearch))
	}

	// The citizen reads their own lab results: all of them, from every
	// lab source, without an access basis.
	citizen := s.token("citizen", "")
	reports, _ := wantLab(hs, "DiagnosticReport", 1)
	r := s.as_(citizen, "", "GET", "/DiagnosticReport?patient="+citizenPatient, nil)
	assert.Equal(t, refs(reports), bundleOf(t, r).ids("match"))

	// Their usage log: lab results were viewed (by the doctor, and by
	// themself), but not which.
	r = s.as_(citizen, "", "GET", "/AuditEvent?patient="+citizenPatient, nil)
	log := bundleOf(t, r)
	viewed := 0
	for _, e := range log.Entry {
		var ev struct {
			Meta struct {
				Tag []struct{ System, Code string } `json:"tag"`
			} `json:"meta"`
		}
		require.NoError(t, json.Unmarshal(e.Resource, &ev))
		if slices.ContainsFunc(ev.Meta.Tag, func(c struct{ System, Code string }) bool { return c.Code == audit.MarkerLabResultsViewed }) {
			viewed++
		}
	}
	assert.Equal(t, 4, viewed, "three searches by the doctor and the citizen's own: %s", r.body)
	all, _ := wantLab(hs, "DiagnosticReport", -1)
	obs, _ := wantLab(hs, "Observation", -1)
	for _, w := range append(all, obs...) {
		require.NotContains(t, string(r.body), w.srcID, "the citizen's view does not say which results")
	}
}

// A token's granular scope narrows the federated searches as it narrows
// the stored ones: patient/DiagnosticReport.rs?category=MB sees the
// microbiology reports only, and patient/DocumentReference.rs?category=A00
// the discharge summaries only.
func TestFederatedSearchesKeepGranularScopes(t *testing.T) {
	s, _ := withLab(t, nil)
	all := bundleOf(t, s.as_(s.token("hospital-doctor", citizenPatient), "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient, nil))
	mb := s.token("hospital-doctor", citizenPatient, "patient/DiagnosticReport.rs?category=http://terminology.hl7.org/CodeSystem/v2-0074|MB")
	require.NotNil(t, all.Total)
	var b searchset
	for _, route := range labRoutes {
		b = bundleOf(t, askLab(t, s, route, mb, "UNNTAK", citizenPatient, ""))
		require.NotNil(t, b.Total, route)
		assert.Less(t, *b.Total, *all.Total, "%s: the laboratory reports are left out", route)
		for _, res := range b.Entry {
			if res.Search.Mode == "match" {
				assert.Contains(t, string(res.Resource), `"code":"MB"`, route)
			}
		}
	}
	// A constraint the lab search cannot evaluate narrows to nothing.
	odd := s.token("hospital-doctor", citizenPatient, "patient/DiagnosticReport.rs?criticality=high")
	b = bundleOf(t, s.as_(odd, "UNNTAK", "GET", "/DiagnosticReport?patient="+citizenPatient, nil))
	assert.Zero(t, *b.Total)

	docs := bundleOf(t, s.as_(s.token("hospital-doctor", citizenPatient), "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil))
	a00 := s.token("hospital-doctor", citizenPatient, "patient/DocumentReference.rs?category=A00")
	b = bundleOf(t, s.as_(a00, "UNNTAK", "GET", "/DocumentReference?patient="+citizenPatient, nil))
	require.NotZero(t, *b.Total)
	assert.Less(t, *b.Total, *docs.Total)
	for _, res := range b.Entry {
		if res.Search.Mode == "match" {
			assert.Contains(t, string(res.Resource), `"code":"A0`, "a discharge summary (group A00)")
		}
	}
}

// With --lab-follows-visit-history, a restricted visit history closes the
// lab results as it closes the documents, on every route and whatever the
// basis; without it they stay open. The citizen still reads their own.
func TestLabFollowsVisitHistoryWhenConfigured(t *testing.T) {
	for _, follows := range []bool{false, true} {
		t.Run(fmt.Sprint("follows=", follows), func(t *testing.T) {
			s, _ := withSourcesConfig(t, sourceOptions{labAt: labNow, labFollowsVisits: follows})
			doc, citizen := s.token("hospital-doctor", citizenPatient), s.token("citizen", "")
			reports, _ := wantLab(sourceHospitals[:2], "DiagnosticReport", 1)
			r := s.as_(citizen, "", "POST", "/Consent", consent(privacy.Restriction, true, time.Now().UTC().Truncate(time.Second), []access.Section{access.VisitHistory}))
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			for _, route := range labRoutes {
				for _, basis := range []string{"UNNTAK", "FORHOYET_AKUTT"} {
					tok := doc
					if basis == "FORHOYET_AKUTT" {
						tok = s.token("emergency", citizenPatient)
					}
					r := askLab(t, s, route, tok, basis, citizenPatient, "")
					if !follows {
						assert.Equal(t, refs(reports), bundleOf(t, r).ids("match"), "%s %s: lab results stay open", route, basis)
						continue
					}
					assert.Equal(t, http.StatusForbidden, r.status, "%s %s: body: %s", route, basis, r.body)
					assert.Equal(t, string(access.LabResultsUnavailable), reasonOf(t, r), "%s %s", route, basis)
				}
			}
			own := bundleOf(t, s.as_(citizen, "", "GET", "/DiagnosticReport?patient="+citizenPatient, nil))
			assert.Equal(t, refs(reports), own.ids("match"), "the citizen reads their own")
		})
	}
}
