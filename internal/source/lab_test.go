package source

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

func TestGenerateLabIsDeterministicAndFollowsThePlan(t *testing.T) {
	ps, err := SeedPatients(1, 30)
	require.NoError(t, err)
	base := seed.DefaultBase
	labs := GenerateLab(base, 1, ps, testOrg)
	assert.Equal(t, labs, GenerateLab(base, 1, ps, testOrg), "same arguments, same results")
	other := GenerateLab(base, 1, ps, Hospitals()[5])
	require.NotEmpty(t, other)
	assert.NotEqual(t, labs[0].ID, other[0].ID, "sources do not share report ids")

	fhirID := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	ucum := map[string]bool{"g/dL": true, "10*9/L": true, "umol/L": true, "mmol/L": true, "mg/L": true, "mmol/mol": true, "U/L": true, "m[IU]/L": true, "ug/L": true}
	ids := map[string]bool{}
	statuses := map[string]int{}
	categories := map[string]int{}
	flags := map[string]int{}
	byPerson := map[string][]LabReport{}
	for _, rep := range labs {
		byPerson[rep.PersonNumber] = append(byPerson[rep.PersonNumber], rep)
		assert.True(t, fhirID.MatchString(rep.ID), rep.ID)
		assert.False(t, ids[rep.ID], "unique id %s", rep.ID)
		ids[rep.ID] = true
		statuses[rep.Status]++
		categories[rep.Category]++
		assert.Equal(t, testOrg, rep.Performer)
		assert.True(t, rep.Effective.Before(base), "sampled before base")
		assert.True(t, rep.Effective.After(base.AddDate(-3, 0, -1)), "within three years")
		assert.False(t, rep.Issued.Before(rep.Effective), "issued after sampling")
		assert.False(t, rep.Issued.After(base), "issued by base")
		birth, ok := birthDate(rep.PersonNumber)
		require.True(t, ok)
		assert.True(t, rep.Effective.After(birth), "not before the patient was born")
		require.NotEmpty(t, rep.Results)
		for i, res := range rep.Results {
			assert.True(t, fhirID.MatchString(res.ID), res.ID)
			assert.False(t, ids[res.ID], "unique id %s", res.ID)
			ids[res.ID] = true
			assert.Equal(t, resultStatus(rep.Status, i), res.Status)
			flags[res.Interpretation]++
		}
		switch rep.Category {
		case LabCategoryLab:
			assert.Empty(t, rep.Conclusion)
			var p *panel
			for i := range panels {
				if panels[i].name == rep.Panel {
					p = &panels[i]
				}
			}
			require.NotNil(t, p, rep.Panel)
			require.Len(t, rep.Results, len(p.analytes))
			if len(p.analytes) == 1 {
				assert.Equal(t, analytes[p.analytes[0]].code, rep.Code, "a single analysis is reported under its code")
			} else {
				assert.Empty(t, rep.Code, "panels have no national code")
			}
			adult := !rep.Effective.Before(birth.AddDate(18, 0, 0))
			for i, res := range rep.Results {
				a := analytes[p.analytes[i]]
				q := res.Quantity
				require.NotNil(t, q)
				assert.Empty(t, res.Text)
				assert.Equal(t, a.code, res.Code)
				assert.Equal(t, a.name, res.Name)
				assert.True(t, ucum[q.UCUM], q.UCUM)
				require.NotNil(t, q.High)
				rr := refRange{high: *q.High, hasLow: q.Low != nil}
				if q.Low != nil {
					rr.low = *q.Low
				}
				want := a.child
				if adult {
					want = a.female
					if isMale(rep.PersonNumber) {
						want = a.male
					}
				}
				assert.Equal(t, want, rr, "%s: the range of the patient's sex and age", a.name)
				assert.Equal(t, a.interpret(q.Value, rr), res.Interpretation, "%s %v", a.name, q.Value)
				switch res.Interpretation {
				case "N":
					assert.LessOrEqual(t, q.Value, rr.high)
					if rr.hasLow {
						assert.GreaterOrEqual(t, q.Value, rr.low)
					}
				case "H", "HH":
					assert.Greater(t, q.Value, rr.high)
				case "L", "LL":
					assert.Less(t, q.Value, rr.low)
				default:
					t.Errorf("%s: interpretation %q", a.name, res.Interpretation)
				}
			}
		case LabCategoryMicrobiology:
			assert.NotEmpty(t, rep.Conclusion)
			assert.Empty(t, rep.Code)
			require.Len(t, rep.Results, 1)
			res := rep.Results[0]
			assert.NotEmpty(t, res.Text)
			assert.Nil(t, res.Quantity)
			assert.Empty(t, res.Code)
			assert.Contains(t, []string{"POS", "NEG", ""}, res.Interpretation)
			assert.Equal(t, rep.Status == "preliminary", strings.HasPrefix(rep.Conclusion, "Foreløpig svar: "))
		default:
			t.Errorf("category %q", rep.Category)
		}
	}

	// The plan: every patient can be tested against a one-year window.
	require.Len(t, byPerson, len(ps), "every patient has results")
	for _, p := range ps {
		birth, _ := birthDate(p.PersonNumber)
		var recent, old bool
		for _, rep := range byPerson[p.PersonNumber] {
			age := base.Sub(rep.Effective)
			if rep.Status == "final" && rep.Category == LabCategoryLab {
				recent = recent || age < 60*24*time.Hour
				old = old || rep.Effective.Before(base.AddDate(0, -13, 0))
			}
		}
		if birth.Before(base.AddDate(0, 0, -60)) {
			assert.True(t, recent, "%s has a final result from the last two months", p.ID)
		}
		if birth.Before(base.AddDate(0, -33, 0)) {
			assert.True(t, old, "%s has a final result older than 13 months", p.ID)
		}
	}
	citizen := byPerson[seed.CitizenPersonNumber]
	assert.GreaterOrEqual(t, len(citizen), 2, "the demo citizen has results")

	// A mix a client must cope with.
	for _, s := range []string{"final", "preliminary", "amended", "entered-in-error"} {
		assert.Positive(t, statuses[s], s)
	}
	assert.Less(t, statuses["entered-in-error"]*20, len(labs), "entered-in-error is rare")
	assert.Greater(t, categories[LabCategoryLab], 2*categories[LabCategoryMicrobiology], "microbiology is a minority")
	assert.Positive(t, categories[LabCategoryMicrobiology])
	for _, f := range []string{"N", "H", "L", "HH", "LL", "POS", "NEG"} {
		assert.Positive(t, flags[f], f)
	}
	assert.Greater(t, flags["N"], flags["H"]+flags["L"]+flags["HH"]+flags["LL"], "mostly normal")
}

func TestIsMale(t *testing.T) {
	assert.False(t, isMale(seed.CitizenPersonNumber), "the demo citizen is a woman")
	assert.True(t, isMale("17859012310"))
	assert.False(t, isMale("1785901231"))
}

// TestLabResourcesAreValidFHIR parses every generated resource with the
// repository's codec, which validates against the R4 definitions.
func TestLabResourcesAreValidFHIR(t *testing.T) {
	codec, err := fhir.NewCodec("DiagnosticReport", "Observation")
	require.NoError(t, err)
	ps, err := SeedPatients(3, 30)
	require.NoError(t, err)
	n := 0
	for _, rep := range GenerateLab(time.Now(), 3, ps, testOrg) {
		body, err := json.Marshal(rep.diagnosticReport())
		require.NoError(t, err)
		r, err := codec.Parse(body)
		require.NoError(t, err, string(body))
		assert.Equal(t, "DiagnosticReport", r.Type)
		assert.Equal(t, rep.ID, r.ID)
		var refs []string
		for i, res := range rep.Results {
			refs = append(refs, "Observation/"+res.ID)
			body, err := json.Marshal(rep.observation(i))
			require.NoError(t, err)
			r, err := codec.Parse(body)
			require.NoError(t, err, string(body))
			assert.Equal(t, "Observation", r.Type)
			assert.Equal(t, res.ID, r.ID)
			n++
		}
		got, err := codec.Parse(body)
		require.NoError(t, err)
		assert.ElementsMatch(t, refs, got.References())
	}
	assert.Greater(t, n, 300)
}

func TestLabSearchReturnsThatPersonsResults(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range e.patients {
		want := e.labsOf(p.PersonNumber)
		require.NotEmpty(t, want)
		b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, nil)
		assert.Equal(t, len(want), b.Total)
		require.Len(t, b.Entry, len(want))
		assert.Empty(t, b.next())
		for i, en := range b.Entry {
			w := want[i]
			var dr jDiagnosticReport
			require.NoError(t, json.Unmarshal(en.Resource, &dr))
			assert.Equal(t, w.ID, dr.ID, "newest first, ties by id")
			assert.Equal(t, e.labAud()+"/DiagnosticReport/"+w.ID, en.FullURL)
			assert.Equal(t, "match", en.Search.Mode)
			assert.Equal(t, "DiagnosticReport", dr.ResourceType)
			assert.Equal(t, w.Status, dr.Status)
			assert.Equal(t, []jConcept{{Coding: []jCoding{{SystemReportCategory, w.Category, reportCategoryDisplay[w.Category]}}}}, dr.Category)
			assert.Equal(t, w.Panel, dr.Code.Text)
			assert.Equal(t, map[string]any{"identifier": map[string]any{"system": domain.SystemFNR, "value": p.PersonNumber}}, dr.Subject)
			assert.True(t, w.Effective.Equal(dr.EffectiveDateTime))
			assert.True(t, w.Issued.Equal(dr.Issued))
			require.Len(t, dr.Performer, 1)
			assert.Equal(t, domain.SystemOrgNr, dr.Performer[0].Identifier.System)
			assert.Equal(t, testOrg.Number, dr.Performer[0].Identifier.Value)
			assert.Equal(t, testOrg.Name, dr.Performer[0].Display)
			assert.Equal(t, w.Conclusion, dr.Conclusion)
			require.Len(t, dr.Result, len(w.Results))
			for j, res := range w.Results {
				assert.Equal(t, "Observation/"+res.ID, dr.Result[j].Reference)
			}
		}

		wantObs := e.obsOf(p.PersonNumber)
		ob := e.labSearch(t, "Observation", p.PersonNumber, nil)
		assert.Equal(t, len(wantObs), ob.Total)
		require.Len(t, ob.Entry, len(wantObs))
		for i, en := range ob.Entry {
			w := wantObs[i]
			var o jObservation
			require.NoError(t, json.Unmarshal(en.Resource, &o))
			assert.Equal(t, w.res.ID, o.ID, "newest first, ties by id")
			assert.Equal(t, e.labAud()+"/Observation/"+w.res.ID, en.FullURL)
			assert.Equal(t, "match", en.Search.Mode)
			assert.Equal(t, w.res.Status, o.Status)
			assert.Equal(t, []jConcept{{Coding: []jCoding{{SystemObservationCategory, "laboratory", "Laboratory"}}}}, o.Category)
			assert.Equal(t, w.res.Name, o.Code.Text)
			assert.Equal(t, map[string]any{"identifier": map[string]any{"system": domain.SystemFNR, "value": p.PersonNumber}}, o.Subject)
			assert.True(t, w.rep.Effective.Equal(o.EffectiveDateTime))
			assert.True(t, w.rep.Issued.Equal(o.Issued))
			assert.Equal(t, testOrg.Number, o.Performer[0].Identifier.Value)
			if q := w.res.Quantity; q != nil {
				assert.Equal(t, []jCoding{{SystemNLK, w.res.Code, w.res.Name}}, o.Code.Coding)
				assert.Equal(t, &jQuantity{q.Value, q.Unit, SystemUCUM, q.UCUM}, o.ValueQuantity)
				require.Len(t, o.ReferenceRange, 1)
				assert.Equal(t, &jQuantity{*q.High, q.Unit, SystemUCUM, q.UCUM}, o.ReferenceRange[0].High)
				if q.Low != nil {
					assert.Equal(t, &jQuantity{*q.Low, q.Unit, SystemUCUM, q.UCUM}, o.ReferenceRange[0].Low)
				} else {
					assert.Nil(t, o.ReferenceRange[0].Low)
				}
				assert.Empty(t, o.ValueString)
			} else {
				assert.Empty(t, o.Code.Coding)
				assert.Equal(t, w.res.Text, o.ValueString)
				assert.Nil(t, o.ValueQuantity)
			}
			if w.res.Interpretation != "" {
				assert.Equal(t, []jConcept{{Coding: []jCoding{{SystemInterpretation, w.res.Interpretation, interpretationDisplay[w.res.Interpretation]}}}}, o.Interpretation)
			}
		}
	}

	t.Run("a person the service holds nothing for gets an empty searchset", func(t *testing.T) {
		for _, kind := range []string{"DiagnosticReport", "Observation"} {
			b := e.labSearch(t, kind, "01810112345", nil)
			assert.Zero(t, b.Total)
			assert.Empty(t, b.Entry)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		resp := e.labDo(t, e.ts.URL+"/lab/healthz", "", nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "ok\n", string(body))
	})

	t.Run("Google's R4 parser accepts the Bundles", func(t *testing.T) {
		u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
		require.NoError(t, err)
		p := e.patients[0]
		for _, q := range []string{"", "_include=DiagnosticReport:result"} {
			resp := e.labDo(t, e.labURL("DiagnosticReport", q), e.labToken(t, p.PersonNumber, nil), labHeaders(p.PersonNumber))
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			_, err = u.Unmarshal(body)
			require.NoError(t, err)
		}
	})
}

// richest is the patient with the most lab reports.
func (e *env) richest() Patient {
	best := e.patients[0]
	for _, p := range e.patients {
		if len(e.labsOf(p.PersonNumber)) > len(e.labsOf(best.PersonNumber)) {
			best = p
		}
	}
	return best
}

func TestLabPaging(t *testing.T) {
	e := newEnv(t, nil)
	p := e.richest()
	for _, kind := range []string{"DiagnosticReport", "Observation"} {
		t.Run(kind, func(t *testing.T) {
			all := e.labSearch(t, kind, p.PersonNumber, nil).ids(t, "match")
			require.Greater(t, len(all), 5)

			var got []string
			u := e.labURL(kind, url.Values{"_count": {"2"}}.Encode())
			pages := 0
			for u != "" {
				b := e.labSearchURL(t, u, p.PersonNumber)
				assert.Equal(t, len(all), b.Total, "total counts every match on every page")
				ids := b.ids(t, "match")
				assert.LessOrEqual(t, len(ids), 2)
				got = append(got, ids...)
				u = b.next()
				if u != "" {
					assert.True(t, strings.HasPrefix(u, e.labAud()+"/"+kind+"?"), u)
					assert.Contains(t, u, "_offset=")
				}
				pages++
				require.Less(t, pages, 100)
			}
			assert.Equal(t, all, got, "the pages together are the whole answer, in order")
			assert.Equal(t, (len(all)+1)/2, pages)

			b := e.labSearch(t, kind, p.PersonNumber, url.Values{"_count": {"0"}})
			assert.Equal(t, len(all), b.Total)
			assert.Empty(t, b.Entry)
			assert.Empty(t, b.next(), "no next link that pages through nothing")

			b = e.labSearch(t, kind, p.PersonNumber, url.Values{"_offset": {"1000"}})
			assert.Equal(t, len(all), b.Total)
			assert.Empty(t, b.Entry)

			b = e.labSearch(t, kind, p.PersonNumber, url.Values{"_count": {"3"}, "_offset": {"2"}})
			assert.Equal(t, all[2:5], b.ids(t, "match"))
		})
	}
}

func TestLabInclude(t *testing.T) {
	e := newEnv(t, nil)
	p := e.richest()
	want := e.labsOf(p.PersonNumber)
	b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, url.Values{"_include": {"DiagnosticReport:result"}, "_count": {"3"}})
	assert.Equal(t, len(want), b.Total)
	require.NotEmpty(t, b.next())
	assert.Contains(t, b.next(), "_include=DiagnosticReport%3Aresult", "the next page includes too")

	matches := b.ids(t, "match")
	require.Equal(t, []string{want[0].ID, want[1].ID, want[2].ID}, matches)
	var refs []string
	for _, rep := range want[:3] {
		for _, res := range rep.Results {
			refs = append(refs, res.ID)
		}
	}
	included := b.ids(t, "include")
	assert.Equal(t, refs, included, "each referenced Observation once, after the matches")
	for i, en := range b.Entry {
		if i < 3 {
			assert.Equal(t, "match", en.Search.Mode)
			continue
		}
		var o jObservation
		require.NoError(t, json.Unmarshal(en.Resource, &o))
		assert.Equal(t, "Observation", o.ResourceType)
		// Observation/<id> resolves against the DiagnosticReport's fullUrl.
		assert.Equal(t, e.labAud()+"/Observation/"+o.ID, en.FullURL)
	}

	t.Run("the typed form too", func(t *testing.T) {
		b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, url.Values{"_include": {"DiagnosticReport:result:Observation"}, "_count": {"1"}})
		assert.Len(t, b.ids(t, "include"), len(want[0].Results))
	})
	t.Run("without _include no Observation", func(t *testing.T) {
		b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, url.Values{"_count": {"3"}})
		assert.Empty(t, b.ids(t, "include"))
		assert.Len(t, b.Entry, 3)
	})
}

func TestLabFilters(t *testing.T) {
	e := newEnv(t, nil)
	base := seed.DefaultBase
	yearAgo := base.AddDate(-1, 0, 0)
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	type reportCase struct {
		name   string
		params url.Values
		keep   func(LabReport) bool
	}
	reportCases := []reportCase{
		{"date ge", url.Values{"date": {"ge" + yearAgo.Format(time.DateOnly)}}, func(r LabReport) bool { return !r.Effective.Before(yearAgo) }},
		{"date window", url.Values{"date": {"ge2024-06-01", "lt2025-01-01"}}, func(r LabReport) bool {
			return !r.Effective.Before(day("2024-06-01")) && r.Effective.Before(day("2025-01-01"))
		}},
		{"date year", url.Values{"date": {"2025"}}, func(r LabReport) bool { return r.Effective.Year() == 2025 }},
		{"date month eq", url.Values{"date": {"eq2025-10"}}, func(r LabReport) bool { return r.Effective.Year() == 2025 && r.Effective.Month() == 10 }},
		{"date le dateTime", url.Values{"date": {"le2025-03-01T12:00:00+01:00"}}, func(r LabReport) bool {
			return !r.Effective.After(time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC))
		}},
		{"category", url.Values{"category": {"LAB"}}, func(r LabReport) bool { return r.Category == LabCategoryLab }},
		{"category with system", url.Values{"category": {SystemReportCategory + "|MB"}}, func(r LabReport) bool { return r.Category == LabCategoryMicrobiology }},
		{"category list is OR", url.Values{"category": {"LAB,MB"}}, func(LabReport) bool { return true }},
		{"code of a single analysis", url.Values{"code": {SystemNLK + "|NPU27300"}}, func(r LabReport) bool { return r.Code == "NPU27300" }},
		{"code list is OR", url.Values{"code": {"NPU27300,NPU19748"}}, func(r LabReport) bool { return r.Code == "NPU27300" || r.Code == "NPU19748" }},
		{"status", url.Values{"status": {"final"}}, func(r LabReport) bool { return r.Status == "final" }},
		{"status list is OR", url.Values{"status": {"preliminary,amended,entered-in-error"}}, func(r LabReport) bool { return r.Status != "final" }},
		{"filters are AND", url.Values{"category": {"LAB"}, "status": {"final"}, "date": {"ge" + yearAgo.Format(time.DateOnly)}}, func(r LabReport) bool {
			return r.Category == LabCategoryLab && r.Status == "final" && !r.Effective.Before(yearAgo)
		}},
		{"repeated category is AND", url.Values{"category": {"LAB", "MB"}}, func(LabReport) bool { return false }},
	}
	selected := map[string]int{}
	for _, c := range reportCases {
		t.Run("DiagnosticReport "+c.name, func(t *testing.T) {
			for _, p := range e.patients {
				var want []string
				for _, r := range e.labsOf(p.PersonNumber) {
					if c.keep(r) {
						want = append(want, r.ID)
					}
				}
				selected[c.name] += len(want)
				b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, c.params)
				assert.Equal(t, want, b.ids(t, "match"), p.ID)
				assert.Equal(t, len(want), b.Total)
			}
		})
	}

	type obsCase struct {
		name   string
		params url.Values
		keep   func(repResult) bool
	}
	obsCases := []obsCase{
		{"category", url.Values{"category": {SystemObservationCategory + "|laboratory"}}, func(repResult) bool { return true }},
		{"another category", url.Values{"category": {"vital-signs"}}, func(repResult) bool { return false }},
		{"code", url.Values{"code": {"NPU27300"}}, func(o repResult) bool { return o.res.Code == "NPU27300" }},
		{"code with system, OR", url.Values{"code": {SystemNLK + "|NOR05172," + SystemNLK + "|NPU19763"}}, func(o repResult) bool {
			return o.res.Code == "NOR05172" || o.res.Code == "NPU19763"
		}},
		{"status", url.Values{"status": {"amended"}}, func(o repResult) bool { return o.res.Status == "amended" }},
		{"date and code", url.Values{"date": {"ge" + yearAgo.Format(time.DateOnly)}, "code": {"NPU19748"}}, func(o repResult) bool {
			return !o.rep.Effective.Before(yearAgo) && o.res.Code == "NPU19748"
		}},
	}
	for _, c := range obsCases {
		t.Run("Observation "+c.name, func(t *testing.T) {
			for _, p := range e.patients {
				var want []string
				for _, o := range e.obsOf(p.PersonNumber) {
					if c.keep(o) {
						want = append(want, o.res.ID)
					}
				}
				selected["obs "+c.name] += len(want)
				b := e.labSearch(t, "Observation", p.PersonNumber, c.params)
				assert.Equal(t, want, b.ids(t, "match"), p.ID)
				assert.Equal(t, len(want), b.Total)
			}
		})
	}

	// The filters must have selected something, and not everything, or
	// they prove little.
	all := len(e.labs)
	for _, name := range []string{"date ge", "date window", "category", "category with system", "code of a single analysis", "status list is OR", "filters are AND"} {
		assert.Positive(t, selected[name], name)
		assert.Less(t, selected[name], all, name)
	}
	for _, name := range []string{"code", "code with system, OR", "status", "date and code"} {
		assert.Positive(t, selected["obs "+name], name)
	}
}

func TestLabRejectsUnknownAndMalformedParameters(t *testing.T) {
	e := newEnv(t, nil)
	pnr := e.patients[0].PersonNumber
	cases := []struct{ kind, query, names string }{
		{"DiagnosticReport", "foo=1", "foo"},
		{"DiagnosticReport", "patient=Patient/123", "patient"},
		{"DiagnosticReport", "patient.identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr), "patient.identifier"},
		{"Observation", "subject:identifier=" + url.QueryEscape(domain.SystemFNR+"|"+pnr), "subject:identifier"},
		{"DiagnosticReport", "_sort=-date", "_sort"},
		{"DiagnosticReport", "_format=json", "_format"},
		{"DiagnosticReport", "category:not=MB", "category:not"},
		{"DiagnosticReport", "date=sa2020", "date"},
		{"DiagnosticReport", "date=ge20-01", "date"},
		{"Observation", "date=2025-01-01T10:00:00", "date"},
		{"DiagnosticReport", "category=" + url.QueryEscape(SystemObservationCategory+"|laboratory"), "category"},
		{"Observation", "category=" + url.QueryEscape(SystemReportCategory+"|LAB"), "category"},
		{"DiagnosticReport", "category=LAB,", "category"},
		{"Observation", "code=" + url.QueryEscape("http://loinc.org|718-7"), "code"},
		{"Observation", "code=", "code"},
		{"DiagnosticReport", "status=done", "status"},
		{"Observation", "status=partial", "status"},
		{"DiagnosticReport", "_count=-1", "_count"},
		{"DiagnosticReport", "_count=1&_count=2", "_count"},
		{"Observation", "_offset=x", "_offset"},
		{"DiagnosticReport", "_include=DiagnosticReport:subject", "_include"},
		{"Observation", "_include=DiagnosticReport:result", "_include"},
		{"DiagnosticReport", "%zz=1", "malformed"},
	}
	for _, c := range cases {
		t.Run(c.kind+" "+c.query, func(t *testing.T) {
			resp := e.labDo(t, e.labURL(c.kind, c.query), e.labToken(t, pnr, nil), labHeaders(pnr))
			assert.Contains(t, outcome(t, resp, http.StatusBadRequest), c.names)
		})
	}
	for _, l := range e.src.Lookups() {
		assert.Equal(t, "refused", l.Outcome)
		assert.Equal(t, http.StatusBadRequest, l.Status)
		assert.Equal(t, "lab-search", l.Action)
	}
}

func TestLabHeadersAndAudience(t *testing.T) {
	e := newEnv(t, nil)
	p, other := e.patients[0], e.patients[1]
	u := e.labURL("DiagnosticReport", "")
	without := func(name string) http.Header {
		h := labHeaders(p.PersonNumber)
		h.Del(name)
		return h
	}
	with := func(name, v string) http.Header {
		h := labHeaders(p.PersonNumber)
		h.Set(name, v)
		return h
	}

	t.Run("missing headers are 400", func(t *testing.T) {
		for _, name := range []string{HeaderPatientNIN, HeaderAccessBasis} {
			resp := e.labDo(t, u, e.labToken(t, p.PersonNumber, nil), without(name))
			assert.Contains(t, outcome(t, resp, http.StatusBadRequest), name)
		}
	})
	t.Run("headers that differ from the assertion are 403", func(t *testing.T) {
		resp := e.labDo(t, u, e.labToken(t, p.PersonNumber, nil), with(HeaderPatientNIN, other.PersonNumber))
		assert.Equal(t, "the patient in nhn-patient-nin is not the assertion's patient", outcome(t, resp, http.StatusForbidden))
		resp = e.labDo(t, u, e.labToken(t, other.PersonNumber, nil), labHeaders(p.PersonNumber))
		assert.Equal(t, "the patient in nhn-patient-nin is not the assertion's patient", outcome(t, resp, http.StatusForbidden))
		resp = e.labDo(t, u, e.labToken(t, p.PersonNumber, nil), with(HeaderAccessBasis, "AKUTT"))
		assert.Contains(t, outcome(t, resp, http.StatusForbidden), HeaderAccessBasis)
		resp = e.labDo(t, u, e.labToken(t, p.PersonNumber, func(c map[string]any) { c["access_basis"] = "SAMTYKKE" }), labHeaders(p.PersonNumber))
		assert.Contains(t, outcome(t, resp, http.StatusForbidden), HeaderAccessBasis)
	})
	t.Run("the basis the assertion carries is accepted", func(t *testing.T) {
		resp := e.labDo(t, u, e.labToken(t, p.PersonNumber, func(c map[string]any) { c["access_basis"] = "AKUTT" }), with(HeaderAccessBasis, "AKUTT"))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("a refused call does not spend the jti", func(t *testing.T) {
		tok := e.labToken(t, p.PersonNumber, nil)
		outcome(t, e.labDo(t, u, tok, with(HeaderPatientNIN, other.PersonNumber)), http.StatusForbidden)
		assert.Equal(t, http.StatusOK, e.labDo(t, u, tok, labHeaders(p.PersonNumber)).StatusCode)
		outcome(t, e.labDo(t, u, tok, labHeaders(p.PersonNumber)), http.StatusUnauthorized) // now it is spent
	})
	t.Run("audience", func(t *testing.T) {
		aud := func(a any) string {
			return e.labToken(t, p.PersonNumber, func(c map[string]any) { c["aud"] = a })
		}
		for name, tok := range map[string]string{
			"the document endpoint's": aud(e.ts.URL),
			"another source's lab":    aud("http://other-source.test/lab"),
			"another organisation":    aud("300011268"),
		} {
			resp := e.labDo(t, u, tok, labHeaders(p.PersonNumber))
			assert.Contains(t, outcome(t, resp, http.StatusUnauthorized), "audience", name)
		}
		for name, tok := range map[string]string{
			"the lab service's":      aud(e.labAud()),
			"with a trailing slash":  aud(e.labAud() + "/"),
			"the organisation":       aud(testOrg.Number),
			"a list with the lab's ": aud([]string{"x", e.labAud()}),
		} {
			assert.Equal(t, http.StatusOK, e.labDo(t, u, tok, labHeaders(p.PersonNumber)).StatusCode, name)
		}
		// And the other way round: a lab assertion opens no documents.
		resp := e.get(t, e.searchURL(p.PersonNumber, nil), e.labToken(t, p.PersonNumber, nil))
		outcome(t, resp, http.StatusUnauthorized)
	})
	t.Run("no assertion", func(t *testing.T) {
		resp := e.labDo(t, u, "", labHeaders(p.PersonNumber))
		outcome(t, resp, http.StatusUnauthorized)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`)
	})
	t.Run("only GET", func(t *testing.T) {
		resp, err := e.ts.Client().Post(u, "application/x-www-form-urlencoded", strings.NewReader(""))
		require.NoError(t, err)
		defer resp.Body.Close()
		outcome(t, resp, http.StatusMethodNotAllowed)
	})
}

// A citizen reads their own lab results through kjernejournal: the
// assertion names the citizen (role citizen, pid) instead of health
// personnel, and opens that person's results only, and no documents.
func TestLabCitizenAssertion(t *testing.T) {
	e := newEnv(t, nil)
	p, other := e.patients[0], e.patients[1]
	u := e.labURL("DiagnosticReport", "")
	citizen := func(pid, patient string) string {
		c := claims(e.labAud(), patient, "")
		for _, k := range []string{"hpr", "hp_category", "org", "purpose_of_use", "access_basis"} {
			delete(c, k)
		}
		c["role"], c["pid"] = "citizen", pid
		return e.kj.sign(t, c, signOpts{})
	}
	only := http.Header{}
	only.Set(HeaderPatientNIN, p.PersonNumber)
	resp := e.labDo(t, u, citizen(p.PersonNumber, p.PersonNumber), only)
	require.Equal(t, http.StatusOK, resp.StatusCode, "no access basis is asked of a citizen")
	var b labBundle
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	assert.NotEmpty(t, b.Entry)

	resp = e.labDo(t, u, citizen(p.PersonNumber, other.PersonNumber), only)
	assert.Contains(t, outcome(t, resp, http.StatusUnauthorized), "pid equal to patient")
	tok := e.labToken(t, p.PersonNumber, func(c map[string]any) { c["role"] = "admin" })
	assert.Contains(t, outcome(t, e.labDo(t, u, tok, labHeaders(p.PersonNumber)), http.StatusUnauthorized), "role")

	c := claims(e.ts.URL, p.PersonNumber, "")
	c["role"], c["pid"] = "citizen", p.PersonNumber
	resp = e.get(t, e.searchURL(p.PersonNumber, nil), e.kj.sign(t, c, signOpts{}))
	assert.Contains(t, outcome(t, resp, http.StatusForbidden), "health personnel")
}

func TestLabLookupLog(t *testing.T) {
	e := newEnv(t, nil)
	p := e.richest()
	total := len(e.labsOf(p.PersonNumber))
	b := e.labSearch(t, "DiagnosticReport", p.PersonNumber, url.Values{"_count": {"2"}, "_include": {"DiagnosticReport:result"}})
	require.Equal(t, total, b.Total)
	e.labSearch(t, "Observation", p.PersonNumber, url.Values{"code": {"NPU27300"}})
	other := e.patients[0]
	if other == p {
		other = e.patients[1]
	}
	outcome(t, e.labDo(t, e.labURL("Observation", ""), e.labToken(t, p.PersonNumber, nil), labHeaders(other.PersonNumber)), http.StatusForbidden)

	got := e.src.Lookups()
	require.Len(t, got, 3)
	dr, obs, refused := got[0], got[1], got[2]
	assert.Equal(t, "lab-search", dr.Action)
	assert.Equal(t, "DiagnosticReport", dr.Resource)
	assert.Equal(t, "allowed", dr.Outcome)
	assert.Equal(t, http.StatusOK, dr.Status)
	assert.Equal(t, testOrg.Number, dr.Source)
	assert.Equal(t, 2, dr.Results, "match entries, not the included ones nor the total")
	assert.Contains(t, dr.Query, "_count=2")
	require.NotNil(t, dr.Assertion)
	assert.Equal(t, p.PersonNumber, dr.Assertion.Patient)
	assert.Equal(t, "9144889", dr.Assertion.HPR)
	assert.Equal(t, "UNNTAK", dr.Assertion.AccessBasis)
	assert.Equal(t, "TREAT", dr.Assertion.PurposeOfUse)

	assert.Equal(t, "Observation", obs.Resource)
	assert.Equal(t, "code=NPU27300", obs.Query)
	wantObs := 0
	for _, o := range e.obsOf(p.PersonNumber) {
		if o.res.Code == "NPU27300" {
			wantObs++
		}
	}
	assert.Equal(t, wantObs, obs.Results)

	assert.Equal(t, "refused", refused.Outcome)
	assert.Equal(t, http.StatusForbidden, refused.Status)
	assert.Contains(t, refused.Reason, HeaderPatientNIN)
	require.NotNil(t, refused.Assertion, "who tried is known")

	lines := strings.Split(strings.TrimSpace(e.log.String()), "\n")
	require.Len(t, lines, 3)
	var line struct {
		Msg string `json:"msg"`
		Lookup
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
	assert.Equal(t, "lookup", line.Msg)
	assert.Equal(t, "lab-search", line.Action)
	assert.Equal(t, "DiagnosticReport", line.Resource)
}

func TestLabFaultsApplyAsToDocuments(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.Down = true })
		p := e.patients[0]
		outcome(t, e.labDo(t, e.labURL("Observation", ""), e.labToken(t, p.PersonNumber, nil), labHeaders(p.PersonNumber)), http.StatusServiceUnavailable)
		outcome(t, e.labDo(t, e.ts.URL+"/lab/healthz", "", nil), http.StatusServiceUnavailable)
		assert.EqualValues(t, 2, e.src.Stats().RefusedDown)
	})
	t.Run("errors", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Faults.ErrorRate = 1 })
		p := e.patients[0]
		outcome(t, e.labDo(t, e.labURL("DiagnosticReport", ""), e.labToken(t, p.PersonNumber, nil), labHeaders(p.PersonNumber)), http.StatusInternalServerError)
		assert.EqualValues(t, 1, e.src.Stats().InjectedErrors)
	})
	t.Run("latency", func(t *testing.T) {
		var mu sync.Mutex
		var waited []time.Duration
		e := newEnv(t, func(c *Config) {
			c.Faults.Latency = 3 * time.Second
			c.Sleep = func(_ context.Context, d time.Duration) error {
				mu.Lock()
				waited = append(waited, d)
				mu.Unlock()
				return nil
			}
		})
		e.labSearch(t, "DiagnosticReport", e.patients[0].PersonNumber, nil)
		mu.Lock()
		assert.Equal(t, []time.Duration{3 * time.Second}, waited)
		mu.Unlock()
	})
}

// TestSearchFaultsGarbageAndHugeSearchBytes covers the two faults that
// spoil search answers, on the document search and both lab searches.
func TestSearchFaultsGarbageAndHugeSearchBytes(t *testing.T) {
	e := newEnv(t, nil)
	p := e.patients[0]
	pnr := p.PersonNumber
	type search struct {
		name string
		do   func() *http.Response
	}
	searches := []search{
		{"documents", func() *http.Response {
			return e.get(t, e.searchURL(pnr, nil), e.kj.sign(t, claims(e.ts.URL, pnr, ""), signOpts{}))
		}},
		{"lab reports", func() *http.Response {
			return e.labDo(t, e.labURL("DiagnosticReport", "_include=DiagnosticReport:result"), e.labToken(t, pnr, nil), labHeaders(pnr))
		}},
		{"lab observations", func() *http.Response {
			return e.labDo(t, e.labURL("Observation", ""), e.labToken(t, pnr, nil), labHeaders(pnr))
		}},
	}
	read := func(resp *http.Response) []byte {
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Equal(t, "application/fhir+json; charset=utf-8", resp.Header.Get("Content-Type"))
		return body
	}
	plain := map[string]bundle{}
	for _, s := range searches {
		var b bundle
		require.NoError(t, json.Unmarshal(read(s.do()), &b))
		require.NotEmpty(t, b.Entry)
		plain[s.name] = b
	}

	t.Run("garbage", func(t *testing.T) {
		require.NoError(t, e.src.SetFaults(Faults{Garbage: true, HugeSearchBytes: 1 << 20}))
		t.Cleanup(func() { _ = e.src.SetFaults(Faults{}) })
		for _, s := range searches {
			body := read(s.do())
			assert.False(t, json.Valid(body), "%s: not JSON at all", s.name)
			assert.True(t, strings.HasPrefix(string(body), "<!DOCTYPE html>"), s.name)
		}
		assert.EqualValues(t, len(searches), e.src.Stats().GarbageAnswers)
		assert.Zero(t, e.src.Stats().PaddedAnswers, "garbage wins")

		// Refusals and document bytes are not searches.
		outcome(t, e.labDo(t, e.labURL("Observation", ""), "", labHeaders(pnr)), http.StatusUnauthorized)
		d := e.docsOf(pnr)[0]
		resp := e.get(t, e.ts.URL+"/Binary/"+d.ID, e.kj.sign(t, claims(e.ts.URL, pnr, d.ID), signOpts{}))
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, body(t, d), got)
	})

	t.Run("huge search answers", func(t *testing.T) {
		u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
		require.NoError(t, err)
		padded := int64(0)
		for _, size := range []int64{100_000, 1_500_000} {
			require.NoError(t, e.src.SetFaults(Faults{HugeSearchBytes: size}))
			for _, s := range searches {
				raw := read(s.do())
				assert.GreaterOrEqual(t, int64(len(raw)), size, s.name)
				assert.Less(t, int64(len(raw)), size+200, "%s: padded to the size, not far beyond", s.name)
				var b struct {
					bundle
					Meta struct{ Tag []jCoding }
				}
				require.NoError(t, json.Unmarshal(raw, &b), s.name)
				assert.Equal(t, plain[s.name].Total, b.Total, s.name)
				assert.Equal(t, len(plain[s.name].Entry), len(b.Entry), s.name)
				require.NotEmpty(t, b.Meta.Tag)
				for _, tag := range b.Meta.Tag {
					assert.LessOrEqual(t, len(tag.Display), 1<<20, "no FHIR string beyond 1 MiB")
				}
				_, err := u.Unmarshal(raw)
				require.NoError(t, err, "%s: still a valid R4 Bundle", s.name)
				padded++
			}
		}
		assert.Equal(t, padded, e.src.Stats().PaddedAnswers)

		// An answer already that large is sent as it is.
		require.NoError(t, e.src.SetFaults(Faults{HugeSearchBytes: 10}))
		var b struct{ Meta map[string]any }
		require.NoError(t, json.Unmarshal(read(searches[0].do()), &b))
		assert.NotContains(t, b.Meta, "tag")
		require.NoError(t, e.src.SetFaults(Faults{}))
	})

	t.Run("invalid sizes are refused", func(t *testing.T) {
		assert.Error(t, e.src.SetFaults(Faults{HugeSearchBytes: -1}))
		assert.Error(t, e.src.SetFaults(Faults{HugeSearchBytes: MaxHugeSearchBytes + 1}))
	})
}

func TestPadReachesTheSize(t *testing.T) {
	for _, extra := range []int64{1, 2, 50, 79, 80, 81, 1000, maxPaddingDisplay - 1, maxPaddingDisplay + 100, 3*maxPaddingDisplay + 7} {
		b := fBundle{ResourceType: "Bundle", ID: "x", Type: "searchset", Link: []fLink{}}
		plain, err := json.Marshal(b)
		require.NoError(t, err)
		target := int64(len(plain)) + extra
		pad(&b, extra)
		got, err := json.Marshal(b)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, int64(len(got)), target, extra)
		assert.Less(t, int64(len(got)), target+100, extra)
	}
}

func TestNewValidatesLabResults(t *testing.T) {
	ok := Config{Org: testOrg, Issuer: testIssuer, JWKSURL: "http://127.0.0.1:1/jwks"}
	rep := func(id string, results ...string) LabReport {
		r := LabReport{ID: id, PersonNumber: "01810112345"}
		for _, res := range results {
			r.Results = append(r.Results, LabResult{ID: res})
		}
		return r
	}
	for name, labs := range map[string][]LabReport{
		"duplicate report id":      {rep("a", "a-1"), rep("a", "a-2")},
		"duplicate observation id": {rep("a", "x"), rep("b", "x")},
		"slash in report id":       {rep("a/b", "a-1")},
		"empty observation id":     {rep("a", "")},
	} {
		c := ok
		c.LabResults = labs
		_, err := New(c)
		assert.Error(t, err, name)
	}
	c := ok
	c.LabResults = []LabReport{rep("a", "a-1", "a-2"), rep("b", "b-1")}
	s, err := New(c)
	require.NoError(t, err)
	s.Close()
	assert.True(t, slices.ContainsFunc(s.obsByPerson["01810112345"], func(o labObs) bool { return o.result().ID == "b-1" }))
}
