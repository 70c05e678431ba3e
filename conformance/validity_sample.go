package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Code systems of the kjernejournal profiles that the sample's critical
// information is coded in (profiles/flag-kj.json and
// allergyintolerance-kj.json); the suite is black-box, so it names them
// rather than importing the server's profile package.
const (
	criticalInfoTypeSystem    = "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type"
	allergyClinicalSystem     = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	allergyVerificationSystem = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	atcSystem                 = "http://www.whocc.no/atc"
)

// capResource is one rest.resource of the CapabilityStatement, as far as
// the validity group reads it.
type capResource struct {
	Type             string   `json:"type"`
	Profile          string   `json:"profile"`
	SupportedProfile []string `json:"supportedProfile"`
	SearchInclude    []string `json:"searchInclude"`
	SearchParam      []struct {
		Name string `json:"name"`
	} `json:"searchParam"`
	Interaction []struct {
		Code string `json:"code"`
	} `json:"interaction"`
}

func (c capResource) searchParam(name string) bool {
	return slices.ContainsFunc(c.SearchParam, func(p struct {
		Name string `json:"name"`
	}) bool {
		return p.Name == name
	})
}

func (c capResource) interaction(code string) bool {
	return slices.ContainsFunc(c.Interaction, func(i struct {
		Code string `json:"code"`
	}) bool {
		return i.Code == code
	})
}

// profiles are the profile URLs the CapabilityStatement declares for the
// type: supportedProfile and the base profile.
func (c capResource) profiles() []string {
	out := slices.Clone(c.SupportedProfile)
	if c.Profile != "" && !slices.Contains(out, c.Profile) {
		out = append(out, c.Profile)
	}
	return out
}

// capabilities reads the CapabilityStatement's server resources.
func capabilities(res *Response) ([]capResource, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Mode     string        `json:"mode"`
			Resource []capResource `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(res.Body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" {
		return nil, fmt.Errorf("GET /metadata: status %d, not a CapabilityStatement: %s", res.Status, Outcome(res))
	}
	var out []capResource
	for _, r := range cs.Rest {
		if r.Mode == "server" {
			out = append(out, r.Resource...)
		}
	}
	return out, nil
}

// sampled is one response of the sample and what it should be.
type sampled struct {
	What       string // "read Flag/123", for messages
	Res        *Response
	WantType   string // resourceType the answer must have
	WantStatus func(int) bool
}

// validitySample is the validity group's own sample of every kind of
// resource and answer the server gives, fetched once per run for a fresh
// fixture patient, so that the group finds something to validate when it
// is run alone (--group validity).
type validitySample struct {
	Patient   string
	Resources []capResource
	// Created holds the resources as the create answered them, by type.
	Created   map[string]map[string]any
	Responses []sampled
}

func ok2xx(s int) bool       { return s >= 200 && s < 300 }
func clientError(s int) bool { return s >= 400 && s < 500 }

// validitySample returns the run's sample, fetching it on first use.
func (t *T) validitySample() *validitySample {
	st := t.validity()
	defer st.mu.Unlock()
	if st.sample == nil {
		st.sample = t.fetchSample()
	}
	return st.sample
}

func (t *T) fetchSample() *validitySample {
	s := &validitySample{Created: map[string]map[string]any{}}
	get := func(what, wantType string, want func(int) bool, req Request) *Response {
		res := t.Do(req)
		s.Responses = append(s.Responses, sampled{What: what, Res: res, WantType: wantType, WantStatus: want})
		return res
	}

	meta := get("GET /metadata", "CapabilityStatement", ok2xx, Request{Path: "metadata"})
	var err error
	if s.Resources, err = capabilities(meta); err != nil {
		t.Fatalf("%v", err)
	}

	id, _ := t.NewPatient(PatientSpec{})
	s.Patient = id
	gp := func(method, path string, body any) Request {
		return Request{Method: method, Path: path, As: PersonaGP, Patient: id, Basis: "UNNTAK", Body: body}
	}
	subject := map[string]any{"reference": "Patient/" + id}

	// Critical information, written by the patient's GP as the profiles
	// KjFlag and KjAllergyIntolerance require.
	for _, r := range []map[string]any{
		{
			"resourceType": "Flag", "status": "active",
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": criticalInfoTypeSystem, "code": "implantat", "display": "Implantat"}}}},
			"code":    map[string]any{"text": "Pacemaker (konformanstest)"},
			"period":  map[string]any{"start": "2024-01-10T08:00:00Z"},
			"subject": subject,
		},
		{
			"resourceType":       "AllergyIntolerance",
			"clinicalStatus":     map[string]any{"coding": []any{map[string]any{"system": allergyClinicalSystem, "code": "active"}}},
			"verificationStatus": map[string]any{"coding": []any{map[string]any{"system": allergyVerificationSystem, "code": "confirmed"}}},
			"type":               "allergy", "category": []string{"medication"}, "criticality": "high",
			"code": map[string]any{"coding": []any{map[string]any{
				"system": atcSystem, "code": "J01CE02", "display": "Fenoksymetylpenicillin"}}},
			"patient": subject,
		},
	} {
		typ := r["resourceType"].(string)
		res := get("create "+typ, typ, func(s int) bool { return s == http.StatusCreated }, gp(http.MethodPost, typ, r))
		if res.Status != http.StatusCreated {
			t.Fatalf("fixture: creating a %s as the patient's GP (UNNTAK): status %d: %s", typ, res.Status, Outcome(res))
		}
		s.Created[typ] = res.JSON()
	}
	// What the national feeders send.
	s.Created["MedicationStatement"] = t.Feed(map[string]any{
		"resourceType": "MedicationStatement", "status": "active",
		"medicationCodeableConcept": map[string]any{"coding": []any{map[string]any{
			"system": atcSystem, "code": "C07AB02", "display": "Metoprolol"}}},
		"subject": subject, "effectivePeriod": map[string]any{"start": "2024-01-10"},
	})
	s.Created["Encounter"] = t.Feed(map[string]any{
		"resourceType": "Encounter", "status": "finished",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
		"subject": subject,
		"period":  map[string]any{"start": "2024-02-01T10:00:00+01:00", "end": "2024-02-03T12:00:00+01:00"},
	})

	// A second version of the Flag, for history and vread.
	flag := s.Created["Flag"]
	flagID, _ := flag["id"].(string)
	if flagID == "" {
		t.Fatalf("the created Flag has no id")
	}
	update := map[string]any{}
	for k, v := range flag {
		update[k] = v
	}
	update["code"] = map[string]any{"text": "Pacemaker, MR-betinget (konformanstest)"}
	get("update Flag/"+flagID, "Flag", ok2xx, gp(http.MethodPut, "Flag/"+flagID, update))

	// Reads: every created resource and the patient.
	get("read Patient/"+id, "Patient", ok2xx, gp("", "Patient/"+id, nil))
	for _, typ := range []string{"AllergyIntolerance", "Flag", "MedicationStatement", "Encounter"} {
		rid, _ := s.Created[typ]["id"].(string)
		get("read "+typ+"/"+rid, typ, ok2xx, gp("", typ+"/"+rid, nil))
	}
	get("vread Flag/"+flagID+"/_history/1", "Flag", ok2xx, gp("", "Flag/"+flagID+"/_history/1", nil))
	get("history Flag/"+flagID, "Bundle", ok2xx, gp("", "Flag/"+flagID+"/_history", nil))
	get("history Patient/"+id, "Bundle", ok2xx, gp("", "Patient/"+id+"/_history", nil))

	// A search of every type the CapabilityStatement lists, for this
	// patient and as the persona that may search it.
	for _, r := range s.Resources {
		if !r.interaction("search-type") {
			continue
		}
		q := url.Values{}
		switch {
		case r.Type == "Patient":
			q.Set("_id", id)
		case r.searchParam("patient"):
			q.Set("patient", id)
		case r.searchParam("subject"):
			q.Set("subject", "Patient/"+id)
		}
		req := gp("", r.Type+"?"+q.Encode(), nil)
		switch r.Type {
		case "AuditEvent":
			req = Request{Path: req.Path, As: PersonaAuditor}
		case "Consent":
			// Privacy settings are the citizen's, managed through the
			// support service.
			req = Request{Path: req.Path, As: PersonaSupport}
		}
		get("search "+req.Path, "Bundle", ok2xx, req)
		// An _include, so that the sample has include entries too.
		if len(r.SearchInclude) > 0 && r.Type != "AuditEvent" && r.Type != "Consent" {
			q.Set("_include", r.SearchInclude[0])
			p := r.Type + "?" + q.Encode()
			get("search "+p, "Bundle", ok2xx, gp("", p, nil))
		}
	}

	// An error: a read of a resource that is not there.
	missing := "Flag/kj-conformance-missing-" + strconv.FormatUint(rand.Uint64(), 36)
	get("read "+missing, "OperationOutcome", clientError, gp("", missing, nil))

	// The StructureDefinitions of the declared profiles, which the server
	// publishes.
	for _, r := range s.Resources {
		for _, p := range r.profiles() {
			if !strings.HasPrefix(p, "http") {
				continue
			}
			u, err := url.Parse(strings.TrimSuffix(p, "/"))
			if err != nil {
				continue
			}
			sdID := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
			get("read StructureDefinition/"+sdID, "StructureDefinition", ok2xx, Request{Path: "StructureDefinition/" + sdID})
		}
	}
	return s
}
