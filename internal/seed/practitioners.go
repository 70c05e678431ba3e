package seed

import (
	"math/rand/v2"
	"sync"
)

// Practitioner is a synthetic health worker: a general practitioner
// (fastlege) or a hospital doctor. HP tokens for tests and demos can be
// issued for these, so the GP exemption (the token's HPR number is the
// patient's GP) can be exercised against seeded data.
type Practitioner struct {
	HPR          string // synthetic HPR number
	Name         string
	Municipality string // kommune of the GP's practice; empty for hospital doctors
	Organisation string // organisation number of the hospital; empty for GPs
}

// Organisation is a hospital with a synthetic organisation number.
type Organisation struct {
	Number string
	Name   string
}

// The pools are fixed, independent of the generation seed, so that a GP
// keeps the same HPR number whatever data set the server was seeded with.
const (
	gpPoolSize         = 400
	hospitalDoctorSize = 160
	poolSeed           = 0x6b6a // "kj"
)

type pools struct {
	gps            []Practitioner
	gpsByMuni      [][]int // municipality index -> indexes into gps
	doctors        []Practitioner
	doctorsByHosp  [][]int
	hospitals      []Organisation
	muniCumWeights []int
}

var thePools = sync.OnceValue(buildPools)

func buildPools() *pools {
	r := rand.New(rand.NewPCG(poolSeed, poolSeed))
	p := &pools{
		gpsByMuni:     make([][]int, len(municipalities)),
		doctorsByHosp: make([][]int, len(hospitals)),
	}

	serial := 1000
	for _, h := range hospitals {
		for {
			nr, err := OrganisationNumber(serial)
			serial += 7
			if err == nil {
				p.hospitals = append(p.hospitals, Organisation{Number: nr, Name: h.name})
				break
			}
		}
	}

	total := 0
	for _, m := range municipalities {
		total += m.weight
		p.muniCumWeights = append(p.muniCumWeights, total)
	}
	hpr := 10_000
	for mi, m := range municipalities {
		n := max(1, (gpPoolSize*m.weight+total/2)/total)
		for range n {
			nr, _ := HPRNumber(hpr) // serial is far inside the range
			hpr += 1 + r.IntN(40)
			p.gpsByMuni[mi] = append(p.gpsByMuni[mi], len(p.gps))
			p.gps = append(p.gps, Practitioner{HPR: nr, Name: practitionerName(r), Municipality: m.name})
		}
	}
	for i := range hospitalDoctorSize {
		// Every hospital gets a doctor; the rest follow the population the
		// hospital serves, so that recorders look like the real spread.
		hi := i % len(hospitals)
		if i >= len(hospitals) {
			hi = municipalities[pickCum(r, p.muniCumWeights)].hospitals[0]
		}
		nr, _ := HPRNumber(hpr)
		hpr += 1 + r.IntN(40)
		p.doctorsByHosp[hi] = append(p.doctorsByHosp[hi], len(p.doctors))
		p.doctors = append(p.doctors, Practitioner{HPR: nr, Name: practitionerName(r), Organisation: p.hospitals[hi].Number})
	}
	return p
}

// practitionerName draws from the older and middle cohorts: practising
// doctors are between their late twenties and seventies.
func practitionerName(r *rand.Rand) string {
	var given []string
	switch r.IntN(4) {
	case 0:
		given = femaleNamesOld
	case 1:
		given = maleNamesOld
	case 2:
		given = femaleNamesMid
	default:
		given = maleNamesMid
	}
	return pick(r, given) + " " + pick(r, familyNames)
}

// GeneralPractitioners returns the synthetic GPs patients are listed with.
// The pool is the same for every seed.
func GeneralPractitioners() []Practitioner {
	return append([]Practitioner(nil), thePools().gps...)
}

// HospitalDoctors returns the synthetic hospital doctors who record
// allergies and prescribe. The pool is the same for every seed.
func HospitalDoctors() []Practitioner {
	return append([]Practitioner(nil), thePools().doctors...)
}

// Hospitals returns the hospitals visits are recorded at, with their
// synthetic organisation numbers.
func Hospitals() []Organisation {
	return append([]Organisation(nil), thePools().hospitals...)
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// pickCum picks an index with probability proportional to its weight, given
// the running totals of the weights.
func pickCum(r *rand.Rand, cum []int) int {
	x := r.IntN(cum[len(cum)-1])
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
