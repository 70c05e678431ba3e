package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The national API conventions (DOMAIN.md, "The national API
// conventions"): an EHR that already talks to the national kjernejournal
// APIs names the patient by person number in nhn-patient-nin, the HP's
// category in nhn-user-role and its own name in nhn-source-system, and
// never learns our FHIR ids; the person number never appears in a URL.

func init() {
	register(Check{GroupRules, "rules/national-patient-nin-and-source-system",
		"national API conventions: an HP token with the trust-framework attest naming the patient's person number (no FHIR patient in the token) reads the critical information (AllergyIntolerance, Flag) with nhn-patient-nin alone — no FHIR patient id or person number in any URL — and the auditor's usage-log search shows the source system (nhn-source-system); the hit- names are accepted; another patient than the header names (patient-not-named) and a role the token does not hold (user-role-mismatch) are refused and logged",
		checkNationalPatientNIN})
}

func checkNationalPatientNIN(t *T) {
	p, pid := t.NewPatient(PatientSpec{})
	a := "AllergyIntolerance/" + reportCritical(t, PersonaGP, p, "UNNTAK", rulesAllergy(p, "Penicillin"))
	f := "Flag/" + reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Pacemaker"))

	tok := t.nationalToken(PersonaHospitalDoctor, pid)
	claims, err := Claims(tok)
	if err != nil {
		t.Fatalf("the national token: %v", err)
	}
	if _, has := claims["patient"]; has {
		t.Fatalf("the token of a launch by person number carries a FHIR patient (%v); the scenario needs none", claims["patient"])
	}
	if raw, _ := json.Marshal(claims["authorization_details"]); !strings.Contains(string(raw), pid) {
		t.Fatalf("the token's trust-framework attest does not name the patient's person number: %s", raw)
	}

	// One name per run, so that the log shows this request's source.
	source := "Konformans-EPJ " + t.NewRequestID()[:8]
	role := url.QueryEscape(`{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LE"}`)
	for _, want := range []string{a, f} {
		typ, _, _ := strings.Cut(want, "/")
		for _, legacy := range []bool{false, true} {
			h := http.Header{}
			prefix := "nhn-"
			if legacy {
				prefix = "hit-"
			}
			h.Set(prefix+"patient-nin", pid)
			h.Set(prefix+"user-role", role)
			h.Set(prefix+"source-system", source)
			req := Request{Path: typ, Token: tok, Basis: "SAMTYKKE", Header: h}
			res := accessChecked(t, req, http.StatusOK, WantAudit{Patient: p, AgentHPR: hprHospitalDoctor, Reason: "ok",
				Also: func(ev AuditEvent) {
					if got := sourceSystemOf(ev); got != source {
						t.Errorf("GET /%s with %ssource-system %q: the auditor's AuditEvent/%s names source system %q", typ, prefix, source, ev.ID(), got)
					}
				}})
			if got := criticalOf(res); !slices.Equal(got, []string{want}) {
				t.Errorf("GET /%s with %spatient-nin only: matches %v, want %s", typ, prefix, got, want)
			}
			if strings.Contains(res.URL, p) || strings.Contains(res.URL, pid) {
				t.Errorf("GET /%s: the URL %s names the patient", typ, res.URL)
			}
		}
	}

	nin := func(extra ...string) http.Header {
		h := http.Header{}
		h.Set("nhn-patient-nin", pid)
		h.Set("nhn-source-system", source)
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	// Another patient than the header names: refused, logged for the
	// patient asked for.
	other, _ := t.NewPatient(PatientSpec{})
	accessChecked(t, Request{Path: "Flag?patient=" + other, Token: tok, Basis: "SAMTYKKE", Header: nin()},
		http.StatusForbidden, WantAudit{Patient: other, AgentHPR: hprHospitalDoctor, Refused: alBool(true)}, "patient-not-named")
	// A category the token's attest does not hold.
	accessChecked(t, Request{Path: "Flag", Token: tok, Basis: "SAMTYKKE",
		Header: nin("nhn-user-role", url.QueryEscape(`{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"SP"}`))},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: hprHospitalDoctor, Refused: alBool(true)}, "user-role-mismatch")
	// A malformed person number is the client's error.
	req := Request{Path: "Flag", Token: tok, Basis: "SAMTYKKE", Header: nin("nhn-patient-nin", "12345678901")}
	if res := t.Do(req); res.Status != http.StatusBadRequest || res.ResourceType() != "OperationOutcome" {
		t.Errorf("%s with a malformed nhn-patient-nin: status %d, want 400 with an OperationOutcome: %s", describeRequest(req), res.Status, Outcome(res))
	}
}

// sourceSystemOf is the source system an AuditEvent names: the client
// agent's (DICOM 110153 Source Role ID) who.display.
func sourceSystemOf(ev AuditEvent) string {
	for _, a := range alList(ev["agent"]) {
		for _, c := range alList(alObj(alObj(a)["type"])["coding"]) {
			if alStr(c, "code") == "110153" {
				return alStr(alObj(alObj(a)["who"]), "display")
			}
		}
	}
	return ""
}

// nationalToken is an HP token as an EHR on the national APIs holds it:
// an EHR launch by person number only (no FHIR patient), the person number
// in the trust-framework attest's patients[]. Not cached: each scenario
// names its own patient.
func (t *T) nationalToken(persona, pid string) string {
	t.SMART()
	if t.env.smart.launchURL == "" {
		t.Skipf("the server has no development EHR launch endpoint")
	}
	tok, err := t.env.nationalLaunch(t.ctx, persona, pid, personaScopes["practitioner"])
	if err != nil {
		t.Skipf("no launch by person number on this server: %v", err)
	}
	return tok
}

func (e *env) nationalLaunch(ctx context.Context, persona, pid, scope string) (string, error) {
	body, _ := json.Marshal(map[string]string{"patient_pid": pid, "practitioner": persona, "client_id": e.cfg.ClientID})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.smart.launchURL, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		Launch string `json:"launch"`
	}
	if err := e.jsonCall(req, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("POST %s: %w", e.smart.launchURL, err)
	}
	pk := NewPKCE()
	q := e.authorizeQuery(scope, pk)
	q.Set("launch", out.Launch)
	code, err := e.followForCode(ctx, e.smart.Authorize+"?"+q.Encode())
	if err != nil {
		return "", err
	}
	resp, err := e.exchange(ctx, code, pk)
	if err != nil {
		return "", err
	}
	tok, _ := resp["access_token"].(string)
	if tok == "" {
		return "", fmt.Errorf("the token response has no access_token")
	}
	return tok, nil
}
