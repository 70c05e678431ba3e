package conformance

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Identifier systems of HL7 Norway no-basis.
const (
	SystemFNR = "urn:oid:2.16.578.1.12.4.1.4.1"
	SystemHPR = "urn:oid:2.16.578.1.12.4.1.4.4"
	// SecretAddressExtension marks a person with a secret address, who is
	// reserved automatically.
	SecretAddressExtension = "https://kjernejournal.example.no/fhir/StructureDefinition/secret-address"
	// GPHPR is the HPR number of the gp persona of the built-in
	// authorisation server (testdata/smart/personas.json); fixture
	// patients name it as their GP so UNNTAK holds for that persona.
	GPHPR = "990010000"
)

// PatientSpec describes a fixture patient.
type PatientSpec struct {
	GPHPR         string // registered GP's HPR number; default GPHPR
	SecretAddress bool
	Family, Given string // default synthetic
}

// NewPatient feeds a fresh patient with a synthetic person number (as the
// feeder system, SMART backend services) and returns its id and person
// number. Every scenario that changes a patient's state works on its own
// patient, so checks do not depend on one another.
func (t *T) NewPatient(spec PatientSpec) (id, pid string) {
	if spec.GPHPR == "" {
		spec.GPHPR = GPHPR
	}
	// A random person number can be one the server holds already (from
	// an earlier run against the same server, or by chance): a person has
	// one Patient, so that is a 409, and another number is tried.
	for attempt := 0; ; attempt++ {
		pid = syntheticPID()
		res := t.Do(Request{Method: http.MethodPost, Path: "Patient", As: PersonaFeeder, Body: newPatientBody(spec, pid)})
		if res.Status == http.StatusConflict && attempt < 5 {
			continue
		}
		if res.Status != http.StatusCreated {
			t.Fatalf("fixture: feeding a patient as %s: status %d: %s", PersonaFeeder, res.Status, Outcome(res))
		}
		id, _ = res.JSON()["id"].(string)
		if id == "" {
			t.Fatalf("fixture: created Patient has no id")
		}
		return id, pid
	}
}

func newPatientBody(spec PatientSpec, pid string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": SystemFNR, "value": pid}},
		"name":         []any{map[string]any{"family": or(spec.Family, "Konformansesen"), "given": []string{or(spec.Given, "Kari")}}},
		"gender":       "female",
		"birthDate":    "1980-01-01",
		"generalPractitioner": []any{map[string]any{
			"type":       "Practitioner",
			"identifier": map[string]any{"system": SystemHPR, "value": spec.GPHPR},
		}},
	}
	if spec.SecretAddress {
		p["extension"] = []any{map[string]any{"url": SecretAddressExtension, "valueBoolean": true}}
	}
	return p
}

// Feed creates a resource as the feeder system (MedicationStatement,
// Encounter) and returns the stored resource.
func (t *T) Feed(resource map[string]any) map[string]any {
	rt, _ := resource["resourceType"].(string)
	res := t.Do(Request{Method: http.MethodPost, Path: rt, As: PersonaFeeder, Body: resource})
	if res.Status != http.StatusCreated {
		t.Fatalf("fixture: feeding a %s: status %d: %s", rt, res.Status, Outcome(res))
	}
	return res.JSON()
}

// syntheticPID is a random person number in the synthetic (Tenor, month
// +80) range, so it can never be a real person's.
func syntheticPID() string {
	for {
		birth := time.Date(1940+rand.IntN(60), time.Month(1+rand.IntN(12)), 1+rand.IntN(28), 0, 0, 0, 0, time.UTC)
		ind := rand.IntN(500)
		pid, err := seed.PersonNumber(birth, ind, ind%2 == 0)
		if err == nil {
			return pid
		}
	}
}

// Claims decodes a JWT's payload without checking it: the suite reads what
// the server was given, it does not trust it.
func Claims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	return c, nil
}

// CitizenPatient returns the patient id of the citizen persona (the
// token's patient context), feeding the Patient with the token's person
// number if the server does not have it yet.
func (t *T) CitizenPatient() (id, pid string) {
	resp := t.TokenResponse(PersonaCitizen, "", "")
	id, _ = resp["patient"].(string)
	tok, _ := resp["access_token"].(string)
	claims, err := Claims(tok)
	if err != nil || id == "" {
		t.Fatalf("citizen token has no patient context or cannot be read: %v", err)
	}
	pid, _ = claims["helseid://claims/identity/pid"].(string)
	got := t.Do(Request{Path: "Patient/" + id, As: PersonaCitizen})
	if got.Status == http.StatusOK {
		return id, pid
	}
	p := map[string]any{
		"resourceType": "Patient", "id": id,
		"identifier": []any{map[string]any{"system": SystemFNR, "value": pid}},
		"name":       []any{map[string]any{"family": "Demo", "given": []string{"Innbygger"}}},
		"generalPractitioner": []any{map[string]any{
			"type": "Practitioner", "identifier": map[string]any{"system": SystemHPR, "value": GPHPR},
		}},
	}
	res := t.Do(Request{Method: http.MethodPut, Path: "Patient/" + id, As: PersonaFeeder, Body: p})
	if res.Status != http.StatusCreated && res.Status != http.StatusOK {
		t.Fatalf("fixture: feeding the citizen's Patient/%s: status %d: %s", id, res.Status, Outcome(res))
	}
	return id, pid
}

// Outcome summarises an OperationOutcome body (its issues' diagnostics or
// details), or the start of any other body.
func Outcome(res *Response) string {
	if res.ResourceType() == "OperationOutcome" {
		var parts []string
		issues, _ := res.JSON()["issue"].([]any)
		for _, i := range issues {
			m, _ := i.(map[string]any)
			s, _ := m["diagnostics"].(string)
			if s == "" {
				d, _ := m["details"].(map[string]any)
				s, _ = d["text"].(string)
			}
			parts = append(parts, fmt.Sprintf("%v/%v: %s", m["severity"], m["code"], s))
		}
		return strings.Join(parts, "; ")
	}
	s := string(res.Body)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
