package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// A route is one entry of the router. FHIR interactions carry their
// CapabilityStatement code and level, so that the CapabilityStatement is
// generated from the very table the router is built from.
type route struct {
	method, path string
	interaction  string // FHIR interaction code, or an operational name
	level        string // "instance", "type", "system", or "" for non-FHIR routes
	handle       gin.HandlerFunc
}

func (s *Server) routeTable() []route {
	return []route{
		{http.MethodGet, "/metadata", "capabilities", "system", s.capabilities},
		{http.MethodPost, "/", "transaction", "system", s.batchOrTransaction},
		{http.MethodPost, "/:type", "create", "type", s.create},
		{http.MethodGet, "/:type/:id", "read", "instance", s.read},
		{http.MethodPut, "/:type/:id", "update", "instance", s.update},
		{http.MethodDelete, "/:type/:id", "delete", "instance", s.delete},
		// The third segment is _history (instance history) or, under
		// Patient, a compartment type; gin needs one parameter name per
		// position, so one handler dispatches both.
		{http.MethodGet, "/:type/:id/:sub", "history-instance", "instance", s.instanceSub},
		{http.MethodGet, "/:type/:id/:sub/:vid", "vread", "instance", s.vread},
		{http.MethodGet, "/healthz", "healthz", "", s.healthz},
		{http.MethodGet, "/readyz", "readyz", "", s.readyz},
		{http.MethodGet, "/metrics", "metrics", "", s.metricsHandler},
	}
}

// capabilityStatement builds the CapabilityStatement from the route table.
func (s *Server) capabilityStatement(base string) []byte {
	type interaction struct {
		Code string `json:"code"`
	}
	type resource struct {
		Type              string        `json:"type"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalRead   string        `json:"conditionalRead"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete"`
	}
	var typeLevel []interaction
	var system []interaction
	for _, r := range s.routes {
		switch r.level {
		case "instance", "type":
			typeLevel = append(typeLevel, interaction{r.interaction})
		case "system":
			if r.interaction == "transaction" {
				system = append(system, interaction{"transaction"}, interaction{"batch"})
			}
		}
	}
	var resources []resource
	for _, t := range fhir.ServedTypes {
		resources = append(resources, resource{
			Type: t, Interaction: typeLevel, Versioning: "versioned-update", ReadHistory: true,
			UpdateCreate: true, ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
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
		Rest:           []rest{{Mode: "server", Resource: resources, Interaction: system}},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic("capability statement does not marshal: " + err.Error())
	}
	return b
}
