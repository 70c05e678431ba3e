package source

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// The lab result service's headers (the national API conventions).
const (
	HeaderPatientNIN  = "nhn-patient-nin"
	HeaderAccessBasis = "nhn-access-basis"
)

// labPath is where the lab result service lives below the base URL.
const labPath = "/lab"

// FHIR R4 shapes of the lab results.

type fQuantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

type fReferenceRange struct {
	Low  *fQuantity `json:"low,omitempty"`
	High *fQuantity `json:"high,omitempty"`
}

type fDiagnosticReport struct {
	ResourceType      string       `json:"resourceType"`
	ID                string       `json:"id"`
	Status            string       `json:"status"`
	Category          []fConcept   `json:"category"`
	Code              fConcept     `json:"code"`
	Subject           fReference   `json:"subject"`
	EffectiveDateTime string       `json:"effectiveDateTime"`
	Issued            string       `json:"issued"`
	Performer         []fReference `json:"performer"`
	Result            []fReference `json:"result,omitempty"`
	Conclusion        string       `json:"conclusion,omitempty"`
}

type fObservation struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id"`
	Status            string            `json:"status"`
	Category          []fConcept        `json:"category"`
	Code              fConcept          `json:"code"`
	Subject           fReference        `json:"subject"`
	EffectiveDateTime string            `json:"effectiveDateTime"`
	Issued            string            `json:"issued"`
	Performer         []fReference      `json:"performer"`
	ValueQuantity     *fQuantity        `json:"valueQuantity,omitempty"`
	ValueString       string            `json:"valueString,omitempty"`
	Interpretation    []fConcept        `json:"interpretation,omitempty"`
	ReferenceRange    []fReferenceRange `json:"referenceRange,omitempty"`
}

var reportCategoryDisplay = map[string]string{
	LabCategoryLab:          "Laboratory",
	LabCategoryMicrobiology: "Microbiology",
}

var interpretationDisplay = map[string]string{
	"N": "Normal", "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high",
	"POS": "Positive", "NEG": "Negative",
}

// Status codes of the two resources (FHIR R4 value sets), for the status
// parameter: an unknown status is a client error, not an empty answer.
var (
	reportStatuses      = []string{"registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled", "entered-in-error", "unknown"}
	observationStatuses = []string{"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)

func labSubject(pnr string) fReference {
	return fReference{Identifier: &fIdentifier{System: domain.SystemFNR, Value: pnr}}
}

func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// diagnosticReport renders rep as a FHIR R4 DiagnosticReport.
func (rep LabReport) diagnosticReport() fDiagnosticReport {
	code := fConcept{Text: rep.Panel}
	if rep.Code != "" {
		// The NLK display is the analysis' usage name, as on its result.
		display := rep.Panel
		for _, res := range rep.Results {
			if res.Code == rep.Code {
				display = res.Name
			}
		}
		code.Coding = []fCoding{{System: SystemNLK, Code: rep.Code, Display: display}}
	}
	dr := fDiagnosticReport{
		ResourceType:      "DiagnosticReport",
		ID:                rep.ID,
		Status:            rep.Status,
		Category:          []fConcept{{Coding: []fCoding{{System: SystemReportCategory, Code: rep.Category, Display: reportCategoryDisplay[rep.Category]}}}},
		Code:              code,
		Subject:           labSubject(rep.PersonNumber),
		EffectiveDateTime: instant(rep.Effective),
		Issued:            instant(rep.Issued),
		Performer:         []fReference{orgReference(rep.Performer)},
		Conclusion:        rep.Conclusion,
	}
	for _, res := range rep.Results {
		dr.Result = append(dr.Result, fReference{Reference: "Observation/" + res.ID, Display: res.Name})
	}
	return dr
}

// observation renders rep's i-th result as a FHIR R4 Observation.
func (rep LabReport) observation(i int) fObservation {
	res := rep.Results[i]
	code := fConcept{Text: res.Name}
	if res.Code != "" {
		code.Coding = []fCoding{{System: SystemNLK, Code: res.Code, Display: res.Name}}
	}
	o := fObservation{
		ResourceType:      "Observation",
		ID:                res.ID,
		Status:            res.Status,
		Category:          []fConcept{{Coding: []fCoding{{System: SystemObservationCategory, Code: ObservationCategoryLaboratory, Display: "Laboratory"}}}},
		Code:              code,
		Subject:           labSubject(rep.PersonNumber),
		EffectiveDateTime: instant(rep.Effective),
		Issued:            instant(rep.Issued),
		Performer:         []fReference{orgReference(rep.Performer)},
		ValueString:       res.Text,
	}
	if q := res.Quantity; q != nil {
		quantity := func(v float64) *fQuantity {
			return &fQuantity{Value: v, Unit: q.Unit, System: SystemUCUM, Code: q.UCUM}
		}
		o.ValueQuantity = quantity(q.Value)
		var rr fReferenceRange
		if q.Low != nil {
			rr.Low = quantity(*q.Low)
		}
		if q.High != nil {
			rr.High = quantity(*q.High)
		}
		if rr.Low != nil || rr.High != nil {
			o.ReferenceRange = []fReferenceRange{rr}
		}
	}
	if res.Interpretation != "" {
		o.Interpretation = []fConcept{{Coding: []fCoding{{System: SystemInterpretation, Code: res.Interpretation, Display: interpretationDisplay[res.Interpretation]}}}}
	}
	return o
}

// labObs is one Observation in the person index: the report holds what
// the result shares with it (subject, times, performer).
type labObs struct {
	rep *LabReport
	i   int
}

func (o labObs) result() *LabResult { return &o.rep.Results[o.i] }

// indexLab checks the reports' ids and builds the per-person indexes,
// newest first (ties by id, so pages are stable).
func (s *Server) indexLab(reports []LabReport) error {
	obsIDs := map[string]bool{}
	for i := range reports {
		rep := &reports[i]
		if !usableID(rep.ID) {
			return fmt.Errorf("source: lab report id %q is not usable in a URL path", rep.ID)
		}
		if _, dup := s.labByID[rep.ID]; dup {
			return fmt.Errorf("source: lab report id %q appears twice", rep.ID)
		}
		s.labByID[rep.ID] = rep
		s.labByPerson[rep.PersonNumber] = append(s.labByPerson[rep.PersonNumber], rep)
		for j, res := range rep.Results {
			if !usableID(res.ID) || obsIDs[res.ID] {
				return fmt.Errorf("source: observation id %q of lab report %q is not usable or appears twice", res.ID, rep.ID)
			}
			obsIDs[res.ID] = true
			s.obsByPerson[rep.PersonNumber] = append(s.obsByPerson[rep.PersonNumber], labObs{rep, j})
		}
	}
	for _, reps := range s.labByPerson {
		slices.SortFunc(reps, func(a, b *LabReport) int {
			if c := b.Effective.Compare(a.Effective); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	for _, obs := range s.obsByPerson {
		slices.SortFunc(obs, func(a, b labObs) int {
			if c := b.rep.Effective.Compare(a.rep.Effective); c != 0 {
				return c
			}
			return strings.Compare(a.result().ID, b.result().ID)
		})
	}
	return nil
}

func usableID(id string) bool { return id != "" && !strings.ContainsAny(id, "/?#") }

// labQuery is a parsed DiagnosticReport or Observation search.
type labQuery struct {
	kind       string      // DiagnosticReport or Observation
	dates      []dateBound // all must hold
	categories [][]string  // AND of OR-lists of category codes
	codes      [][]string  // AND of OR-lists of NLK codes
	statuses   [][]string  // AND of OR-lists
	count      int         // -1: all
	offset     int         // matches skipped (paging)
	include    bool        // _include=DiagnosticReport:result
	vals       url.Values  // the parameters, for the next link
}

// parseLabSearch accepts exactly the parameters of the lab contract (see
// the package documentation); anything else is an error, because silently
// ignoring a filter would hand back results the caller did not ask for.
func parseLabSearch(kind, raw string) (*labQuery, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed query string: %v", err)
	}
	q := &labQuery{kind: kind, count: -1, vals: vals}
	catSystem, statuses := SystemReportCategory, reportStatuses
	if kind == "Observation" {
		catSystem, statuses = SystemObservationCategory, observationStatuses
	}
	once := func(name string, vs []string) (int, error) {
		if len(vs) != 1 {
			return 0, fmt.Errorf("give %s at most once", name)
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s must be a non-negative integer", name)
		}
		return n, nil
	}
	// In name order, so that the same query always gets the same error.
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		vs := vals[name]
		switch name {
		case "date":
			for _, v := range vs {
				b, err := parseDateParam(v)
				if err != nil {
					return nil, err
				}
				q.dates = append(q.dates, b)
			}
		case "category", "code", "status":
			for _, v := range vs {
				var alts []string
				for tok := range strings.SplitSeq(v, ",") {
					var c string
					var err error
					switch name {
					case "category":
						c, err = labToken(name, tok, catSystem)
					case "code":
						c, err = labToken(name, tok, SystemNLK)
					default:
						c = tok
						if !slices.Contains(statuses, c) {
							err = fmt.Errorf("status: %q is not a %s status (%s)", tok, kind, strings.Join(statuses, ", "))
						}
					}
					if err != nil {
						return nil, err
					}
					alts = append(alts, c)
				}
				switch name {
				case "category":
					q.categories = append(q.categories, alts)
				case "code":
					q.codes = append(q.codes, alts)
				default:
					q.statuses = append(q.statuses, alts)
				}
			}
		case "_count":
			if q.count, err = once(name, vs); err != nil {
				return nil, err
			}
		case "_offset":
			if q.offset, err = once(name, vs); err != nil {
				return nil, err
			}
		case "_include":
			if kind != "DiagnosticReport" {
				return nil, errors.New("_include is supported on DiagnosticReport only")
			}
			for _, v := range vs {
				if v != "DiagnosticReport:result" && v != "DiagnosticReport:result:Observation" {
					return nil, fmt.Errorf("_include: %q is not supported; only DiagnosticReport:result", v)
				}
			}
			q.include = true
		case "patient", "subject", "patient.identifier", "subject.identifier":
			return nil, fmt.Errorf("search parameter %q is not supported: the patient is named by the %s header, never in the URL", name, HeaderPatientNIN)
		default:
			supported := "date, category, code, status, _count, _offset"
			if kind == "DiagnosticReport" {
				supported += ", _include"
			}
			return nil, fmt.Errorf("unknown search parameter %q; supported: %s", name, supported)
		}
	}
	return q, nil
}

// labToken reads [system|]code where the system, if given, must be the
// one the element uses here: a token in another system could only ever
// match nothing, which would look like "no results" to the caller.
func labToken(param, tok, system string) (string, error) {
	code := tok
	if sys, c, ok := strings.Cut(tok, "|"); ok {
		if sys != system {
			return "", fmt.Errorf("%s: code system must be %s", param, system)
		}
		code = c
	}
	if code == "" {
		return "", fmt.Errorf("%s: empty code", param)
	}
	return code, nil
}

// anyOf reports whether every OR-list has an entry equal to v.
func anyOf(lists [][]string, v string) bool {
	for _, alts := range lists {
		if !slices.Contains(alts, v) {
			return false
		}
	}
	return true
}

func (q *labQuery) matchDates(t time.Time) bool {
	for _, b := range q.dates {
		if !b.matches(t) {
			return false
		}
	}
	return true
}

func (q *labQuery) matchReport(rep *LabReport) bool {
	return q.matchDates(rep.Effective) && anyOf(q.categories, rep.Category) &&
		(len(q.codes) == 0 || rep.Code != "" && anyOf(q.codes, rep.Code)) && anyOf(q.statuses, rep.Status)
}

func (q *labQuery) matchObservation(o labObs) bool {
	res := o.result()
	return q.matchDates(o.rep.Effective) && anyOf(q.categories, ObservationCategoryLaboratory) &&
		(len(q.codes) == 0 || res.Code != "" && anyOf(q.codes, res.Code)) && anyOf(q.statuses, res.Status)
}

// labSearch answers GET {base}/lab/DiagnosticReport and /lab/Observation.
func (s *Server) labSearch(w http.ResponseWriter, r *http.Request, kind string) {
	entry := Lookup{Action: "lab-search", Resource: kind, Query: r.URL.RawQuery}
	base := s.base(r) + labPath
	a := s.authenticate(w, r, &entry, base)
	if a == nil {
		return
	}
	nin := strings.TrimSpace(r.Header.Get(HeaderPatientNIN))
	if nin == "" {
		s.badRequest(w, &entry, "the "+HeaderPatientNIN+" header with the patient's person number is required")
		return
	}
	// A citizen reading their own results declares no access basis.
	basis := strings.TrimSpace(r.Header.Get(HeaderAccessBasis))
	if basis == "" && a.Role != "citizen" {
		s.badRequest(w, &entry, "the "+HeaderAccessBasis+" header is required")
		return
	}
	q, err := parseLabSearch(kind, r.URL.RawQuery)
	if err != nil {
		s.badRequest(w, &entry, err.Error())
		return
	}
	if nin != a.Patient {
		s.forbidden(w, &entry, "the patient in "+HeaderPatientNIN+" is not the assertion's patient")
		return
	}
	if a.Role != "citizen" && basis != a.AccessBasis {
		s.forbidden(w, &entry, "the access basis in "+HeaderAccessBasis+" is not the assertion's access_basis")
		return
	}
	if !s.spend(w, a, &entry) {
		return
	}

	var matches []fEntry
	var included []fEntry
	seen := map[string]bool{}
	if kind == "DiagnosticReport" {
		for _, rep := range s.labByPerson[nin] {
			if q.matchReport(rep) {
				matches = append(matches, fEntry{FullURL: base + "/DiagnosticReport/" + rep.ID, Resource: rep, Search: fSearch{Mode: "match"}})
			}
		}
	} else {
		for _, o := range s.obsByPerson[nin] {
			if q.matchObservation(o) {
				matches = append(matches, fEntry{FullURL: base + "/Observation/" + o.result().ID, Resource: o, Search: fSearch{Mode: "match"}})
			}
		}
	}
	total := len(matches)
	shown := matches[min(q.offset, total):]
	if q.count >= 0 && q.count < len(shown) {
		shown = shown[:q.count]
	}
	// Render only what is sent: the index holds the generator's structs.
	for i := range shown {
		switch v := shown[i].Resource.(type) {
		case *LabReport:
			shown[i].Resource = v.diagnosticReport()
			if q.include {
				for j, res := range v.Results {
					if !seen[res.ID] {
						seen[res.ID] = true
						included = append(included, fEntry{FullURL: base + "/Observation/" + res.ID, Resource: v.observation(j), Search: fSearch{Mode: "include"}})
					}
				}
			}
		case labObs:
			shown[i].Resource = v.rep.observation(v.i)
		}
	}
	b := fBundle{
		ResourceType: "Bundle",
		ID:           rand.Text(),
		Meta:         fMeta{LastUpdated: instant(s.cfg.Now())},
		Type:         "searchset",
		Total:        total,
		Link:         []fLink{{Relation: "self", URL: base + "/" + kind + "?" + r.URL.RawQuery}},
		Entry:        append(shown, included...),
	}
	// A _count of 0 asks for the total only: a next link would page
	// through nothing for ever.
	if next := q.offset + len(shown); len(shown) > 0 && next < total {
		v := url.Values{}
		for k, vs := range q.vals {
			v[k] = vs
		}
		v.Set("_offset", strconv.Itoa(next))
		b.Link = append(b.Link, fLink{Relation: "next", URL: base + "/" + kind + "?" + v.Encode()})
	}
	entry.Outcome, entry.Status, entry.Results = "allowed", http.StatusOK, len(shown)
	s.record(entry)
	s.writeSearch(w, b)
}
