package conformance

import (
	"net/http"
	"net/url"
	"strings"
)

// Every error has the status a FHIR client acts on and an OperationOutcome
// that says why (at least one issue with severity and code).

func init() {
	register(
		Check{GroupREST, "rest/error-unknown-id", "a read, vread or history of an id the server does not hold is 404 with an OperationOutcome", checkErrorUnknownID},
		Check{GroupREST, "rest/error-unknown-type", "a request for a resource type the server does not serve is 404 with an OperationOutcome", checkErrorUnknownType},
		Check{GroupREST, "rest/error-malformed-body", "a create or update with malformed JSON, a non-object or an invalid element is 400 with an OperationOutcome, and nothing is stored", checkErrorMalformedBody},
		Check{GroupREST, "rest/error-unknown-search-param", "an unknown search parameter is 400 under Prefer: handling=strict; leniently (by default or asked) it is left out of the self link", checkErrorUnknownParam},
		Check{GroupREST, "rest/error-401", "a data request without a token, or with a broken one, is 401 with WWW-Authenticate and an OperationOutcome", checkError401},
		Check{GroupREST, "rest/error-403", "a request the token or the access rules do not allow is 403 with an OperationOutcome", checkError403},
		Check{GroupREST, "rest/error-405", "a method a path does not support is 405 with an OperationOutcome", checkError405},
		Check{GroupREST, "rest/error-412", "an update or delete with a stale If-Match is 412 with an OperationOutcome", checkError412},
		Check{GroupREST, "rest/error-413", "a body over 1 MiB is 413 with an OperationOutcome, and nothing is stored", checkError413},
		Check{GroupREST, "rest/error-deleted", "a read of a deleted resource is 410 (or 404) with an OperationOutcome", checkErrorDeleted},
	)
}

func checkErrorUnknownID(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	none := restToken()
	for _, path := range []string{"Flag/" + none, "Flag/" + none + "/_history/1", "Flag/" + none + "/_history", "Flag/" + fid + "/_history/99"} {
		res := restRead(t, "Flag", patient, Request{Path: path})
		restExpectError(t, "GET "+path, res, http.StatusNotFound)
	}
}

func checkErrorUnknownType(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	for _, req := range []Request{
		{Path: "Immunization/" + restToken()},
		{Path: "Immunization?patient=" + patient},
		{Method: http.MethodPost, Path: "Immunization", Body: map[string]any{"resourceType": "Immunization", "status": "completed",
			"vaccineCode": map[string]any{"text": "x"}, "patient": restRef("Patient", patient), "occurrenceDateTime": "2024-01-01"}},
		{Path: "NoSuchType/" + restToken()},
		{Path: "NoSuchType?patient=" + patient},
	} {
		res := t.Do(restAs(req, PersonaGP, patient))
		restExpectError(t, method(req)+" "+req.Path, res, http.StatusNotFound)
	}
}

func checkErrorMalformedBody(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	ident := restToken()
	good := restFlagBody(patient, ident, "")
	wrongType := restClone(good)
	wrongType["status"] = 42
	unknownElement := restClone(good)
	unknownElement["colour"] = "red"
	for _, c := range []struct {
		what string
		body any
	}{
		{"truncated JSON", `{"resourceType":"Flag","status":`},
		{"a JSON array", `[]`},
		{"not JSON", `resourceType=Flag`},
		{"an empty body", []byte{}},
		{"status as a number", wrongType},
		{"an element R4 does not define", unknownElement},
	} {
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: c.body, ContentType: "application/fhir+json"})
		restExpectError(t, "POST Flag with "+c.what, res, http.StatusBadRequest)
	}
	restNothingStored(t, patient, "Flag", ident)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: `{"resourceType":"Flag","id":"` + fid + `",`})
	restExpectError(t, "PUT Flag/"+fid+" with truncated JSON", res, http.StatusBadRequest)
	if got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid}); got.Status == http.StatusOK {
		if vid, _ := restMeta(got.JSON()); vid != "1" {
			t.Errorf("Flag/%s is at version %s after a refused update", fid, vid)
		}
	}
}

func checkErrorUnknownParam(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	path := "Flag?patient=" + patient + "&kjc-no-such-param=1"
	strict := restRead(t, "Flag", patient, Request{Path: path, Header: http.Header{"Prefer": {"handling=strict"}}})
	restExpectError(t, "GET "+path+" with Prefer: handling=strict", strict, http.StatusBadRequest)

	lenient := restRead(t, "Flag", patient, Request{Path: path, Header: http.Header{"Prefer": {"handling=lenient"}}})
	b := restParseBundle(t, "GET "+path+" with Prefer: handling=lenient", lenient, "searchset")
	restUsedParams(t, "Prefer: handling=lenient", b, "kjc-no-such-param")
	if len(b.refs("match")) != 1 {
		t.Errorf("GET %s with Prefer: handling=lenient finds %v, want the patient's one Flag", path, b.refs("match"))
	}

	// Without Prefer the server chooses; either way it must be one of the two.
	def := restRead(t, "Flag", patient, Request{Path: path})
	if def.Status == http.StatusOK {
		b := restParseBundle(t, "GET "+path, def, "searchset")
		restUsedParams(t, "no Prefer (lenient by default)", b, "kjc-no-such-param")
	} else {
		restExpectError(t, "GET "+path+" (strict by default)", def, http.StatusBadRequest)
	}
}

// restUsedParams checks that the self link of a lenient search leaves out
// the parameter it ignored: the self link says what the search did.
func restUsedParams(t *T, what string, b restBundle, ignored string) {
	self := b.Links["self"]
	if self == "" {
		t.Errorf("%s: the searchset has no self link", what)
		return
	}
	u, err := url.Parse(self)
	if err != nil {
		t.Errorf("%s: self link %q: %v", what, self, err)
		return
	}
	if u.Query().Has(ignored) {
		t.Errorf("%s: the self link %s names %s, which the search ignored", what, self, ignored)
	}
}

func checkError401(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	ident := restToken()
	for _, c := range []struct {
		what string
		req  Request
	}{
		{"no token", Request{Path: "Flag?patient=" + patient}},
		{"no token", Request{Path: "Patient/" + patient}},
		{"no token", Request{Method: http.MethodPost, Path: "Flag", Body: restFlagBody(patient, ident, "")}},
		{"a token that is no JWT", Request{Path: "Patient/" + patient, Token: "not-a-token"}},
		{"a token with a broken signature", Request{Path: "Patient/" + patient, Token: restBreak(t.Token(PersonaGP, patient))}},
	} {
		c.req.Basis = "UNNTAK"
		res := t.Do(c.req)
		if !restExpectError(t, method(c.req)+" "+c.req.Path+" with "+c.what, res, http.StatusUnauthorized) {
			continue
		}
		wa := strings.Join(res.Header.Values("WWW-Authenticate"), ", ")
		if !strings.HasPrefix(wa, "Bearer") && !strings.HasPrefix(wa, "DPoP") {
			t.Errorf("%s %s with %s: 401 without a WWW-Authenticate Bearer challenge (got %q)", method(c.req), c.req.Path, c.what, wa)
		}
	}
	restNothingStored(t, patient, "Flag", ident)
}

// restBreak changes one character inside a JWT's signature. Not the last
// one: its low bits are padding, which a lenient decoder ignores.
func restBreak(tok string) string {
	i := len(tok) - 10
	if i <= strings.LastIndexByte(tok, '.') {
		return "x"
	}
	repl := byte('A')
	if tok[i] == 'A' {
		repl = 'B'
	}
	return tok[:i] + string(repl) + tok[i+1:]
}

func checkError403(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	other, _ := t.NewPatient(PatientSpec{})
	for _, c := range []struct {
		what string
		req  Request
	}{
		{"the gp reads a patient not in the launch context",
			restAs(Request{Path: "Patient/" + other}, PersonaGP, patient)},
		{"the gp writes a MedicationStatement (HP report critical information only)",
			restAs(Request{Method: http.MethodPost, Path: "MedicationStatement", Body: restMedicationBody(patient, restToken())}, PersonaGP, patient)},
		{"the citizen-support role reads health data",
			Request{Path: "Flag?patient=" + patient, As: PersonaSupport}},
		{"the feeder reads health data (no automatic extraction)",
			Request{Path: "Patient/" + patient, As: PersonaFeeder}},
	} {
		res := t.Do(c.req)
		restExpectError(t, c.what+": "+method(c.req)+" "+c.req.Path, res, http.StatusForbidden)
	}
}

func checkError405(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	for _, req := range []Request{
		{Method: http.MethodPatch, Path: "Flag/" + fid, Body: `[{"op":"replace","path":"/status","value":"inactive"}]`, ContentType: "application/json-patch+json"},
		{Method: http.MethodPost, Path: "Flag/" + fid, Body: restFlagBody(patient, restToken(), "")},
		{Method: http.MethodPut, Path: "Flag", Body: restFlagBody(patient, restToken(), "")},
		{Method: http.MethodDelete, Path: "Flag"},
		{Method: http.MethodDelete, Path: "metadata"},
		{Method: http.MethodPost, Path: "metadata", Body: map[string]any{"resourceType": "CapabilityStatement"}},
		{Method: http.MethodGet, Path: "Flag/_history"},
		{Method: http.MethodPost, Path: "AuditEvent", Body: map[string]any{"resourceType": "AuditEvent"}},
	} {
		res := t.Do(restAs(req, PersonaGP, patient))
		restExpectError(t, method(req)+" "+req.Path, res, http.StatusMethodNotAllowed)
		// RFC 9110 15.5.6: a 405 lists the methods the target does support
		// (possibly none), so a client can tell what to do instead.
		if _, ok := res.Header["Allow"]; res.Status == http.StatusMethodNotAllowed && !ok {
			t.Errorf("%s %s: 405 without an Allow header", method(req), req.Path)
		}
	}
	if got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid}); got.Status != http.StatusOK {
		t.Errorf("Flag/%s after refused PATCH, POST and DELETE: status %d", fid, got.Status)
	} else if vid, _ := restMeta(got.JSON()); vid != "1" {
		t.Errorf("Flag/%s is at version %s after refused requests", fid, vid)
	}
}

func checkError412(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	for _, etag := range []string{`W/"99"`, `"99"`} {
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", flag),
			Header: http.Header{"If-Match": {etag}}})
		restExpectError(t, "PUT Flag/"+fid+" with If-Match: "+etag+" (it is at version 1)", res, http.StatusPreconditionFailed)
	}
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodDelete, Path: "Flag/" + fid, Header: http.Header{"If-Match": {`W/"99"`}}})
	restExpectError(t, "DELETE Flag/"+fid+` with If-Match: W/"99"`, res, http.StatusPreconditionFailed)
	got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid})
	if vid, _ := restMeta(got.JSON()); got.Status != http.StatusOK || vid != "1" {
		t.Errorf("Flag/%s after refused conditional writes: status %d, version %q; want it untouched at version 1", fid, got.Status, vid)
	}
}

func checkError413(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	ident := restToken()
	body := restFlagBody(patient, ident, "")
	body["code"] = map[string]any{"text": strings.Repeat("Pacemaker ", 115_000)} // 1.15 MB
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: body})
	restExpectError(t, "POST Flag with a 1.15 MB body", res, http.StatusRequestEntityTooLarge)
	restNothingStored(t, patient, "Flag", ident)
}

func checkErrorDeleted(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodDelete, Path: "Flag/" + fid})
	if res.Status != http.StatusNoContent && res.Status != http.StatusOK {
		t.Fatalf("DELETE Flag/%s as the gp: status %d, want 204: %s", fid, res.Status, Outcome(res))
	}
	got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid})
	restExpectError(t, "GET Flag/"+fid+" after its delete", got, http.StatusGone, http.StatusNotFound)
}
