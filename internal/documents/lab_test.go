package documents

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/source"
)

// labRegistry registers the lab services of real sources (under /lab).
func (rs *realSource) labRegistry(orgs, regions []string) Source {
	return Source{Name: rs.name + "-lab", Kind: KindLab, DisplayName: rs.org.Name, Organisation: rs.org.Number,
		Region: rs.org.Region, BaseURL: rs.ts.URL + "/lab", SharesWith: SharesWith{Organisations: orgs, Regions: regions}}
}

// twoLabs starts OUS and NLSH and registers their lab services only: OUS
// shares with every region, NLSH with Helse Nord.
func twoLabs(t testing.TB, signer *Signer) (ous, nlsh *realSource, regs []Source) {
	jwks := serveJWKS(t, signer)
	ous = startSource(t, signer, jwks, "ous", orgOUS, nil)
	nlsh = startSource(t, signer, jwks, "nlsh", orgNLSH, nil)
	return ous, nlsh, []Source{ous.labRegistry(nil, Regions), nlsh.labRegistry(nil, []string{"Helse Nord"})}
}

// shownReports are the ids (source/id) of patient A's reports at the
// source that the rules let through at now with a window of years: not
// entered in error, taken within the window.
func shownReports(rs *realSource, now time.Time, years int) map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range source.GenerateLab(testNow, 7, []source.Patient{patA}, rs.org) {
		if access.LabResultShown(r.Status, r.Effective, now, years) {
			out[rs.name+"-lab/"+r.ID] = r.Effective
		}
	}
	return out
}

func labIDs(r Result) []string {
	var out []string
	for _, e := range r.Entries {
		out = append(out, e.Source+"/"+e.ID)
	}
	return out
}

func TestSearchLabMergesAndAppliesTheWindow(t *testing.T) {
	signer := newSigner(t)
	ous, nlsh, regs := twoLabs(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs)
	nord := Requester{HPR: "123", HPCategory: "LE", Org: orgNLSH.Number, Region: "helse-nord", PurposeOfUse: "TREAT", AccessBasis: "UNNTAK"}

	res, err := f.SearchLab(context.Background(), nord, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	want := shownReports(ous, testNow, 1)
	for k, v := range shownReports(nlsh, testNow, 1) {
		want[k] = v
	}
	require.NotEmpty(t, want)
	assert.ElementsMatch(t, slices.Collect(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	}), labIDs(res), "both labs' reports of the last year, none entered in error")
	assert.Equal(t, len(want), res.Total)
	for i, e := range res.Entries {
		if i > 0 {
			assert.False(t, e.Date.After(res.Entries[i-1].Date), "newest first")
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(e.Resource, &m))
		assert.Equal(t, "Patient/pas-a", m["subject"].(map[string]any)["reference"])
		tag := m["meta"].(map[string]any)["tag"].([]any)[0].(map[string]any)
		assert.Equal(t, LabSourceSystem, tag["system"])
		assert.Equal(t, e.Source, tag["code"])
		assert.Equal(t, e.Source+"."+e.ID, m["id"])
		assert.Equal(t, kjBase+"/DiagnosticReport/"+e.Source+"."+e.ID, e.FullURL)
	}
	assert.Len(t, res.Documents, len(res.Entries), "every listed result goes to the usage log")

	// Without a window, the older results come too; the clock decides.
	all, err := newFederation(t, signer, newClock(testNow), regs, func(c *Config) { c.LabWindowYears = -1 }).
		SearchLab(context.Background(), nord, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	assert.Greater(t, all.Total, res.Total, "the sources hold results older than a year")
	later, err := newFederation(t, signer, newClock(testNow.AddDate(0, 6, 0)), regs).
		SearchLab(context.Background(), nord, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	assert.Less(t, later.Total, res.Total, "half a year later, fewer results are inside the window")

	// A requester the second lab does not share with asks the first only.
	south := nord
	south.Org, south.Region = "999999999", "helse-vest"
	res, err = f.SearchLab(context.Background(), south, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	require.Len(t, res.Sources, 1)
	for _, e := range res.Entries {
		assert.Equal(t, "ous-lab", e.Source)
	}
	// A citizen reading their own results asks every lab, with a
	// citizen's assertion the labs accept.
	res, err = f.SearchLab(context.Background(), Requester{Citizen: true, PID: patientA}, patientA, "pas-a", LabQuery{Type: "Observation", Count: 1000})
	require.NoError(t, err)
	require.Len(t, res.Sources, 2)
	for _, s := range res.Sources {
		assert.Equal(t, "ok", s.Status, "%s: %s", s.Source, s.Detail)
	}
	assert.NotEmpty(t, res.Entries)
}

func TestSearchLabIncludeFiltersAndPaging(t *testing.T) {
	signer := newSigner(t)
	_, _, regs := twoLabs(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs, func(c *Config) { c.LabWindowYears = -1 })
	req := Requester{HPR: "123", HPCategory: "LE", Org: orgNLSH.Number, Region: "helse-nord", PurposeOfUse: "TREAT", AccessBasis: "UNNTAK"}
	search := func(q LabQuery) Result {
		t.Helper()
		if q.Count == 0 {
			q.Count = 1000
		}
		res, err := f.SearchLab(context.Background(), req, patientA, "pas-a", q)
		require.NoError(t, err)
		return res
	}

	res := search(LabQuery{Type: "DiagnosticReport", IncludeResults: true})
	included := map[string]int{}
	for _, e := range res.Included {
		included[e.FullURL]++
	}
	for url, n := range included {
		assert.Equal(t, 1, n, "%s included once", url)
	}
	for _, e := range res.Entries {
		var m struct {
			Result []struct{ Reference string } `json:"result"`
		}
		require.NoError(t, json.Unmarshal(e.Resource, &m))
		for _, r := range m.Result {
			assert.Contains(t, included, kjBase+"/"+r.Reference, "%s's result is included", e.ID)
		}
	}
	assert.NotEmpty(t, res.Included)

	// Paging slices the same merged order.
	all := labIDs(search(LabQuery{Type: "Observation"}))
	var paged []string
	for off := 0; off < len(all); off += 3 {
		paged = append(paged, labIDs(search(LabQuery{Type: "Observation", Offset: off, Count: 3}))...)
	}
	assert.Equal(t, all, paged)
	asc := labIDs(search(LabQuery{Type: "Observation", Ascending: true}))
	assert.ElementsMatch(t, all, asc)
	assert.NotEqual(t, all, asc, "oldest first")

	// Filters: category, code, status and date.
	mb := search(LabQuery{Type: "DiagnosticReport", Categories: []string{"http://terminology.hl7.org/CodeSystem/v2-0074|MB"}})
	lab := search(LabQuery{Type: "DiagnosticReport", Categories: []string{"LAB"}})
	assert.Equal(t, res.Total, mb.Total+lab.Total, "every report is LAB or MB")
	crp := search(LabQuery{Type: "Observation", Codes: []string{"urn:oid:2.16.578.1.12.4.1.1.7280|NPU19748"}})
	for _, e := range crp.Entries {
		assert.Contains(t, string(e.Resource), `"NPU19748"`)
	}
	none := search(LabQuery{Type: "Observation", Codes: []string{"http://loinc.org|NPU19748"}})
	assert.Zero(t, none.Total, "a code of another system matches nothing")
	prelim := search(LabQuery{Type: "DiagnosticReport", Statuses: []string{"preliminary"}})
	for _, e := range prelim.Entries {
		assert.Contains(t, string(e.Resource), `"status":"preliminary"`)
	}
	from := testNow.AddDate(0, -6, 0)
	recent := search(LabQuery{Type: "Observation", DateFrom: from})
	assert.Less(t, recent.Total, len(all))
	for _, e := range recent.Entries {
		assert.False(t, e.Date.Before(from))
	}
}

// A lab that answers for another person, garbage or nothing is reported,
// and what it sent is never shown as this patient's.
func TestSearchLabFailingAndForeignAnswers(t *testing.T) {
	signer := newSigner(t)
	ous, _, regs := twoLabs(t, signer)
	report := func(id, subject, extra string) string {
		return `{"search":{"mode":"match"},"resource":{"resourceType":"DiagnosticReport","id":"` + id + `","status":"final","code":{"text":"Blodstatus"},` +
			`"effectiveDateTime":"` + testNow.AddDate(0, -1, 0).Format(time.RFC3339) + `"` + subject + extra + `}}`
	}
	of := func(pnr string) string {
		return `,"subject":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"` + pnr + `"}}`
	}
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","entry":[` +
			report("x1", of(patientB), "") + `,` + // another person's
			report("x2", "", "") + `,` + // nobody's
			report("x3", of(patientA), `,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>alert(1)</script>Hb 13</div>"}`) +
			`]}`))
	}))
	t.Cleanup(foreign.Close)
	regs = append(regs[:1], Source{Name: "foreign", Kind: KindLab, Organisation: "300010849", Region: "helse-vest",
		BaseURL: foreign.URL, SharesWith: SharesWith{Regions: Regions}})
	f := newFederation(t, signer, newClock(testNow), regs)
	req := Requester{HPR: "123", HPCategory: "LE", Org: orgOUS.Number, Region: "helse-sor-ost", PurposeOfUse: "TREAT", AccessBasis: "UNNTAK"}

	res, err := f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	var shown []string
	for _, e := range res.Entries {
		if e.Source == "foreign" {
			shown = append(shown, e.ID)
			assert.NotContains(t, string(e.Resource), "script", "a narrative that breaks txt-1 is removed")
			assert.NotContains(t, string(e.Resource), `"div"`)
		}
	}
	assert.Equal(t, []string{"x3"}, shown, "only the result about the patient, not another person's or nobody's")
	assert.Contains(t, string(res.Outcome()), "2 unreadable results left out")

	require.NoError(t, ous.src.SetFaults(source.Faults{Garbage: true}))
	res, err = f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	for _, e := range res.Entries {
		assert.Equal(t, "foreign", e.Source, "nothing of the garbage")
	}
	assert.Contains(t, string(res.Outcome()), "is not a FHIR Bundle")
	require.NoError(t, ous.src.SetFaults(source.Faults{Down: true}))
	res, err = f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", Count: 1000})
	require.NoError(t, err)
	oo := string(res.Outcome())
	assert.Contains(t, oo, "ous-lab")
	assert.True(t, strings.Contains(oo, "source-error"), oo)
}

// The document search asks document sources only, and a lab search lab
// sources only, from one registry.
func TestKindsStayApart(t *testing.T) {
	signer := newSigner(t)
	jwks := serveJWKS(t, signer)
	ous := startSource(t, signer, jwks, "ous", orgOUS, source.GenerateAt(testNow, 7, []source.Patient{patA}, orgOUS, 6))
	f := newFederation(t, signer, newClock(testNow), []Source{ous.registry(allGroups, nil, Regions), ous.labRegistry(nil, Regions)})
	assert.True(t, f.Serves(KindDocuments))
	assert.True(t, f.Serves(KindLab))
	req := Requester{HPR: "123", HPCategory: "LE", Org: orgOUS.Number, Region: "helse-sor-ost", PurposeOfUse: "TREAT", AccessBasis: "UNNTAK"}
	docs, err := f.Search(context.Background(), req, patientA, Query{})
	require.NoError(t, err)
	require.Len(t, docs.Sources, 1)
	assert.Equal(t, "ous", docs.Sources[0].Source)
	lab, err := f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "Observation", Count: 10})
	require.NoError(t, err)
	require.Len(t, lab.Sources, 1)
	assert.Equal(t, "ous-lab", lab.Sources[0].Source)
	assert.Equal(t, "ok", lab.Sources[0].Status, lab.Sources[0].Detail)
}

// The token's granular scope holds for included Observations too: a grant
// for CRP results only includes no other result of a listed report.
func TestSearchLabScopeHoldsForIncludes(t *testing.T) {
	signer := newSigner(t)
	_, _, regs := twoLabs(t, signer)
	f := newFederation(t, signer, newClock(testNow), regs, func(c *Config) { c.LabWindowYears = -1 })
	req := Requester{HPR: "123", HPCategory: "LE", Org: orgNLSH.Number, Region: "helse-nord", PurposeOfUse: "TREAT", AccessBasis: "UNNTAK"}
	crpOnly := Admits(func(match func(param, value string) bool) bool {
		return match("code", "urn:oid:2.16.578.1.12.4.1.1.7280|NPU19748")
	})
	all, err := f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", IncludeResults: true, Count: 1000})
	require.NoError(t, err)
	res, err := f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "Observation", Count: 1000, Admits: crpOnly})
	require.NoError(t, err)
	require.NotEmpty(t, res.Entries, "the patient has CRP results")
	for _, e := range res.Entries {
		assert.Contains(t, string(e.Resource), `"NPU19748"`)
	}
	scoped, err := f.SearchLab(context.Background(), req, patientA, "pas-a", LabQuery{Type: "DiagnosticReport", IncludeResults: true, Count: 1000,
		Admits: Admits(func(match func(param, value string) bool) bool {
			// Reports of any kind, results of CRP only.
			return match("category", "LAB") || match("category", "MB") || match("code", "urn:oid:2.16.578.1.12.4.1.1.7280|NPU19748")
		})})
	require.NoError(t, err)
	require.Less(t, len(scoped.Included), len(all.Included))
	for _, e := range scoped.Included {
		assert.Contains(t, string(e.Resource), `"NPU19748"`, "an included result the scope does not grant")
	}
}
