package seed

import (
	"math/rand/v2"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// The national model of critical information beyond allergies and Flag:
// Condition (types 3, 4, 5, 7, 10), Procedure (6) and Consent (8, 11),
// each as the server stores it after an HP reported it: the contained
// recorderRef names the HP, and sometimes KjSourceOfInformation where the
// information came from. All of it is synthetic.
//
// It draws from its own random stream, so that adding it left every other
// resource of a seed (and the ids they got) as they were.

type jCondition struct {
	ResourceType   string       `json:"resourceType"`
	ID             string       `json:"id"`
	Contained      []jRole      `json:"contained"`
	Extension      []jExtString `json:"extension,omitempty"`
	ClinicalStatus jConcept     `json:"clinicalStatus"`
	Category       []jConcept   `json:"category"`
	Code           jConcept     `json:"code"`
	Subject        jReference   `json:"subject"`
	OnsetDateTime  string       `json:"onsetDateTime,omitempty"`
	RecordedDate   string       `json:"recordedDate"`
	Recorder       jReference   `json:"recorder"`
}

type jProcedure struct {
	ResourceType      string       `json:"resourceType"`
	ID                string       `json:"id"`
	Contained         []jRole      `json:"contained"`
	Extension         []jExtString `json:"extension,omitempty"`
	Status            string       `json:"status"`
	Category          jConcept     `json:"category"`
	Code              jConcept     `json:"code"`
	Subject           jReference   `json:"subject"`
	PerformedDateTime string       `json:"performedDateTime"`
	Recorder          jReference   `json:"recorder"`
}

type jProvision struct {
	Type string     `json:"type"`
	Code []jConcept `json:"code"`
}

type jConsent struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Contained    []jRole      `json:"contained"`
	Extension    []jExtString `json:"extension,omitempty"`
	Status       string       `json:"status"`
	Scope        jConcept     `json:"scope"`
	Category     []jConcept   `json:"category"`
	Patient      jReference   `json:"patient"`
	DateTime     string       `json:"dateTime"`
	Performer    []jReference `json:"performer"`
	PolicyRule   jConcept     `json:"policyRule"`
	Provision    jProvision   `json:"provision"`
}

type jRole struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Practitioner jReference  `json:"practitioner"`
	Organization *jReference `json:"organization,omitempty"`
	Code         []jConcept  `json:"code"`
}

// jExtString is an extension with a string or dateTime value.
type jExtString struct {
	URL           string `json:"url"`
	ValueString   string `json:"valueString,omitempty"`
	ValueDateTime string `json:"valueDateTime,omitempty"`
}

type nationalType struct {
	code, display string
	resource      string
	weight        int
	texts         []string
}

var nationalTypes = []nationalType{
	{domain.IntubationProblem, "Intubasjonsproblem", "Condition", 6, []string{"Vanskelig luftvei, krevde videolaryngoskop", "Mislykket intubasjon, krevde fiberoptisk intubasjon"}},
	{domain.OtherAnesthesiaProblem, "Andre anestesiproblemer", "Condition", 5, []string{"Malign hypertermi i familien", "Forlenget effekt av suksametonium (butyrylkolinesterasemangel)"}},
	{domain.CriticalMedicalCondition, "Kritisk medisinsk tilstand", "Condition", 14, []string{"Binyrebarksvikt, trenger stressdose kortison", "Hemofili A", "Myasthenia gravis", "Medfødt langt QT-syndrom"}},
	{domain.TransplantsAndOtherForeignBodies, "Implantater og transplantater", "Condition", 16, []string{"Pacemaker", "Implantert defibrillator (ICD)", "Mekanisk hjerteklaff", "Nyretransplantert", "Cochleaimplantat"}},
	{domain.Infection, "Smitte", "Condition", 10, []string{"MRSA-bærer", "ESBL-bærer", "Kronisk hepatitt B", "VRE-bærer"}},
	{domain.OngoingTreatment, "Pågående behandling", "Procedure", 14, []string{"Hemodialyse tre ganger i uken", "Cellegiftbehandling", "Immunsuppresjon etter transplantasjon", "Antikoagulasjon med warfarin"}},
	{domain.LimitsOfLifeProlongingTreatment, "Begrensning av livsforlengende behandling", "Consent", 6, []string{"Ikke HLR", "Ikke respiratorbehandling", "Ikke intensivbehandling"}},
	{domain.TreatmentClarification, "Behandlingsavklaring", "Consent", 4, []string{"Ønsker ikke blodoverføring", "Ønsker ikke sykehusinnleggelse ved forverring"}},
}

var sourcesOfInformation = []string{"Pasienten selv", "Pårørende", "Epikrise fra sykehus", "Fastlegens journal"}

// criticalModel adds the national-model critical information of p: about
// 3% of people, more with age (with allergies and Flags, about 5% of
// people have critical information).
func (g *generator) criticalModel(p *person, out []any) []any {
	h := mix(uint64(p.resource)<<32 ^ uint64(len(p.id)))
	for _, c := range p.id {
		h = mix(h ^ uint64(c))
	}
	r := rand.New(rand.NewPCG(h, 0xc21c))
	if r.IntN(1000) >= 10+p.age*2/5 {
		return out
	}
	n := 1
	if r.IntN(6) == 0 {
		n = 2
	}
	var cum []int
	t := 0
	for _, c := range nationalTypes {
		t += c.weight
		cum = append(cum, t)
	}
	used := map[int]bool{}
	for range n {
		i := pickCum(r, cum)
		if used[i] {
			continue
		}
		used[i] = true
		c := nationalTypes[i]
		recorded := between(r, later(p.birth, g.base.AddDate(-recordedYears, 0, 0)), g.base)
		recorder := p.gp
		if r.IntN(3) != 0 {
			hs := municipalities[p.muni].hospitals
			ds := g.pools.doctorsByHosp[hs[r.IntN(len(hs))]]
			recorder = g.pools.doctors[ds[r.IntN(len(ds))]]
		}
		role := jRole{ResourceType: "PractitionerRole", ID: domain.RecorderRef,
			Practitioner: jReference{Identifier: &jIdentifier{System: domain.SystemHPR, Value: recorder.HPR}, Display: recorder.Name},
			Code:         []jConcept{{Coding: []jCoding{{System: domain.SystemHPCategory, Code: "LE", Display: "Lege"}}}}}
		if recorder.Organisation != "" {
			role.Organization = &jReference{Identifier: &jIdentifier{System: domain.SystemOrgNr, Value: recorder.Organisation}}
		}
		ref := jReference{Reference: "#" + domain.RecorderRef, Display: recorder.Name}
		var ext []jExtString
		if r.IntN(2) == 0 {
			ext = append(ext, jExtString{URL: domain.SourceOfInformationExtension, ValueString: pick(r, sourcesOfInformation)})
		}
		category := jConcept{Coding: []jCoding{{System: domain.SystemCriticalInfoTypeNational, Code: c.code, Display: c.display}}}
		text := jConcept{Text: pick(r, c.texts)}
		switch c.resource {
		case "Condition":
			out = append(out, &jCondition{
				ResourceType: "Condition", ID: p.nextID("co"), Contained: []jRole{role}, Extension: ext,
				ClinicalStatus: jConcept{Coding: []jCoding{{System: "http://terminology.hl7.org/CodeSystem/condition-clinical", Code: "active"}}},
				Category:       []jConcept{category}, Code: text, Subject: p.ref,
				OnsetDateTime: date(later(p.birth, recorded.AddDate(-r.IntN(5), 0, 0))), RecordedDate: dateTime(recorded), Recorder: ref,
			})
		case "Procedure":
			pr := &jProcedure{
				ResourceType: "Procedure", ID: p.nextID("pr"), Contained: []jRole{role}, Extension: ext, Status: "in-progress",
				Category: category, Code: text, Subject: p.ref, PerformedDateTime: date(recorded), Recorder: ref,
			}
			if r.IntN(3) == 0 {
				pr.Extension = append(pr.Extension, jExtString{URL: domain.ValidUntilExtension, ValueDateTime: date(recorded.AddDate(1+r.IntN(2), 0, 0))})
			}
			out = append(out, pr)
		case "Consent":
			scope, provision := "adr", "deny"
			if c.code == domain.TreatmentClarification {
				scope, provision = "treatment", "deny"
			}
			out = append(out, &jConsent{
				ResourceType: "Consent", ID: p.nextID("cs"), Contained: []jRole{role}, Extension: ext, Status: "active",
				Scope:    jConcept{Coding: []jCoding{{System: domain.SystemConsentScope, Code: scope}}},
				Category: []jConcept{category}, Patient: p.ref, DateTime: dateTime(recorded), Performer: []jReference{ref},
				PolicyRule: jConcept{Coding: []jCoding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "OPTOUT"}}},
				Provision:  jProvision{Type: provision, Code: []jConcept{text}},
			})
		}
	}
	return out
}
