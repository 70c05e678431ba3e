// Package privacy interprets a citizen's privacy settings in kjernejournal,
// stored as FHIR R4 Consent resources of the profile KjPrivacyConsent
// (profiles/consent-privacy.json): the reservation (reservasjon, opt-out of
// the whole register), restrictions of sections (sperring), blocks of named
// health personnel (blokkering, by HPR number) and the removal of the
// citizen's own portal access (portaltilgang).
//
// The package is pure: it parses Consents and turns the settings in force
// into what access.PatientState needs. Who may change a setting is
// decided by package access (Setting.Rule feeds it). Reading and writing
// the Consents, and deleting a reserved record when PurgeDue says so,
// belong to the server's interactions and its background job.
package privacy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Canonical URLs and codes of the profile; profiles/*.json define the same.
const (
	ProfileURL           = "https://kjernejournal.example.no/fhir/StructureDefinition/KjPrivacyConsent"
	SourceExtensionURL   = "https://kjernejournal.example.no/fhir/StructureDefinition/privacy-setting-source"
	SettingSystem        = "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting"
	SectionSystem        = "https://kjernejournal.example.no/fhir/CodeSystem/record-section"
	SourceSystem         = "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting-source"
	SourcePopulationReg  = "population-register"
	ScopeSystem          = "http://terminology.hl7.org/CodeSystem/consentscope"
	ScopeCode            = "patient-privacy"
	PolicyRuleSystem     = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	PolicyRuleCode       = "OPTOUT"
	ActorRoleSystem      = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	ActorRoleCode        = "IRCP"
	WholeRecordCode      = "all"
	ReservationRetention = 30 * 24 * time.Hour
)

// Kind is the kind of privacy setting: its code in the privacy-setting
// CodeSystem, carried in Consent.category[0]. The access rules define the
// kinds, since who may change a setting depends on its kind.
type Kind = access.PrivacyKind

const (
	Reservation         = access.KindReservation  // opted out of kjernejournal
	Restriction         = access.KindRestriction  // sections restricted
	Block               = access.KindBlock        // named health personnel blocked
	PortalAccessRemoved = access.KindPortalAccess // own portal access removed
)

func known(k Kind) bool {
	return k == Reservation || k == Restriction || k == Block || k == PortalAccessRemoved
}

// AllSections are the sections a restriction can name, in the order
// Summary lists them; the code "all" stands for every one of them.
var AllSections = access.RestrictableSections()

// sectionCodes names the codes a restriction can carry, for errors.
var sectionCodes = func() string {
	codes := []string{WholeRecordCode}
	for _, s := range AllSections {
		codes = append(codes, string(s))
	}
	return strings.Join(codes, ", ")
}()

// Setting is one parsed KjPrivacyConsent.
type Setting struct {
	ID      string // Consent.id; empty before the server assigns one
	Patient string // FHIR id of the patient, from Consent.patient
	Kind    Kind
	Active  bool // status active: in force; inactive: lifted
	// Sections are the restricted sections of a Restriction, "all"
	// expanded, in AllSections order.
	Sections []access.Section
	// BlockedHPR are the HPR numbers of a Block, sorted, without repeats.
	BlockedHPR []string
	Since      time.Time // Consent.dateTime: when the setting was put in force or lifted
	// Automatic marks a reservation the server set because the person has
	// a secret address; the citizen cannot lift it.
	Automatic bool
}

// Issue is one violation of the profile. Path names the element in a
// FHIRPath-like way (Consent.provision.code[1]) so that the REST layer can
// put it into OperationOutcome.issue.expression.
type Issue struct {
	Path    string
	Message string
}

// ProfileError lists every violation of KjPrivacyConsent in one Consent.
type ProfileError struct{ Issues []Issue }

func (e *ProfileError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.Path + ": " + is.Message
	}
	return "not a valid KjPrivacyConsent: " + strings.Join(parts, "; ")
}

var (
	// FHIR id: [A-Za-z0-9\-\.]{1,64}.
	idRE = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	// HPR numbers are assigned sequentially and have at most nine digits.
	hprRE = regexp.MustCompile(`^[0-9]{1,9}$`)
	// The 30-day deletion counts from dateTime, so a date alone is too
	// coarse; FHIR requires a time zone whenever a time is given.
	dateTimeRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)
)

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
}

func (c codeableConcept) has(system, code string) bool {
	return slices.Contains(c.Coding, coding{System: system, Code: code})
}

type reference struct {
	Reference  string `json:"reference"`
	Identifier *struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

type extension struct {
	URL         string  `json:"url"`
	ValueCoding *coding `json:"valueCoding"`
}

// parser decodes one element at a time so that a wrongly typed element is
// reported by its own path instead of failing the whole document.
type parser struct{ issues []Issue }

// fail records an issue; an element already reported (malformed) is not
// reported again for being absent.
func (p *parser) fail(path, format string, args ...any) {
	if slices.ContainsFunc(p.issues, func(is Issue) bool { return is.Path == path }) {
		return
	}
	p.issues = append(p.issues, Issue{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) decode(raw json.RawMessage, path string, v any) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		p.fail(path, "malformed element: %v", err)
		return false
	}
	return true
}

// Parse reads one Consent in R4 JSON and checks it against
// KjPrivacyConsent. It reports every violation at once (*ProfileError).
// It does not repeat the R4 base validation the REST layer's codec does:
// parse with fhir.Codec first, then with Parse.
func Parse(consentJSON []byte) (Setting, error) {
	var p parser
	var s Setting
	var top map[string]json.RawMessage
	if err := json.Unmarshal(consentJSON, &top); err != nil || top == nil {
		return s, &ProfileError{Issues: []Issue{{Path: "Consent", Message: "not a JSON object"}}}
	}

	var rt string
	p.decode(top["resourceType"], "Consent.resourceType", &rt)
	if rt != "Consent" {
		p.fail("Consent.resourceType", "must be Consent, is %q", rt)
		return s, &ProfileError{Issues: p.issues}
	}

	if _, ok := top["modifierExtension"]; ok {
		p.fail("Consent.modifierExtension", "not used by KjPrivacyConsent; it could change the meaning of the setting unnoticed")
	}
	if p.decode(top["id"], "Consent.id", &s.ID) && !idRE.MatchString(s.ID) {
		p.fail("Consent.id", "%q is not a FHIR id", s.ID)
	}

	var status string
	p.decode(top["status"], "Consent.status", &status)
	switch status {
	case "active":
		s.Active = true
	case "inactive":
	case "":
		p.fail("Consent.status", "required: active (in force) or inactive (lifted)")
	default:
		p.fail("Consent.status", "must be active (in force) or inactive (lifted), is %q", status)
	}

	var scope codeableConcept
	if !p.decode(top["scope"], "Consent.scope", &scope) || !scope.has(ScopeSystem, ScopeCode) {
		p.fail("Consent.scope", "must be %s#%s", ScopeSystem, ScopeCode)
	}

	s.Kind = p.kind(top["category"])

	var patient reference
	p.decode(top["patient"], "Consent.patient", &patient)
	if id, ok := strings.CutPrefix(patient.Reference, "Patient/"); ok && idRE.MatchString(id) {
		s.Patient = id
	} else {
		p.fail("Consent.patient.reference", "must reference the citizen as Patient/<id>, is %q", patient.Reference)
	}

	var dt string
	p.decode(top["dateTime"], "Consent.dateTime", &dt)
	if t, err := time.Parse(time.RFC3339Nano, dt); err == nil && dateTimeRE.MatchString(dt) {
		s.Since = t.UTC()
	} else {
		p.fail("Consent.dateTime", "required, to the second with a time zone (e.g. 2025-03-01T10:15:00+01:00), is %q", dt)
	}

	var rule codeableConcept
	if !p.decode(top["policyRule"], "Consent.policyRule", &rule) || !rule.has(PolicyRuleSystem, PolicyRuleCode) {
		p.fail("Consent.policyRule", "must be %s#%s", PolicyRuleSystem, PolicyRuleCode)
	}

	var exts []extension
	p.decode(top["extension"], "Consent.extension", &exts)
	for i, e := range exts {
		if e.URL != SourceExtensionURL {
			continue
		}
		path := fmt.Sprintf("Consent.extension[%d]", i)
		switch {
		case s.Automatic:
			p.fail(path, "the source extension may appear once")
		case e.ValueCoding == nil || *e.ValueCoding != (coding{System: SourceSystem, Code: SourcePopulationReg}):
			p.fail(path+".valueCoding", "must be %s#%s", SourceSystem, SourcePopulationReg)
		case s.Kind != "" && s.Kind != Reservation:
			p.fail(path, "only a reservation (reservasjon) is set automatically, not %s", s.Kind)
		}
		s.Automatic = true
	}

	p.provision(top["provision"], &s)

	if len(p.issues) > 0 {
		return Setting{}, &ProfileError{Issues: p.issues}
	}
	return s, nil
}

// kind finds the one privacy-setting code, which must be in category[0].
func (p *parser) kind(raw json.RawMessage) Kind {
	var cats []codeableConcept
	p.decode(raw, "Consent.category", &cats)
	var found []Kind
	seen := false
	for i, c := range cats {
		for j, cd := range c.Coding {
			if cd.System != SettingSystem {
				continue
			}
			seen = true
			if i != 0 {
				p.fail(fmt.Sprintf("Consent.category[%d]", i), "the privacy-setting code belongs in category[0] only")
				continue
			}
			if !known(Kind(cd.Code)) {
				p.fail(fmt.Sprintf("Consent.category[0].coding[%d].code", j), "%q is not a privacy-setting code (reservasjon, sperring, blokkering, portaltilgang)", cd.Code)
				continue
			}
			found = append(found, Kind(cd.Code))
		}
	}
	switch {
	case len(found) == 1:
		return found[0]
	case len(found) > 1:
		p.fail("Consent.category[0]", "carries %d privacy-setting codes; one setting is one Consent", len(found))
	case !seen:
		p.fail("Consent.category[0]", "must carry a code from %s", SettingSystem)
	}
	return ""
}

// provisionKeys are the provision elements the profile uses. Anything else
// (period, purpose, data, nested provisions, ...) would narrow or widen the
// deny rule in a way the interpretation here ignores, so it is refused
// rather than silently misread.
// Modifier extensions are refused for the same reason.
var provisionKeys = []string{"id", "extension", "type", "code", "actor"}

func (p *parser) provision(raw json.RawMessage, s *Setting) {
	var prov map[string]json.RawMessage
	if !p.decode(raw, "Consent.provision", &prov) {
		p.fail("Consent.provision", "required, with type deny")
		return
	}
	for k := range prov {
		if !slices.Contains(provisionKeys, k) {
			p.fail("Consent.provision."+k, "not used by KjPrivacyConsent; a setting is a plain deny rule")
		}
	}
	var typ string
	p.decode(prov["type"], "Consent.provision.type", &typ)
	if typ != "deny" {
		p.fail("Consent.provision.type", "must be deny, is %q", typ)
	}

	var codes []codeableConcept
	p.decode(prov["code"], "Consent.provision.code", &codes)
	var actors []struct {
		Reference reference `json:"reference"`
	}
	p.decode(prov["actor"], "Consent.provision.actor", &actors)

	if s.Kind == Restriction {
		p.sections(codes, s)
	} else if len(codes) > 0 && s.Kind != "" {
		p.fail("Consent.provision.code", "only a restriction (sperring) names sections, not %s", s.Kind)
	}
	if s.Kind == Block {
		p.blocked(actors, s)
	} else if len(actors) > 0 && s.Kind != "" {
		p.fail("Consent.provision.actor", "only a block (blokkering) names health personnel, not %s", s.Kind)
	}
}

func (p *parser) sections(codes []codeableConcept, s *Setting) {
	if len(codes) == 0 {
		p.fail("Consent.provision.code", "a restriction (sperring) names at least one section from %s", SectionSystem)
		return
	}
	set := map[access.Section]bool{}
	for i, c := range codes {
		n := 0
		for _, cd := range c.Coding {
			if cd.System != SectionSystem {
				continue
			}
			n++
			switch sec := access.Section(cd.Code); {
			case cd.Code == WholeRecordCode:
				for _, a := range AllSections {
					set[a] = true
				}
			case slices.Contains(AllSections, sec):
				set[sec] = true
			default:
				p.fail(fmt.Sprintf("Consent.provision.code[%d]", i), "%q is not a record section (%s)", cd.Code, sectionCodes)
			}
		}
		if n != 1 {
			p.fail(fmt.Sprintf("Consent.provision.code[%d]", i), "must carry exactly one code from %s", SectionSystem)
		}
	}
	for _, a := range AllSections {
		if set[a] {
			s.Sections = append(s.Sections, a)
		}
	}
}

func (p *parser) blocked(actors []struct {
	Reference reference `json:"reference"`
}, s *Setting) {
	if len(actors) == 0 {
		p.fail("Consent.provision.actor", "a block (blokkering) names at least one health professional by HPR number")
		return
	}
	for i, a := range actors {
		path := fmt.Sprintf("Consent.provision.actor[%d].reference.identifier", i)
		id := a.Reference.Identifier
		switch {
		case id == nil:
			p.fail(path, "required: the blocked health professional's HPR number (system %s)", domain.SystemHPR)
		case id.System != domain.SystemHPR:
			p.fail(path+".system", "must be %s (HPR number), is %q", domain.SystemHPR, id.System)
		case !hprRE.MatchString(id.Value):
			p.fail(path+".value", "%q is not an HPR number (digits only, at most nine)", id.Value)
		default:
			if !slices.Contains(s.BlockedHPR, id.Value) {
				s.BlockedHPR = append(s.BlockedHPR, id.Value)
			}
		}
	}
	slices.Sort(s.BlockedHPR)
}
