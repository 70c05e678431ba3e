package conformance

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The Norwegian rules group: one scenario per access rule of DOMAIN.md
// ("Access rules" 1–9) and the usage log. Every scenario asserts both what
// the client is answered (status, and the reason code in the
// OperationOutcome) and the AuditEvent the request left (outcome, basis,
// reason, agent, patient), because a rule that is enforced but not logged,
// or logged but not enforced, is broken either way.
//
// Scenarios work on fresh fixture patients so they do not depend on one
// another. Reservation, restriction and portal access can only be set by
// the citizen on their own record, so those scenarios use the citizen
// persona's patient and undo every setting in t.Cleanup: later groups
// (documents) read that patient too.

// The checks, in the order of DOMAIN.md's rules, then the usage log.
func init() {
	register(
		Check{GroupRules, "rules/1-no-hpr-or-low-level", "rule 1: a practitioner token without an HPR number, or below security level 4, gets no health data (no-hpr-number, security-level-too-low), and the refusal is logged", checkNoHPROrLowLevel},
		Check{GroupRules, "rules/1-patient-not-in-context", "rule 1: a practitioner's token reaches only the patient in its launch context (patient-not-in-context), logged for the patient asked for", checkPatientNotInContext},
		Check{GroupRules, "rules/1-cross-patient-search-refused", "rule 1: a clinical search that is not bound to exactly one patient is refused with the legal reason (no-patient-bound), and the refusal is logged", checkCrossPatientSearch},
		Check{GroupRules, "rules/1-system-cannot-read", "rule 1: a system token (feeder, no HP, no patient in context) reads no health data (system-no-clinical-read), and there is no bulk export", checkSystemCannotRead},
		Check{GroupRules, "rules/2-samtykke-ok", "rule 2: SAMTYKKE (consent obtained) is accepted from any treating HP and logged as the basis", checkSamtykkeOK},
		Check{GroupRules, "rules/2-unntak-gp", "rule 2: the patient's own GP (fastlege: Patient.generalPractitioner has the token's HPR number) may use UNNTAK", checkUnntakGP},
		Check{GroupRules, "rules/2-unntak-hospital-staff", "rule 2: doctors (LE) and nurses (SP) of a hospital may use UNNTAK", checkUnntakHospitalStaff},
		Check{GroupRules, "rules/2-unntak-contract-specialist", "rule 2: a contract specialist (avtalespesialist) may use UNNTAK", checkUnntakContractSpecialist},
		Check{GroupRules, "rules/2-unntak-refused-for-non-gp", "rule 2: UNNTAK from an HP who is neither the patient's GP, a contract specialist nor hospital staff is refused with a clear reason (unntak-not-supported)", checkUnntakRefused},
		Check{GroupRules, "rules/2-akutt-needs-etreat", "rule 2: AKUTT is accepted with purpose of use ETREAT (legevakt) and logged as emergency access; without it, refused (akutt-not-supported)", checkAkuttNeedsETREAT},
		Check{GroupRules, "rules/2-basis-missing", "rule 2: a request for health data without an access basis, or with an unknown one, is refused (access-basis-missing, access-basis-unknown)", checkBasisMissing},
		Check{GroupRules, "rules/3-critical-always-visible-to-treating-hp", "rule 3: every treating HP sees the patient's critical information (AllergyIntolerance, Flag) with the basis their role supports", checkCriticalVisible},
		Check{GroupRules, "rules/3-critical-visible-when-other-parts-restricted", "rule 3: critical information stays visible to a treating HP when the citizen has restricted medications, visits and documents", checkCriticalVisibleWhenRestricted},
		Check{GroupRules, "rules/4-reservation-as-if-no-record", "rule 4: after the citizen opts out, HP get 404 as for a patient the server never had, no new data is accepted, and undoing brings everything back", checkReservation},
		Check{GroupRules, "rules/4-secret-address-reserved", "rule 4: a person with a secret address is reserved automatically: 404 as if no record, no new data", checkSecretAddress},
		Check{GroupRules, "rules/5-restriction-hidden-and-forhoyet-opens", "rule 5: a restricted section is left out (with an OperationOutcome and a REDACTED label), opens only with FORHOYET_*, and each opening is logged and marked in the citizen's log", checkRestriction},
		Check{GroupRules, "rules/6-blocked-hp-refused-even-in-emergency", "rule 6: a blocked HP is refused always, AKUTT and FORHOYET_AKUTT included (hp-blocked); other HP are not affected; lifting the block lets the HP in again", checkBlockedHP},
		Check{GroupRules, "rules/6-blocks-set-by-support-only", "rule 6: blocks are set by the citizen-support role only: neither an HP nor the citizen can set one", checkBlocksBySupportOnly},
		Check{GroupRules, "rules/7-documents-unavailable-when-visits-restricted", "rule 7: a patient who restricted the visit history has no documents available (documents-unavailable)", checkDocumentsVisitsRestricted},
		Check{GroupRules, "rules/7-documents-unavailable-when-sharing-blocked", "rule 7: a patient who blocked document sharing has no documents available (documents-unavailable)", checkDocumentsSharingBlocked},
		Check{GroupRules, "rules/8-citizen-own-only", "rule 8: the citizen reads their own record only; another person's is refused and the refusal logged", checkCitizenOwnOnly},
		Check{GroupRules, "rules/8-portal-access-removed", "rule 8: a citizen who removed their own portal access gets 403 portal-access-removed, cannot restore it online, and gets it back through citizen support", checkPortalAccessRemoved},
		Check{GroupRules, "rules/8-citizen-reads-own-log", "rule 8: the citizen reads their own usage log (and nobody else's), including HP accesses to their record", checkCitizenReadsOwnLog},
		Check{GroupRules, "rules/9-notifications-without-health-data", "rule 9: a Subscription's notification of new critical information carries ids only, no health data, and full-resource payloads are refused; the HP fetches with their own token and basis", checkNotificationsWithoutHealthData},
		Check{GroupRules, "rules/log-auditevent-immutable", "usage log: AuditEvents cannot be created, updated or deleted through the API (405), and a logged event stays as it was", checkAuditImmutable},
		Check{GroupRules, "rules/log-refusals-recorded", "usage log: refusals are logged with their reason, at every layer (no token, scopes, rules), and a refused write stores nothing", checkRefusalsRecorded},
		Check{GroupRules, "rules/log-citizen-view", "usage log: the citizen's view, newest first, hides the HP's name for the first 7 days but shows the organisation at once, and includes others' refusals", checkCitizenView},
		Check{GroupRules, "rules/log-auditor-search", "usage log: the auditor searches by patient, agent HPR number, organisation, date and outcome; the auditor's own searches are logged; HP cannot search the log", checkAuditorSearch},
	)
}

// HPR numbers and organisations of the built-in authorisation server's
// personas (testdata/smart/personas.json) that the checks assert in the
// usage log.
const (
	hprHospitalDoctor     = "990018265"
	hprNurse              = "990005001"
	hprEmergency          = "990005002"
	hprContractSpecialist = "990005003"
	orgHospitalDoctor     = "300010008" // Oslo universitetssykehus HF
	nameHospitalDoctor    = "Borghild Thomassen"
	orgNameHospitalDoctor = "Oslo universitetssykehus HF"
)

// Codes of the KjPrivacyConsent profile (profiles/consent-privacy.json).
const (
	privacySettingSystem = "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting"
	recordSectionSystem  = "https://kjernejournal.example.no/fhir/CodeSystem/record-section"
	privacyReservation   = "reservasjon"
	privacyRestriction   = "sperring"
	privacyBlock         = "blokkering"
	privacyPortalAccess  = "portaltilgang"
)

// privacyConsent is a KjPrivacyConsent: one privacy setting of patient.
// sections name the restricted sections of a sperring, hprs the blocked
// health personnel of a blokkering.
func privacyConsent(patient, kind string, active bool, at time.Time, sections, hprs []string) map[string]any {
	status := "inactive"
	if active {
		status = "active"
	}
	c := map[string]any{
		"resourceType": "Consent",
		"meta":         map[string]any{"profile": []string{"https://kjernejournal.example.no/fhir/StructureDefinition/KjPrivacyConsent"}},
		"status":       status,
		"scope": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": privacySettingSystem, "code": kind}}}},
		"patient":  map[string]any{"reference": "Patient/" + patient},
		// The server counts the 30 days of a reservation from dateTime, so
		// it is to the second with a time zone.
		"dateTime": at.UTC().Truncate(time.Second).Format(time.RFC3339),
		"policyRule": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}}},
	}
	prov := map[string]any{"type": "deny"}
	for _, s := range sections {
		codes, _ := prov["code"].([]any)
		prov["code"] = append(codes, map[string]any{"coding": []any{map[string]any{"system": recordSectionSystem, "code": s}}})
	}
	for _, h := range hprs {
		actors, _ := prov["actor"].([]any)
		prov["actor"] = append(actors, map[string]any{
			"role": map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}},
			"reference": map[string]any{"identifier": map[string]any{"system": SystemHPR, "value": h}},
		})
	}
	c["provision"] = prov
	return c
}

// privacySetting is one setting a check put in force, to be lifted.
type privacySetting struct {
	persona, patient, kind, id string
	// lifter lifts it: the persona that set it, except for the removal of
	// portal access, which citizen support lifts on request (rule 8).
	lifter         string
	sections, hprs []string
	at             time.Time
	lifted         bool
}

// setPrivacy puts a setting in force as persona (the citizen, or
// citizen-support for blocks) and registers its lifting as cleanup, so
// the patient is left as found even when the check fails half-way.
func setPrivacy(t *T, persona, patient, kind string, sections, hprs []string) *privacySetting {
	s := &privacySetting{persona: persona, lifter: persona, patient: patient, kind: kind, sections: sections, hprs: hprs, at: time.Now()}
	if kind == privacyPortalAccess {
		s.lifter = PersonaSupport
	}
	res := t.Do(Request{Method: http.MethodPost, Path: "Consent", As: persona, Body: privacyConsent(patient, kind, true, s.at, sections, hprs)})
	if res.Status != http.StatusCreated {
		t.Fatalf("%s sets a %s on Patient/%s (POST Consent): status %d, want 201: %s", persona, kind, patient, res.Status, Outcome(res))
	}
	s.id, _ = res.JSON()["id"].(string)
	if s.id == "" {
		t.Fatalf("the created Consent (%s) has no id", kind)
	}
	t.Cleanup(func() {
		if !s.lifted {
			s.lift(t)
		}
	})
	return s
}

// lift sets the setting's status to inactive (privacy settings are lifted,
// never deleted).
func (s *privacySetting) lift(t *T) {
	res := t.Do(s.liftRequest(s.lifter))
	if res.Status != http.StatusOK {
		t.Fatalf("%s lifts the %s Consent/%s (PUT status inactive): status %d, want 200: %s", s.lifter, s.kind, s.id, res.Status, Outcome(res))
	}
	s.lifted = true
}

// liftRequest is the PUT that lifts the setting, made as persona.
func (s *privacySetting) liftRequest(persona string) Request {
	// dateTime never goes backwards; the lifting is now.
	at := time.Now()
	if at.Before(s.at) {
		at = s.at
	}
	body := privacyConsent(s.patient, s.kind, false, at, s.sections, s.hprs)
	body["id"] = s.id
	return Request{Method: http.MethodPut, Path: "Consent/" + s.id, As: persona, Body: body}
}

// Fixture resources. Critical information is reported by HP (their EHR);
// medications and visits come from the feeder systems.

func rulesAllergy(patient, text string) map[string]any {
	return map[string]any{
		"resourceType": "AllergyIntolerance",
		"clinicalStatus": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}}},
		"verificationStatus": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}}},
		"criticality": "high",
		"code": map[string]any{"coding": []any{map[string]any{
			"system": "http://www.whocc.no/atc", "code": "J01CE02", "display": "Fenoksymetylpenicillin"}}, "text": text},
		"patient": map[string]any{"reference": "Patient/" + patient},
	}
}

func rulesFlag(patient, text string) map[string]any {
	return map[string]any{
		"resourceType": "Flag",
		"status":       "active",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type", "code": "implantat"}}}},
		"code":    map[string]any{"text": text},
		"period":  map[string]any{"start": "2024-01-10T08:00:00Z"},
		"subject": map[string]any{"reference": "Patient/" + patient},
	}
}

func rulesMedication(patient, text string) map[string]any {
	return map[string]any{
		"resourceType": "MedicationStatement",
		"status":       "active",
		"medicationCodeableConcept": map[string]any{"coding": []any{map[string]any{
			"system": "http://www.whocc.no/atc", "code": "C07AB02", "display": "Metoprolol"}}, "text": text},
		"subject":         map[string]any{"reference": "Patient/" + patient},
		"effectivePeriod": map[string]any{"start": "2024-01-10"},
	}
}

func rulesEncounter(patient, text string) map[string]any {
	return map[string]any{
		"resourceType": "Encounter",
		"status":       "finished",
		"class":        map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
		"subject":      map[string]any{"reference": "Patient/" + patient},
		"period":       map[string]any{"start": "2024-02-01T10:00:00+01:00", "end": "2024-02-03T12:00:00+01:00"},
		"reasonCode":   []any{map[string]any{"text": text}},
	}
}

// reportCritical writes critical information as persona (with basis) and returns
// its id.
func reportCritical(t *T, persona, patient, basis string, resource map[string]any) string {
	rt, _ := resource["resourceType"].(string)
	res := t.Do(Request{Method: http.MethodPost, Path: rt, As: persona, Patient: patient, Basis: basis, Body: resource})
	if res.Status != http.StatusCreated {
		t.Fatalf("fixture: %s reports a %s for Patient/%s: status %d: %s", persona, rt, patient, res.Status, Outcome(res))
	}
	id, _ := res.JSON()["id"].(string)
	return id
}

// feedRemoved feeds resource as the feeder and deletes it again at
// cleanup: it is fed into the citizen's record, which later groups read.
func feedRemoved(t *T, resource map[string]any) string {
	id, _ := t.Feed(resource)["id"].(string)
	rt, _ := resource["resourceType"].(string)
	t.Cleanup(func() {
		res := t.Do(Request{Method: http.MethodDelete, Path: rt + "/" + id, As: PersonaFeeder})
		if res.Status != http.StatusNoContent && res.Status != http.StatusOK {
			t.Errorf("cleanup: the feeder deletes %s/%s: status %d: %s", rt, id, res.Status, Outcome(res))
		}
	})
	return id
}

// accessReasons are the access-reason codes of an OperationOutcome (issue
// details), in order.
func accessReasons(res *Response) []string {
	var out []string
	for _, is := range alList(res.JSON()["issue"]) {
		for _, c := range alList(alObj(is["details"])["coding"]) {
			if alStr(c, "system") == systemAccessReason {
				out = append(out, alStr(c, "code"))
			}
		}
	}
	return out
}

// wantStatus checks a permitted request.
func wantStatus(t *T, what string, res *Response, status int) {
	if res.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, res.Status, status, Outcome(res))
	}
}

// wantRefusal checks that a request was refused with status and an
// OperationOutcome naming one of reasons (in issue.details) with a
// sentence saying why (diagnostics).
func wantRefusal(t *T, what string, res *Response, status int, reasons ...string) {
	if res.Status != status {
		t.Fatalf("%s: status %d, want %d (%s): %s", what, res.Status, status, strings.Join(reasons, " or "), Outcome(res))
	}
	if res.ResourceType() != "OperationOutcome" {
		t.Fatalf("%s: the refusal is a %q, want an OperationOutcome", what, res.ResourceType())
	}
	got := accessReasons(res)
	if !slices.ContainsFunc(got, func(c string) bool { return slices.Contains(reasons, c) }) {
		t.Errorf("%s: the OperationOutcome names reason codes %v, want %s (system %s): %s", what, got, strings.Join(reasons, " or "), systemAccessReason, Outcome(res))
	}
	for _, is := range alList(res.JSON()["issue"]) {
		if alStr(is, "diagnostics") == "" && alStr(alObj(is["details"]), "text") == "" {
			t.Errorf("%s: an OperationOutcome issue has no sentence for the user (diagnostics)", what)
		}
	}
}

// entriesOf returns the resources of a searchset's entries with
// search.mode match (mode "" for all).
func entriesOf(res *Response, mode string) []map[string]any {
	var out []map[string]any
	for _, e := range alList(res.JSON()["entry"]) {
		if mode != "" && alStr(alObj(e["search"]), "mode") != mode {
			continue
		}
		if r := alObj(e["resource"]); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// matchRefs are "Type/id" of a searchset's matches.
func matchRefs(res *Response) []string {
	var out []string
	for _, r := range entriesOf(res, "match") {
		out = append(out, alStr(r, "resourceType")+"/"+alStr(r, "id"))
	}
	return out
}

// mintToken re-signs the claims of a token the server issued, changed by
// edit, with the development signing key of the built-in authorisation
// server (testdata/smart/dev-signing-key.pem, next to the feeder's key).
// It is how the suite gets tokens no authorisation server should issue
// (no HPR number, security level 3) to show what the resource server does
// with them. A server that does not trust that key skips the check.
func mintToken(t *T, name, issued string, edit func(claims map[string]any)) string {
	keyFile := filepath.Join(filepath.Dir(t.env.cfg.FeederKeyFile), "dev-signing-key.pem")
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Skipf("no token %q configured, and no development signing key at %s to make one: %v", name, keyFile, err)
	}
	key, err := jwk.ParseKey(pemBytes, jwk.WithPEM(true))
	if err != nil {
		t.Skipf("development signing key %s: %v", keyFile, err)
	}
	parts := strings.Split(issued, ".")
	if len(parts) != 3 {
		t.Fatalf("the issued token is not a compact JWS")
	}
	var header map[string]any
	if raw, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(raw, &header) != nil {
		t.Fatalf("the issued token's header cannot be read")
	}
	claims, err := Claims(issued)
	if err != nil {
		t.Fatalf("the issued token's claims cannot be read: %v", err)
	}
	claims["jti"] = t.NewRequestID()
	edit(claims)
	payload, _ := json.Marshal(claims)
	var alg jwa.SignatureAlgorithm
	switch key.KeyType() {
	case jwa.EC():
		alg = jwa.ES256()
	case jwa.RSA():
		alg = jwa.RS256()
	default:
		t.Skipf("development signing key %s: unsupported key type %v", keyFile, key.KeyType())
	}
	h := jws.NewHeaders()
	for _, k := range []string{"kid", "typ"} {
		if v, ok := header[k]; ok {
			if err := h.Set(k, v); err != nil {
				t.Fatalf("token header %s: %v", k, err)
			}
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign a %s token: %v", name, err)
	}
	return string(signed)
}

// mintedTokenAccepted makes sure the server accepts a token re-signed
// unchanged (the key is its issuer's): otherwise a refusal of the edited
// token would prove nothing about the rule.
func mintedTokenAccepted(t *T, issued, patient string) {
	same := mintToken(t, "practitioner-resigned", issued, func(map[string]any) {})
	res := t.Do(Request{Path: "Patient/" + patient, Token: same, Basis: "UNNTAK"})
	if res.Status == http.StatusUnauthorized {
		t.Skipf("the server does not accept tokens signed with the development key (%s); configure the tokens instead", Outcome(res))
	}
	if res.Status != http.StatusOK {
		t.Fatalf("a re-signed but unchanged gp token: status %d, want 200: %s", res.Status, Outcome(res))
	}
}

// describeRequest names a request for messages.
func describeRequest(req Request) string {
	s := method(req) + " " + req.Path
	switch {
	case req.Token != "":
		s += " with a special token"
	case req.As != "":
		s += " as " + req.As
	default:
		s += " without a token"
	}
	if req.Basis != "" {
		s += " with basis " + req.Basis
	}
	return s
}

// accessChecked sends req with its own request id and asserts both halves
// of a rule: the answer (status; for a refusal, an OperationOutcome naming
// one of reasons) now, and the one AuditEvent the request left (want) when
// the check ends (ExpectAuditLater). A refusal's AuditEvent must carry the
// reason the answer named.
func accessChecked(t *T, req Request, status int, want WantAudit, reasons ...string) *Response {
	what := describeRequest(req)
	res, rid := t.DoAudited(req)
	if len(reasons) > 0 {
		wantRefusal(t, what, res, status, reasons...)
		if want.Reason == "" {
			for _, c := range accessReasons(res) {
				if slices.Contains(reasons, c) {
					want.Reason = c
					break
				}
			}
		}
		if want.Outcome == "" {
			want.Outcome = "4"
		}
	} else {
		wantStatus(t, what, res, status)
		if want.Outcome == "" {
			want.Outcome = "0"
		}
	}
	if want.Basis == "" && slices.Contains(accessBases, req.Basis) {
		want.Basis = req.Basis
	}
	t.ExpectAuditLater(what, rid, want)
	return res
}

// accessBases are the access bases of the nhn-access-basis header.
var accessBases = []string{"UNNTAK", "SAMTYKKE", "AKUTT", "FORHOYET_SAMTYKKE", "FORHOYET_AKUTT"}

// redacted reports whether a Bundle carries the REDACTED security label
// (restricted parts were left out).
func redacted(res *Response) bool {
	for _, c := range alList(alObj(res.JSON()["meta"])["security"]) {
		if alStr(c, "code") == "REDACTED" {
			return true
		}
	}
	return false
}

// unknownPatientID is a FHIR id no server has.
func unknownPatientID() string {
	var b [8]byte
	rand.Read(b[:])
	return "konf-ukjent-" + hex.EncodeToString(b[:])
}
