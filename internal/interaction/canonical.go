package interaction

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// The server's conformance resources (StructureDefinition, CodeSystem,
// ValueSet, SearchParameter) are served from the embedded profiles: read
// by id and searched by canonical url (also url|version), name and
// version, as validators and SMART apps resolve them. They are public and
// belong to no patient, but every access still passes the decision point
// (access.Conformance) and is recorded in the facts the usage log keeps.

// conformanceParams are the search parameters of the conformance types,
// for the router's searches and the CapabilityStatement.
var conformanceParams = []csSearchParam{
	{Name: "_id", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"},
	{Name: "url", Type: "uri", Definition: "http://hl7.org/fhir/SearchParameter/conformance-url", Documentation: "the canonical url, exact; url|version matches that version"},
	{Name: "name", Type: "string", Definition: "http://hl7.org/fhir/SearchParameter/conformance-name", Documentation: "starts with, ignoring case; name:exact and name:contains"},
	{Name: "version", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/conformance-version"},
}

// conformanceDecide passes an access to the conformance resources through
// the decision point and records it (for no patient).
func conformanceDecide(req *Request, in access.Interaction, typ string) error {
	d := access.Conformance(access.Request{Interaction: in, ResourceType: typ})
	req.Facts.note("", typ, d)
	if !d.Allowed() {
		return refusal(d, absent{})
	}
	return nil
}

// conformanceRead serves GET /{type}/{id} of a conformance type.
func (s *Service) conformanceRead(req *Request, c *Call) (*Result, error) {
	if err := conformanceDecide(req, access.Read, c.Type); err != nil {
		return nil, err
	}
	body, ok := profile.ConformanceResource(c.Type, c.ID)
	if !ok {
		return nil, notFound("%s/%s is not known", c.Type, c.ID)
	}
	return &Result{Status: http.StatusOK, Body: body}, nil
}

// conformanceSearch serves GET /{type}?url=&name=&version=&_id= of a
// conformance type, paged by _count and _offset.
func (s *Service) conformanceSearch(req *Request, c *Call) (*Result, error) {
	params, err := searchParams(c)
	if err != nil {
		return nil, err
	}
	count, offset := search.DefaultCount, 0
	type test func(profile.Canonical) bool
	var tests []test
	kept := url.Values{}
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	}) {
		name, modifier, _ := strings.Cut(key, ":")
		for _, value := range params[key] {
			switch {
			case key == "_count" || key == "_offset":
				n, err := strconv.Atoi(value)
				if err != nil || n < 0 {
					return nil, invalid(key, "%s must be a whole number ≥ 0, not %q", key, value)
				}
				if key == "_count" {
					count = min(n, search.MaxCount)
				} else {
					offset = n
				}
				continue
			case strings.HasPrefix(key, "_") && key != "_id":
				// _format, _pretty, _total and the like: the adapter's or
				// of no effect on a list this small.
				continue
			case !slices.ContainsFunc(conformanceParams, func(p csSearchParam) bool { return p.Name == name }) ||
				modifier != "" && (name != "name" || modifier != "exact" && modifier != "contains"):
				if c.Lenient {
					continue
				}
				return nil, invalid(key, "unknown search parameter %q for %s; supported: _id, url, name (:exact, :contains), version, _count", key, c.Type)
			}
			kept.Add(key, value)
			alts := strings.Split(value, ",")
			tests = append(tests, func(r profile.Canonical) bool {
				for _, v := range alts {
					if conformanceMatch(name, modifier, v, r) {
						return true
					}
				}
				return false
			})
		}
	}
	var matches []profile.Canonical
	for _, r := range profile.Conformance(c.Type) {
		if !slices.ContainsFunc(tests, func(t test) bool { return !t(r) }) {
			matches = append(matches, r)
		}
	}
	if err := conformanceDecide(req, access.Search, c.Type); err != nil {
		return nil, err
	}
	total := len(matches)
	link := func(rel string, off int) fhir.Link {
		v := url.Values{}
		for k, vs := range kept {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(count))
		if off > 0 {
			v.Set("_offset", strconv.Itoa(off))
		}
		return fhir.Link{Relation: rel, URL: req.Base + "/" + c.Type + "?" + v.Encode()}
	}
	links := []fhir.Link{link("self", offset)}
	if offset+count < total {
		links = append(links, link("next", offset+count))
	}
	if offset > 0 {
		links = append(links, link("previous", max(0, offset-count)))
	}
	var entries []fhir.BundleEntry
	for i := offset; i < total && i < offset+count; i++ {
		m := matches[i]
		entries = append(entries, fhir.BundleEntry{FullURL: req.Base + "/" + c.Type + "/" + m.ID, Resource: m.Body, SearchMode: "match"})
	}
	opts := fhir.BundleOptions{Type: "searchset", Links: links, ID: rand.Text(), Total: &total}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(opts, entries)}, nil
}

// conformanceMatch applies one value of one parameter to a resource.
func conformanceMatch(name, modifier, v string, r profile.Canonical) bool {
	switch name {
	case "_id":
		return r.ID == v
	case "version":
		return r.Version == v
	case "url":
		u, version, versioned := strings.Cut(v, "|")
		return r.URL == u && (!versioned || r.Version == version)
	case "name":
		switch modifier {
		case "exact":
			return r.Name == v
		case "contains":
			return strings.Contains(strings.ToLower(r.Name), strings.ToLower(v))
		}
		return strings.HasPrefix(strings.ToLower(r.Name), strings.ToLower(v))
	}
	return false
}

// conformanceCapabilities are the CapabilityStatement entries of the
// conformance types: read and search, nothing written.
func conformanceCapabilities() []csResource {
	var out []csResource
	for _, t := range access.ConformanceTypes {
		out = append(out, csResource{
			Type: t, Interaction: []csInteraction{{string(Read)}, {string(Search)}}, Versioning: "no-version",
			ConditionalRead: "not-supported", ConditionalDelete: "not-supported",
			SearchParam:   conformanceParams,
			Documentation: "the server's own conformance resources, read-only and public (no token needed); canonical resolution by url, url|version, name and version",
		})
	}
	return out
}

// validateOperation is the $validate the router serves (type level, POST)
// for every record type.
var validateOperation = csOperation{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
