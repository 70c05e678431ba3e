package profile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// The national critical-information model beyond allergies and Flag:
// Condition (types 3, 4, 5, 7, 10), Procedure (6) and Consent (8, 11).
// Which Condition profile applies follows from the type of critical
// information in category[0]; a Consent is critical information only with
// scope adr or treatment, and otherwise a privacy setting that
// internal/privacy checks (CriticalConsent is the one place that tells
// them apart).
const (
	ConditionAnesthesiaURL    = URLPrefix + "KjConditionComplicationsOfAnesthesia"
	ConditionCriticalURL      = URLPrefix + "KjConditionCriticalMedicalCondition"
	ConditionTransplantsURL   = URLPrefix + "KjConditionTransplantsAndOtherForeignBodies"
	ConditionInfectionURL     = URLPrefix + "KjConditionInfection"
	ProcedureURL              = URLPrefix + "KjProcedure"
	ConsentLimitsURL          = URLPrefix + "KjConsentLimitsOfLifeProlongingTreatment"
	ConsentClarificationURL   = URLPrefix + "KjConsentTreatmentClarification"
	ConditionClinicalSystem   = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	ConditionVerificationCode = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
)

// conditionProfiles maps each type of critical information a Condition
// may carry to its profile.
var conditionProfiles = map[string]string{
	domain.IntubationProblem:                ConditionAnesthesiaURL,
	domain.OtherAnesthesiaProblem:           ConditionAnesthesiaURL,
	domain.CriticalMedicalCondition:         ConditionCriticalURL,
	domain.TransplantsAndOtherForeignBodies: ConditionTransplantsURL,
	domain.Infection:                        ConditionInfectionURL,
}

// consentScopes maps each type of critical information a Consent may
// carry to the Consent.scope code it goes with and its profile.
var consentScopes = map[string]struct{ scope, url string }{
	domain.LimitsOfLifeProlongingTreatment: {"adr", ConsentLimitsURL},
	domain.TreatmentClarification:          {"treatment", ConsentClarificationURL},
}

// Profiles lists every kjernejournal profile a resource of typ may
// conform to, for the CapabilityStatement's supportedProfile.
func Profiles(typ string) []string {
	switch typ {
	case "Condition":
		return []string{ConditionAnesthesiaURL, ConditionCriticalURL, ConditionTransplantsURL, ConditionInfectionURL}
	case "Consent":
		return []string{ConsentLimitsURL, ConsentClarificationURL}
	}
	if u, ok := profileURL[typ]; ok {
		return []string{u}
	}
	return nil
}

// URLOf returns the profile body (a resource of typ) must conform to, and
// whether it has one. For Condition and Consent it depends on the body:
// a Condition whose type of critical information is missing or unknown
// still gets a profile (the first Condition profile), so that Check
// reports what is wrong; a Consent that is no critical information (a
// privacy setting) has none here.
func URLOf(typ string, body []byte) (string, bool) {
	switch typ {
	case "Condition":
		if u, ok := conditionProfiles[criticalInfoTypeOf(body)]; ok {
			return u, true
		}
		return ConditionCriticalURL, true
	case "Consent":
		if !CriticalConsent(body) {
			return "", false
		}
		if s, ok := consentScopes[criticalInfoTypeOf(body)]; ok {
			return s.url, true
		}
		return ConsentLimitsURL, true
	}
	u, ok := profileURL[typ]
	return u, ok
}

// CriticalConsent reports whether a Consent (FHIR JSON) is critical
// information (scope adr or treatment: limits of life-prolonging
// treatment, treatment clarifications) rather than a privacy setting.
// Every reader of Consents asks here, so that the two kinds never mix: a
// critical Consent is never parsed as a privacy setting, and a privacy
// setting is never served as critical information.
func CriticalConsent(body []byte) bool {
	var r struct {
		ResourceType string  `json:"resourceType"`
		Scope        concept `json:"scope"`
	}
	if json.Unmarshal(body, &r) != nil || r.ResourceType != "Consent" {
		return false
	}
	return slices.ContainsFunc(r.Scope.Coding, func(c coding) bool {
		return c.System == domain.SystemConsentScope && (c.Code == "adr" || c.Code == "treatment")
	})
}

// CriticalInfoType returns the type of critical information a resource
// (FHIR JSON) carries in category[0], "" if none.
func CriticalInfoType(body []byte) string { return criticalInfoTypeOf(body) }

func criticalInfoTypeOf(body []byte) string {
	var r struct {
		Category concepts `json:"category"`
	}
	if json.Unmarshal(body, &r) != nil || len(r.Category.list) == 0 {
		return ""
	}
	for _, c := range r.Category.list[0].Coding {
		if c.System == domain.SystemCriticalInfoTypeNational {
			return c.Code
		}
	}
	return ""
}

// concepts is a list of CodeableConcepts that also reads the single one
// of Procedure.category (0..1 in R4), as a list of one.
type concepts struct {
	list   []concept
	single bool
}

func (c *concepts) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		c.single = true
		c.list = make([]concept, 1)
		return json.Unmarshal(b, &c.list[0])
	}
	return json.Unmarshal(b, &c.list)
}

// at names category i: Procedure.category, or Condition.category[i].
func (c concepts) at(typ string, i int) string {
	if c.single {
		return typ + ".category"
	}
	return fmt.Sprintf("%s.category[%d]", typ, i)
}

type extension struct {
	URL                  string   `json:"url"`
	ValueString          *string  `json:"valueString"`
	ValueCodeableConcept *concept `json:"valueCodeableConcept"`
	ValueDateTime        *string  `json:"valueDateTime"`
}

type containedRole struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Practitioner *struct {
		Identifier *struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	} `json:"practitioner"`
	Organization *struct {
		Identifier *struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	} `json:"organization"`
	Code []concept `json:"code"`
}

// critical is what the Condition, Procedure and Consent profiles read.
type critical struct {
	ResourceType       string          `json:"resourceType"`
	Meta               *meta           `json:"meta"`
	Extension          []extension     `json:"extension"`
	Contained          []containedRole `json:"contained"`
	Status             *string         `json:"status"`
	ClinicalStatus     *concept        `json:"clinicalStatus"`
	VerificationStatus *concept        `json:"verificationStatus"`
	Scope              *concept        `json:"scope"`
	Category           concepts        `json:"category"`
	Code               *concept        `json:"code"`
	Subject            *reference      `json:"subject"`
	Patient            *reference      `json:"patient"`
	Recorder           *reference      `json:"recorder"`
	Performer          []reference     `json:"performer"`
	DateTime           *string         `json:"dateTime"`
	PerformedDateTime  *string         `json:"performedDateTime"`
	PerformedPeriod    *struct {
		Start *string `json:"start"`
	} `json:"performedPeriod"`
	Provision *struct {
		Type *string   `json:"type"`
		Code []concept `json:"code"`
	} `json:"provision"`
}

// checkCritical checks the rules of the profile url; every message starts
// with the rule's key, so that a 422 names the rule that was broken.
func (c *checker) checkCritical(typ, url string, body []byte) {
	var r critical
	if !c.decode(typ, body, &r) {
		return
	}
	c.resourceType(typ, r.ResourceType)
	c.metaURL(typ, url, r.Meta)
	switch typ {
	case "Condition":
		c.condition(&r)
	case "Procedure":
		c.procedure(&r)
	case "Consent":
		c.consent(&r)
	}
	c.sourceOfInformation(typ, r.Extension)
	c.recorderRef(typ, &r)
}

// rule adds an issue whose message names the rule.
func (c *checker) rule(key, path, format string, args ...any) {
	c.add(path, key+": "+format, args...)
}

func (c *checker) metaURL(typ, want string, m *meta) {
	if m == nil {
		return
	}
	for i, p := range m.Profile {
		url, _, _ := strings.Cut(p, "|")
		if strings.HasPrefix(url, URLPrefix) && url != want {
			c.rule("kj-profile-1", fmt.Sprintf("%s.meta.profile[%d]", typ, i),
				"declares the kjernejournal profile %s, but this %s must conform to %s (decided by its type of critical information)", url, typ, want)
		}
	}
}

// infoType checks that category[0], and no other category, carries one
// code of the national types allowed for typ.
func (c *checker) infoType(key, typ string, all concepts, allowed []string) string {
	cats := all.list
	if len(cats) == 0 {
		c.rule(key, typ+".category", "is required: category[0] carries the type of critical information from %s (%s)",
			domain.SystemCriticalInfoTypeNational, strings.Join(allowed, " | "))
		return ""
	}
	found := ""
	for i, cat := range cats {
		n := 0
		for j, cd := range cat.Coding {
			if cd.System != domain.SystemCriticalInfoTypeNational {
				continue
			}
			n++
			if !slices.Contains(allowed, cd.Code) {
				c.rule(key, fmt.Sprintf("%s.coding[%d].code", all.at(typ, i), j), "%q is not a type of critical information a %s carries (%s)",
					cd.Code, typ, strings.Join(allowed, " | "))
			} else if i == 0 {
				found = cd.Code
			}
		}
		p := all.at(typ, i) + ".coding"
		switch {
		case i == 0 && n == 0:
			c.rule(key, p, "needs exactly one coding from %s (%s)", domain.SystemCriticalInfoTypeNational, strings.Join(allowed, " | "))
		case i == 0 && n > 1:
			c.rule(key, p, "has %d codings from %s; exactly one is allowed", n, domain.SystemCriticalInfoTypeNational)
		case i > 0 && n > 0:
			c.rule(key, p, "only category[0] may carry the type of critical information")
		}
	}
	return found
}

func (c *checker) what(key, path string, cc *concept, what string) {
	if cc == nil {
		c.rule(key, path, "is required: %s, as text or a coding", what)
	} else if strings.TrimSpace(cc.Text) == "" && !slices.ContainsFunc(cc.Coding, func(cd coding) bool { return cd.Code != "" }) {
		c.rule(key, path, "needs a text or a coding with a code")
	}
}

func (c *checker) patientRef(key, path string, r *reference) {
	if r == nil || r.Reference == "" {
		c.rule(key, path, "is required: a reference to the patient")
	} else if !patientRefRE.MatchString(r.Reference) {
		c.rule(key, path, "must reference a Patient, is %q", r.Reference)
	}
}

var conditionTypes = []string{domain.IntubationProblem, domain.OtherAnesthesiaProblem, domain.CriticalMedicalCondition,
	domain.TransplantsAndOtherForeignBodies, domain.Infection}

func (c *checker) condition(r *critical) {
	const t = "Condition"
	c.infoType("kj-condition-1", t, r.Category, conditionTypes)
	c.what("kj-condition-2", t+".code", r.Code, "the critical information")
	c.patientRef("kj-condition-3", t+".subject", r.Subject)
	// R4 con-3 and con-5: clinicalStatus unless entered in error.
	enteredInError := r.VerificationStatus != nil && slices.Contains(r.VerificationStatus.Coding, coding{ConditionVerificationCode, "entered-in-error"})
	switch {
	case r.ClinicalStatus == nil && !enteredInError:
		c.rule("kj-condition-4", t+".clinicalStatus", "is required (active | recurrence | relapse | inactive | remission | resolved) unless verificationStatus is entered-in-error")
	case r.ClinicalStatus != nil && enteredInError:
		c.rule("kj-condition-4", t+".clinicalStatus", "must be absent when verificationStatus is entered-in-error (FHIR R4 con-5)")
	case r.ClinicalStatus != nil:
		c.statusConcept(t+".clinicalStatus", r.ClinicalStatus, ConditionClinicalSystem,
			"active", "recurrence", "relapse", "inactive", "remission", "resolved")
	}
}

// status checks a code element that must hold one of allowed ("must be
// a, b or c, is …").
func (c *checker) status(key, path string, status *string, allowed ...string) {
	if status != nil && oneOf(*status, allowed...) {
		return
	}
	got := "absent"
	if status != nil {
		got = fmt.Sprintf("%q", *status)
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	c.rule(key, path, "must be %s, is %s", list, got)
}

func (c *checker) procedure(r *critical) {
	const t = "Procedure"
	c.status("kj-procedure-1", t+".status", r.Status, "in-progress", "completed", "entered-in-error")
	c.infoType("kj-procedure-2", t, r.Category, []string{domain.OngoingTreatment})
	c.what("kj-procedure-3", t+".code", r.Code, "the ongoing treatment")
	c.patientRef("kj-procedure-4", t+".subject", r.Subject)
	var start string
	switch {
	case r.PerformedDateTime != nil:
		start = *r.PerformedDateTime
	case r.PerformedPeriod != nil && r.PerformedPeriod.Start != nil:
		start = *r.PerformedPeriod.Start
	}
	n := 0
	for i, e := range r.Extension {
		if e.URL != domain.ValidUntilExtension {
			continue
		}
		n++
		p := fmt.Sprintf("%s.extension[%d].valueDateTime", t, i)
		switch {
		case e.ValueDateTime == nil:
			c.rule("kj-procedure-5", p, "the valid-until extension (%s) carries a valueDateTime", domain.ValidUntilExtension)
		case !dateTimeRE.MatchString(*e.ValueDateTime):
			c.rule("kj-procedure-5", p, "%q is not a FHIR dateTime", *e.ValueDateTime)
		case start != "" && dateTimeRE.MatchString(start) && upperBound(*e.ValueDateTime).Before(lowerBound(start)):
			c.rule("kj-procedure-5", p, "valid until %s is before the treatment started (%s)", *e.ValueDateTime, start)
		}
	}
	if n > 1 {
		c.rule("kj-procedure-5", t+".extension", "has %d valid-until extensions; at most one is allowed", n)
	}
}

func (c *checker) consent(r *critical) {
	const t = "Consent"
	c.status("kj-consent-1", t+".status", r.Status, "active", "inactive", "entered-in-error")
	kind := c.infoType("kj-consent-2", t, r.Category, []string{domain.LimitsOfLifeProlongingTreatment, domain.TreatmentClarification})
	if s, ok := consentScopes[kind]; ok && (r.Scope == nil || !slices.Contains(r.Scope.Coding, coding{domain.SystemConsentScope, s.scope})) {
		c.rule("kj-consent-3", t+".scope", "%s goes with scope %s#%s", kind, domain.SystemConsentScope, s.scope)
	}
	c.patientRef("kj-consent-4", t+".patient", r.Patient)
	if r.DateTime == nil || !dateTimeRE.MatchString(*r.DateTime) {
		c.rule("kj-consent-5", t+".dateTime", "is required: when the decision was made, as a FHIR dateTime")
	}
	if r.Provision == nil || len(r.Provision.Code) == 0 {
		c.rule("kj-consent-6", t+".provision.code", "is required: what the decision is about (e.g. Ikke HLR), as text or a coding")
		return
	}
	for i := range r.Provision.Code {
		c.what("kj-consent-6", fmt.Sprintf("%s.provision.code[%d]", t, i), &r.Provision.Code[i], "what the decision is about")
	}
}

// sourceOfInformation checks KjSourceOfInformation: optional, once, with
// a text or a coded source.
func (c *checker) sourceOfInformation(typ string, exts []extension) {
	n := 0
	for i, e := range exts {
		if e.URL != domain.SourceOfInformationExtension {
			continue
		}
		n++
		okText := e.ValueString != nil && strings.TrimSpace(*e.ValueString) != ""
		okCode := e.ValueCodeableConcept != nil && (strings.TrimSpace(e.ValueCodeableConcept.Text) != "" ||
			slices.ContainsFunc(e.ValueCodeableConcept.Coding, func(cd coding) bool { return cd.Code != "" }))
		if !okText && !okCode {
			c.rule("kj-source-1", fmt.Sprintf("%s.extension[%d]", typ, i), "KjSourceOfInformation carries a valueString or a valueCodeableConcept with a text or code")
		}
	}
	if n > 1 {
		c.rule("kj-source-1", typ+".extension", "has %d KjSourceOfInformation extensions; at most one is allowed", n)
	}
}

// recorderRef checks the contained PractitionerRole the server sets from
// the token: the HP by HPR number, the organisation by organisation
// number, the HP's category from CategoriesOfHealthProfessionals.
func (c *checker) recorderRef(typ string, r *critical) {
	ref := "#" + domain.RecorderRef
	var who *reference
	path := typ + ".recorder"
	switch typ {
	case "Consent":
		path = typ + ".performer"
		for i := range r.Performer {
			if r.Performer[i].Reference == ref {
				who = &r.Performer[i]
			}
		}
	default:
		who = r.Recorder
	}
	i := slices.IndexFunc(r.Contained, func(cr containedRole) bool { return cr.ID == domain.RecorderRef })
	if i < 0 {
		if who != nil && who.Reference == ref {
			c.rule("kj-recorder-1", path, "refers to %s, but no contained PractitionerRole has the id %s", ref, domain.RecorderRef)
		}
		return
	}
	cr := r.Contained[i]
	p := fmt.Sprintf("%s.contained[%d]", typ, i)
	if cr.ResourceType != "PractitionerRole" {
		c.rule("kj-recorder-1", p, "%s is a PractitionerRole, is a %s", domain.RecorderRef, cr.ResourceType)
		return
	}
	if who == nil || who.Reference != ref {
		c.rule("kj-recorder-1", path, "must refer to the contained %s", ref)
	}
	if cr.Practitioner == nil || cr.Practitioner.Identifier == nil || cr.Practitioner.Identifier.System != domain.SystemHPR || cr.Practitioner.Identifier.Value == "" {
		c.rule("kj-recorder-2", p+".practitioner.identifier", "names the health personnel by HPR number (%s)", domain.SystemHPR)
	}
	if o := cr.Organization; o != nil && (o.Identifier == nil || o.Identifier.System != domain.SystemOrgNr || o.Identifier.Value == "") {
		c.rule("kj-recorder-3", p+".organization.identifier", "names the organisation by organisation number (%s)", domain.SystemOrgNr)
	}
	for j, cc := range cr.Code {
		if !slices.ContainsFunc(cc.Coding, func(cd coding) bool { return cd.System == domain.SystemHPCategory && cd.Code != "" }) {
			c.rule("kj-recorder-4", fmt.Sprintf("%s.code[%d]", p, j), "the role is a code of CategoriesOfHealthProfessionals (%s)", domain.SystemHPCategory)
		}
	}
}
