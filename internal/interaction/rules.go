package interaction

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// stampRecorder makes the server, not the body, say who recorded critical
// information: the HP of the token, and when. A body that is not a JSON
// object is left to the parser, which says what is wrong with it.
func stampRecorder(body []byte, typ string, p *auth.Principal, now time.Time) ([]byte, error) {
	if p == nil || p.Kind() != auth.KindPractitioner || p.HPR == "" || !domain.IsCriticalType(typ) && !(typ == "Consent" && profile.CriticalConsent(body)) {
		return body, nil
	}
	obj := bytes.TrimSpace(body)
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return body, nil
	}
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	who, err := json.Marshal(struct {
		Identifier identifier `json:"identifier"`
		Display    string     `json:"display"`
	}{identifier{domain.SystemHPR, p.HPR}, p.Name})
	if err != nil {
		return nil, err
	}
	// The server's members are appended as the object's last: every JSON
	// reader here (the FHIR parser, the profile and rule checks) takes the
	// last of repeated members, so a client's own recorder or author is
	// overridden without decoding and re-encoding the whole body, and the
	// stored JSON, printed from the parsed resource, has each member once.
	inner := bytes.TrimRightFunc(obj[:len(obj)-1], unicode.IsSpace)
	out := make([]byte, 0, len(inner)+len(who)+80)
	out = append(out, inner...)
	member := func(name string, value []byte) {
		if out[len(out)-1] != '{' {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, '"', ':')
		out = append(out, value...)
	}
	switch typ {
	case "AllergyIntolerance":
		member("recorder", who)
		member("recordedDate", strconv.AppendQuote(nil, fhir.FormatInstant(now)))
	case "Flag":
		member("author", who)
	default:
		// The national profiles name the recorder by a contained
		// PractitionerRole (recorderRef) instead.
		role, ref, err := recorderRole(p)
		if err != nil {
			return nil, err
		}
		member("contained", role)
		if typ == "Consent" {
			member("performer", append(append([]byte{'['}, ref...), ']'))
		} else {
			member("recorder", ref)
		}
	}
	return append(out, '}'), nil
}

// checkBody is what a parsed resource must meet besides: the base R4
// rules the parser does not check (checkBase, 400), kjernejournal's rules
// (400), then the R4 invariants and its profile (checkInvariants,
// checkProfile: 422, in one answer). Writes and $validate both check
// with it.
func checkBody(res *fhir.Resource, body []byte) error {
	if err := checkBase(res, body); err != nil {
		return err
	}
	if err := checkRules(res, body); err != nil {
		return err
	}
	return join422(checkInvariants(res.Type, body), checkProfile(res.Type, body))
}

// checkRules applies kjernejournal's rules beyond base R4: every clinical
// resource belongs to exactly one patient held here (the record is per
// patient, and the patient is the shard key), and every Patient is
// identified by a valid Norwegian person number.
func checkRules(res *fhir.Resource, body []byte) error {
	if res.Type != "Patient" {
		if res.Patient == "" {
			el := domain.PatientElement(res.Type)
			return invalid(el, "%s must refer to the patient as a relative reference Patient/<id>", el)
		}
		return nil
	}
	var p struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return invalid("Patient", "cannot read the Patient: %v", err)
	}
	found := false
	for i, id := range p.Identifier {
		if id.System != domain.SystemFNR && id.System != domain.SystemDNR {
			continue
		}
		if !domain.ValidPersonNumber(id.Value) {
			return invalid("Patient.identifier["+strconv.Itoa(i)+"].value",
				"%q is not a valid Norwegian person number (11 digits with correct check digits)", id.Value)
		}
		found = true
	}
	if !found {
		return invalid("Patient.identifier",
			"a Patient needs an identifier with system %s (fødselsnummer) or %s (D-nummer)", domain.SystemFNR, domain.SystemDNR)
	}
	return nil
}

// checkProfile checks a resource base R4 has accepted against its
// kjernejournal profile (KjAllergyIntolerance, KjFlag): plain FHIR errors
// stay 400 and name their element, profile violations are 422 naming
// every violated rule. Declaring the profile in meta.profile is ingest's,
// which prints every stored resource.
func checkProfile(typ string, body []byte) error {
	if _, ok := profile.URLOf(typ, body); !ok {
		return nil
	}
	issues := profile.Check(typ, body)
	if len(issues) == 0 {
		return nil
	}
	out := make([]fhir.Issue, len(issues))
	for i, is := range issues {
		out[i] = fhir.Issue{Severity: "error", Code: "processing", Diagnostics: is.Message, Expression: []string{is.Path}}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Issues: out}
}

// validate serves POST /{type}/$validate: the checks of step 1 of the
// write pipeline, without writing; the answer is an OperationOutcome.
// With the base R4 profile (validateInput) it checks base R4 only.
func (s *Service) validate(c *Call) (*Result, error) {
	if len(c.Body) == 0 {
		return nil, invalid("", "the request has no body; a FHIR resource in JSON is expected")
	}
	body, base, err := validateInput(c)
	if err != nil {
		return nil, err
	}
	res, err := s.codec.Parse(body)
	if err == nil && res.Type != c.Type {
		err = invalid(res.Type+".resourceType", "the body is a %s, but the URL is for %s", res.Type, c.Type)
	}
	switch {
	case err == nil && base:
		if err = checkBase(res, body); err == nil {
			err = checkInvariants(res.Type, body)
		}
	case err == nil:
		err = checkBody(res, body)
	}
	issues := []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: fmt.Sprintf("%s is valid", c.Type)}}
	if err != nil {
		e := errorOf(err)
		if e.Status >= 500 {
			return nil, e
		}
		issues = e.Issues
	}
	if res != nil && res.Type == c.Type {
		// The invariants' warnings (best practice) do not stop a write,
		// but $validate tells them.
		_, warns := invariantIssues(res.Type, body)
		issues = append(issues, warns...)
	}
	return &Result{Status: http.StatusOK, Body: fhir.Outcome(issues...)}, nil
}
