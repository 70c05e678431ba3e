package interaction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// status serves GET /Patient/{id}/$kj-status: whether the patient has
// critical information and when it last changed, whether parts of the
// record are restricted and whether the calling HP is blocked — and
// nothing more, so an EHR can poll it without opening the record.
func (s *Service) status(ctx context.Context, req *Request, c *Call) (*Result, error) {
	missing := absent{kind: unknownResource, typ: "Patient", id: c.ID}
	_, st, err := s.require(ctx, req, ask{in: access.Status, typ: "Patient", patient: c.ID, state: true}, missing)
	if err != nil {
		return nil, err
	}
	if !st.Exists {
		return nil, missing.err()
	}
	var last time.Time
	has := false
	// Every type of the national model; of the Consents, the critical
	// information only (the privacy settings show as restricted/blocked).
	for _, typ := range append(domain.CriticalTypes(), "Consent") {
		vs, err := s.store.Compartment(ctx, c.ID, typ)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		for _, v := range vs {
			if typ == "Consent" && !criticalVersion(v) {
				continue
			}
			has = true
			if v.LastUpdated.After(last) {
				last = v.LastUpdated
			}
		}
	}
	var params []string
	params = append(params, fmt.Sprintf(`{"name":"hasCriticalInformation","valueBoolean":%t}`, has))
	if has {
		params = append(params, fmt.Sprintf(`{"name":"criticalInformationLastChanged","valueInstant":%q}`, fhir.FormatInstant(last)))
	}
	params = append(params, fmt.Sprintf(`{"name":"restricted","valueBoolean":%t}`, len(st.Restricted) > 0))
	for _, sec := range st.Restricted {
		params = append(params, fmt.Sprintf(`{"name":"restrictedSection","valueCode":%q}`, string(sec)))
	}
	if p := req.Principal; p != nil && p.HPR != "" {
		params = append(params, fmt.Sprintf(`{"name":"blocked","valueBoolean":%t}`, slices.Contains(st.BlockedHPR, p.HPR)))
	}
	body := `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
	return &Result{Status: http.StatusOK, Body: []byte(body)}, nil
}

// capabilities serves GET /metadata. The statement is generated from what
// the router (ParseCall) and the search registry serve, so it cannot
// promise what is not there.
func (s *Service) capabilities(req *Request, _ *Call) (*Result, error) {
	return &Result{Status: http.StatusOK, Body: s.capabilityStatement(req.Base)}, nil
}

type csInteraction struct {
	Code string `json:"code"`
}

type csOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

type csSearchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"` // none for _has, which R4 defines no SearchParameter for
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

type csResource struct {
	Type              string          `json:"type"`
	SupportedProfile  []string        `json:"supportedProfile,omitempty"`
	Interaction       []csInteraction `json:"interaction"`
	Versioning        string          `json:"versioning"`
	ReadHistory       bool            `json:"readHistory"`
	UpdateCreate      bool            `json:"updateCreate"`
	ConditionalCreate bool            `json:"conditionalCreate"`
	ConditionalRead   string          `json:"conditionalRead"`
	ConditionalUpdate bool            `json:"conditionalUpdate"`
	ConditionalDelete string          `json:"conditionalDelete"`
	SearchInclude     []string        `json:"searchInclude,omitempty"`
	SearchRevInclude  []string        `json:"searchRevInclude,omitempty"`
	SearchParam       []csSearchParam `json:"searchParam,omitempty"`
	Operation         []csOperation   `json:"operation,omitempty"`
	Documentation     string          `json:"documentation,omitempty"`
}

// recordInteractions are the interactions ParseCall routes for a record
// type, in the order the statement lists them.
var recordInteractions = []Kind{Read, VRead, Update, Delete, History, Create, Search}

func (s *Service) capabilityStatement(base string) []byte {
	var resources []csResource
	for _, t := range s.codec.Types() {
		var in []csInteraction
		for _, k := range recordInteractions {
			if k == Delete && t == "Consent" {
				// Privacy settings are lifted by an update, never deleted.
				continue
			}
			in = append(in, csInteraction{string(k)})
		}
		clinical := t != "Patient"
		res := csResource{
			Type: t, Interaction: in, Versioning: "versioned-update", ReadHistory: true, UpdateCreate: true,
			ConditionalCreate: clinical, ConditionalUpdate: clinical, ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
		}
		res.SearchInclude, res.SearchRevInclude, res.SearchParam = s.searchCapabilities(t)
		res.Documentation = search.LeftOutDocumentation(t, true)
		// The profile every stored resource of the type conforms to and
		// declares in meta.profile, so that clients can find it.
		res.SupportedProfile = profile.Profiles(t)
		res.Operation = []csOperation{validateOperation}
		if t == "Patient" {
			res.Operation = append(res.Operation, csOperation{Name: "kj-status", Definition: domain.Base + "OperationDefinition/kj-status"})
		}
		resources = append(resources, res)
	}
	if s.cfg.Documents != nil {
		resources = append(resources, csResource{
			Type: "DocumentReference", Interaction: []csInteraction{{string(Search)}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam: []csSearchParam{
				{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/clinical-patient"},
				{Name: "type", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/clinical-type", Documentation: "document type or group, code system " + domain.SystemDocumentType},
				{Name: "category", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/DocumentReference-category"},
				{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/DocumentReference-date"},
			},
			Documentation: search.LeftOutDocumentation("DocumentReference", false),
		})
	}
	if s.served("DiagnosticReport") {
		for _, t := range []string{"DiagnosticReport", "Observation"} {
			res := csResource{
				Type: t, Interaction: []csInteraction{{string(Search)}}, Versioning: "no-version",
				ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
				SearchParam:   labParams(t),
				Documentation: "Lab results (prøvesvar), looked up at the lab sources for one patient and never stored; sorted by date (_sort=-date, the default, or date), paged with _count and _offset. " + search.LeftOutDocumentation(t, false),
			}
			if t == "DiagnosticReport" {
				res.SearchInclude = []string{"DiagnosticReport:result"}
			}
			resources = append(resources, res)
		}
	}
	if s.cfg.Notify != nil {
		// Change notifications: a Subscription is created and read, no more.
		resources = append(resources, csResource{
			Type: "Subscription", Interaction: []csInteraction{{string(Create)}, {string(Read)}}, Versioning: "versioned",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			Documentation: search.LeftOutDocumentation("Subscription", false),
		})
	}
	if s.cfg.Policy != nil {
		// The signed-in practitioner's own, so that fhirUser resolves.
		resources = append(resources, csResource{
			Type: "Practitioner", Interaction: []csInteraction{{string(Read)}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			Documentation: "read only, and only the signed-in practitioner's own (Practitioner/<HPR number>, the token's fhirUser), built from the token's HelseID claims",
		})
	}
	resources = append(resources, conformanceCapabilities()...)
	if s.cfg.Audit {
		resources = append(resources, csResource{
			Type: "AuditEvent", Interaction: []csInteraction{{string(Search)}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam: []csSearchParam{
				{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-patient"},
				{Name: "agent", Type: "token", Definition: domain.Base + "SearchParameter/AuditEvent-agent", Documentation: "HPR number of the health personnel (system|value or value); a token, not R4's AuditEvent-agent reference"},
				{Name: "organization", Type: "token", Definition: domain.Base + "SearchParameter/AuditEvent-organization", Documentation: "organisation number of the legal entity"},
				{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-date"},
				{Name: "outcome", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-outcome"},
			},
			Documentation: search.LeftOutDocumentation("AuditEvent", false),
		})
	}
	// Structs, not maps, so that resourceType comes first as FHIR
	// readers expect.
	type software struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	type implementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	}
	type rest struct {
		Mode        string          `json:"mode"`
		Security    any             `json:"security,omitempty"`
		Resource    []csResource    `json:"resource"`
		Interaction []csInteraction `json:"interaction"`
		// The patient compartment is searched across types at
		// /Patient/{id}/* (compartment.go).
		Compartment []string `json:"compartment,omitempty"`
	}
	cs := struct {
		ResourceType   string         `json:"resourceType"`
		Status         string         `json:"status"`
		Date           string         `json:"date"`
		Publisher      string         `json:"publisher"`
		Kind           string         `json:"kind"`
		Software       software       `json:"software"`
		Implementation implementation `json:"implementation"`
		FHIRVersion    string         `json:"fhirVersion"`
		Format         []string       `json:"format"`
		Rest           []rest         `json:"rest"`
	}{
		ResourceType:   "CapabilityStatement",
		Status:         "active",
		Date:           s.started.UTC().Format("2006-01-02T15:04:05Z07:00"),
		Publisher:      "kjernejournal",
		Kind:           "instance",
		Software:       software{"kjernejournal", s.cfg.Version},
		Implementation: implementation{"Kjernejournal, the national summary care record (FHIR R4)", base},
		FHIRVersion:    "4.0.1",
		Format:         []string{"application/fhir+json", "application/json"},
		Rest: []rest{{Mode: "server", Security: s.securityElement(), Resource: resources,
			Interaction: []csInteraction{{"transaction"}, {"batch"}},
			Compartment: []string{"http://hl7.org/fhir/CompartmentDefinition/patient"}}},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic("capability statement does not marshal: " + err.Error())
	}
	return b
}

// searchCapabilities lists, from the registry the parser uses, what a
// search of typ accepts: its parameters and the _include / _revinclude
// values.
func (s *Service) searchCapabilities(typ string) (include, revinclude []string, params []csSearchParam) {
	for _, p := range s.reg.Params(typ) {
		params = append(params, csSearchParam{Name: p.Name, Definition: p.URL, Type: p.Type, Documentation: p.Documentation})
		if p.Type == "reference" {
			include = append(include, typ+":"+p.Name)
		}
	}
	for _, src := range s.codec.Types() {
		for _, p := range s.reg.Params(src) {
			if p.Type == "reference" && slices.Contains(p.Targets, typ) {
				revinclude = append(revinclude, src+":"+p.Name)
			}
		}
	}
	return s.iterateCapabilities(typ, include, revinclude, params)
}

// securityElement is rest.security: SMART on FHIR with the oauth-uris
// extension naming the authorisation server's endpoints.
func (s *Service) securityElement() any {
	sec := s.cfg.Security
	if sec == nil {
		return nil
	}
	var ext []map[string]string
	for _, u := range []struct{ name, url string }{
		{"authorize", sec.Authorize}, {"token", sec.Token}, {"introspect", sec.Introspect},
		{"revoke", sec.Revoke}, {"manage", sec.Manage},
	} {
		if u.url != "" {
			ext = append(ext, map[string]string{"url": u.name, "valueUri": u.url})
		}
	}
	return map[string]any{
		"cors": sec.CORS,
		"service": []any{map[string]any{"coding": []any{map[string]string{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
		"description": "SMART on FHIR with HelseID-style tokens; every request also passes the Norwegian access rules (nhn-access-basis header).",
		"extension": []any{map[string]any{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": ext,
		}},
	}
}
