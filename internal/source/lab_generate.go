package source

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Code systems of the lab results.
const (
	// SystemNLK is Norsk laboratoriekodeverk (NLK, volven 7280): NPU codes
	// plus Norwegian NOR codes.
	SystemNLK = "urn:oid:2.16.578.1.12.4.1.1.7280"
	// SystemUCUM is the unit system of every quantity.
	SystemUCUM = "http://unitsofmeasure.org"
	// SystemReportCategory is HL7 v2 table 0074 (diagnostic service
	// section), DiagnosticReport.category.
	SystemReportCategory = "http://terminology.hl7.org/CodeSystem/v2-0074"
	// SystemObservationCategory is FHIR's observation category.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	// SystemInterpretation is HL7 v3 ObservationInterpretation.
	SystemInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)

// Report categories (v2-0074) the generator uses.
const (
	LabCategoryLab          = "LAB" // clinical chemistry and haematology
	LabCategoryMicrobiology = "MB"
)

// ObservationCategoryLaboratory is every generated Observation's category.
const ObservationCategoryLaboratory = "laboratory"

// LabReport is one synthetic lab report: a DiagnosticReport and the
// Observations it lists in result.
type LabReport struct {
	ID           string `json:"id"`
	PatientID    string `json:"patientId"`
	PersonNumber string `json:"personNumber"`
	Category     string `json:"category"` // LabCategoryLab or LabCategoryMicrobiology
	// Panel is the report's name (DiagnosticReport.code.text).
	Panel string `json:"panel"`
	// Code is the report's NLK code, set only for reports of a single
	// analysis: there are no national codes for panels.
	Code       string       `json:"code,omitempty"`
	Status     string       `json:"status"`    // DiagnosticReport.status
	Effective  time.Time    `json:"effective"` // when the sample was taken
	Issued     time.Time    `json:"issued"`    // when the result was released
	Performer  Organisation `json:"performer"`
	Conclusion string       `json:"conclusion,omitempty"`
	Results    []LabResult  `json:"results"`
}

// LabResult is one Observation of a LabReport. Its subject, performer and
// times are the report's.
type LabResult struct {
	ID     string `json:"id"`
	Status string `json:"status"` // Observation.status
	// Name is the Norwegian usage name (norsk bruksnavn), code.text and,
	// with Code, the coding's display.
	Name string `json:"name"`
	// Code is the NLK code; "" for microbiology findings, which carry
	// only text.
	Code string `json:"code,omitempty"`
	// Quantity is set for measured results, Text for described ones
	// (microbiology).
	Quantity *LabQuantity `json:"quantity,omitempty"`
	Text     string       `json:"text,omitempty"`
	// Interpretation is a v3 ObservationInterpretation code: N, L, H, LL,
	// HH for quantities, POS or NEG for findings.
	Interpretation string `json:"interpretation"`
}

// LabQuantity is a measured value with its unit and reference range.
type LabQuantity struct {
	Value float64  `json:"value"`
	Unit  string   `json:"unit"` // as a Norwegian lab prints it
	UCUM  string   `json:"ucum"` // the unit's UCUM code
	Low   *float64 `json:"low,omitempty"`
	High  *float64 `json:"high,omitempty"`
}

// refRange is a reference range; hasLow false means "below high" (e.g.
// CRP < 5).
type refRange struct {
	low, high float64
	hasLow    bool
}

func rng(low, high float64) refRange { return refRange{low: low, high: high, hasLow: true} }

// analyte is one analysis the synthetic labs perform. The data are
// synthetic: codes and ranges follow what Norwegian laboratories publish
// (see the report of the change for which were checked), but no value is a
// real patient's and the ranges are not any one laboratory's.
type analyte struct {
	code, name  string
	unit, ucum  string
	decimals    int
	female      refRange
	male        refRange
	child       refRange // under 18: one range for both sexes, roughly
	critLow     float64  // below it LL; 0: none
	critHigh    float64  // above it HH; 0: none
	floor       float64  // smallest value the analysis reports
	top         float64  // highest non-critical value drawn; 0: critHigh or far above the range
	abnormalPct int      // how often a value falls outside the range
}

// Adult ranges are the Nordic reference interval project's (NORIP) as
// Norwegian labs print them; the critical limits are the levels labs phone
// through ("ringegrenser").
var analytes = map[string]analyte{
	"hb": {code: "NOR05172", name: "B-Hemoglobin", unit: "g/dL", ucum: "g/dL", decimals: 1,
		female: rng(11.7, 15.3), male: rng(13.4, 17.0), child: rng(10.5, 14.5),
		critLow: 7.0, critHigh: 20.0, floor: 3, abnormalPct: 12},
	"lpk": {code: "NPU02593", name: "B-Leukocytter", unit: "10^9/L", ucum: "10*9/L", decimals: 1,
		female: rng(3.5, 10.0), male: rng(3.5, 10.0), child: rng(4.5, 14.0),
		critLow: 1.0, critHigh: 30, floor: 0.1, abnormalPct: 12},
	"tpk": {code: "NPU03568", name: "B-Trombocytter", unit: "10^9/L", ucum: "10*9/L", decimals: 0,
		female: rng(165, 387), male: rng(145, 348), child: rng(150, 450),
		critLow: 20, critHigh: 1000, floor: 5, abnormalPct: 8},
	"krea": {code: "NPU18016", name: "P-Kreatinin", unit: "µmol/L", ucum: "umol/L", decimals: 0,
		female: rng(45, 90), male: rng(60, 105), child: rng(25, 70),
		critHigh: 400, floor: 10, abnormalPct: 10},
	"na": {code: "NPU03429", name: "P-Natrium", unit: "mmol/L", ucum: "mmol/L", decimals: 0,
		female: rng(137, 145), male: rng(137, 145), child: rng(137, 145),
		critLow: 120, critHigh: 160, floor: 100, abnormalPct: 8},
	"k": {code: "NPU03230", name: "P-Kalium", unit: "mmol/L", ucum: "mmol/L", decimals: 1,
		female: rng(3.5, 5.0), male: rng(3.5, 5.0), child: rng(3.5, 5.0),
		critLow: 2.5, critHigh: 6.5, floor: 1.5, abnormalPct: 8},
	"crp": {code: "NPU19748", name: "P-CRP", unit: "mg/L", ucum: "mg/L", decimals: 0,
		female: refRange{high: 5}, male: refRange{high: 5}, child: refRange{high: 5},
		floor: 1, top: 250, abnormalPct: 25},
	"hba1c": {code: "NPU27300", name: "B-HbA1c", unit: "mmol/mol", ucum: "mmol/mol", decimals: 0,
		female: rng(27, 42), male: rng(27, 42), child: rng(27, 42),
		floor: 15, abnormalPct: 20},
	"glu": {code: "NPU02192", name: "P-Glukose", unit: "mmol/L", ucum: "mmol/L", decimals: 1,
		female: rng(4.0, 6.0), male: rng(4.0, 6.0), child: rng(4.0, 6.0),
		critLow: 2.5, critHigh: 25, floor: 1, abnormalPct: 15},
	"alat": {code: "NPU19651", name: "P-ALAT", unit: "U/L", ucum: "U/L", decimals: 0,
		female: rng(10, 45), male: rng(10, 70), child: rng(10, 45),
		floor: 5, abnormalPct: 10},
	// TSH is measured in international units: UCUM m[IU]/L, which
	// Norwegian labs print as mIE/L.
	"tsh": {code: "NPU03577", name: "P-TSH", unit: "mIE/L", ucum: "m[IU]/L", decimals: 2,
		female: rng(0.3, 4.2), male: rng(0.3, 4.2), child: rng(0.5, 4.9),
		floor: 0.01, abnormalPct: 10},
	"ferritin": {code: "NPU19763", name: "P-Ferritin", unit: "µg/L", ucum: "ug/L", decimals: 0,
		female: rng(15, 200), male: rng(20, 300), child: rng(10, 140),
		floor: 2, abnormalPct: 12},
}

// panel is what a requisition asks for; a one-analyte panel is reported
// under the analyte's code.
type panel struct {
	name     string
	analytes []string
	weight   int
}

var panels = []panel{
	{"Blodstatus", []string{"hb", "lpk", "tpk"}, 6},
	{"Elektrolytter og kreatinin", []string{"na", "k", "krea"}, 5},
	{"Infeksjonsprøver", []string{"crp", "lpk"}, 4},
	{"CRP", []string{"crp"}, 4},
	{"Diabeteskontroll", []string{"hba1c", "glu"}, 3},
	{"HbA1c", []string{"hba1c"}, 2},
	{"ALAT", []string{"alat"}, 2},
	{"TSH", []string{"tsh"}, 3},
	{"Jernstatus", []string{"ferritin", "hb"}, 2},
	{"Ferritin", []string{"ferritin"}, 1},
}

// microbiology is one culture or PCR with the answers it may get.
type microbiology struct {
	name     string // the finding's Observation.code.text
	panel    string // the report's name
	findings []finding
	pending  finding // the preliminary answer while the final one is awaited
}

type finding struct {
	result         string // Observation.valueString
	conclusion     string // DiagnosticReport.conclusion
	interpretation string // POS, NEG or "" (not decided yet)
}

var microbiologies = []microbiology{
	{"Urin, dyrkning", "Urindyrkning", []finding{
		{"Escherichia coli > 10^5 CFU/mL", "Urindyrkning: Escherichia coli > 10^5 CFU/mL. Følsom for mecillinam og nitrofurantoin.", "POS"},
		{"Klebsiella pneumoniae 10^4 CFU/mL", "Urindyrkning: Klebsiella pneumoniae 10^4 CFU/mL. Følsom for mecillinam og trimetoprim. Resistent mot ampicillin.", "POS"},
		{"Ingen signifikant vekst", "Urindyrkning: Ingen signifikant vekst.", "NEG"},
		{"Blandingsflora", "Urindyrkning: Blandingsflora, sannsynlig kontaminasjon. Ny prøve anbefales ved fortsatt mistanke om urinveisinfeksjon.", "NEG"},
	}, finding{"Vekst av gramnegative staver > 10^5 CFU/mL", "Foreløpig svar: Urindyrkning: Vekst av gramnegative staver > 10^5 CFU/mL. Identifikasjon og resistensbestemmelse følger.", "POS"}},
	{"Blod, dyrkning", "Blodkultur", []finding{
		{"Ingen vekst etter 5 døgn", "Blodkultur: Ingen vekst etter 5 døgn.", "NEG"},
		{"Staphylococcus aureus påvist", "Blodkultur: Staphylococcus aureus påvist i 2 av 2 flasker. Følsom for kloksacillin. Ikke MRSA.", "POS"},
	}, finding{"Ingen vekst etter 1 døgn", "Foreløpig svar: Blodkultur: Ingen vekst etter 1 døgn. Endelig svar etter 5 døgn.", "NEG"}},
	{"Svelg, dyrkning", "Svelgprøve", []finding{
		{"Betahemolytiske streptokokker gruppe A påvist", "Svelgprøve: Betahemolytiske streptokokker gruppe A påvist. Følsom for penicillin.", "POS"},
		{"Normal svelgflora", "Svelgprøve: Normal svelgflora.", "NEG"},
	}, finding{"Under dyrkning", "Foreløpig svar: Svelgprøve: Prøven er under dyrkning. Endelig svar følger.", ""}},
	{"Nasofarynks, luftveisvirus PCR", "Luftveisvirus PCR", []finding{
		{"Influensa A-virus påvist", "Luftveisvirus PCR: Influensa A-virus påvist. SARS-CoV-2 og RS-virus ikke påvist.", "POS"},
		{"Ikke påvist", "Luftveisvirus PCR: SARS-CoV-2, influensa A- og B-virus og RS-virus ikke påvist.", "NEG"},
	}, finding{"Influensa A-virus påvist", "Foreløpig svar: Luftveisvirus PCR: Influensa A-virus påvist. Analysen for SARS-CoV-2 og RS-virus pågår.", "POS"}},
}

// GenerateLab makes synthetic lab reports for each patient, performed by
// org's laboratory and dated back from base. The output is a pure function
// of the arguments.
//
// So that kjernejournal's one-year window can be tested against any
// patient, every patient has
//
//   - a final clinical chemistry report sampled within 56 days before base
//   - a final clinical chemistry report sampled 13.5 to 32 months before base
//
// (except where the patient was not born yet); a quarter of the patients
// also have a preliminary microbiology report from the last three days.
// Beyond that come 0 to 5 reports a year over the last three years, about
// one in five of them microbiology, with a few preliminary (recent ones
// only), amended and entered-in-error ones.
// Reports are never dated before the patient's birth.
func GenerateLab(base time.Time, seedValue int64, patients []Patient, org Organisation) []LabReport {
	base = base.UTC()
	var out []LabReport
	for _, p := range patients {
		r := rand.New(rand.NewPCG(uint64(seedValue)^hash64(org.Number+"/lab"), hash64(p.ID)))
		birth, hasBirth := birthDate(p.PersonNumber)
		g := labPerson{r: r, p: p, org: org, base: base, birth: birth, hasBirth: hasBirth, seed: seedValue,
			male: isMale(p.PersonNumber)}
		// The two plan slots come first so that adding random reports
		// never moves them.
		if d, ok := g.date(base.AddDate(0, 0, -1-r.IntN(55))); ok {
			out = append(out, g.chemistry(0, d, "final"))
		}
		if d, ok := g.date(base.AddDate(0, -13, -15-r.IntN(550))); ok {
			out = append(out, g.chemistry(1, d, "final"))
		}
		// Cultures take days: a quarter of the patients have one whose
		// final answer is still awaited.
		if r.IntN(4) == 0 {
			if d, ok := g.date(base.AddDate(0, 0, -1-r.IntN(3))); ok {
				out = append(out, g.microbiology(2, d, "preliminary"))
			}
		}
		perYear := r.IntN(6)
		k := 3
		for year := range 3 {
			for range max(0, perYear-1+r.IntN(3)) {
				d, ok := g.date(base.AddDate(0, 0, -365*year-1-r.IntN(365)))
				if !ok {
					continue
				}
				status := "final"
				switch x := r.IntN(100); {
				case x < 2:
					status = "entered-in-error"
				case x < 8:
					status = "amended"
				case base.Sub(d) < 10*24*time.Hour && x < 40:
					// Only a recent sample can still be waiting for
					// its final answer.
					status = "preliminary"
				}
				if r.IntN(5) == 0 {
					out = append(out, g.microbiology(k, d, status))
				} else {
					out = append(out, g.chemistry(k, d, status))
				}
				k++
			}
		}
	}
	return out
}

// labPerson carries one patient's generation state.
type labPerson struct {
	r        *rand.Rand
	p        Patient
	org      Organisation
	base     time.Time
	birth    time.Time
	hasBirth bool
	male     bool
	seed     int64
}

// atWork sets a sampling time on d's day, in the hours samples are taken.
func (g *labPerson) atWork(d time.Time) time.Time {
	return d.Truncate(24 * time.Hour).Add(time.Duration(7*60+g.r.IntN(8*60)) * time.Minute)
}

// date returns a sampling time on d's day, or false if the patient was not
// born then.
func (g *labPerson) date(d time.Time) (time.Time, bool) {
	d = g.atWork(d)
	if g.hasBirth && !d.After(g.birth.Add(24*time.Hour)) {
		return time.Time{}, false
	}
	return d, true
}

func (g *labPerson) report(k int, category, panelName, status string, effective time.Time, delay time.Duration) LabReport {
	id := "lab-" + hex16(hash64(g.org.Number+"/"+g.p.ID+"/lab/"+strconv.Itoa(k)+"/"+strconv.FormatInt(g.seed, 10)))
	issued := effective.Add(delay)
	if status == "amended" {
		// An amendment is released after the first answer.
		issued = issued.Add(time.Duration(1+g.r.IntN(5)) * 24 * time.Hour)
	}
	if issued.After(g.base) {
		issued = g.base
	}
	return LabReport{
		ID: id, PatientID: g.p.ID, PersonNumber: g.p.PersonNumber,
		Category: category, Panel: panelName, Status: status,
		Effective: effective, Issued: issued, Performer: g.org,
	}
}

func (g *labPerson) resultID(rep LabReport, i int) string {
	return "obs-" + rep.ID[len("lab-"):] + "-" + strconv.Itoa(i+1)
}

// resultStatus is an Observation's status under a report's: an amended
// report has one amended result, the others stand.
func resultStatus(reportStatus string, i int) string {
	switch reportStatus {
	case "amended":
		if i == 0 {
			return "amended"
		}
		return "final"
	case "preliminary", "entered-in-error":
		return reportStatus
	}
	return "final"
}

func (g *labPerson) chemistry(k int, effective time.Time, status string) LabReport {
	pn := panels[pickWeighted(g.r, panelWeights)]
	rep := g.report(k, LabCategoryLab, pn.name, status, effective, time.Duration(1+g.r.IntN(8))*time.Hour)
	if len(pn.analytes) == 1 {
		rep.Code = analytes[pn.analytes[0]].code
	}
	child := g.hasBirth && effective.Before(g.birth.AddDate(18, 0, 0))
	for i, key := range pn.analytes {
		a := analytes[key]
		rr := a.female
		switch {
		case child:
			rr = a.child
		case g.male:
			rr = a.male
		}
		v := a.draw(g.r, rr)
		q := &LabQuantity{Value: v, Unit: a.unit, UCUM: a.ucum, High: ptr(rr.high)}
		if rr.hasLow {
			q.Low = ptr(rr.low)
		}
		rep.Results = append(rep.Results, LabResult{
			ID: g.resultID(rep, i), Status: resultStatus(status, i),
			Name: a.name, Code: a.code, Quantity: q,
			Interpretation: a.interpret(v, rr),
		})
	}
	return rep
}

func (g *labPerson) microbiology(k int, effective time.Time, status string) LabReport {
	m := microbiologies[g.r.IntN(len(microbiologies))]
	f := m.findings[g.r.IntN(len(m.findings))]
	// Cultures take days; a preliminary answer goes out the next day.
	delay := time.Duration(24+g.r.IntN(72)) * time.Hour
	if status == "preliminary" {
		f = m.pending
		delay = time.Duration(6+g.r.IntN(18)) * time.Hour
	}
	rep := g.report(k, LabCategoryMicrobiology, m.panel, status, effective, delay)
	rep.Conclusion = f.conclusion
	rep.Results = []LabResult{{
		ID: g.resultID(rep, 0), Status: resultStatus(status, 0),
		Name: m.name, Text: f.result, Interpretation: f.interpretation,
	}}
	return rep
}

var panelWeights = func() []int {
	w := make([]int, len(panels))
	for i, p := range panels {
		w[i] = p.weight
	}
	return w
}()

// draw picks a value: mostly inside the range, sometimes outside it, and
// now and then past the critical limits.
func (a analyte) draw(r *rand.Rand, rr refRange) float64 {
	lo := rr.low
	if !rr.hasLow {
		lo = a.floor
	}
	span := rr.high - lo
	var v float64
	x := r.IntN(100)
	switch {
	case x < 2 && (a.critLow > 0 || a.critHigh > 0):
		if a.critLow > 0 && (a.critHigh == 0 || r.IntN(2) == 0) {
			v = a.critLow - (a.critLow-a.floor)*(0.1+0.6*r.Float64())
		} else {
			v = a.critHigh * (1.05 + 0.5*r.Float64())
		}
	case x < 2+a.abnormalPct:
		if rr.hasLow && r.IntN(3) == 0 {
			// Below, but short of the critical limit.
			bottom := max(a.critLow, a.floor)
			v = lo - (lo-bottom)*(0.1+0.6*r.Float64())
		} else {
			top := a.top
			if top == 0 {
				top = a.critHigh
			}
			if top == 0 {
				top = rr.high + 4*span
			}
			v = rr.high + (top-rr.high)*(0.05+0.5*r.Float64())
		}
	default:
		u := min(0.98, max(0.02, 0.5+0.2*r.NormFloat64()))
		v = lo + span*u
	}
	p := math.Pow(10, float64(a.decimals))
	return max(a.floor, math.Round(v*p)/p)
}

// interpret is the flag a lab prints next to v.
func (a analyte) interpret(v float64, rr refRange) string {
	switch {
	case a.critLow > 0 && v < a.critLow:
		return "LL"
	case a.critHigh > 0 && v > a.critHigh:
		return "HH"
	case rr.hasLow && v < rr.low:
		return "L"
	case v > rr.high:
		return "H"
	}
	return "N"
}

// isMale reads the sex digit of a person number: the last of the three
// individual digits, odd for men.
func isMale(pnr string) bool {
	return len(pnr) == 11 && (pnr[8]-'0')%2 == 1
}

func ptr[T any](v T) *T { return &v }
