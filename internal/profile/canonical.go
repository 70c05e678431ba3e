package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/kjernejournal/kjernejournal/profiles"
)

// searchParameters are the SearchParameter resources of
// profiles.SearchParameters by id, served like the other conformance
// resources.
var searchParameters = func() map[string][]byte {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(profiles.SearchParameters, &b); err != nil {
		panic(fmt.Sprintf("profile: search-parameters.json: %v", err))
	}
	out := map[string][]byte{}
	for _, e := range b.Entry {
		var r struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(e.Resource, &r); err != nil || r.ResourceType != "SearchParameter" || r.ID == "" {
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.Resource); err != nil {
			panic(fmt.Sprintf("profile: search-parameters.json: %v", err))
		}
		out[r.ID] = compact.Bytes()
	}
	return out
}()

// Canonical is the part of a conformance resource canonical resolution
// looks at.
type Canonical struct {
	ID, URL, Version, Name string
	Body                   []byte
}

// Conformance returns every conformance resource of resourceType
// (StructureDefinition, CodeSystem, ValueSet, SearchParameter), ordered by
// id, for a search. The bodies are the caller's own.
func Conformance(resourceType string) []Canonical {
	src := embedded[resourceType]
	if resourceType == "SearchParameter" {
		src = searchParameters
	}
	out := make([]Canonical, 0, len(src))
	for _, id := range slices.Sorted(maps.Keys(src)) {
		var r struct {
			URL     string `json:"url"`
			Version string `json:"version"`
			Name    string `json:"name"`
		}
		_ = json.Unmarshal(src[id], &r)
		out = append(out, Canonical{ID: id, URL: r.URL, Version: r.Version, Name: r.Name, Body: slices.Clone(src[id])})
	}
	return out
}

// ConformanceResource is Resource, with the SearchParameters too.
func ConformanceResource(resourceType, id string) ([]byte, bool) {
	if resourceType == "SearchParameter" {
		b, ok := searchParameters[id]
		return slices.Clone(b), ok
	}
	return Resource(resourceType, id)
}
