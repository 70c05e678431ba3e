package seed

import (
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Kjernejournal opened nationwide in 2013-2014; critical information and
// allergies are recorded from then on, so recorded dates stay inside the
// last twelve years. The prescription intermediary keeps three years of
// history, and the visit history shows ten.
const (
	recordedYears   = 12
	prescriptionYrs = 3
	visitYears      = 10
)

var allergenCum = func() []int {
	cum := make([]int, len(allergens))
	t := 0
	for i, a := range allergens {
		t += a.weight
		cum[i] = t
	}
	return cum
}()

func (g *generator) allergies(p *person, out []any) []any {
	r := p.r
	// Most people have no registered allergy; few have several.
	var n int
	switch x := r.IntN(100); {
	case x < 72:
		return out
	case x < 89:
		n = 1
	case x < 96:
		n = 2
	case x < 99:
		n = 3
	default:
		n = 4
	}
	var chosen [4]int
	for k := range n {
		var ai int
		for {
			ai = pickCum(r, allergenCum)
			dup := false
			for _, c := range chosen[:k] {
				dup = dup || c == ai
			}
			if !dup {
				break
			}
		}
		chosen[k] = ai
		a := allergens[ai]

		// Allergies rarely show before the first birthday; for infants
		// the first half of their life stands in for it.
		lived := g.base.Sub(p.birth)
		onset := between(r, earlier(p.birth.AddDate(1, 0, 0), p.birth.Add(lived/2)), g.base)
		recorded := between(r, later(onset, g.base.AddDate(-recordedYears, 0, 0)), g.base)

		severe := (a.severe && r.IntN(5) < 2) || r.IntN(12) == 0
		criticality, severity := "low", "mild"
		var manifest []coding
		switch {
		case severe:
			criticality, severity = "high", "severe"
			if a.severe {
				manifest = []coding{manifestAnaphylaxis}
			} else {
				manifest = []coding{pick(r, manifestSevere)}
			}
		case r.IntN(7) == 0:
			criticality = "unable-to-assess"
			manifest = []coding{pick(r, manifestMild)}
		default:
			if r.IntN(3) == 0 {
				severity = "moderate"
			}
			manifest = []coding{pick(r, manifestMild)}
			if second := pick(r, manifestMild); second != manifest[0] && r.IntN(3) == 0 {
				manifest = append(manifest, second)
			}
		}

		typ := "allergy"
		if a.intolerance && r.IntN(5) < 3 {
			typ = "intolerance"
		}
		clinical := "active"
		switch x := r.IntN(100); {
		case x < 4:
			clinical = "inactive"
		case x < 9:
			clinical = "resolved"
		}
		verification := "confirmed"
		if r.IntN(10) < 3 {
			verification = "unconfirmed"
		}
		recorder := p.gp
		if r.IntN(5) < 2 {
			recorder = g.hospitalDoctor(p)
		}

		res := &jAllergyIntolerance{
			ResourceType:       "AllergyIntolerance",
			ID:                 p.nextID("al"),
			ClinicalStatus:     jConcept{Coding: []jCoding{{System: systemAllergyCS, Code: clinical}}},
			VerificationStatus: jConcept{Coding: []jCoding{{System: systemAllergyVS, Code: verification}}},
			Type:               typ,
			Category:           []string{a.category},
			Criticality:        criticality,
			Code:               jConcept{Coding: []jCoding{{System: a.system, Code: a.code, Display: a.display}}, Text: a.display},
			Patient:            p.ref,
			OnsetDateTime:      date(onset),
			RecordedDate:       dateTime(recorded),
			Recorder:           practitionerRef(recorder),
		}
		// Reactions are sometimes unknown, typically for allergies
		// inherited from old records.
		if r.IntN(8) != 0 {
			rx := jReaction{Severity: severity}
			for _, m := range manifest {
				rx.Manifestation = append(rx.Manifestation, jConcept{
					Coding: []jCoding{{System: m.system, Code: m.code, Display: m.display}},
					Text:   m.display,
				})
			}
			res.Reaction = []jReaction{rx}
		}
		out = append(out, res)
	}
	return out
}

func (g *generator) flags(p *person, out []any) []any {
	r := p.r
	// Critical information is rare and grows with age.
	if r.IntN(1000) >= 10+p.age*3/2 {
		return out
	}
	n := 1
	switch x := r.IntN(20); {
	case x == 0:
		n = 3
	case x < 4:
		n = 2
	}
	var cum []int
	var idx []int
	t := 0
	for i, c := range criticalTypes {
		if p.age < c.minAge {
			continue
		}
		t += c.weight
		cum = append(cum, t)
		idx = append(idx, i)
	}
	used := 0 // bit set of criticalTypes already chosen
	for range n {
		ci := idx[pickCum(r, cum)]
		if used&(1<<ci) != 0 {
			continue
		}
		used |= 1 << ci
		c := criticalTypes[ci]

		start := between(r, later(p.birth, g.base.AddDate(-recordedYears, 0, 0)), g.base)
		period := jPeriod{Start: dateTime(start)}
		status := "active"
		if (c.lasting && r.IntN(20) == 0) || (!c.lasting && r.IntN(10) < 3) {
			status = "inactive"
			period.End = dateTime(between(r, start, g.base))
		}
		author := p.gp
		if r.IntN(3) != 0 {
			author = g.hospitalDoctor(p)
		}
		out = append(out, &jFlag{
			ResourceType: "Flag",
			ID:           p.nextID("fl"),
			Status:       status,
			Category:     []jConcept{{Coding: []jCoding{{System: domain.SystemCriticalInfoType, Code: c.code, Display: c.display}}}},
			Code:         jConcept{Text: pick(r, c.texts)},
			Subject:      p.ref,
			Period:       period,
			Author:       practitionerRef(author),
		})
	}
	return out
}

func (g *generator) medications(p *person, out []any) []any {
	r := p.r
	var lambda float64
	switch {
	case p.age < 18:
		lambda = 0.4
	case p.age < 40:
		lambda = 1.0
	case p.age < 65:
		lambda = 2.2
	case p.age < 80:
		lambda = 4.5
	default:
		lambda = 6.5
	}
	n := poisson(r, lambda, 10)
	if n == 0 {
		return out
	}
	band := p.ageBand()
	var cum []int
	var idx []int
	t := 0
	for i, d := range drugs {
		if p.age < d.minAge || d.weight[band] == 0 || (d.sex == 'F' && !p.female) || (d.sex == 'M' && p.female) {
			continue
		}
		t += d.weight[band]
		cum = append(cum, t)
		idx = append(idx, i)
	}
	used := make(map[int]bool, n)
	prescriptionStart := later(p.birth, g.base.AddDate(-prescriptionYrs, 0, 0))
	for range n {
		di := idx[pickCum(r, cum)]
		if used[di] {
			continue // a duplicate draw just means one medicine fewer
		}
		used[di] = true
		d := drugs[di]
		dosage := pick(r, d.dosages)

		var start, end time.Time
		status := "active"
		switch {
		case d.chronic:
			// Long-term medicines may have been started long before the
			// intermediary's window; the current prescription shows it.
			start = between(r, later(p.birth.AddDate(d.minAge, 0, 0), g.base.AddDate(-10, 0, 0)), g.base.AddDate(0, 0, -14))
			if r.IntN(7) == 0 {
				status = "stopped"
				end = between(r, later(start, prescriptionStart), g.base)
			}
		default:
			start = between(r, prescriptionStart, g.base)
			days := courseDays(dosage)
			if days == 0 {
				// Taken as needed: the prescription runs until it is used up.
				days = 30 + r.IntN(335)
			}
			if e := start.AddDate(0, 0, days); e.Before(g.base) {
				status = "completed"
				end = e
			}
		}
		start = start.Truncate(24 * time.Hour)
		period := jPeriod{Start: date(start)}
		if !end.IsZero() {
			period.End = date(end)
		}
		prescriber := p.gp
		if r.IntN(4) == 0 {
			prescriber = g.hospitalDoctor(p)
		}
		out = append(out, &jMedicationStatement{
			ResourceType: "MedicationStatement",
			ID:           p.nextID("ms"),
			Status:       status,
			Category:     jConcept{Coding: []jCoding{{System: systemMedStmCat, Code: "community", Display: "Community"}}},
			MedicationCodeableConcept: jConcept{
				Coding: []jCoding{{System: systemATC, Code: d.atc, Display: d.substance}},
				Text:   pick(r, d.products),
			},
			Subject:           p.ref,
			EffectivePeriod:   period,
			DateAsserted:      dateTime(start.Add(time.Duration(8+r.IntN(8)) * time.Hour)),
			InformationSource: practitionerRef(prescriber),
			Dosage:            []jDosage{{Text: dosage}},
		})
	}
	return out
}

var encounterClasses = map[byte]struct {
	code, display, kind string
}{
	'I': {"IMP", "inpatient encounter", "Døgnopphold"},
	'A': {"AMB", "ambulatory", "Poliklinisk konsultasjon"},
	'E': {"EMER", "emergency", "Øyeblikkelig hjelp"},
}

func (g *generator) encounters(p *person, out []any) []any {
	r := p.r
	var lambda float64
	switch {
	case p.age < 18:
		lambda = 0.5
	case p.age < 65:
		lambda = 0.8
	case p.age < 80:
		lambda = 1.8
	default:
		lambda = 2.8
	}
	n := poisson(r, lambda, 6)
	if n == 0 {
		return out
	}
	// The latest start leaves room for the longest stay to have ended.
	windowEnd := g.base.AddDate(0, 0, -11)
	windowStart := g.base.AddDate(-visitYears, 0, 0)
	band := p.ageBand()
	type candidate struct {
		reason int
		lo, hi time.Time
	}
	var cands []candidate
	var cum []int
	t := 0
	for i, v := range visitReasons {
		if v.weight[band] == 0 || (v.sex == 'F' && !p.female) || (v.sex == 'M' && p.female) {
			continue
		}
		lo := later(p.birth.AddDate(v.minAge, 0, 0), windowStart)
		hi := earlier(p.birth.AddDate(v.maxAge+1, 0, 0), windowEnd)
		if !lo.Before(hi) {
			continue
		}
		t += v.weight[band]
		cum = append(cum, t)
		cands = append(cands, candidate{i, lo, hi})
	}
	if t == 0 {
		return out
	}
	for range n {
		c := cands[pickCum(r, cum)]
		v := visitReasons[c.reason]
		cls := encounterClasses[v.classes[r.IntN(len(v.classes))]]

		day := between(r, c.lo, c.hi).Truncate(24 * time.Hour)
		var start, end time.Time
		switch cls.code {
		case "AMB":
			start = day.Add(time.Duration(7*60+r.IntN(7*60)) * time.Minute)
			end = start.Add(time.Duration(20+r.IntN(160)) * time.Minute)
		case "EMER":
			start = day.Add(time.Duration(r.IntN(24*60)) * time.Minute)
			end = start.Add(time.Duration(90+r.IntN(10*60)) * time.Minute)
		default:
			start = day.Add(time.Duration(r.IntN(24*60)) * time.Minute)
			end = start.Add(time.Duration(1+r.IntN(10))*24*time.Hour + time.Duration(r.IntN(8*60))*time.Minute)
		}
		h := g.pools.hospitals[g.hospitalFor(p)]
		out = append(out, &jEncounter{
			ResourceType: "Encounter",
			ID:           p.nextID("en"),
			Status:       "finished",
			Class:        jCoding{System: systemActCode, Code: cls.code, Display: cls.display},
			Type:         []jConcept{{Text: cls.kind}},
			ServiceType:  jConcept{Text: v.department},
			Subject:      p.ref,
			Period:       jPeriod{Start: dateTime(start), End: dateTime(end)},
			ReasonCode: []jConcept{{
				Coding: []jCoding{{System: systemICD10, Code: v.code, Display: v.display}},
				Text:   v.display,
			}},
			ServiceProvider: jReference{
				Type:       "Organization",
				Identifier: &jIdentifier{System: domain.SystemOrgNr, Value: h.Number},
				Display:    h.Name,
			},
		})
	}
	return out
}

// courseDays returns N from a dosage text ending a course "i N dager", or 0
// when the dosage names no course length.
func courseDays(dosage string) int {
	rest, ok := strings.CutSuffix(dosage, " dager")
	if !ok {
		return 0
	}
	i := strings.LastIndexByte(rest, ' ')
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return 0
	}
	return n
}
