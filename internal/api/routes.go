package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// A route is one entry of the router. FHIR interactions carry their
// CapabilityStatement code and level, so that the CapabilityStatement is
// generated from the very table the router is built from.
type route struct {
	method, path string
	interaction  string // FHIR interaction code, or an operational name
	level        string // "instance", "type", "system", or "" for non-FHIR routes
	handle       gin.HandlerFunc
	public       bool // needs no token
}

func (s *Server) routeTable() []route {
	return []route{
		{http.MethodGet, "/metadata", "capabilities", "system", s.capabilities, true},
		{http.MethodPost, "/", "transaction", "system", s.batchOrTransaction, false},
		{http.MethodPost, "/:type", "create", "type", s.create, false},
		{http.MethodGet, "/:type", "search-type", "type", s.searchType, false},
		{http.MethodPost, "/:type/_search", "search-type", "type", s.searchType, false},
		{http.MethodGet, "/:type/:id", "read", "instance", s.read, false},
		{http.MethodPut, "/:type/:id", "update", "instance", s.update, false},
		{http.MethodDelete, "/:type/:id", "delete", "instance", s.delete, false},
		// The third segment is _history (instance history) or, under
		// Patient, a compartment type; gin needs one parameter name per
		// position, so one handler dispatches both.
		{http.MethodGet, "/:type/:id/:sub", "history-instance", "instance", s.instanceSub, false},
		{http.MethodGet, "/:type/:id/:sub/:vid", "vread", "instance", s.vread, false},
		{http.MethodPost, "/:type/$validate", "validate", "operation", s.validate, false},
		// Change notifications without health data.
		{http.MethodPost, "/Subscription", "create", "subscription", s.subscriptionCreate, false},
		{http.MethodGet, "/Subscription/:id", "read", "subscription", s.subscriptionRead, false},
		// Our conformance resources, public like the CapabilityStatement.
		{http.MethodGet, "/StructureDefinition/:id", "read", "conformance", s.conformance("StructureDefinition"), true},
		{http.MethodGet, "/CodeSystem/:id", "read", "conformance", s.conformance("CodeSystem"), true},
		{http.MethodGet, "/ValueSet/:id", "read", "conformance", s.conformance("ValueSet"), true},
		// Journal documents, searched and streamed from the source hospitals.
		{http.MethodGet, "/DocumentReference", "search-type", "documents", s.documentSearch, false},
		{http.MethodGet, "/documents/:token", "document-read", "documents", s.documentRead, false},
		{http.MethodGet, "/jwks", "jwks", "", s.jwks, true},
		// The usage log: searched, never written through the API.
		{http.MethodGet, "/AuditEvent", "search-type", "audit", s.auditSearch, false},
		{http.MethodPost, "/AuditEvent", "create", "audit-immutable", s.auditImmutable, false},
		{http.MethodGet, "/AuditEvent/:id", "read", "audit-immutable", s.auditImmutable, false},
		{http.MethodPut, "/AuditEvent/:id", "update", "audit-immutable", s.auditImmutable, false},
		{http.MethodDelete, "/AuditEvent/:id", "delete", "audit-immutable", s.auditImmutable, false},
		{http.MethodGet, "/healthz", "healthz", "", s.healthz, true},
		{http.MethodGet, "/readyz", "readyz", "", s.readyz, true},
		{http.MethodGet, "/metrics", "metrics", "", s.metricsHandler, true},
	}
}

// capabilityStatement builds the CapabilityStatement from the route table.
func (s *Server) capabilityStatement(base string) []byte {
	type interaction struct {
		Code string `json:"code"`
	}
	type operation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type              string        `json:"type"`
		SupportedProfile  []string      `json:"supportedProfile,omitempty"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalRead   string        `json:"conditionalRead"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchRevInclude  []string      `json:"searchRevInclude,omitempty"`
		SearchParam       []searchParam `json:"searchParam,omitempty"`
		Operation         []operation   `json:"operation,omitempty"`
	}
	var typeLevel []interaction
	var system []interaction
	for _, r := range s.routes {
		switch r.level {
		case "instance", "type":
			if !slices.Contains(typeLevel, interaction{r.interaction}) {
				typeLevel = append(typeLevel, interaction{r.interaction})
			}
		case "system":
			if r.interaction == "transaction" {
				system = append(system, interaction{"transaction"}, interaction{"batch"})
			}
		}
	}
	var resources []resource
	for _, t := range fhir.ServedTypes {
		interactions := typeLevel
		if t == "Consent" {
			// Privacy settings are lifted by an update, never deleted: the
			// delete handler answers 405, so delete is not promised.
			interactions = slices.DeleteFunc(slices.Clone(typeLevel), func(i interaction) bool { return i.Code == "delete" })
		}
		res := resource{
			Type: t, Interaction: interactions, Versioning: "versioned-update", ReadHistory: true,
			UpdateCreate: true, ConditionalCreate: t != "Patient", ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
		}
		if slices.Contains(typeLevel, interaction{"search-type"}) {
			res.SearchInclude, res.SearchRevInclude, res.SearchParam = s.searchCapabilities(t)
		}
		// The profile every stored resource of the type conforms to and
		// declares in meta.profile, so that clients can find it.
		if u, ok := profile.URL(t); ok {
			res.SupportedProfile = []string{u}
		}
		if res.Type == "Patient" {
			res.Operation = []operation{{Name: "kj-status", Definition: "https://kjernejournal.example.no/fhir/OperationDefinition/kj-status"}}
		}
		resources = append(resources, res)
	}
	if s.cfg.Documents != nil {
		resources = append(resources, resource{
			Type: "DocumentReference", Interaction: []interaction{{"search-type"}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam: []searchParam{
				{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/clinical-patient"},
				{Name: "type", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/clinical-type", Documentation: "document type or group, code system urn:oid:2.16.578.1.12.4.1.1.9602"},
				{Name: "category", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/DocumentReference-category"},
				{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/DocumentReference-date"},
			},
		})
	}
	if s.cfg.Notify != nil {
		// Change notifications: a Subscription is created and read, no more.
		resources = append(resources, resource{
			Type: "Subscription", Interaction: []interaction{{"create"}, {"read"}}, Versioning: "versioned",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
		})
	}
	if s.cfg.Audit != nil {
		resources = append(resources, resource{
			Type: "AuditEvent", Interaction: []interaction{{"search-type"}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam: []searchParam{
				{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-patient"},
				{Name: "agent", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-agent", Documentation: "HPR number of the health personnel (system|value or value)"},
				{Name: "organization", Type: "token", Definition: "https://kjernejournal.example.no/fhir/SearchParameter/AuditEvent-organization", Documentation: "organisation number of the legal entity"},
				{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-date"},
				{Name: "outcome", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-outcome"},
			},
		})
	}
	// A struct, not a map, so that resourceType comes first as FHIR
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
		Mode        string        `json:"mode"`
		Security    any           `json:"security,omitempty"`
		Resource    []resource    `json:"resource"`
		Interaction []interaction `json:"interaction"`
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
		Rest:           []rest{{Mode: "server", Security: s.securityElement(), Resource: resources, Interaction: system}},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic("capability statement does not marshal: " + err.Error())
	}
	return b
}

// securityElement is rest.security: SMART on FHIR with the oauth-uris
// extension naming the authorisation server's endpoints.
func (s *Server) securityElement() any {
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
		"cors": true,
		"service": []any{map[string]any{"coding": []any{map[string]string{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
		"description": "SMART on FHIR with HelseID-style tokens; every request also passes the Norwegian access rules (nhn-access-basis header).",
		"extension": []any{map[string]any{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": ext,
		}},
	}
}
