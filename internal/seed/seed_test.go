package seed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// TestGenerateValidFHIR parses every resource of 300 patients with Google's
// FHIR R4 parser, which checks required elements, bound codes, primitive
// formats and reference targets.
func TestGenerateValidFHIR(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, rec := range Generate(1, 300) {
		var pat struct{ ID string }
		mustUnmarshal(t, rec.Patient, &pat)
		for _, body := range append([][]byte{rec.Patient}, rec.Resources...) {
			if _, err := u.Unmarshal(body); err != nil {
				t.Fatalf("invalid FHIR: %v\n%s", err, body)
			}
			var res struct {
				ResourceType string
				ID           string
				Patient      struct{ Reference string }
				Subject      struct{ Reference string }
			}
			mustUnmarshal(t, body, &res)
			counts[res.ResourceType]++
			if !idPattern.MatchString(res.ID) {
				t.Errorf("id %q is not a valid FHIR id", res.ID)
			}
			want := "Patient/" + pat.ID
			switch res.ResourceType {
			case "Patient":
			case "AllergyIntolerance", "Consent":
				if res.Patient.Reference != want {
					t.Errorf("%s %s: patient %q, want %q", res.ResourceType, res.ID, res.Patient.Reference, want)
				}
			default:
				if res.Subject.Reference != want {
					t.Errorf("%s %s: subject %q, want %q", res.ResourceType, res.ID, res.Subject.Reference, want)
				}
			}
		}
	}
	for _, typ := range []string{"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Condition", "Procedure", "Consent"} {
		if counts[typ] == 0 {
			t.Errorf("no %s among 300 patients", typ)
		}
	}
	t.Logf("resources: %v", counts)
}

func TestGenerateDeterministic(t *testing.T) {
	collect := func(seed int64) [][]byte {
		var out [][]byte
		for _, rec := range Generate(seed, 200) {
			out = append(out, rec.Patient)
			out = append(out, rec.Resources...)
		}
		return out
	}
	a, b := collect(42), collect(42)
	if len(a) != len(b) {
		t.Fatalf("same seed gave %d and %d resources", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("same seed, resource %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
	c := collect(43)
	if bytes.Equal(a[0], c[0]) {
		t.Error("different seeds gave the same first patient")
	}
}

func TestGenerateStopsEarly(t *testing.T) {
	seen := 0
	for i := range Generate(7, 1000) {
		seen++
		if i == 9 {
			break
		}
	}
	if seen != 10 {
		t.Fatalf("iterated %d records after break at index 9, want 10", seen)
	}
}

type patientJSON struct {
	ID        string
	Extension []struct {
		URL          string
		ValueBoolean bool
	}
	Identifier []struct{ System, Value string }
	Name       []struct {
		Family string
		Given  []string
	}
	Gender              string
	BirthDate           string
	Address             []struct{ City, District, PostalCode string }
	GeneralPractitioner []struct {
		Reference  string
		Identifier struct{ System, Value string }
		Display    string
	}
}

func TestGeneratePatients(t *testing.T) {
	gps := map[string]string{}
	for _, gp := range GeneralPractitioners() {
		gps[gp.HPR] = gp.Name
	}
	ids := map[string]bool{}
	pnrs := map[string]bool{}
	for i, rec := range Generate(3, 2000) {
		var p patientJSON
		mustUnmarshal(t, rec.Patient, &p)
		if ids[p.ID] {
			t.Fatalf("patient %d: duplicate id %s", i, p.ID)
		}
		ids[p.ID] = true

		if len(p.Identifier) != 1 || p.Identifier[0].System != domain.SystemFNR {
			t.Fatalf("patient %s: identifier %+v", p.ID, p.Identifier)
		}
		pnr := p.Identifier[0].Value
		if !domain.ValidPersonNumber(pnr) {
			t.Errorf("patient %s: invalid person number %q", p.ID, pnr)
		}
		if pnrs[pnr] {
			t.Errorf("patient %s: duplicate person number %q", p.ID, pnr)
		}
		pnrs[pnr] = true
		birth, err := time.Parse(time.DateOnly, p.BirthDate)
		if err != nil {
			t.Fatalf("patient %s: birthDate %q", p.ID, p.BirthDate)
		}
		wantPrefix := fmt.Sprintf("%02d%02d%02d", birth.Day(), int(birth.Month())+80, birth.Year()%100)
		if !strings.HasPrefix(pnr, wantPrefix) {
			t.Errorf("patient %s: person number %s does not encode birth date %s with month +80", p.ID, pnr, p.BirthDate)
		}
		if female := (pnr[8]-'0')%2 == 0; female != (p.Gender == "female") {
			t.Errorf("patient %s: person number %s disagrees with gender %s", p.ID, pnr, p.Gender)
		}
		if !birth.Before(DefaultBase) {
			t.Errorf("patient %s: born %s, not before the base date", p.ID, p.BirthDate)
		}

		if len(p.Name) != 1 || p.Name[0].Family == "" || len(p.Name[0].Given) == 0 {
			t.Errorf("patient %s: name %+v", p.ID, p.Name)
		}
		if len(p.GeneralPractitioner) != 1 {
			t.Fatalf("patient %s: %d GPs", p.ID, len(p.GeneralPractitioner))
		}
		gp := p.GeneralPractitioner[0]
		if gp.Identifier.System != domain.SystemHPR || gps[gp.Identifier.Value] == "" || gps[gp.Identifier.Value] != gp.Display {
			t.Errorf("patient %s: GP %+v is not from the GP pool", p.ID, gp)
		}
		secret := len(p.Extension) == 1 && p.Extension[0].URL == domain.SecretAddressExtension && p.Extension[0].ValueBoolean
		if len(p.Extension) > 0 && !secret {
			t.Errorf("patient %s: unexpected extension %+v", p.ID, p.Extension)
		}
		if secret == (len(p.Address) > 0) {
			t.Errorf("patient %s: secret=%v but %d addresses", p.ID, secret, len(p.Address))
		}
	}
}

// recordStats is what TestGenerateDistributions checks: per patient counts
// of each resource type, by age group.
type recordStats struct {
	patients, female, secret, over80 int
	counts                           map[string][]int // type -> count per patient
	maxCount                         map[string]int
	medsByBand                       [3]struct{ patients, meds int }
	anaphylaxisNotHigh               int
	allergyWithAnyReaction           int
}

func TestGenerateDistributions(t *testing.T) {
	const n = 20000
	s := recordStats{counts: map[string][]int{}, maxCount: map[string]int{}}
	for _, rec := range Generate(11, n) {
		var p patientJSON
		mustUnmarshal(t, rec.Patient, &p)
		s.patients++
		if p.Gender == "female" {
			s.female++
		}
		if len(p.Extension) > 0 {
			s.secret++
		}
		birth, _ := time.Parse(time.DateOnly, p.BirthDate)
		age := ageAt(birth, DefaultBase)
		if age >= 80 {
			s.over80++
		}
		per := map[string]int{}
		for _, body := range rec.Resources {
			var res struct {
				ResourceType string
				Criticality  string
				Reaction     []struct {
					Manifestation []struct{ Coding []struct{ Code string } }
				}
				Period          *struct{ Start, End string }
				EffectivePeriod *struct{ Start, End string }
			}
			mustUnmarshal(t, body, &res)
			per[res.ResourceType]++
			for _, rx := range res.Reaction {
				s.allergyWithAnyReaction++
				for _, m := range rx.Manifestation {
					if m.Coding[0].Code == manifestAnaphylaxis.code && res.Criticality != "high" {
						s.anaphylaxisNotHigh++
					}
				}
			}
			for _, pd := range []*struct{ Start, End string }{res.Period, res.EffectivePeriod} {
				if pd == nil || pd.End == "" {
					continue
				}
				// Same-format strings in UTC compare chronologically.
				if pd.End < pd.Start {
					t.Errorf("%s: period ends %s before it starts %s", res.ResourceType, pd.End, pd.Start)
				}
				if pd.End > DefaultBase.Format(time.RFC3339) {
					t.Errorf("%s: period ends %s after the base date", res.ResourceType, pd.End)
				}
			}
		}
		for _, typ := range []string{"AllergyIntolerance", "Flag", "MedicationStatement", "Encounter"} {
			s.counts[typ] = append(s.counts[typ], per[typ])
			s.maxCount[typ] = max(s.maxCount[typ], per[typ])
		}
		band := 0
		switch {
		case age >= 65:
			band = 2
		case age >= 18:
			band = 1
		}
		s.medsByBand[band].patients++
		s.medsByBand[band].meds += per["MedicationStatement"]
	}

	within := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.4f, want within [%.4f, %.4f]", name, got, lo, hi)
		} else {
			t.Logf("%s = %.4f", name, got)
		}
	}
	within("share female", float64(s.female)/n, 0.47, 0.53)
	within("share with secret address", float64(s.secret)/n, 0.002, 0.009)
	within("share aged 80+", float64(s.over80)/n, 0.03, 0.07)
	within("share with an allergy", share(s.counts["AllergyIntolerance"]), 0.22, 0.34)
	within("share with critical information", share(s.counts["Flag"]), 0.03, 0.12)
	within("mean medications", mean(s.counts["MedicationStatement"]), 1.2, 3.5)
	within("mean hospital visits", mean(s.counts["Encounter"]), 0.5, 1.6)
	for typ, limit := range map[string]int{"AllergyIntolerance": 4, "Flag": 3, "MedicationStatement": 10, "Encounter": 6} {
		if s.maxCount[typ] > limit {
			t.Errorf("a patient has %d %s, want at most %d", s.maxCount[typ], typ, limit)
		}
		if s.maxCount[typ] < limit-1 {
			t.Errorf("no patient has more than %d %s; the spread is too narrow", s.maxCount[typ], typ)
		}
	}
	child := float64(s.medsByBand[0].meds) / float64(s.medsByBand[0].patients)
	old := float64(s.medsByBand[2].meds) / float64(s.medsByBand[2].patients)
	if old < 3*child {
		t.Errorf("patients 65+ use %.2f medicines on average, children %.2f; want the old to use far more", old, child)
	}
	if s.anaphylaxisNotHigh > 0 {
		t.Errorf("%d anaphylactic reactions on allergies not marked high criticality", s.anaphylaxisNotHigh)
	}
}

func share(counts []int) float64 {
	k := 0
	for _, c := range counts {
		if c > 0 {
			k++
		}
	}
	return float64(k) / float64(len(counts))
}

func mean(counts []int) float64 {
	sum := 0
	for _, c := range counts {
		sum += c
	}
	return float64(sum) / float64(len(counts))
}

func TestPools(t *testing.T) {
	gps := GeneralPractitioners()
	if len(gps) < 300 {
		t.Errorf("%d GPs, want a few hundred", len(gps))
	}
	seen := map[string]bool{}
	for _, p := range append(gps, HospitalDoctors()...) {
		if seen[p.HPR] {
			t.Errorf("HPR number %s used twice", p.HPR)
		}
		seen[p.HPR] = true
		if len(p.HPR) != 9 || p.Name == "" {
			t.Errorf("practitioner %+v", p)
		}
	}
	for _, h := range Hospitals() {
		if !domain.ValidOrgNumber(h.Number) || h.Number[0] != '3' {
			t.Errorf("hospital %+v: not a synthetic organisation number", h)
		}
	}
	if GeneralPractitioners()[0] != gps[0] {
		t.Error("the GP pool changed between calls")
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
}

func BenchmarkGenerate(b *testing.B) {
	resources := 0
	for b.Loop() {
		for _, rec := range Generate(1, 1000) {
			resources += 1 + len(rec.Resources)
		}
	}
	b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
}

func TestCourseDays(t *testing.T) {
	tests := map[string]int{
		"1 tablett 4 ganger daglig i 7 dager":                  7,
		"8 tabletter daglig i 5 dager":                         5,
		"1 tablett daglig i 21 dager, deretter 7 dagers pause": 0,
		"1–2 tabletter ved behov, maks 8 per døgn":             0,
		"dager": 0,
	}
	for in, want := range tests {
		if got := courseDays(in); got != want {
			t.Errorf("courseDays(%q) = %d, want %d", in, got, want)
		}
	}
}
