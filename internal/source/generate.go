package source

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Patient is a patient the source holds documents for.
type Patient struct {
	ID           string // kjernejournal's Patient id (seed.PatientID)
	PersonNumber string // fødselsnummer, the only identifier sources share
}

// Organisation is the source hospital: the author and custodian of its
// documents.
type Organisation struct {
	Number string `json:"number"` // organisasjonsnummer
	Name   string `json:"name"`
	Region string `json:"region"` // regional health authority, e.g. "Helse Nord"
}

// Document is the metadata of one synthetic document. Its bytes are not
// stored: WriteBody renders them from these fields every time, identically.
type Document struct {
	ID              string       `json:"id"`
	PatientID       string       `json:"patientId"`
	PersonNumber    string       `json:"personNumber"`
	Type            DocumentType `json:"type"`
	Date            time.Time    `json:"date"`
	Title           string       `json:"title"`
	Department      string       `json:"department"`
	ContentType     string       `json:"contentType"` // application/pdf or application/xml
	Confidentiality string       `json:"confidentiality"`
	Author          Organisation `json:"author"`
	Text            []string     `json:"text"`
	// Padding is the number of filler bytes a large document carries (an
	// embedded stream standing in for scanned pages); 0 for ordinary ones.
	Padding int64 `json:"padding,omitempty"`
	Size    int64 `json:"size"`
}

// Regions of the hospitals in seed.Hospitals, by name. Every regional health
// authority owns its trusts; the private non-profit hospitals in Oslo have
// agreements with Helse Sør-Øst.
var hospitalRegions = map[string]string{
	"Oslo universitetssykehus HF":         "Helse Sør-Øst",
	"Akershus universitetssykehus HF":     "Helse Sør-Øst",
	"Lovisenberg Diakonale Sykehus":       "Helse Sør-Øst",
	"Diakonhjemmet Sykehus":               "Helse Sør-Øst",
	"Vestre Viken HF":                     "Helse Sør-Øst",
	"Sykehuset Østfold HF":                "Helse Sør-Øst",
	"Sykehuset Innlandet HF":              "Helse Sør-Øst",
	"Sykehuset i Vestfold HF":             "Helse Sør-Øst",
	"Sykehuset Telemark HF":               "Helse Sør-Øst",
	"Sørlandet sykehus HF":                "Helse Sør-Øst",
	"Helse Stavanger HF":                  "Helse Vest",
	"Helse Fonna HF":                      "Helse Vest",
	"Helse Bergen HF":                     "Helse Vest",
	"Haraldsplass Diakonale Sykehus":      "Helse Vest",
	"Helse Førde HF":                      "Helse Vest",
	"Helse Møre og Romsdal HF":            "Helse Midt-Norge",
	"St. Olavs hospital HF":               "Helse Midt-Norge",
	"Helse Nord-Trøndelag HF":             "Helse Midt-Norge",
	"Nordlandssykehuset HF":               "Helse Nord",
	"Helgelandssykehuset HF":              "Helse Nord",
	"Universitetssykehuset Nord-Norge HF": "Helse Nord",
	"Finnmarkssykehuset HF":               "Helse Nord",
}

// Hospitals returns the seed's hospitals (the ones demo visits are recorded
// at, with the same synthetic organisation numbers) with their regions, so a
// source can present itself as one of them.
func Hospitals() []Organisation {
	var out []Organisation
	for _, h := range seed.Hospitals() {
		out = append(out, Organisation{Number: h.Number, Name: h.Name, Region: hospitalRegions[h.Name]})
	}
	return out
}

// HospitalByName finds a hospital of Hospitals by its name.
func HospitalByName(name string) (Organisation, bool) {
	for _, h := range Hospitals() {
		if h.Name == name {
			return h, true
		}
	}
	return Organisation{}, false
}

// SeedPatients returns the demo patients of `kjernejournal serve
// --demo-patients n --demo-seed seedValue`: the first n patients
// seed.Generate(seedValue, n) yields, followed (when n > 0) by the demo
// citizen (seed.CitizenPatientID), so a source holds documents for exactly
// the patients that kjernejournal knows. The demo citizen is the one a
// black-box client can reach (she is the citizen persona's patient), so she
// must have documents too.
func SeedPatients(seedValue int64, n int) ([]Patient, error) {
	out := make([]Patient, 0, n+1)
	for _, rec := range seed.Generate(seedValue, n) {
		var pat struct {
			ID         string `json:"id"`
			Identifier []struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
		}
		if err := json.Unmarshal(rec.Patient, &pat); err != nil {
			return nil, fmt.Errorf("source: seed patient: %w", err)
		}
		p := Patient{ID: pat.ID}
		for _, id := range pat.Identifier {
			if id.System == domain.SystemFNR {
				p.PersonNumber = id.Value
			}
		}
		if p.PersonNumber == "" {
			return nil, fmt.Errorf("source: seed patient %s has no person number", pat.ID)
		}
		out = append(out, p)
	}
	if n > 0 {
		out = append(out, Patient{ID: seed.CitizenPatientID, PersonNumber: seed.CitizenPersonNumber})
	}
	return out, nil
}

// Generate makes perPatient documents for each patient, authored by org,
// dated back from seed.DefaultBase. See GenerateAt.
func Generate(seedValue int64, patients []Patient, org Organisation, perPatient int) []Document {
	return GenerateAt(seed.DefaultBase, seedValue, patients, org, perPatient)
}

// GenerateAt makes perPatient documents for each patient, dated back from
// base over about ten years. The output is a pure function of the
// arguments.
//
// So that every access rule can be exercised against any patient, the
// first documents of each patient follow a fixed plan (the rest are drawn
// at random):
//
//	0-4   one document of each group (A00, C00, D00, E00, I00), dated within
//	      300 days before base: inside every group's display period
//	5-9   one of each group again, dated 6-10 years before base: outside
//	      every period except A00's (unlimited)
//	10    a recent document labelled NORS (blocked)
//	11-   random group, date and label (about 8 % NORS)
//
// Dates never precede the patient's birth.
func GenerateAt(base time.Time, seedValue int64, patients []Patient, org Organisation, perPatient int) []Document {
	base = base.UTC()
	out := make([]Document, 0, len(patients)*max(perPatient, 0))
	for _, p := range patients {
		r := rand.New(rand.NewPCG(uint64(seedValue)^hash64(org.Number), hash64(p.ID)))
		birth, hasBirth := birthDate(p.PersonNumber)
		for k := range perPatient {
			var group string
			var date time.Time
			conf := ConfidentialityNormal
			switch {
			case k < 5:
				group = Groups[k].Code
				date = base.Add(-time.Duration(1+r.IntN(300)) * 24 * time.Hour)
			case k < 10:
				group = Groups[k-5].Code
				date = base.AddDate(-6-r.IntN(4), 0, -r.IntN(365))
			case k == 10:
				group = Groups[r.IntN(len(Groups))].Code
				date = base.Add(-time.Duration(1+r.IntN(300)) * 24 * time.Hour)
				conf = ConfidentialityBlocked
			default:
				group = Groups[pickWeighted(r, groupWeights)].Code
				if r.IntN(4) == 0 {
					date = base.Add(-time.Duration(1+r.IntN(365)) * 24 * time.Hour)
				} else {
					date = base.Add(-time.Duration(1+r.IntN(3650)) * 24 * time.Hour)
				}
				if r.IntN(100) < 8 {
					conf = ConfidentialityBlocked
				}
			}
			// Working hours, to the minute: what an EHR stamps.
			date = date.Truncate(24 * time.Hour).Add(time.Duration(7*60+r.IntN(10*60)) * time.Minute)
			if hasBirth && date.Before(birth) {
				// Redraw after the birth, keeping an old slot old when the
				// patient is old enough for that.
				latest := base
				if k >= 5 && k < 10 && birth.Before(base.AddDate(-6, 0, 0)) {
					latest = base.AddDate(-6, 0, 0)
				}
				days := max(1, int(latest.Sub(birth).Hours()/24)-1)
				date = birth.Add(time.Duration(r.IntN(days))*24*time.Hour + time.Duration(7*60+r.IntN(10*60))*time.Minute)
			}
			id := "dok-" + hex16(hash64(org.Number+"/"+p.ID+"/"+strconv.Itoa(k)+"/"+strconv.FormatInt(seedValue, 10)))
			out = append(out, newDocument(r, id, p, org, group, date, conf))
		}
	}
	return out
}

// LargeDocument makes one document of exactly size bytes for p: a PDF whose
// bulk is an embedded filler stream, rendered while it is written so that a
// document of hundreds of megabytes costs no memory. It is dated 30 days
// before base (inside every display period) and labelled N.
func LargeDocument(base time.Time, org Organisation, p Patient, size int64) (Document, error) {
	d := Document{
		ID:              "dok-large-" + hex16(hash64(org.Number + "/" + p.ID + "/large/" + strconv.FormatInt(size, 10)))[:12],
		PatientID:       p.ID,
		PersonNumber:    p.PersonNumber,
		Type:            typeByCode("E01-3"), // MR-svar: image-heavy, plausibly large
		Date:            base.UTC().Truncate(24*time.Hour).AddDate(0, 0, -30).Add(10 * time.Hour),
		Department:      "Radiologisk avdeling",
		ContentType:     "application/pdf",
		Confidentiality: ConfidentialityNormal,
		Author:          org,
		Text: []string{
			"MR caput med og uten kontrast.",
			"Ingen tegn til ekspansiv prosess, blødning eller ferske iskemiske forandringer.",
			"Vedlagt: skannede bildeserier.",
		},
	}
	d.Title = d.Type.Display + ", " + d.Department
	pad, err := pdfPaddingFor(d, size)
	if err != nil {
		return Document{}, err
	}
	d.Padding = pad
	d.Size = size
	return d, nil
}

var groupWeights = []int{3, 5, 2, 3, 3} // A00 C00 D00 E00 I00: test results are the commonest

func pickWeighted(r *rand.Rand, w []int) int {
	t := 0
	for _, x := range w {
		t += x
	}
	x := r.IntN(t)
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func newDocument(r *rand.Rand, id string, p Patient, org Organisation, group string, date time.Time, conf string) Document {
	types := typesOf(group)
	t := types[r.IntN(len(types))]
	tpl := templates[t.Code]
	text := tpl.variants[r.IntN(len(tpl.variants))]
	dept := tpl.departments[r.IntN(len(tpl.departments))]
	ct := "application/pdf"
	// Laboratory systems mostly send structured (CDA-like) documents;
	// narrative documents are mostly archived as PDF.
	if (group == GroupTestResults && r.IntN(10) < 7) || (group != GroupTestResults && r.IntN(10) < 2) {
		ct = "application/xml"
	}
	d := Document{
		ID:              id,
		PatientID:       p.ID,
		PersonNumber:    p.PersonNumber,
		Type:            t,
		Date:            date.UTC(),
		Title:           t.Display + ", " + dept,
		Department:      dept,
		ContentType:     ct,
		Confidentiality: conf,
		Author:          org,
		Text:            append([]string(nil), text...),
	}
	d.Size = d.renderedSize()
	return d
}

// birthDate reads the birth date out of a person number, undoing the
// D-number (+40 on the day) and test-register (+40 / +80 on the month)
// offsets; the century follows from the individual number.
func birthDate(pnr string) (time.Time, bool) {
	if len(pnr) != 11 {
		return time.Time{}, false
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	day, month, yy, ind := n(pnr[0:2]), n(pnr[2:4]), n(pnr[4:6]), n(pnr[6:9])
	if day > 40 {
		day -= 40
	}
	switch {
	case month > 80:
		month -= 80
	case month > 40:
		month -= 40
	}
	var year int
	switch {
	case ind < 500:
		year = 1900 + yy
	case ind < 750 && yy >= 54:
		year = 1800 + yy
	case yy < 40:
		year = 2000 + yy
	case ind >= 900:
		year = 1900 + yy
	default:
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// template is the clinical content a document type is written with.
type template struct {
	departments []string
	variants    [][]string
}

var templates = map[string]template{
	"A01-1": {[]string{"Hjertemedisinsk avdeling", "Medisinsk avdeling", "Ortopedisk avdeling", "Nevrologisk avdeling", "Gastrokirurgisk avdeling"}, [][]string{
		{"Diagnose: Akutt subendokardialt hjerteinfarkt (I21.4).", "Forløp: PCI med stent i RIA, ukomplisert.", "Ved utreise: Albyl-E 75 mg x 1, Brilique 90 mg x 2, Atorvastatin 80 mg x 1.", "Videre oppfølging: kontroll hos fastlege om 2 uker, hjertepoliklinikk om 3 måneder."},
		{"Diagnose: Pneumoni, uspesifisert (J18.9).", "Forløp: Behandlet med benzylpenicillin i.v. i 3 døgn, deretter peroral behandling.", "Ved utreise: Apocillin 660 mg x 4 i 5 dager.", "Videre oppfølging: kontroll av CRP og rtg thorax hos fastlege om 6 uker."},
		{"Diagnose: Brudd på lårhals (S72.0).", "Forløp: Operert med hemiprotese dagen etter innleggelse. Mobilisert med gåstol.", "Ved utreise: Fragmin 5000 IE s.c. x 1 i 4 uker, paracetamol ved behov.", "Videre oppfølging: rehabilitering i kommunen, sårkontroll etter 14 dager."},
		{"Diagnose: Hjerneinfarkt, uspesifisert (I63.9).", "Forløp: Trombolysert innen 3 timer. Lett residual pareser i høyre hånd.", "Ved utreise: Albyl-E 75 mg x 1, Atorvastatin 40 mg x 1.", "Videre oppfølging: slagpoliklinikk om 3 måneder. Ikke bilkjøring før ny vurdering."},
		{"Diagnose: Akutt appendisitt (K35.8).", "Forløp: Laparoskopisk appendektomi, ukomplisert.", "Videre oppfølging: ingen fast kontroll. Sykmeldt 2 uker."},
	}},
	"A01-2": {[]string{"Endokrinologisk poliklinikk", "Hjertemedisinsk poliklinikk", "Lungepoliklinikken", "Ortopedisk poliklinikk"}, [][]string{
		{"Kontroll av diabetes mellitus type 2 (E11.9).", "HbA1c 52 mmol/mol, noe over mål.", "Vurdering: øker metformin til 1 g x 2. Ny kontroll om 6 måneder."},
		{"Kontroll etter atrieflimmer (I48.0).", "Sinusrytme i dag. Ingen bivirkninger av antikoagulasjon.", "Vurdering: fortsetter Eliquis 5 mg x 2. Avsluttes ved poliklinikken."},
		{"Kontroll av KOLS (J44.9).", "Stabil, ingen forverringer siste halvår.", "Vurdering: fortsetter inhalasjonsbehandling. Oppfølging hos fastlege."},
	}},
	"C01-1": {[]string{"Avdeling for medisinsk biokjemi"}, [][]string{
		{"Hemoglobin 13,8 g/dL (ref. 11,7-15,3)", "CRP 4 mg/L (ref. <5)", "Kreatinin 78 µmol/L (ref. 45-90)", "eGFR >90 mL/min/1,73m²"},
		{"HbA1c 52 mmol/mol (ref. 20-42) H", "Glukose 8,9 mmol/L (ref. 4,0-6,0) H", "Kolesterol 5,8 mmol/L", "LDL-kolesterol 3,9 mmol/L H"},
		{"Natrium 139 mmol/L (ref. 137-145)", "Kalium 4,1 mmol/L (ref. 3,5-4,4)", "TSH 2,1 mIE/L (ref. 0,5-4,1)", "Fritt T4 15 pmol/L (ref. 12-22)"},
		{"INR 2,6 (terapeutisk område 2,0-3,0)", "Hemoglobin 12,9 g/dL (ref. 13,4-17,0) L", "Trombocytter 245 x10^9/L"},
	}},
	"C01-2": {[]string{"Avdeling for mikrobiologi"}, [][]string{
		{"Urin, dyrkning: Escherichia coli >10^5 CFU/mL.", "Følsom for mecillinam, nitrofurantoin og trimetoprim.", "Resistent mot ampicillin."},
		{"Blodkultur: ingen vekst etter 5 døgn."},
		{"Nasofarynks, PCR: SARS-CoV-2 påvist. Influensa A og B ikke påvist."},
	}},
	"C01-3": {[]string{"Avdeling for patologi"}, [][]string{
		{"Hudbiopsi, rygg: benignt compound nevus.", "Fritt fjernet."},
		{"Biopsi, ventrikkel: kronisk aktiv gastritt. Helicobacter pylori påvist."},
	}},
	"D01-1": {[]string{"Hjertemedisinsk avdeling", "Akuttmottaket"}, [][]string{
		{"Sinusrytme, frekvens 72/min.", "PQ 160 ms, QRS 92 ms, QTc 421 ms.", "Konklusjon: normalt EKG."},
		{"Atrieflimmer med ventrikkelfrekvens 110/min.", "Ingen ST-forandringer.", "Konklusjon: atrieflimmer med rask overledning."},
	}},
	"D01-2": {[]string{"Lungepoliklinikken"}, [][]string{
		{"FEV1 2,9 L (86 % av forventet), FVC 3,8 L (94 %).", "FEV1/FVC 0,76.", "Konklusjon: normal spirometri."},
		{"FEV1 1,6 L (58 % av forventet), FEV1/FVC 0,58 etter bronkodilatasjon.", "Konklusjon: moderat obstruktiv ventilasjonsinnskrenkning, forenlig med KOLS."},
	}},
	"D01-3": {[]string{"Hjertemedisinsk poliklinikk"}, [][]string{
		{"Normal størrelse og funksjon av venstre ventrikkel, EF 60 %.", "Ingen klaffefeil av betydning."},
		{"Lett nedsatt venstre ventrikkelfunksjon, EF 45 %.", "Lett mitralinsuffisiens."},
	}},
	"E01-1": {[]string{"Radiologisk avdeling"}, [][]string{
		{"Rtg thorax: ingen infiltrater eller pleuravæske.", "Normal hjertestørrelse."},
		{"Rtg håndledd: ekstraartikulært brudd i distale radius med lett dorsal vinkling."},
	}},
	"E01-2": {[]string{"Radiologisk avdeling"}, [][]string{
		{"CT caput uten kontrast: ingen intrakraniell blødning.", "Ingen sikre ferske infarkter."},
		{"CT abdomen: fortykket appendiks med omkringliggende fettvevsreaksjon, forenlig med appendisitt."},
	}},
	"E01-3": {[]string{"Radiologisk avdeling"}, [][]string{
		{"MR høyre kne: degenerativ rift i bakre horn av mediale menisk.", "Ingen korsbåndsskade."},
		{"MR columna lumbalis: skiveprolaps L4/L5 med affeksjon av venstre L5-rot."},
	}},
	"E01-4": {[]string{"Radiologisk avdeling"}, [][]string{
		{"Ultralyd abdomen: flere gallesteiner, ingen tegn til kolecystitt.", "Normale galleganger."},
		{"Ultralyd hals: multinodøs struma uten suspekte noduli."},
	}},
	"I01-1": {[]string{"Medisinsk poliklinikk", "Ortopedisk poliklinikk", "Hjertemedisinsk poliklinikk"}, [][]string{
		{"Henvisning til vurdering ved poliklinikken.", "Problemstilling: tiltagende tungpust ved anstrengelse siste 3 måneder.", "Ønsker vurdering med tanke på hjertesvikt."},
		{"Henvisning til vurdering av kneleddsartrose.", "Problemstilling: smerter i høyre kne, nedsatt gangdistanse.", "Ønsker vurdering med tanke på protesekirurgi."},
	}},
	"I01-2": {[]string{"Medisinsk poliklinikk", "Ortopedisk poliklinikk"}, [][]string{
		{"Takk for henvisningen.", "Pasienten har fått time ved poliklinikken innen 8 uker.", "Innkalling sendes pasienten direkte."},
		{"Takk for henvisningen.", "Pasienten har rett til nødvendig helsehjelp, frist for start av helsehjelp er 12 uker."},
	}},
}
