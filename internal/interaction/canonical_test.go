package interaction

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// TestConformanceResources: the conformance types are routed (read and
// search public, writes 405), served from the embedded profiles, searched
// by canonical url (also url|version), name and version, paged, and every
// access is a decision recorded in the facts.
func TestConformanceResources(t *testing.T) {
	s := newService(t)
	routes := []struct {
		method, url string
		kind        Kind
		status      int
	}{
		{"GET", "SearchParameter/clinical-patient", Read, 0},
		{"GET", "SearchParameter?url=http://hl7.org/fhir/SearchParameter/clinical-patient", Search, 0},
		{"GET", "StructureDefinition?name=KjFlag", Search, 0},
		{"GET", "CodeSystem", Search, 0},
		{"POST", "ValueSet", "", 405},
		{"PUT", "SearchParameter/clinical-patient", "", 405},
		{"DELETE", "StructureDefinition/KjFlag", "", 405},
	}
	for _, r := range routes {
		path, query, _ := strings.Cut(r.url, "?")
		c, err := s.ParseCall(r.method, path, query)
		if r.status != 0 {
			var e *Error
			require.True(t, errors.As(err, &e), "%s %s: %v", r.method, r.url, err)
			assert.Equal(t, r.status, e.Status, r.url)
			continue
		}
		require.NoError(t, err, r.url)
		assert.Equal(t, r.kind, c.Kind, r.url)
		assert.True(t, c.Public(), r.url)
	}

	do := func(url string) (*Result, *Facts, error) {
		path, query, _ := strings.Cut(url, "?")
		c, err := s.ParseCall("GET", path, query)
		require.NoError(t, err, url)
		f := &Facts{}
		res, err := s.Do(context.Background(), &Request{Base: "http://kj", Facts: f}, c)
		return res, f, err
	}
	search := func(url string) (ids []string, total int, next string) {
		res, f, err := do(url)
		require.NoError(t, err, url)
		require.Len(t, f.Accesses, 1)
		assert.Equal(t, access.Permit, f.Accesses[0].Decision.Effect)
		var b struct {
			Total int
			Link  []struct{ Relation, URL string }
			Entry []struct{ Resource struct{ ID string } }
		}
		require.NoError(t, json.Unmarshal(res.Body, &b))
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
		}
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = strings.TrimPrefix(l.URL, "http://kj/")
			}
		}
		return ids, b.Total, next
	}

	res, f, err := do("SearchParameter/clinical-patient")
	require.NoError(t, err)
	assert.Contains(t, string(res.Body), `"url":"http://hl7.org/fhir/SearchParameter/clinical-patient"`)
	require.Len(t, f.Accesses, 1)
	assert.Equal(t, access.Permit, f.Accesses[0].Decision.Effect)
	_, _, err = do("SearchParameter/no-such")
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, http.StatusNotFound, e.Status)

	ids, _, _ := search("SearchParameter?url=http://hl7.org/fhir/SearchParameter/clinical-patient")
	assert.Equal(t, []string{"clinical-patient"}, ids)
	ids, _, _ = search("SearchParameter?url=http://hl7.org/fhir/SearchParameter/clinical-patient|4.0.1")
	assert.Equal(t, []string{"clinical-patient"}, ids)
	ids, _, _ = search("SearchParameter?url=http://hl7.org/fhir/SearchParameter/clinical-patient|9.9")
	assert.Empty(t, ids)
	ids, total, _ := search("StructureDefinition?url=http://example.org/none")
	assert.Empty(t, ids)
	assert.Zero(t, total)
	ids, _, _ = search("StructureDefinition?name:exact=KjFlag")
	assert.Equal(t, []string{"KjFlag"}, ids)
	ids, _, _ = search("StructureDefinition?name=kjfl")
	assert.Contains(t, ids, "KjFlag")

	// Paging: _count pages the whole list, by next links.
	all, total, _ := search("SearchParameter?_count=1000")
	require.Greater(t, total, 3)
	assert.Len(t, all, total)
	var paged []string
	for url := "SearchParameter?_count=7"; url != ""; {
		var page []string
		page, _, url = search(url)
		require.LessOrEqual(t, len(page), 7)
		paged = append(paged, page...)
	}
	assert.Equal(t, all, paged)

	_, _, err = do("SearchParameter?base=Flag")
	require.True(t, errors.As(err, &e))
	assert.Equal(t, http.StatusBadRequest, e.Status)

	// The CapabilityStatement lists them, and $validate.
	cs := string(s.capabilityStatement("http://kj"))
	for _, typ := range access.ConformanceTypes {
		assert.Contains(t, cs, `"type":"`+typ+`"`)
	}
	assert.Contains(t, cs, `"name":"validate"`)
}
