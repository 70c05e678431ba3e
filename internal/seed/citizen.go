package seed

import (
	"strconv"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// The demo citizen is the patient the citizen persona of the built-in
// authorisation server logs in as (testdata/smart/personas.json, persona
// "citizen": fhir_id and pid). The persona's ids are fixed there, while the
// generator derives ids and person numbers from the seed, so this one
// record is written out by hand: `serve --demo-patients` stores it next to
// the generated patients, and the development source hospitals
// (internal/source.SeedPatients) hold documents for it. That makes it the
// one patient a black-box client (the conformance suite, a demo) can reach
// both as the citizen and as health personnel with documents to show.
//
// These constants are the one place the ids live; internal/source and the
// conformance suite use them.
const (
	// CitizenPatientID is the demo citizen's Patient id.
	CitizenPatientID = "pas-citizen-demo"
	// CitizenPersonNumber is the demo citizen's synthetic fødselsnummer
	// (Tenor range, month +80): a woman born 1983-09-02.
	CitizenPersonNumber = "02898321285"
	// CitizenGPHPR is the demo citizen's GP: the gp persona, the first GP
	// of the pool, so that persona may use UNNTAK for her.
	CitizenGPHPR = "990010000"
)

// The demo citizen's name, as the persona file spells it.
const (
	citizenGiven  = "Ingrid"
	citizenFamily = "Haugen"
)

// CitizenRecord returns the demo citizen's record, dated back from
// DefaultBase: an allergy and a critical condition (critical information),
// two medicines and two hospital visits at Oslo universitetssykehus, one
// story (primary adrenal insufficiency) so that a demo reads sensibly.
// The output is fixed: the same bytes every time.
func CitizenRecord() Record {
	base := DefaultBase
	p := thePools()
	gp := practitionerByHPR(p.gps, CitizenGPHPR)
	ous := p.hospitals[0] // Oslo universitetssykehus HF
	doctor := p.doctors[p.doctorsByHosp[0][0]]
	ref := jReference{Reference: "Patient/" + CitizenPatientID}
	// Resource ids extend the patient's, numbered as the generator does.
	id := func(kind string, n int) string { return CitizenPatientID + "-" + kind + strconv.Itoa(n) }
	oslo := municipalities[0]

	pat := &jPatient{
		ResourceType: "Patient",
		ID:           CitizenPatientID,
		Identifier:   []jIdentifier{{Use: "official", System: domain.SystemFNR, Value: CitizenPersonNumber}},
		Active:       true,
		Name:         []jName{{Use: "official", Text: citizenGiven + " " + citizenFamily, Family: citizenFamily, Given: []string{citizenGiven}}},
		Gender:       "female",
		BirthDate:    "1983-09-02",
		Address: []jAddress{{
			Use: "home", Type: "physical", Line: []string{"Thereses gate 14"},
			City: oslo.city, District: oslo.name, PostalCode: oslo.postalCode, Country: "NO",
		}},
		GeneralPractitioner: []jReference{{
			Type:       "Practitioner",
			Identifier: &jIdentifier{System: domain.SystemHPR, Value: gp.HPR},
			Display:    gp.Name,
		}},
	}

	at := func(years, months, days int, hour int) time.Time {
		return base.AddDate(-years, -months, -days).Add(time.Duration(hour) * time.Hour)
	}
	penicillin := allergens[0]
	hives := manifestMild[0]
	adrenal := criticalTypes[1] // kritisk-tilstand
	visit := func(n int, cls byte, code, display, dept string, start, end time.Time) *jEncounter {
		c := encounterClasses[cls]
		return &jEncounter{
			ResourceType: "Encounter",
			ID:           id("en", n),
			Status:       "finished",
			Class:        jCoding{System: systemActCode, Code: c.code, Display: c.display},
			Type:         []jConcept{{Text: c.kind}},
			ServiceType:  jConcept{Text: dept},
			Subject:      ref,
			Period:       jPeriod{Start: dateTime(start), End: dateTime(end)},
			ReasonCode: []jConcept{{
				Coding: []jCoding{{System: systemICD10, Code: code, Display: display}},
				Text:   display,
			}},
			ServiceProvider: jReference{
				Type:       "Organization",
				Identifier: &jIdentifier{System: domain.SystemOrgNr, Value: ous.Number},
				Display:    ous.Name,
			},
		}
	}
	crisis := at(2, 3, 11, 21)
	control := at(0, 4, 9, 10)
	hydrocortisoneStart := at(9, 2, 0, 0)
	cetirizinStart := at(0, 8, 0, 0)

	resources := []any{
		&jAllergyIntolerance{
			ResourceType:       "AllergyIntolerance",
			ID:                 id("al", 1),
			ClinicalStatus:     jConcept{Coding: []jCoding{{System: systemAllergyCS, Code: "active"}}},
			VerificationStatus: jConcept{Coding: []jCoding{{System: systemAllergyVS, Code: "confirmed"}}},
			Type:               "allergy",
			Category:           []string{penicillin.category},
			Criticality:        "low",
			Code:               jConcept{Coding: []jCoding{{System: penicillin.system, Code: penicillin.code, Display: penicillin.display}}, Text: penicillin.display},
			Patient:            ref,
			OnsetDateTime:      date(at(14, 0, 40, 0)),
			RecordedDate:       dateTime(at(6, 5, 3, 9)),
			Recorder:           practitionerRef(gp),
			Reaction: []jReaction{{Severity: "mild", Manifestation: []jConcept{{
				Coding: []jCoding{{System: hives.system, Code: hives.code, Display: hives.display}},
				Text:   hives.display,
			}}}},
		},
		&jFlag{
			ResourceType: "Flag",
			ID:           id("fl", 2),
			Status:       "active",
			Category:     []jConcept{{Coding: []jCoding{{System: domain.SystemCriticalInfoType, Code: adrenal.code, Display: adrenal.display}}}},
			Code:         jConcept{Text: adrenal.texts[0]},
			Subject:      ref,
			Period:       jPeriod{Start: dateTime(hydrocortisoneStart.Add(13 * time.Hour))},
			Author:       practitionerRef(doctor),
		},
		&jMedicationStatement{
			ResourceType: "MedicationStatement",
			ID:           id("ms", 3),
			Status:       "active",
			Category:     jConcept{Coding: []jCoding{{System: systemMedStmCat, Code: "community", Display: "Community"}}},
			MedicationCodeableConcept: jConcept{
				Coding: []jCoding{{System: systemATC, Code: "H02AB09", Display: "Hydrokortison"}},
				Text:   "Hydrokortison Orion tablett 10 mg",
			},
			Subject:           ref,
			EffectivePeriod:   jPeriod{Start: date(hydrocortisoneStart)},
			DateAsserted:      dateTime(hydrocortisoneStart.Add(11 * time.Hour)),
			InformationSource: practitionerRef(doctor),
			Dosage:            []jDosage{{Text: "2 tabletter om morgenen og 1 tablett kl. 14; dobbel dose ved feber"}},
		},
		&jMedicationStatement{
			ResourceType: "MedicationStatement",
			ID:           id("ms", 4),
			Status:       "completed",
			Category:     jConcept{Coding: []jCoding{{System: systemMedStmCat, Code: "community", Display: "Community"}}},
			MedicationCodeableConcept: jConcept{
				Coding: []jCoding{{System: systemATC, Code: "R06AE07", Display: "Cetirizin"}},
				Text:   "Zyrtec tablett 10 mg",
			},
			Subject:           ref,
			EffectivePeriod:   jPeriod{Start: date(cetirizinStart), End: date(cetirizinStart.AddDate(0, 3, 0))},
			DateAsserted:      dateTime(cetirizinStart.Add(10 * time.Hour)),
			InformationSource: practitionerRef(gp),
			Dosage:            []jDosage{{Text: "1 tablett daglig i pollensesongen"}},
		},
		visit(5, 'E', "E27.2", "Addisonkrise", "Akuttmottaket", crisis, crisis.Add(7*time.Hour+20*time.Minute)),
		visit(6, 'A', "E27.1", "Primær binyrebarksvikt", "Endokrinologisk poliklinikk", control, control.Add(40*time.Minute)),
	}

	rec := Record{Patient: mustJSON(pat)}
	for _, r := range resources {
		rec.Resources = append(rec.Resources, mustJSON(r))
	}
	return rec
}

func practitionerByHPR(list []Practitioner, hpr string) Practitioner {
	for _, pr := range list {
		if pr.HPR == hpr {
			return pr
		}
	}
	// The pools are fixed (poolSeed); a test holds CitizenGPHPR to them.
	panic("seed: no practitioner with HPR " + hpr + " in the pool")
}

func mustJSON(v any) []byte {
	b, err := fhir.JSON(v)
	if err != nil {
		// The structs are fixed and always encodable; reaching this is a
		// programming error, not bad input.
		panic(err)
	}
	return b
}
