package conformance

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// HL7's validator test cases (fhir-test-cases, validator/): the R4 JSON
// cases whose resource is a type this server serves, with the HL7 Java
// validator's base outcome for each. validatorcases/NOTICE.md says where
// they come from and which are left out, and why.
//
//go:embed validatorcases/cases.json validatorcases/cases validatorcases/outcomes
var validatorCases embed.FS

// minAgreement is the share of cases on which the server's $validate
// must reach the Java validator's verdict.
const minAgreement = 0.95

func init() {
	register(Check{GroupValidity, "validity/validator-cases",
		fmt.Sprintf("$validate against the base R4 profile reaches the HL7 Java validator's verdict (valid: no error or fatal issue) on at least %.0f%% of fhir-test-cases' R4 validator cases for the served types", minAgreement*100),
		checkValidatorCases})
}

type validatorCase struct {
	Name     string `json:"name"`
	File     string `json:"file"`
	Type     string `json:"type"`
	Outcome  string `json:"outcome"`
	Excluded string `json:"excluded"`
}

// caseVerdict is what one OperationOutcome says: valid or not, and the
// first error for the report.
type caseVerdict struct {
	valid bool
	first string
}

func verdictOf(outcome map[string]any) caseVerdict {
	issues, _ := outcome["issue"].([]any)
	for _, i := range issues {
		is, _ := i.(map[string]any)
		if sev, _ := is["severity"].(string); sev != "error" && sev != "fatal" {
			continue
		}
		msg, _ := is["diagnostics"].(string)
		if d, ok := is["details"].(map[string]any); ok {
			if txt, ok := d["text"].(string); ok && txt != "" {
				msg = txt
			}
		}
		if ex, ok := is["expression"].([]any); ok && len(ex) > 0 && !strings.HasPrefix(msg, fmt.Sprint(ex[0])) {
			msg = fmt.Sprintf("%v: %s", ex[0], msg)
		}
		return caseVerdict{first: clip(msg, 200)}
	}
	return caseVerdict{valid: true}
}

func (v caseVerdict) String() string {
	if v.valid {
		return "valid"
	}
	return "invalid (" + v.first + ")"
}

func loadValidatorCases() ([]validatorCase, error) {
	raw, err := validatorCases.ReadFile("validatorcases/cases.json")
	if err != nil {
		return nil, err
	}
	var m struct {
		Cases []validatorCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("validatorcases/cases.json: %w", err)
	}
	return m.Cases, nil
}

func checkValidatorCases(t *T) {
	cases, err := loadValidatorCases()
	if err != nil {
		t.Fatalf("reading the embedded validator cases: %v", err)
	}
	// $validate needs a token; the GP's needs a patient in context.
	patient := t.validitySample().Patient
	var agree, total, excluded int
	var disagreements []string
	for _, c := range cases {
		if c.Excluded != "" {
			excluded++
			continue
		}
		body, err := validatorCases.ReadFile(path.Join("validatorcases", c.File))
		if err != nil {
			t.Fatalf("case %s: %v", c.Name, err)
		}
		rawWant, err := validatorCases.ReadFile(path.Join("validatorcases", c.Outcome))
		if err != nil {
			t.Fatalf("case %s: %v", c.Name, err)
		}
		var wantOutcome map[string]any
		if err := json.Unmarshal(rawWant, &wantOutcome); err != nil {
			t.Fatalf("case %s: the expected outcome %s: %v", c.Name, c.Outcome, err)
		}
		want := verdictOf(wantOutcome)
		profile := "http://hl7.org/fhir/StructureDefinition/" + c.Type
		res := t.Do(Request{Method: http.MethodPost, Path: c.Type + "/$validate?profile=" + url.QueryEscape(profile),
			As: PersonaGP, Patient: patient, Basis: "UNNTAK", Body: body})
		var got caseVerdict
		switch out := res.JSON(); {
		case res.ResourceType() != "OperationOutcome":
			got = caseVerdict{first: fmt.Sprintf("status %d, not an OperationOutcome: %s", res.Status, clip(string(res.Body), 200))}
		case res.Status >= 300:
			// A server may answer an invalid resource with a 4xx too.
			got = verdictOf(out)
			if got.valid {
				got = caseVerdict{first: fmt.Sprintf("status %d: %s", res.Status, Outcome(res))}
			}
		default:
			got = verdictOf(out)
		}
		total++
		if got.valid == want.valid {
			agree++
			continue
		}
		disagreements = append(disagreements, fmt.Sprintf("%s (%s): the Java validator says %s, the server %s", c.Name, c.File, want, got))
	}
	if total == 0 {
		t.Fatalf("no validator case to run")
	}
	share := float64(agree) / float64(total)
	figure := fmt.Sprintf("validator cases: %d of %d agree (%.0f%%), %d excluded", agree, total, share*100, excluded)
	if len(disagreements) > 0 {
		figure += "; disagreements:\n" + strings.Join(disagreements, "\n")
	}
	if share < minAgreement {
		t.Errorf("%s", figure)
		return
	}
	t.Notef("%s", figure)
}
