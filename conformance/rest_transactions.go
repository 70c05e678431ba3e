package conformance

import (
	"fmt"
	"net/http"
	"strings"
)

func init() {
	register(
		Check{GroupREST, "rest/transaction-conditional-reference", "a transaction or batch entry may refer to Patient?identifier=<fnr system>|<fnr> (and to Type?query in the patient's record): one match becomes Type/id; none, several, or a patient the caller cannot see fail the entry (412/400) with an OperationOutcome naming it", checkTransactionConditionalRef},
	)
}

const restFNRSystem = "urn:oid:2.16.578.1.12.4.1.4.1"

// restCondBundle is a Bundle of typ with one entry creating body.
func restCondBundle(typ string, body map[string]any, url string) map[string]any {
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{
		map[string]any{
			"fullUrl":  "urn:uuid:0b6c1c6e-7f0e-4a8e-9a51-3c7f1d2e4b90",
			"resource": body,
			"request":  map[string]any{"method": "POST", "url": url},
		},
	}}
}

func restFNRRef(pid string) map[string]any {
	return map[string]any{"reference": "Patient?identifier=" + restFNRSystem + "|" + pid}
}

// restCondRefused checks that a transaction failed as a whole with 412 or
// 400 and an OperationOutcome naming entry 0, and returns its status.
func restCondRefused(t *T, what string, res *Response) int {
	if res.Status != http.StatusPreconditionFailed && res.Status != http.StatusBadRequest {
		t.Errorf("%s: status %d, want 412 (or 400): %s", what, res.Status, Outcome(res))
		return res.Status
	}
	if res.ResourceType() != "OperationOutcome" {
		t.Errorf("%s: the answer is a %q, want an OperationOutcome", what, res.ResourceType())
		return res.Status
	}
	raw := fmt.Sprint(res.JSON()["issue"])
	if !strings.Contains(raw, "entry[0]") && !strings.Contains(raw, "entry 0") {
		t.Errorf("%s: the OperationOutcome does not name the entry (Bundle.entry[0]): %s", what, Outcome(res))
	}
	return res.Status
}

func checkTransactionConditionalRef(t *T) {
	p, pid := t.NewPatient(PatientSpec{})

	// One match: the reference becomes Patient/<id>.
	flag := restFlagBody(p, restToken(), "")
	flag["subject"] = restFNRRef(pid)
	res := t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p))
	b := restParseBundle(t, "a transaction creating a Flag whose subject is Patient?identifier=<fnr>", res, "transaction-response")
	if len(b.Entries) != 1 || !strings.HasPrefix(fmt.Sprint(b.Entries[0].Response["status"]), "201") {
		t.Fatalf("transaction with a conditional reference: the response entry is %v, want 201", b.Entries)
	}
	loc := fmt.Sprint(b.Entries[0].Response["location"])
	fid := ""
	if _, rest, ok := strings.Cut(loc, "Flag/"); ok {
		fid, _, _ = strings.Cut(rest, "/")
	}
	if fid == "" {
		t.Fatalf("transaction: the response entry has no location Flag/<id>: %v", b.Entries[0].Response)
	}
	got := restRead(t, "Flag", p, Request{Path: "Flag/" + fid})
	if got.Status != http.StatusOK {
		t.Fatalf("GET Flag/%s: status %d: %s", fid, got.Status, Outcome(got))
	}
	subj, _ := got.JSON()["subject"].(map[string]any)
	if ref, _ := subj["reference"].(string); ref != "Patient/"+p {
		t.Errorf("the stored Flag's subject is %q, want Patient/%s (the conditional reference resolved)", ref, p)
	}

	// The same in a batch entry.
	flag = restFlagBody(p, restToken(), "")
	flag["subject"] = restFNRRef(pid)
	res = t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("batch", flag, "Flag")}, PersonaGP, p))
	b = restParseBundle(t, "a batch creating a Flag whose subject is Patient?identifier=<fnr>", res, "batch-response")
	if len(b.Entries) != 1 || !strings.HasPrefix(fmt.Sprint(b.Entries[0].Response["status"]), "201") {
		t.Errorf("batch with a conditional reference: the response entry is %v, want 201", b.Entries)
	}

	// A conditional reference to another served type, resolved inside the
	// patient's record: an Encounter by its identifier.
	encIdent := restToken()
	enc := restCreate(t, p, restEncounterBody(p, encIdent))
	eid, _ := enc["id"].(string)
	flag = restFlagBody(p, restToken(), "")
	flag["subject"] = restFNRRef(pid)
	flag["encounter"] = map[string]any{"reference": "Encounter?identifier=" + restIDSystem + "|" + encIdent}
	res = t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p))
	b = restParseBundle(t, "a transaction creating a Flag whose encounter is Encounter?identifier=…", res, "transaction-response")
	if len(b.Entries) != 1 || !strings.HasPrefix(fmt.Sprint(b.Entries[0].Response["status"]), "201") {
		t.Fatalf("transaction with Encounter?identifier=…: the response entry is %v, want 201", b.Entries)
	}
	_, rest, _ := strings.Cut(fmt.Sprint(b.Entries[0].Response["location"]), "Flag/")
	fid, _, _ = strings.Cut(rest, "/")
	got = restRead(t, "Flag", p, Request{Path: "Flag/" + fid})
	if r, _ := got.JSON()["encounter"].(map[string]any); got.Status != http.StatusOK || r == nil || r["reference"] != "Encounter/"+eid {
		t.Errorf("GET Flag/%s: status %d, encounter %v, want Encounter/%s (the conditional reference resolved)", fid, got.Status, r, eid)
	}

	// No match: the transaction fails, naming the entry.
	flag = restFlagBody(p, restToken(), "")
	flag["subject"] = restFNRRef(syntheticPID())
	unknown := restCondRefused(t, "a transaction referring to Patient?identifier=<a person nobody has>",
		t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p)))
	flag = restFlagBody(p, restToken(), "")
	flag["encounter"] = map[string]any{"reference": "Encounter?identifier=" + restIDSystem + "|" + restToken()}
	restCondRefused(t, "a transaction referring to Encounter?identifier=<none in the record>",
		t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p)))

	// Another patient's data stays out of reach: an Encounter of patient
	// q is no match in p's record, and q's person number does not let a
	// caller bound to p write into q's record.
	q, qpid := t.NewPatient(PatientSpec{})
	qIdent := restToken()
	restCreate(t, q, restEncounterBody(q, qIdent))
	flag = restFlagBody(p, restToken(), "")
	flag["encounter"] = map[string]any{"reference": "Encounter?identifier=" + restIDSystem + "|" + qIdent}
	restCondRefused(t, "a transaction for patient A referring to Encounter?identifier=<patient B's encounter>",
		t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p)))
	flag = restFlagBody(p, restToken(), "")
	flag["subject"] = restFNRRef(qpid)
	res = t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, p))
	if res.Status/100 == 2 {
		t.Errorf("a caller bound to Patient/%s wrote a Flag for another patient through Patient?identifier=<B's fnr>: status %d", p, res.Status)
	}
	restCondRefused(t, "a transaction bound to patient A referring to Patient?identifier=<patient B's fnr>", res)
	if strings.Contains(string(res.Body), q) {
		t.Errorf("the refusal of a conditional reference to another patient names that patient's id %s: %s", q, Outcome(res))
	}

	// A reserved patient (secret address) looks unknown: the same answer
	// as for a person nobody has.
	r, rpid := t.NewPatient(PatientSpec{SecretAddress: true})
	flag = restFlagBody(r, restToken(), "")
	flag["subject"] = restFNRRef(rpid)
	res = t.Do(restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", flag, "Flag")}, PersonaGP, r))
	if res.Status != unknown {
		t.Errorf("a conditional reference to a reserved patient: status %d, want %d as for a person nobody has (the reservation must not show): %s", res.Status, unknown, Outcome(res))
	}
	restCondRefused(t, "a transaction referring to a reserved patient by fnr", res)
}
