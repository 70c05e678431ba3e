package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The server's conformance resources (StructureDefinition, CodeSystem,
// ValueSet, SearchParameter) are read by id and resolved by canonical url,
// url|version, name and version, without a token, as validators and SMART
// apps do; they cannot be written; and the CapabilityStatement lists them
// with their search parameters, and $validate.

func init() {
	register(
		Check{GroupREST, "rest/conformance-read", "SearchParameter/{id} (and the other conformance types) are read by id without a token; an unknown id is 404", checkConformanceRead},
		Check{GroupREST, "rest/conformance-canonical", "conformance resources are searched by canonical url, url|version, name and version; an unknown url gives an empty searchset Bundle; _count pages with next links", checkConformanceCanonical},
		Check{GroupREST, "rest/conformance-readonly", "writes of conformance resources answer 405 with an OperationOutcome", checkConformanceReadOnly},
		Check{GroupREST, "rest/conformance-capability", "the CapabilityStatement lists StructureDefinition, CodeSystem, ValueSet and SearchParameter with url, name and version, and the $validate operation", checkConformanceCapability},
	)
}

// restConformanceTypes are the conformance resource types the checks expect.
var restConformanceTypes = []string{"StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter"}

// restConformanceSearch searches without a token and returns the matches'
// resources, the Bundle's total and its next link.
func restConformanceSearch(t *T, path string) (matches []map[string]any, total float64, next string, ok bool) {
	res := t.Do(Request{Path: path})
	if res.Status != http.StatusOK || res.ResourceType() != "Bundle" {
		t.Errorf("GET %s: status %d, resourceType %q, want 200 and a searchset Bundle: %s", path, res.Status, res.ResourceType(), Outcome(res))
		return nil, 0, "", false
	}
	b := res.JSON()
	if b["type"] != "searchset" {
		t.Errorf("GET %s: Bundle.type %v, want searchset", path, b["type"])
	}
	total, _ = b["total"].(float64)
	links, _ := b["link"].([]any)
	for _, l := range links {
		if m, _ := l.(map[string]any); m["relation"] == "next" {
			next, _ = m["url"].(string)
		}
	}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		if s, _ := em["search"].(map[string]any); s != nil && s["mode"] != "match" {
			continue
		}
		if r, _ := em["resource"].(map[string]any); r != nil {
			matches = append(matches, r)
		}
	}
	return matches, total, next, true
}

func restIDs(rs []map[string]any) []string {
	var ids []string
	for _, r := range rs {
		id, _ := r["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// restSomeSearchParameter is one SearchParameter the server serves (from
// an unfiltered search), or ends the check.
func restSomeSearchParameter(t *T) map[string]any {
	all, _, _, ok := restConformanceSearch(t, "SearchParameter?_count=1000")
	if !ok {
		t.Fatalf("no SearchParameter to resolve")
	}
	for _, r := range all {
		if r["url"] != nil && r["version"] != nil && r["name"] != nil {
			return r
		}
	}
	t.Fatalf("GET SearchParameter: no SearchParameter with url, version and name among %d", len(all))
	return nil
}

func checkConformanceRead(t *T) {
	res := t.Do(Request{Path: "SearchParameter/clinical-patient"})
	if res.Status != http.StatusOK || res.ResourceType() != "SearchParameter" || res.JSON()["id"] != "clinical-patient" {
		t.Errorf("GET SearchParameter/clinical-patient (no token): status %d, resourceType %q, want 200 and the SearchParameter: %s", res.Status, res.ResourceType(), Outcome(res))
	} else if res.JSON()["url"] != "http://hl7.org/fhir/SearchParameter/clinical-patient" {
		t.Errorf("GET SearchParameter/clinical-patient: url %v", res.JSON()["url"])
	}
	for _, typ := range restConformanceTypes {
		all, _, _, ok := restConformanceSearch(t, typ+"?_count=1000")
		if !ok {
			continue
		}
		if len(all) == 0 {
			t.Errorf("GET %s: no %s resources served", typ, typ)
			continue
		}
		id, _ := all[0]["id"].(string)
		res := t.Do(Request{Path: typ + "/" + id})
		if res.Status != http.StatusOK || res.JSON()["id"] != id || res.ResourceType() != typ {
			t.Errorf("GET %s/%s (found by search): status %d, want 200 and the resource: %s", typ, id, res.Status, Outcome(res))
		}
	}
	restExpectError(t, "GET SearchParameter/no-such-parameter", t.Do(Request{Path: "SearchParameter/no-such-parameter"}), http.StatusNotFound)
}

func checkConformanceCanonical(t *T) {
	sp := restSomeSearchParameter(t)
	id, _ := sp["id"].(string)
	u, _ := sp["url"].(string)
	version, _ := sp["version"].(string)
	name, _ := sp["name"].(string)
	expectOne := func(query string) {
		path := "SearchParameter?" + query
		got, _, _, ok := restConformanceSearch(t, path)
		if ok && !slices.Contains(restIDs(got), id) {
			t.Errorf("GET %s: matches %v, want SearchParameter/%s among them", path, restIDs(got), id)
		}
		for _, r := range got {
			if strings.HasPrefix(query, "url=") && r["url"] != u {
				t.Errorf("GET %s: matched SearchParameter/%v with url %v", path, r["id"], r["url"])
			}
		}
	}
	expectOne("url=" + url.QueryEscape(u))
	expectOne("url=" + url.QueryEscape(u+"|"+version))
	expectOne("name=" + url.QueryEscape(name))
	expectOne("version=" + url.QueryEscape(version) + "&url=" + url.QueryEscape(u))
	if got, _, _, ok := restConformanceSearch(t, "SearchParameter?url="+url.QueryEscape(u+"|0.0.0-none")); ok && len(got) > 0 {
		t.Errorf("GET SearchParameter?url=%s|0.0.0-none: matches %v, want none (another version)", u, restIDs(got))
	}
	for _, typ := range restConformanceTypes {
		path := typ + "?url=" + url.QueryEscape("http://example.org/fhir/no-such-canonical")
		got, total, _, ok := restConformanceSearch(t, path)
		if ok && (len(got) > 0 || total != 0) {
			t.Errorf("GET %s: %d matches, total %v, want an empty Bundle", path, len(got), total)
		}
	}
	// The StructureDefinitions by url, as a validator resolves a profile
	// from meta.profile.
	sds, _, _, _ := restConformanceSearch(t, "StructureDefinition?_count=1000")
	for _, sd := range sds {
		su, _ := sd["url"].(string)
		got, _, _, ok := restConformanceSearch(t, "StructureDefinition?url="+url.QueryEscape(su))
		if ok && !slices.Equal(restIDs(got), []string{sd["id"].(string)}) {
			t.Errorf("GET StructureDefinition?url=%s: matches %v, want [%v]", su, restIDs(got), sd["id"])
		}
	}
	// Paging: _count pages through every SearchParameter by next links.
	all, total, _, _ := restConformanceSearch(t, "SearchParameter?_count=1000")
	if int(total) != len(all) {
		t.Errorf("GET SearchParameter?_count=1000: total %v, %d entries", total, len(all))
	}
	var paged []string
	next, pages := "SearchParameter?_count=10", 0
	for next != "" && pages <= len(all) {
		var page []map[string]any
		var ok bool
		page, _, next, ok = restConformanceSearch(t, next)
		if !ok {
			return
		}
		if len(page) > 10 {
			t.Errorf("_count=10: a page of %d", len(page))
		}
		paged = append(paged, restIDs(page)...)
		pages++
	}
	if !slices.Equal(paged, restIDs(all)) {
		t.Errorf("SearchParameter?_count=10 by next links: %d resources, want the %d of one page", len(paged), len(all))
	}
}

func checkConformanceReadOnly(t *T) {
	sp := t.Do(Request{Path: "SearchParameter/clinical-patient"})
	body := sp.JSON()
	for _, req := range []Request{
		{Method: http.MethodPut, Path: "SearchParameter/clinical-patient", Body: body},
		{Method: http.MethodDelete, Path: "SearchParameter/clinical-patient"},
		{Method: http.MethodPost, Path: "SearchParameter", Body: body},
		{Method: http.MethodPost, Path: "ValueSet", Body: map[string]any{"resourceType": "ValueSet", "status": "draft"}},
	} {
		res := t.Do(req) // refused by the router, before any token is asked for
		restExpectError(t, method(req)+" "+req.Path, res, http.StatusMethodNotAllowed)
	}
}

func checkConformanceCapability(t *T) {
	cs := restCapabilities(t)
	for _, typ := range restConformanceTypes {
		i := slices.IndexFunc(cs.Resource, func(r restCapResource) bool { return r.Type == typ })
		if i < 0 {
			t.Errorf("the CapabilityStatement does not list %s", typ)
			continue
		}
		r := cs.Resource[i]
		for _, code := range []string{"read", "search-type"} {
			if !r.has(code) {
				t.Errorf("the CapabilityStatement's %s lacks the %s interaction", typ, code)
			}
		}
		for _, p := range []string{"url", "name", "version"} {
			if !slices.ContainsFunc(r.SearchParam, func(sp struct {
				Name string `json:"name"`
				Type string `json:"type"`
			}) bool {
				return sp.Name == p
			}) {
				t.Errorf("the CapabilityStatement's %s lacks the search parameter %s", typ, p)
			}
		}
	}
	validate := false
	for _, r := range cs.Resource {
		for _, op := range r.Operation {
			validate = validate || strings.TrimPrefix(op.Name, "$") == "validate"
		}
	}
	if !validate {
		t.Errorf("the CapabilityStatement lists no $validate operation, though POST {type}/$validate is served")
	}
}
