// Package seed generates realistic synthetic Norwegian patient records as
// FHIR R4 JSON, for seeding development, demo and load-test servers.
//
// Nothing in the output identifies a real person: person numbers follow the
// test register's convention (month +80), HPR and organisation numbers come
// from ranges never issued, and names are drawn independently from lists of
// common names. Output is a pure function of the seed and the base date, so
// a data set can be reproduced byte for byte.
package seed

import (
	"errors"
	"iter"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// DefaultBase is the "today" of data sets made by Generate: ages and all
// clinical dates are counted back from it. A fixed date, rather than
// time.Now, is what makes the output reproducible.
var DefaultBase = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Record is one patient's Patient resource and the clinical resources of
// their record (AllergyIntolerance, Flag, MedicationStatement, Encounter),
// each as FHIR R4 JSON with its id set.
type Record struct {
	Patient   []byte
	Resources [][]byte
}

// Generate yields n synthetic patient records counted back from
// DefaultBase, keyed by their index 0..n-1. The same seed always yields the
// same bytes.
func Generate(seed int64, n int) iter.Seq2[int, Record] {
	return GenerateAt(DefaultBase, seed, n)
}

// GenerateAt is Generate with an explicit base date.
//
// Patient ids are "pas-" and 16 hex digits derived from seed and index,
// distinct within one seed; clinical resource ids extend the patient's id.
// Person numbers are distinct within one seed; two data sets generated with
// different seeds may share person numbers and should not be loaded into
// the same server.
func GenerateAt(base time.Time, seed int64, n int) iter.Seq2[int, Record] {
	return func(yield func(int, Record) bool) {
		g := &generator{base: base.UTC(), pools: thePools(), used: make(map[string]struct{}, n+1)}
		// The demo citizen is stored next to generated patients; no
		// generated patient may share her person number.
		g.used[CitizenPersonNumber] = struct{}{}
		for i := range n {
			rec, err := g.record(seed, i)
			if err != nil {
				// The structs are fixed and always encodable; reaching
				// this is a programming error, not bad input.
				panic(err)
			}
			if !yield(i, rec) {
				return
			}
		}
	}
}

type generator struct {
	base  time.Time
	pools *pools
	used  map[string]struct{} // person numbers handed out so far
}

// person is the state the clinical generators need about a patient.
type person struct {
	r        *rand.Rand
	id       string
	ref      jReference
	birth    time.Time
	age      int
	female   bool
	muni     int
	gp       Practitioner
	resource int // running number for resource ids
}

// mix is the splitmix64 finaliser: a bijection, so distinct indexes under
// one seed never share a patient id.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const hexDigits = "0123456789abcdef"

func patientID(seed int64, index int) string {
	h := mix(uint64(seed)*0x9e3779b97f4a7c15 + uint64(index))
	b := []byte("pas-0000000000000000")
	for i := len(b) - 1; i >= 4; i-- {
		b[i] = hexDigits[h&0xf]
		h >>= 4
	}
	return string(b)
}

// ageBandCum holds running totals of Norway's population by five-year age
// group (thousands, Statistics Norway 2024), so the ages of generated
// patients follow the real population pyramid.
var ageBandCum = func() []int {
	bands := []int{270, 300, 320, 330, 345, 370, 380, 370, 360, 370, 380, 360, 320, 290, 280, 230, 140, 75, 35, 10, 1}
	cum := make([]int, len(bands))
	t := 0
	for i, b := range bands {
		t += b
		cum[i] = t
	}
	return cum
}()

func (g *generator) record(seed int64, index int) (Record, error) {
	p := &person{
		r:  rand.New(rand.NewPCG(mix(uint64(seed)), mix(uint64(index)^0x5eed))),
		id: patientID(seed, index),
	}
	p.ref = jReference{Reference: "Patient/" + p.id}
	r := p.r
	p.female = r.IntN(2) == 0
	band := pickCum(r, ageBandCum)
	p.birth = g.base.AddDate(-band*5-r.IntN(5), 0, -1-r.IntN(365))
	pnr := g.personNumber(p)
	p.age = ageAt(p.birth, g.base)
	p.muni = pickCum(r, g.pools.muniCumWeights)
	gps := g.pools.gpsByMuni[p.muni]
	p.gp = g.pools.gps[gps[r.IntN(len(gps))]]

	pat := g.patient(p, pnr)
	body, err := fhir.JSON(pat)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Patient: body}
	var resources []any
	resources = g.allergies(p, resources)
	resources = g.flags(p, resources)
	resources = g.medications(p, resources)
	resources = g.encounters(p, resources)
	resources = g.criticalModel(p, resources)
	rec.Resources = make([][]byte, 0, len(resources))
	for _, res := range resources {
		b, err := fhir.JSON(res)
		if err != nil {
			return Record{}, err
		}
		rec.Resources = append(rec.Resources, b)
	}
	return rec, nil
}

// personNumber picks an unused synthetic person number for p, moving the
// birth date a day when a date's individual numbers run out (only in data
// sets far larger than Norway).
func (g *generator) personNumber(p *person) string {
	r := p.r
	for {
		for range 64 {
			ind := individualFor(r, p.birth.Year())
			if (ind%2 == 0) != p.female {
				ind ^= 1 // ranges start even and end odd, so this stays inside
			}
			s, err := PersonNumber(p.birth, ind, p.female)
			if err != nil {
				if errors.Is(err, ErrNoCheckDigit) {
					continue
				}
				panic(err) // individualFor only returns issued numbers
			}
			if _, dup := g.used[s]; dup {
				continue
			}
			g.used[s] = struct{}{}
			return s
		}
		p.birth = p.birth.AddDate(0, 0, -1)
	}
}

// individualFor draws an individual number issued for the birth year. From
// 1940 the 900-999 series was also used, mostly for immigrants.
func individualFor(r *rand.Rand, year int) int {
	switch {
	case year >= 2000:
		return 500 + r.IntN(500)
	case year >= 1940 && r.IntN(10) == 0:
		return 900 + r.IntN(100)
	}
	return r.IntN(500)
}

func ageAt(birth, at time.Time) int {
	age := at.Year() - birth.Year()
	if at.YearDay() < birth.YearDay() {
		age--
	}
	return age
}

func (g *generator) patient(p *person, pnr string) *jPatient {
	r := p.r
	var given []string
	var gender string
	switch {
	case p.female:
		gender = "female"
		given = cohortNames(p.birth.Year(), femaleNamesOld, femaleNamesMid, femaleNamesYoung)
	default:
		gender = "male"
		given = cohortNames(p.birth.Year(), maleNamesOld, maleNamesMid, maleNamesYoung)
	}
	first := []string{pick(r, given)}
	if r.IntN(4) == 0 {
		if second := pick(r, given); second != first[0] {
			first = append(first, second)
		}
	}
	family := pick(r, familyNames)
	text := first[0]
	for _, f := range first[1:] {
		text += " " + f
	}
	text += " " + family

	m := municipalities[p.muni]
	pat := &jPatient{
		ResourceType: "Patient",
		ID:           p.id,
		Identifier:   []jIdentifier{{Use: "official", System: domain.SystemFNR, Value: pnr}},
		Active:       true,
		Name:         []jName{{Use: "official", Text: text, Family: family, Given: first}},
		Gender:       gender,
		BirthDate:    p.birth.Format(time.DateOnly),
		GeneralPractitioner: []jReference{{
			Type:       "Practitioner",
			Identifier: &jIdentifier{System: domain.SystemHPR, Value: p.gp.HPR},
			Display:    p.gp.Name,
		}},
	}
	// About 0.5 % of residents have a secret address (strengt fortrolig
	// adresse); the population register then gives out no address at all.
	if r.IntN(1000) < 5 {
		pat.Extension = []jExtension{{URL: domain.SecretAddressExtension, ValueBoolean: true}}
	} else {
		line := pick(r, streetNames) + " " + strconv.Itoa(1+r.IntN(120))
		if r.IntN(5) == 0 {
			line += string(rune('A' + r.IntN(4)))
		}
		pat.Address = []jAddress{{
			Use: "home", Type: "physical", Line: []string{line},
			City: m.city, District: m.name, PostalCode: m.postalCode, Country: "NO",
		}}
	}
	return pat
}

func cohortNames(year int, old, mid, young []string) []string {
	switch {
	case year < 1965:
		return old
	case year < 1998:
		return mid
	}
	return young
}

// nextID returns the id of the patient's next clinical resource.
func (p *person) nextID(kind string) string {
	p.resource++
	return p.id + "-" + kind + strconv.Itoa(p.resource)
}

// ageBand indexes the [3]int weight tables: child, adult, elderly.
func (p *person) ageBand() int {
	switch {
	case p.age < 18:
		return 0
	case p.age < 65:
		return 1
	}
	return 2
}

// between returns a random instant in [lo, hi), or lo when the span is empty.
func between(r *rand.Rand, lo, hi time.Time) time.Time {
	d := hi.Sub(lo)
	if d <= 0 {
		return lo
	}
	return lo.Add(time.Duration(r.Int64N(int64(d))))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func dateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
func date(t time.Time) string     { return t.UTC().Format(time.DateOnly) }

// poisson draws a count with mean lambda, capped, by Knuth's method; the
// means here are small enough for it to be fast.
func poisson(r *rand.Rand, lambda float64, capAt int) int {
	limit := math.Exp(-lambda)
	k, prod := 0, r.Float64()
	for prod > limit && k < capAt {
		k++
		prod *= r.Float64()
	}
	return k
}

// practitionerRef is how the resources point at health personnel: by HPR
// number, since practitioners live in the national register and not in
// this server.
func practitionerRef(pr Practitioner) jReference {
	return jReference{
		Type:       "Practitioner",
		Identifier: &jIdentifier{System: domain.SystemHPR, Value: pr.HPR},
		Display:    pr.Name,
	}
}

// hospitalDoctor picks a doctor at one of the hospitals serving p.
func (g *generator) hospitalDoctor(p *person) Practitioner {
	h := g.hospitalFor(p)
	ds := g.pools.doctorsByHosp[h]
	return g.pools.doctors[ds[p.r.IntN(len(ds))]]
}

// hospitalFor picks a hospital for p: mostly a local one, sometimes the
// regional university hospital the local trust refers to.
func (g *generator) hospitalFor(p *person) int {
	local := municipalities[p.muni].hospitals
	h := local[p.r.IntN(len(local))]
	if reg, ok := regionalHospital[h]; ok && p.r.IntN(7) == 0 {
		return reg
	}
	return h
}

// PatientID returns the id Generate gives patient index of seed, so callers
// can name generated patients without generating them.
func PatientID(seed int64, index int) string { return patientID(seed, index) }
