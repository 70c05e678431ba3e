// Package profile enforces kjernejournal's profiles of the critical
// information that health personnel report from their EHR:
// KjAllergyIntolerance (profiles/allergyintolerance-kj.json) and KjFlag
// (profiles/flag-kj.json). It also hands out the embedded conformance
// resources (StructureDefinition, CodeSystem, ValueSet) by id so that the
// REST layer can serve reads of them.
//
// The package is pure: Check takes a resource's JSON and returns every
// violated rule, each naming the element in a FHIRPath-like way
// (Flag.category[0].coding) for OperationOutcome.issue.expression. Turning
// the issues into a 422 belongs to the REST layer.
package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Canonical URLs and code systems; profiles/*.json define the same.
const (
	// URLPrefix starts the url of every kjernejournal StructureDefinition.
	URLPrefix = domain.Base + "StructureDefinition/"

	AllergyIntoleranceURL = URLPrefix + "KjAllergyIntolerance"
	FlagURL               = URLPrefix + "KjFlag"

	CriticalInfoTypeSystem = domain.SystemCriticalInfoType
	// SubstanceListSystem is kjernejournal's system for the national
	// substance list: the active substances (virkestoff) of FEST, the
	// Norwegian Medicines Agency's register, with the FEST id as code.
	SubstanceListSystem = domain.Base + "CodeSystem/fest-virkestoff"
	ATCSystem           = "http://www.whocc.no/atc"
	SNOMEDSystem        = "http://snomed.info/sct"

	AllergyClinicalSystem     = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	AllergyVerificationSystem = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
)

// CriticalInfoTypes are the codes of the kritisk-info-type CodeSystem.
var CriticalInfoTypes = []string{
	"anestesikomplikasjon",
	"kritisk-tilstand",
	"pagaende-behandling",
	"implantat",
	"endret-behandlingsrutine",
	"smitte",
}

var profileURL = map[string]string{
	"AllergyIntolerance": AllergyIntoleranceURL,
	"Flag":               FlagURL,
	"Procedure":          ProcedureURL,
}

// URL returns the kjernejournal profile of a resource type, and whether
// the type has one. Condition and Consent have none here: their profile
// follows from the resource (URLOf).
func URL(resourceType string) (string, bool) {
	u, ok := profileURL[resourceType]
	return u, ok
}

// Issue is one violated rule. Path names the element in a FHIRPath-like way
// (Flag.category[0].coding) so that the REST layer can put it into
// OperationOutcome.issue.expression.
type Issue struct {
	Path    string
	Message string
}

func (i Issue) String() string { return i.Path + ": " + i.Message }

var (
	// ATC codes at any level: A, A01, A01A, A01AA, A01AA01.
	atcRE = regexp.MustCompile(`^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$`)
	// SNOMED CT identifiers: 6 to 18 digits, no leading zero.
	snomedRE = regexp.MustCompile(`^[1-9][0-9]{5,17}$`)
	// FEST ids are identifiers of the form ID_<uuid>; accept any token
	// without white space.
	tokenRE = regexp.MustCompile(`^\S+$`)
	// FHIR dateTime: a year, year-month, date, or date and time with zone.
	dateTimeRE = regexp.MustCompile(`^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	// A reference to a Patient: relative, absolute, or a transaction-local
	// urn:uuid / urn:oid that the transaction resolves.
	patientRefRE = regexp.MustCompile(`^((https?://\S+/)?Patient/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?|urn:uuid:[0-9a-fA-F-]{36}|urn:oid:[0-2](\.(0|[1-9][0-9]*))+|#\S+)$`)
)

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

func (c *concept) hasCode(system string) bool {
	if c == nil {
		return false
	}
	return slices.ContainsFunc(c.Coding, func(cd coding) bool { return cd.System == system && cd.Code != "" })
}

type reference struct {
	Reference string `json:"reference"`
}

type meta struct {
	Profile []string `json:"profile"`
}

type allergy struct {
	ResourceType       string     `json:"resourceType"`
	Meta               *meta      `json:"meta"`
	ClinicalStatus     *concept   `json:"clinicalStatus"`
	VerificationStatus *concept   `json:"verificationStatus"`
	Type               *string    `json:"type"`
	Category           []string   `json:"category"`
	Criticality        *string    `json:"criticality"`
	Code               *concept   `json:"code"`
	Patient            *reference `json:"patient"`
	Reaction           []struct {
		Manifestation []concept `json:"manifestation"`
		Severity      *string   `json:"severity"`
	} `json:"reaction"`
}

type flag struct {
	ResourceType string     `json:"resourceType"`
	Meta         *meta      `json:"meta"`
	Status       *string    `json:"status"`
	Category     []concept  `json:"category"`
	Code         *concept   `json:"code"`
	Subject      *reference `json:"subject"`
	Period       *struct {
		Start *string `json:"start"`
		End   *string `json:"end"`
	} `json:"period"`
}

// Check returns every rule of the profile of resourceType that body
// violates, in element order; nil means body conforms. body is the
// resource's FHIR JSON. A type without a kjernejournal profile (see URL)
// has nothing to check and gets nil.
//
// meta.profile may be absent (the server adds the type's profile with
// WithProfile) or name the type's profile, possibly with a |version;
// naming any other kjernejournal profile is a violation. Profiles of other
// publishers are left alone.
func Check(resourceType string, body []byte) []Issue {
	var c checker
	switch resourceType {
	case "AllergyIntolerance":
		var r allergy
		if !c.decode(resourceType, body, &r) {
			return c.issues
		}
		c.resourceType(resourceType, r.ResourceType)
		c.meta(resourceType, r.Meta)
		c.allergy(&r)
	case "Flag":
		var r flag
		if !c.decode(resourceType, body, &r) {
			return c.issues
		}
		c.resourceType(resourceType, r.ResourceType)
		c.meta(resourceType, r.Meta)
		c.flag(&r)
	case "Condition", "Procedure", "Consent":
		url, ok := URLOf(resourceType, body)
		if !ok {
			return nil
		}
		c.checkCritical(resourceType, url, body)
	default:
		return nil
	}
	return c.issues
}

type checker struct{ issues []Issue }

func (c *checker) add(path, format string, args ...any) {
	c.issues = append(c.issues, Issue{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) decode(typ string, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		c.add(typ, "not a valid FHIR JSON %s: %v", typ, err)
		return false
	}
	return true
}

func (c *checker) resourceType(want, got string) {
	if got != want {
		c.add(want+".resourceType", "must be %q, is %q", want, got)
	}
}

func (c *checker) meta(typ string, m *meta) {
	if m == nil {
		return
	}
	want := profileURL[typ]
	for i, p := range m.Profile {
		url, _, _ := strings.Cut(p, "|")
		if strings.HasPrefix(url, URLPrefix) && url != want {
			c.add(fmt.Sprintf("%s.meta.profile[%d]", typ, i),
				"declares the kjernejournal profile %s, but a %s must conform to %s", url, typ, want)
		}
	}
}

func oneOf(v string, allowed ...string) bool { return slices.Contains(allowed, v) }

func (c *checker) allergy(r *allergy) {
	const t = "AllergyIntolerance"

	// verificationStatus, and clinicalStatus as R4 ait-1/ait-2 demand.
	enteredInError := false
	if r.VerificationStatus == nil {
		c.add(t+".verificationStatus", "is required (unconfirmed | confirmed | refuted | entered-in-error)")
	} else {
		c.statusConcept(t+".verificationStatus", r.VerificationStatus, AllergyVerificationSystem,
			"unconfirmed", "confirmed", "refuted", "entered-in-error")
		enteredInError = slices.Contains(r.VerificationStatus.Coding, coding{AllergyVerificationSystem, "entered-in-error"})
	}
	switch {
	case r.ClinicalStatus == nil && !enteredInError:
		c.add(t+".clinicalStatus", "is required (active | inactive | resolved) unless verificationStatus is entered-in-error")
	case r.ClinicalStatus != nil && enteredInError:
		c.add(t+".clinicalStatus", "must be absent when verificationStatus is entered-in-error (FHIR R4 ait-2)")
	case r.ClinicalStatus != nil:
		c.statusConcept(t+".clinicalStatus", r.ClinicalStatus, AllergyClinicalSystem, "active", "inactive", "resolved")
	}

	if r.Type != nil && !oneOf(*r.Type, "allergy", "intolerance") {
		c.add(t+".type", "must be allergy or intolerance, is %q", *r.Type)
	}
	foodOrEnvironment := false
	for i, cat := range r.Category {
		if !oneOf(cat, "food", "medication", "environment", "biologic") {
			c.add(fmt.Sprintf("%s.category[%d]", t, i), "must be food, medication, environment or biologic, is %q", cat)
		}
		foodOrEnvironment = foodOrEnvironment || cat == "food" || cat == "environment"
	}

	if r.Criticality == nil {
		c.add(t+".criticality", "is required (low | high | unable-to-assess)")
	} else if !oneOf(*r.Criticality, "low", "high", "unable-to-assess") {
		c.add(t+".criticality", "must be low, high or unable-to-assess, is %q", *r.Criticality)
	}

	c.substance(t, r.Code, foodOrEnvironment)

	if r.Patient == nil || r.Patient.Reference == "" {
		c.add(t+".patient", "is required: a reference to the patient")
	} else if !patientRefRE.MatchString(r.Patient.Reference) {
		c.add(t+".patient", "must reference a Patient, is %q", r.Patient.Reference)
	}

	for i, rx := range r.Reaction {
		p := fmt.Sprintf("%s.reaction[%d]", t, i)
		if len(rx.Manifestation) == 0 {
			c.add(p+".manifestation", "each reaction needs at least one manifestation coded in SNOMED CT")
		} else if !slices.ContainsFunc(rx.Manifestation, func(m concept) bool { return m.hasCode(SNOMEDSystem) }) {
			c.add(p+".manifestation", "at least one manifestation must be coded in SNOMED CT (%s)", SNOMEDSystem)
		}
		for j, m := range rx.Manifestation {
			for k, cd := range m.Coding {
				if cd.System == SNOMEDSystem && cd.Code != "" && !snomedRE.MatchString(cd.Code) {
					c.add(fmt.Sprintf("%s.manifestation[%d].coding[%d].code", p, j, k), "%q is not a SNOMED CT identifier", cd.Code)
				}
			}
		}
		if rx.Severity != nil && !oneOf(*rx.Severity, "mild", "moderate", "severe") {
			c.add(p+".severity", "must be mild, moderate or severe, is %q", *rx.Severity)
		}
	}
}

// statusConcept checks a status CodeableConcept bound (required) to one code
// system.
func (c *checker) statusConcept(path string, cc *concept, system string, codes ...string) {
	found := false
	for i, cd := range cc.Coding {
		if cd.System != system {
			continue
		}
		found = true
		if !slices.Contains(codes, cd.Code) {
			c.add(fmt.Sprintf("%s.coding[%d].code", path, i), "must be one of %s, is %q", strings.Join(codes, ", "), cd.Code)
		}
	}
	if !found {
		c.add(path+".coding", "needs a coding from %s (%s)", system, strings.Join(codes, " | "))
	}
}

// substance checks AllergyIntolerance.code against the ValueSet
// allergy-substance.
func (c *checker) substance(t string, code *concept, foodOrEnvironment bool) {
	if code == nil {
		c.add(t+".code", "is required: the substance, coded with ATC or the national substance list")
		return
	}
	// A malformed code of an accepted system gets its own issue and still
	// counts as the substance coding, so that one mistake is one issue.
	ok := false
	for i, cd := range code.Coding {
		p := fmt.Sprintf("%s.code.coding[%d].code", t, i)
		switch cd.System {
		case ATCSystem:
			ok = true
			if !atcRE.MatchString(cd.Code) {
				c.add(p, "%q is not an ATC code", cd.Code)
			}
		case SubstanceListSystem:
			ok = true
			if !tokenRE.MatchString(cd.Code) {
				c.add(p, "%q is not a code of the national substance list", cd.Code)
			}
		case SNOMEDSystem:
			ok = ok || foodOrEnvironment
			if !snomedRE.MatchString(cd.Code) {
				c.add(p, "%q is not a SNOMED CT identifier", cd.Code)
			}
		}
	}
	if !ok {
		c.add(t+".code.coding", "needs a coding with ATC (%s) or the national substance list (%s); SNOMED CT (%s) only for category food or environment",
			ATCSystem, SubstanceListSystem, SNOMEDSystem)
	}
}

func (c *checker) flag(r *flag) {
	const t = "Flag"

	if r.Status == nil {
		c.add(t+".status", "is required (active | inactive | entered-in-error)")
	} else if !oneOf(*r.Status, "active", "inactive", "entered-in-error") {
		c.add(t+".status", "must be active, inactive or entered-in-error, is %q", *r.Status)
	}

	if len(r.Category) == 0 {
		c.add(t+".category", "is required: the type of critical information from %s", CriticalInfoTypeSystem)
	}
	for i, cat := range r.Category {
		n := 0
		for j, cd := range cat.Coding {
			if cd.System != CriticalInfoTypeSystem {
				continue
			}
			n++
			if !slices.Contains(CriticalInfoTypes, cd.Code) {
				c.add(fmt.Sprintf("%s.category[%d].coding[%d].code", t, i, j), "%q is not a code of %s (%s)",
					cd.Code, CriticalInfoTypeSystem, strings.Join(CriticalInfoTypes, " | "))
			}
		}
		p := fmt.Sprintf("%s.category[%d].coding", t, i)
		switch {
		case i == 0 && n == 0:
			c.add(p, "needs exactly one coding from %s", CriticalInfoTypeSystem)
		case i == 0 && n > 1:
			c.add(p, "has %d codings from %s; exactly one is allowed", n, CriticalInfoTypeSystem)
		case i > 0 && n > 0:
			c.add(p, "only category[0] may carry a coding from %s", CriticalInfoTypeSystem)
		}
	}

	if r.Code == nil {
		c.add(t+".code", "is required: the critical information as text or a coding")
	} else if strings.TrimSpace(r.Code.Text) == "" && !slices.ContainsFunc(r.Code.Coding, func(cd coding) bool { return cd.Code != "" }) {
		c.add(t+".code", "needs a text or a coding with a code")
	}

	if r.Subject == nil || r.Subject.Reference == "" {
		c.add(t+".subject", "is required: a reference to the patient")
	} else if !patientRefRE.MatchString(r.Subject.Reference) {
		c.add(t+".subject", "must reference a Patient, is %q", r.Subject.Reference)
	}

	if r.Period == nil || r.Period.Start == nil || *r.Period.Start == "" {
		c.add(t+".period.start", "is required: from when the critical information applies")
	} else if !dateTimeRE.MatchString(*r.Period.Start) {
		c.add(t+".period.start", "%q is not a FHIR dateTime", *r.Period.Start)
	}
	if r.Period != nil && r.Period.End != nil {
		switch {
		case !dateTimeRE.MatchString(*r.Period.End):
			c.add(t+".period.end", "%q is not a FHIR dateTime", *r.Period.End)
		case r.Period.Start != nil && dateTimeRE.MatchString(*r.Period.Start):
			if start, end := lowerBound(*r.Period.Start), upperBound(*r.Period.End); end.Before(start) {
				c.add(t+".period.end", "%s is before period.start %s", *r.Period.End, *r.Period.Start)
			}
		}
	}
}

// lowerBound and upperBound give the first and last instant a FHIR
// dateTime (already matched by dateTimeRE) can stand for; a date without
// time counts in UTC.
func lowerBound(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly, "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func upperBound(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	t := lowerBound(s)
	switch len(s) {
	case 4:
		t = t.AddDate(1, 0, 0)
	case 7:
		t = t.AddDate(0, 1, 0)
	default:
		t = t.AddDate(0, 0, 1)
	}
	return t.Add(-time.Nanosecond)
}

// Declared reports whether body's meta.profile names the kjernejournal
// profile of its own resourceType (with or without a |version). A body
// that is not JSON, or whose type has no profile, declares none.
func Declared(body []byte) bool {
	var r struct {
		ResourceType string `json:"resourceType"`
		Meta         *meta  `json:"meta"`
	}
	if json.Unmarshal(body, &r) != nil || r.Meta == nil {
		return false
	}
	want, ok := URLOf(r.ResourceType, body)
	if !ok {
		return false
	}
	return slices.ContainsFunc(r.Meta.Profile, func(p string) bool {
		url, _, _ := strings.Cut(p, "|")
		return url == want
	})
}

// WithProfile returns body with meta.profile set to the profile of typ:
// the profile first, then the profiles of other publishers body already
// named; other kjernejournal profiles and repeats are dropped. The other
// members of the resource and of meta keep their values and order.
func WithProfile(body []byte, typ string) ([]byte, error) {
	want, ok := URLOf(typ, body)
	if !ok {
		return nil, fmt.Errorf("profile: %s has no kjernejournal profile", typ)
	}
	top, err := parseObject(body)
	if err != nil {
		return nil, fmt.Errorf("profile: %s: %w", typ, err)
	}
	var m object
	if raw, ok := top.get("meta"); ok {
		if m, err = parseObject(raw); err != nil {
			return nil, fmt.Errorf("profile: %s.meta: %w", typ, err)
		}
	}
	var old []string
	if raw, ok := m.get("profile"); ok {
		if err := json.Unmarshal(raw, &old); err != nil {
			return nil, fmt.Errorf("profile: %s.meta.profile: %w", typ, err)
		}
	}
	raw, err := json.Marshal(declared(want, old))
	if err != nil {
		return nil, err
	}
	m = m.set("profile", raw)
	top = top.set("meta", m.marshal())
	return top.marshal(), nil
}

// Declare sets meta.profile of a parsed resource whose type has a
// kjernejournal profile, as WithProfile does to printed JSON: the printer
// then writes it once, instead of the JSON being read and written again.
func Declare(res *fhir.Resource) error {
	want, ok := profileURL[res.Type]
	if !ok {
		return fmt.Errorf("profile: %s has no kjernejournal profile", res.Type)
	}
	res.SetProfiles(declared(want, res.Profiles()))
	return nil
}

// DeclareAs is Declare for a type whose profile depends on the content
// (Condition, Consent): want is URLOf the resource's printed JSON.
func DeclareAs(res *fhir.Resource, want string) {
	res.SetProfiles(declared(want, res.Profiles()))
}

// declared is meta.profile with want first: the profiles a resource
// declared are kept, except other versions of ours, which it no longer
// claims once the server has checked it against want.
func declared(want string, old []string) []string {
	profiles := []string{want}
	for _, p := range old {
		url, _, _ := strings.Cut(p, "|")
		if !strings.HasPrefix(url, URLPrefix) && !slices.Contains(profiles, p) {
			profiles = append(profiles, p)
		}
	}
	return profiles
}

// object is a JSON object with its members in document order.
type object []member

type member struct {
	key   string
	value json.RawMessage
}

func parseObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	var o object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o = append(o, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return o, nil
}

func (o object) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// set replaces the value of key, or adds key after resourceType, id and
// meta's FHIR predecessors (at the end if none of them is present).
func (o object) set(key string, value json.RawMessage) object {
	for i, m := range o {
		if m.key == key {
			o[i].value = value
			return o
		}
	}
	at := 0
	for i, m := range o {
		if m.key == "resourceType" || m.key == "id" {
			at = i + 1
		}
	}
	return slices.Insert(o, at, member{key, value})
}

func (o object) marshal() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
