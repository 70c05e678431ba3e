package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The CapabilityStatement is a promise: these checks hold the server to
// every interaction, operation, search parameter and _include it
// advertises, and to refusing what it does not.

func init() {
	register(
		Check{GroupREST, "rest/capability-interactions", "every interaction the CapabilityStatement advertises for a type (create, read, vread, update, update-as-create, conditional create, history, search, delete) works", checkCapabilityInteractions},
		Check{GroupREST, "rest/capability-operations", "every operation the CapabilityStatement advertises for a type answers", checkCapabilityOperations},
		Check{GroupREST, "rest/capability-system", "the system interactions the CapabilityStatement advertises (batch, transaction) work", checkCapabilitySystem},
		Check{GroupREST, "rest/capability-unadvertised", "interactions and resource types the CapabilityStatement does not advertise answer 404 or 405 with an OperationOutcome", checkCapabilityUnadvertised},
	)
}

// restCapability is the server part of the CapabilityStatement.
type restCapability struct {
	Mode        string            `json:"mode"`
	Interaction []restCode        `json:"interaction"`
	Resource    []restCapResource `json:"resource"`
}

type restCode struct {
	Code string `json:"code"`
}

type restCapResource struct {
	Type              string     `json:"type"`
	Interaction       []restCode `json:"interaction"`
	UpdateCreate      bool       `json:"updateCreate"`
	ConditionalCreate bool       `json:"conditionalCreate"`
	SearchInclude     []string   `json:"searchInclude"`
	SearchRevInclude  []string   `json:"searchRevInclude"`
	SearchParam       []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"searchParam"`
	Operation []struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	} `json:"operation"`
}

func (r restCapResource) has(code string) bool {
	return slices.Contains(r.Interaction, restCode{code})
}

// restCapabilities reads the server's CapabilityStatement (rest mode
// server); a server without one ends the check.
func restCapabilities(t *T) restCapability {
	res := t.Do(Request{Path: "metadata"})
	if res.Status != http.StatusOK || res.ResourceType() != "CapabilityStatement" {
		t.Fatalf("GET /metadata: status %d, resourceType %q: no CapabilityStatement to hold the server to", res.Status, res.ResourceType())
	}
	var cs struct {
		Rest []restCapability `json:"rest"`
	}
	if err := json.Unmarshal(res.Body, &cs); err != nil {
		t.Fatalf("GET /metadata: %v", err)
	}
	for _, r := range cs.Rest {
		if r.Mode == "server" {
			return r
		}
	}
	t.Fatalf("the CapabilityStatement has no rest entry with mode server")
	return restCapability{}
}

// restNewResource is a fresh resource of typ for the patient, built as its
// writer would send it; nil for a type the suite cannot make.
func restNewResource(t *T, typ, patient string) map[string]any {
	switch typ {
	case "Patient":
		return map[string]any{
			"resourceType": "Patient",
			"identifier":   []any{map[string]any{"system": SystemFNR, "value": syntheticPID()}},
			"name":         []any{map[string]any{"family": "Konformansesen", "given": []any{"Kari"}}},
			"gender":       "female",
			"birthDate":    "1980-01-01",
			"generalPractitioner": []any{map[string]any{
				"type": "Practitioner", "identifier": map[string]any{"system": SystemHPR, "value": GPHPR},
			}},
		}
	case "AllergyIntolerance":
		return restAllergyBody(patient, restToken())
	case "Flag":
		return restFlagBody(patient, restToken(), "")
	case "MedicationStatement":
		return restMedicationBody(patient, restToken())
	case "Encounter":
		return restEncounterBody(patient, restToken())
	case "Consent":
		return restConsentBody(patient)
	case "Subscription":
		return restSubscriptionBody(patient)
	case "Condition", "Procedure":
		return restCriticalBody(typ, patient, restToken())
	}
	return nil
}

// restChange makes an update of a stored resource: one visible change that
// keeps the resource valid for its profile and its writer.
func restChange(typ string, stored map[string]any) map[string]any {
	m := restClone(stored)
	delete(m, "meta")
	switch typ {
	case "Patient":
		m["name"] = []any{map[string]any{"family": "Konformansesen", "given": []any{"Kari", "Oppdatert"}}}
	case "Flag":
		m["code"] = map[string]any{"coding": []any{restCoding(restSNOMED, "14106009", "Cardiac pacemaker")}, "text": "Pacemaker (oppdatert)"}
	case "AllergyIntolerance", "MedicationStatement", "Condition", "Procedure":
		m["note"] = []any{map[string]any{"text": "Oppdatert av konformansetesten"}}
	case "Encounter":
		m["status"] = "cancelled"
	case "Consent":
		// A block names one more HP; dateTime stays, which a privacy
		// setting allows.
		prov, _ := m["provision"].(map[string]any)
		actors, _ := prov["actor"].([]any)
		prov["actor"] = append(actors, map[string]any{
			"role":      restConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", ""),
			"reference": map[string]any{"identifier": map[string]any{"system": SystemHPR, "value": "990099902"}},
		})
	default:
		m["status"] = "off"
	}
	return m
}

// restBinding is the query that binds a search of typ to the patient:
// every search of health data must concern exactly one patient.
func restBinding(typ, patient string) string {
	if typ == "Patient" {
		return "_id=" + patient
	}
	return "patient=" + patient
}

// restIdentifierQuery is an If-None-Exist query matching exactly m.
func restIdentifierQuery(m map[string]any) string {
	ids, _ := m["identifier"].([]any)
	for _, i := range ids {
		im, _ := i.(map[string]any)
		if im["system"] == restIDSystem {
			v, _ := im["value"].(string)
			return "identifier=" + restIDSystem + "|" + v
		}
	}
	id, _ := m["id"].(string)
	return "_id=" + id
}

func checkCapabilityInteractions(t *T) {
	cs := restCapabilities(t)
	patient, _ := t.NewPatient(PatientSpec{})
	var unexercised []string
	for _, r := range cs.Resource {
		if r.Type == "Practitioner" {
			unexercised = append(unexercised, restOwnUser(t, r, patient)...)
			continue
		}
		if slices.Contains(restConformanceTypes, r.Type) {
			continue // read and search: rest_conformance_resources.go
		}
		acc, known := restAccessOf[r.Type]
		if !known {
			unexercised = append(unexercised, r.Type+" (a type the suite does not know how to make)")
			continue
		}
		// ctx is the patient whose record the instance belongs to: a
		// created Patient is its own record.
		id, ctx := "", patient
		var stored map[string]any
		if r.has("create") {
			body := restNewResource(t, r.Type, patient)
			if body == nil || acc.writer == "" {
				unexercised = append(unexercised, r.Type+" create (the suite cannot make one)")
			} else {
				res := restWrite(t, r.Type, patient, Request{Method: http.MethodPost, Path: r.Type, Body: body})
				if res.Status != http.StatusCreated {
					t.Errorf("%s create (advertised): POST %s as %s: status %d, want 201: %s", r.Type, r.Type, acc.writer, res.Status, Outcome(res))
				} else {
					stored = res.JSON()
					id, _ = stored["id"].(string)
					if r.Type == "Patient" {
						ctx = id
					}
				}
			}
		}
		instance := []string{"read", "vread", "update", "delete", "history-instance", "patch"}
		if id == "" {
			for _, code := range instance {
				if r.has(code) {
					unexercised = append(unexercised, fmt.Sprintf("%s %s (no instance: create is not advertised or failed)", r.Type, code))
				}
			}
		}
		if id != "" && r.has("read") {
			res := restRead(t, r.Type, ctx, Request{Path: r.Type + "/" + id})
			if res.Status != http.StatusOK || res.JSON()["id"] != id {
				t.Errorf("%s read (advertised): GET %s/%s as %s: status %d: %s", r.Type, r.Type, id, acc.reader, res.Status, Outcome(res))
			}
		}
		if id != "" && r.has("update") {
			res := restWrite(t, r.Type, ctx, Request{Method: http.MethodPut, Path: r.Type + "/" + id, Body: restChange(r.Type, stored)})
			if res.Status != http.StatusOK {
				t.Errorf("%s update (advertised): PUT %s/%s as %s: status %d, want 200: %s", r.Type, r.Type, id, acc.writer, res.Status, Outcome(res))
			}
		}
		if id != "" && r.has("vread") {
			res := restRead(t, r.Type, ctx, Request{Path: r.Type + "/" + id + "/_history/1"})
			if vid, _ := restMeta(res.JSON()); res.Status != http.StatusOK || vid != "1" {
				t.Errorf("%s vread (advertised): GET %s/%s/_history/1: status %d, versionId %q: %s", r.Type, r.Type, id, res.Status, vid, Outcome(res))
			}
		}
		if id != "" && r.has("history-instance") {
			res := restRead(t, r.Type, ctx, Request{Path: r.Type + "/" + id + "/_history"})
			if b, err := restBundleOf(res, "history"); res.Status != http.StatusOK || err != nil || len(b.Entries) == 0 {
				t.Errorf("%s history-instance (advertised): GET %s/%s/_history: status %d, %v, want a history Bundle with entries: %s", r.Type, r.Type, id, res.Status, err, Outcome(res))
			}
		}
		if r.has("history-type") {
			res := restRead(t, r.Type, ctx, Request{Path: r.Type + "/_history?" + restBinding(r.Type, ctx)})
			if _, err := restBundleOf(res, "history"); res.Status != http.StatusOK || err != nil {
				t.Errorf("%s history-type (advertised): GET %s/_history: status %d, %v: %s", r.Type, r.Type, res.Status, err, Outcome(res))
			}
		}
		if r.has("search-type") {
			path := r.Type + "?" + restBinding(r.Type, ctx)
			res := restRead(t, r.Type, ctx, Request{Path: path})
			b, err := restBundleOf(res, "searchset")
			switch {
			case res.Status != http.StatusOK || err != nil:
				t.Errorf("%s search-type (advertised): GET %s as %s: status %d, %v: %s", r.Type, path, acc.reader, res.Status, err, Outcome(res))
			case id != "" && acc.reader != "" && !slices.Contains(b.refs("match"), r.Type+"/"+id):
				t.Errorf("%s search-type (advertised): GET %s does not find %s/%s, which was just created", r.Type, path, r.Type, id)
			}
		}
		if id != "" && r.ConditionalCreate && r.has("create") {
			crit := restIdentifierQuery(stored)
			res := restWrite(t, r.Type, ctx, Request{Method: http.MethodPost, Path: r.Type, Body: restResend(stored),
				Header: http.Header{"If-None-Exist": {crit}}})
			if res.Status != http.StatusOK || res.JSON()["id"] != id {
				t.Errorf("%s conditional create (advertised conditionalCreate): POST %s with If-None-Exist: %s matching %s/%s: status %d, id %v; want 200 and the existing resource: %s",
					r.Type, r.Type, crit, r.Type, id, res.Status, res.JSON()["id"], Outcome(res))
			}
		}
		if r.UpdateCreate && r.has("update") {
			body := restNewResource(t, r.Type, patient)
			if body != nil && acc.writer != "" {
				nid := restToken()
				body["id"] = nid
				uctx := ctx
				if r.Type == "Patient" {
					uctx = nid
				}
				res := restWrite(t, r.Type, uctx, Request{Method: http.MethodPut, Path: r.Type + "/" + nid, Body: body})
				if res.Status != http.StatusCreated {
					t.Errorf("%s update as create (advertised updateCreate): PUT %s/%s with a new id: status %d, want 201: %s", r.Type, r.Type, nid, res.Status, Outcome(res))
				}
			}
		}
		if id != "" && r.has("delete") {
			res := t.Do(restScoped(t, r.Type, restAs(Request{Method: http.MethodDelete, Path: r.Type + "/" + id}, or(acc.writer, acc.reader), ctx)))
			if why := acc.refusal["delete"]; why != "" {
				// The interaction exists; the suite's personas are not
				// allowed it. A refusal must then be a 403, not "unknown".
				if res.Status/100 != 2 {
					restExpectError(t, fmt.Sprintf("%s delete (advertised; %s)", r.Type, why), res, http.StatusForbidden)
				}
			} else if res.Status != http.StatusNoContent && res.Status != http.StatusOK {
				t.Errorf("%s delete (advertised): DELETE %s/%s as %s: status %d, want 204 or 200: %s", r.Type, r.Type, id, or(acc.writer, acc.reader), res.Status, Outcome(res))
			} else {
				got := restRead(t, r.Type, ctx, Request{Path: r.Type + "/" + id})
				restExpectError(t, fmt.Sprintf("%s read after delete", r.Type), got, http.StatusGone, http.StatusNotFound)
			}
		}
		if r.has("patch") {
			unexercised = append(unexercised, r.Type+" patch (the suite sends no patches)")
		}
	}
	if len(unexercised) > 0 && !t.failed {
		t.Skipf("advertised but not exercised: %s", strings.Join(unexercised, "; "))
	}
}

// restResend is the body of a second create of the same thing: the stored
// resource without id and meta (what an EHR sends when it reports an item
// again).
func restResend(stored map[string]any) map[string]any {
	m := restClone(stored)
	delete(m, "id")
	delete(m, "meta")
	return m
}

func checkCapabilityOperations(t *T) {
	cs := restCapabilities(t)
	patient, _ := t.NewPatient(PatientSpec{})
	for _, r := range cs.Resource {
		for _, op := range r.Operation {
			name := strings.TrimPrefix(op.Name, "$")
			var res *Response
			var what string
			switch {
			case name == "validate":
				body := restNewResource(t, r.Type, patient)
				if body == nil {
					t.Errorf("%s $validate is advertised, but the suite cannot make a %s to validate", r.Type, r.Type)
					continue
				}
				what = "POST " + r.Type + "/$validate"
				res = restRead(t, r.Type, patient, Request{Method: http.MethodPost, Path: r.Type + "/$validate", Body: body})
			case r.Type == "Patient":
				// Instance level on the patient in context, then type level.
				what = "GET Patient/" + patient + "/$" + name
				res = restRead(t, r.Type, patient, Request{Path: "Patient/" + patient + "/$" + name})
				if res.Status == http.StatusNotFound || res.Status == http.StatusMethodNotAllowed {
					what = "GET Patient/$" + name + "?" + restBinding(r.Type, patient)
					res = restRead(t, r.Type, patient, Request{Path: "Patient/$" + name + "?" + restBinding(r.Type, patient)})
				}
			default:
				what = "GET " + r.Type + "/$" + name + "?patient=" + patient
				res = restRead(t, r.Type, patient, Request{Path: r.Type + "/$" + name + "?patient=" + patient})
			}
			switch {
			case res.Status == http.StatusNotFound || res.Status == http.StatusMethodNotAllowed || res.Status == http.StatusNotImplemented:
				t.Errorf("%s $%s (advertised, %s): %s: status %d: %s", r.Type, name, op.Definition, what, res.Status, Outcome(res))
			case res.Status != http.StatusOK:
				t.Errorf("%s $%s: %s: status %d, want 200: %s", r.Type, name, what, res.Status, Outcome(res))
			case res.ResourceType() == "":
				t.Errorf("%s $%s: %s answers no FHIR resource", r.Type, name, what)
			}
		}
	}
}

func checkCapabilitySystem(t *T) {
	cs := restCapabilities(t)
	patient, _ := t.NewPatient(PatientSpec{})
	has := func(code string) bool { return slices.Contains(cs.Interaction, restCode{code}) }
	if !has("batch") && !has("transaction") {
		return // nothing advertised at system level: nothing to hold the server to
	}
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	if has("batch") {
		body := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"request": map[string]any{"method": "GET", "url": "Flag/" + fid}},
		}}
		res := t.Do(restAs(Request{Method: http.MethodPost, Path: "", Body: body}, PersonaGP, patient))
		if b, err := restBundleOf(res, "batch-response"); res.Status != http.StatusOK || err != nil {
			t.Errorf("batch (advertised): POST / with a batch reading Flag/%s: status %d, %v: %s", fid, res.Status, err, Outcome(res))
		} else if len(b.Entries) != 1 || !strings.HasPrefix(fmt.Sprint(b.Entries[0].Response["status"]), "200") {
			t.Errorf("batch: the response entry for GET Flag/%s is %v, want status 200", fid, b.Entries)
		}
	}
	if has("transaction") {
		body := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{
				"fullUrl":  "urn:uuid:6f1d3c7e-3f4b-4c55-9d5e-0c2b7a1e9f10",
				"resource": restFlagBody(patient, restToken(), ""),
				"request":  map[string]any{"method": "POST", "url": "Flag"},
			},
		}}
		res := t.Do(restAs(Request{Method: http.MethodPost, Path: "", Body: body}, PersonaGP, patient))
		if b, err := restBundleOf(res, "transaction-response"); res.Status != http.StatusOK || err != nil {
			t.Errorf("transaction (advertised): POST / with a transaction creating a Flag: status %d, %v: %s", res.Status, err, Outcome(res))
		} else if len(b.Entries) != 1 || !strings.HasPrefix(fmt.Sprint(b.Entries[0].Response["status"]), "201") {
			t.Errorf("transaction: the response entry for POST Flag is %v, want status 201", b.Entries)
		}
	}
}

// restUnadvertisedTypes are R4 resource types a summary care record might
// be expected to hold; each one the server does not advertise must be
// unknown to it.
var restUnadvertisedTypes = []string{
	"Observation", "Condition", "Procedure", "MedicationRequest", "Immunization",
	"Practitioner", "Organization", "Subscription", "Binary", "Composition",
}

// restInteractionRequest is the request that performs a type-level or
// instance-level interaction on id.
func restInteractionRequest(code, typ, id string, body map[string]any) (Request, bool) {
	switch code {
	case "read":
		return Request{Path: typ + "/" + id}, true
	case "vread":
		return Request{Path: typ + "/" + id + "/_history/1"}, true
	case "update":
		b := restClone(body)
		b["id"] = id
		return Request{Method: http.MethodPut, Path: typ + "/" + id, Body: b}, true
	case "patch":
		return Request{Method: http.MethodPatch, Path: typ + "/" + id, Body: `[{"op":"replace","path":"/status","value":"inactive"}]`, ContentType: "application/json-patch+json"}, true
	case "delete":
		return Request{Method: http.MethodDelete, Path: typ + "/" + id}, true
	case "history-instance":
		return Request{Path: typ + "/" + id + "/_history"}, true
	case "history-type":
		return Request{Path: typ + "/_history"}, true
	case "create":
		return Request{Method: http.MethodPost, Path: typ, Body: body}, true
	case "search-type":
		return Request{Path: typ}, true
	}
	return Request{}, false
}

func checkCapabilityUnadvertised(t *T) {
	cs := restCapabilities(t)
	patient, _ := t.NewPatient(PatientSpec{})
	// A real, reachable instance where there is one, so that a 404 means
	// "no such interaction", not "no such resource".
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	codes := []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	advertised := map[string]bool{}
	for _, r := range cs.Resource {
		advertised[r.Type] = true
		acc := restAccessOf[r.Type]
		persona := or(acc.writer, or(acc.reader, PersonaGP))
		body := restNewResource(t, r.Type, patient)
		if body == nil {
			body = map[string]any{"resourceType": r.Type}
		}
		id := restToken()
		if r.Type == "Flag" {
			id = fid
		}
		for _, code := range codes {
			if r.has(code) {
				continue
			}
			req, _ := restInteractionRequest(code, r.Type, id, body)
			if code == "search-type" {
				req.Path += "?" + restBinding(r.Type, patient)
			}
			res := t.Do(restScoped(t, r.Type, restAs(req, persona, patient)))
			restExpectError(t, fmt.Sprintf("%s %s (not advertised): %s %s", r.Type, code, method(req), req.Path), res,
				http.StatusNotFound, http.StatusMethodNotAllowed)
		}
	}
	for _, typ := range restUnadvertisedTypes {
		if advertised[typ] {
			continue
		}
		for _, req := range []Request{
			{Method: http.MethodPost, Path: typ, Body: map[string]any{"resourceType": typ}},
			{Path: typ + "?patient=" + patient},
			{Path: typ + "/" + restToken()},
		} {
			res := t.Do(restAs(req, PersonaGP, patient))
			restExpectError(t, fmt.Sprintf("%s (a type the CapabilityStatement does not advertise): %s %s", typ, method(req), req.Path), res,
				http.StatusNotFound, http.StatusMethodNotAllowed)
		}
	}
}

// restOwnUser exercises an advertised Practitioner read the way SMART apps
// use it: the token's fhirUser resolves for the signed-in practitioner,
// and nobody reads another practitioner's. It returns what it could not
// exercise.
func restOwnUser(t *T, r restCapResource, patient string) []string {
	var unexercised []string
	for _, code := range r.Interaction {
		if code.Code != "read" {
			unexercised = append(unexercised, "Practitioner "+code.Code+" (the suite reads the signed-in user's only)")
		}
	}
	if !r.has("read") {
		return unexercised
	}
	tok := t.Token(PersonaGP, patient)
	claims, err := Claims(tok)
	user, _ := claims["fhirUser"].(string)
	id, ok := strings.CutPrefix(user, "Practitioner/")
	if err != nil || !ok || id == "" {
		return append(unexercised, fmt.Sprintf("Practitioner read (the %s token's fhirUser is %q, not Practitioner/<id>)", PersonaGP, user))
	}
	res := t.Do(Request{Path: user, Token: tok})
	if res.Status != http.StatusOK || res.JSON()["id"] != id || res.JSON()["resourceType"] != "Practitioner" {
		t.Errorf("Practitioner read (advertised): GET %s, the token's own fhirUser: status %d: %s", user, res.Status, Outcome(res))
	}
	other := "990000002"
	if other == id {
		other = "990000003"
	}
	if res := t.Do(Request{Path: "Practitioner/" + other, Token: tok}); res.Status != http.StatusForbidden && res.Status != http.StatusNotFound {
		t.Errorf("GET Practitioner/%s, another practitioner's, with %s's token: status %d, want 403 or 404: %s", other, PersonaGP, res.Status, Outcome(res))
	}
	return unexercised
}
