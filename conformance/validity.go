package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// The validity group: every resource and Bundle the server returns is
// valid FHIR R4 by the HL7 FHIR R4 JSON Schema (testdata/fhir), conforms
// to our profiles, and keeps the Bundle and OperationOutcome rules the
// schema cannot express. It runs last, over every body the other groups
// were served, and fetches a sample of its own so that it also works
// alone (--group validity).
//
// The JSON Schema checks structure, cardinality of required elements,
// value sets bound as enums, and the primitive types' patterns; it knows
// nothing of invariants, references or extensions' content. The server's
// $validate covers our profiles; the Bundle rules are checked here.
func init() {
	register(
		Check{GroupValidity, "validity/json-schema-types", "a sample of every resource type the CapabilityStatement lists (read, search, history, an error, the profiles) validates against the FHIR R4 JSON Schema", checkSchemaTypes},
		Check{GroupValidity, "validity/profiles", "every AllergyIntolerance and Flag served declares the profile the CapabilityStatement names and passes $validate; a copy without a required element is rejected", checkProfiles},
		Check{GroupValidity, "validity/bundle-rules", "searchset and history Bundles keep the Bundle rules (type, fullUrl, search.mode, self link, request/response) and every OperationOutcome issue has severity and code", checkBundleRules},
		Check{GroupValidity, "validity/json-schema-served", "every FHIR body the run was served validates against the FHIR R4 JSON Schema", checkSchemaServed},
	)
}

// Failure messages list the first problems only: one wrong element in a
// common resource can make every body of the run fail.
const (
	maxProblems    = 12
	maxSchemaErrs  = 4
	maxProblemLine = 400
	maxMessage     = 6000
)

// report fails the check with header and the first problems.
func report(t *T, header string, problems []string) {
	if len(problems) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(header)
	for i, p := range problems {
		if i == maxProblems || b.Len() > maxMessage {
			fmt.Fprintf(&b, "\n… and %d more", len(problems)-i)
			break
		}
		b.WriteString("\n")
		b.WriteString(clip(p, maxProblemLine))
	}
	t.Errorf("%s", b.String())
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // not in the middle of a character
	}
	return s[:n] + "…"
}

func schemaSummary(errs []schemaError) string {
	var parts []string
	for i, e := range errs {
		if i == maxSchemaErrs {
			parts = append(parts, fmt.Sprintf("(%d more)", len(errs)-i))
			break
		}
		parts = append(parts, clip(e.String(), 160))
	}
	return strings.Join(parts, "; ")
}

// checkSchemaTypes validates the group's own sample, so that the schema is
// exercised on every type even when the group runs alone.
func checkSchemaTypes(t *T) {
	schema := t.FHIRSchema()
	s := t.validitySample()
	var problems []string
	for _, r := range s.Responses {
		if rt := r.Res.ResourceType(); rt != r.WantType || !r.WantStatus(r.Res.Status) {
			problems = append(problems, fmt.Sprintf("%s: status %d, a %q; want a %s: %s", r.What, r.Res.Status, rt, r.WantType, Outcome(r.Res)))
		}
		errs, err := schema.Validate(r.Res.Body)
		if err != nil {
			t.Fatalf("validating %s: %v", r.What, err)
		}
		if len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s (%d, %s): %s", r.What, r.Res.Status, r.Res.ResourceType(), schemaSummary(errs)))
		}
	}
	report(t, fmt.Sprintf("%d of the sample's %d answers are wrong or do not validate against the FHIR R4 JSON Schema:", len(problems), len(s.Responses)), problems)
}

// checkSchemaServed validates every body the run was served, whichever
// check received it.
func checkSchemaServed(t *T) {
	schema := t.FHIRSchema()
	served := t.Served()
	if len(served) == 0 {
		// Run on its own: validate at least the group's sample rather
		// than pass on nothing.
		t.validitySample()
		served = t.Served()
	}
	var problems []string
	for _, s := range served {
		errs, err := schema.Validate(s.Body)
		if err != nil {
			t.Fatalf("validating the answer to %s %s: %v", s.Method, s.Path, err)
		}
		if len(errs) > 0 {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			_ = json.Unmarshal(s.Body, &head)
			problems = append(problems, fmt.Sprintf("%s got from %s %s (%d, %s): %s",
				s.Check, s.Method, s.Path, s.Status, or(head.ResourceType, "no resourceType"), schemaSummary(errs)))
		}
	}
	report(t, fmt.Sprintf("%d of the %d distinct FHIR bodies served in this run do not validate against the FHIR R4 JSON Schema:", len(problems), len(served)), problems)
}

// servedResource is a resource found in a served body (top level or in a
// Bundle), with where it came from.
type servedResource struct {
	From     Served
	Resource map[string]any
	Raw      json.RawMessage
}

// resourcesOf returns the resources of the given types in a served body,
// at the top level or in Bundle entries (nested Bundles too). Only those
// are decoded in full: the run's bodies are megabytes of AuditEvents.
func resourcesOf(s Served, types ...string) []servedResource {
	var out []servedResource
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var head struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if json.Unmarshal(raw, &head) != nil {
			return
		}
		if slices.Contains(types, head.ResourceType) {
			var r map[string]any
			if json.Unmarshal(raw, &r) == nil {
				out = append(out, servedResource{From: s, Resource: r, Raw: raw})
			}
		}
		for _, e := range head.Entry {
			if len(e.Resource) > 0 {
				walk(e.Resource)
			}
		}
	}
	walk(s.Body)
	return out
}

func metaOf(r map[string]any) (versionID string, profiles []string) {
	m, _ := r["meta"].(map[string]any)
	versionID, _ = m["versionId"].(string)
	ps, _ := m["profile"].([]any)
	for _, p := range ps {
		if s, ok := p.(string); ok {
			profiles = append(profiles, s)
		}
	}
	return versionID, profiles
}

// profiledTypes are the types with a kjernejournal profile.
var profiledTypes = []string{"AllergyIntolerance", "Flag"}

var profiledTypeRE = regexp.MustCompile(`"resourceType"\s*:\s*"(AllergyIntolerance|Flag)"`)

// brokenCopies remove from a conforming resource one element that the
// profile requires and base R4 does not, so that only a validator that
// applies the profile rejects the copy.
var brokenCopies = map[string]string{
	"AllergyIntolerance": "criticality",
	"Flag":               "category",
}

func checkProfiles(t *T) {
	caps, err := capabilities(t.Do(Request{Path: "metadata"}))
	if err != nil {
		t.Fatalf("%v", err)
	}
	profiles := map[string][]string{}
	for _, typ := range profiledTypes {
		i := slices.IndexFunc(caps, func(r capResource) bool { return r.Type == typ })
		switch {
		case i < 0:
			t.Errorf("the CapabilityStatement lists no %s", typ)
		case len(caps[i].profiles()) == 0:
			t.Errorf("the CapabilityStatement declares no profile for %s (rest.resource.supportedProfile)", typ)
		default:
			profiles[typ] = caps[i].profiles()
		}
	}
	if len(profiles) == 0 {
		t.Fatalf("no profile to check against")
	}

	// The sample has a conforming Flag and AllergyIntolerance whatever
	// else ran, and a patient for the GP's token.
	sample := t.validitySample()
	gp := func(path string, body any) Request {
		return Request{Method: http.MethodPost, Path: path, As: PersonaGP, Patient: sample.Patient, Basis: "UNNTAK", Body: body}
	}

	seen := map[string]bool{}
	var problems []string
	checked := 0
	for _, s := range t.Served() {
		if !profiledTypeRE.Match(s.Body) {
			continue // most bodies: no need to decode them
		}
		for _, r := range resourcesOf(s, profiledTypes...) {
			typ := r.Resource["resourceType"].(string)
			want := profiles[typ]
			if len(want) == 0 || isSubsetted(r.Resource) {
				// _elements and _summary may leave meta out; such a
				// resource is marked incomplete and is not the record.
				continue
			}
			id, _ := r.Resource["id"].(string)
			vid, profs := metaOf(r.Resource)
			key := typ + "/" + id + "/_history/" + vid
			if id == "" {
				key = string(r.Raw)
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			checked++
			where := fmt.Sprintf("%s/%s (version %s, served to %s %s %s)", typ, id, vid, s.Check, s.Method, s.Path)
			if !slices.ContainsFunc(profs, func(p string) bool {
				u, _, _ := strings.Cut(p, "|")
				return slices.Contains(want, u)
			}) {
				problems = append(problems, fmt.Sprintf("%s: meta.profile %v does not declare %s", where, profs, strings.Join(want, " or ")))
			}
			res := t.Do(gp(typ+"/$validate?profile="+url.QueryEscape(want[0]), []byte(r.Raw)))
			if bad := outcomeErrors(res); res.Status != http.StatusOK || bad != "" {
				problems = append(problems, fmt.Sprintf("%s: $validate against %s: status %d: %s", where, want[0], res.Status, or(bad, Outcome(res))))
			}
		}
	}
	report(t, fmt.Sprintf("%d profile problems in the %d AllergyIntolerance and Flag versions served:", len(problems), checked), problems)

	// $validate must be able to say no: a copy of the sample's conforming
	// resource without an element the profile requires.
	for _, typ := range profiledTypes {
		if len(profiles[typ]) == 0 {
			continue
		}
		elem := brokenCopies[typ]
		broken := map[string]any{}
		for k, v := range sample.Created[typ] {
			if k != elem {
				broken[k] = v
			}
		}
		res := t.Do(gp(typ+"/$validate?profile="+url.QueryEscape(profiles[typ][0]), broken))
		bad := outcomeErrors(res)
		switch {
		case res.ResourceType() != "OperationOutcome":
			t.Errorf("$validate of a copy of the sample's %s without %s: status %d, not an OperationOutcome: %s", typ, elem, res.Status, Outcome(res))
		case bad == "":
			t.Errorf("$validate accepts a copy of the sample's %s without %s, which %s requires: %s", typ, elem, profiles[typ][0], Outcome(res))
		case !strings.Contains(bad, elem):
			t.Errorf("$validate rejects a copy of the sample's %s without %s, but its errors do not name %s: %s", typ, elem, elem, bad)
		}
	}
}

// outcomeErrors returns the error and fatal issues of an OperationOutcome
// answer (diagnostics and expressions), or "" when it has none; a body
// that is no OperationOutcome is an error too.
func outcomeErrors(res *Response) string {
	if res.ResourceType() != "OperationOutcome" {
		return "not an OperationOutcome: " + Outcome(res)
	}
	var oo struct {
		Issue []struct {
			Severity    string   `json:"severity"`
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	_ = json.Unmarshal(res.Body, &oo)
	var out []string
	for _, i := range oo.Issue {
		if i.Severity == "error" || i.Severity == "fatal" {
			out = append(out, fmt.Sprintf("%s/%s %v: %s", i.Severity, i.Code, i.Expression, or(i.Diagnostics, i.Details.Text)))
		}
	}
	return strings.Join(out, "; ")
}

// checkBundleRules checks what the JSON Schema cannot: the Bundle
// invariants of R4 (bdl-1 to bdl-4, bdl-7, bdl-8), what a search answer
// must carry, and OperationOutcome issues with severity and code (the
// schema requires neither, as a primitive may come with an extension
// instead of a value).
func checkBundleRules(t *T) {
	served := t.Served()
	if !slices.ContainsFunc(served, func(s Served) bool { return requestKind(t, s) == "search" }) {
		t.validitySample()
		served = t.Served()
	}
	var problems []string
	searches := 0
	for _, s := range served {
		var r fhirResource
		if json.Unmarshal(s.Body, &r) != nil {
			continue // not JSON: json-schema-served says so
		}
		where := fmt.Sprintf("%s %s (%s, %d)", s.Method, s.Path, s.Check, s.Status)
		kind := requestKind(t, s)
		rt := r.ResourceType
		want := ""
		if ok2xx(s.Status) && (kind == "search" || kind == "history") {
			want = map[string]string{"search": "searchset", "history": "history"}[kind]
			if kind == "search" {
				searches++
			}
			if rt != "Bundle" {
				problems = append(problems, fmt.Sprintf("%s: a %s answered a %q, want a Bundle of type %s", where, kind, rt, want))
				continue
			}
		}
		for _, p := range rulesOf(&r, want) {
			problems = append(problems, where+": "+p)
		}
	}
	if searches == 0 {
		t.Errorf("no search answer to check among the %d bodies served", len(served))
	}
	report(t, fmt.Sprintf("%d Bundle or OperationOutcome rules broken in the %d distinct bodies served:", len(problems), len(served)), problems)
}

// requestKind says whether a served body answered a search, a history or
// something else, from its request: GET [type], GET Patient/[id]/[type]
// (compartment), POST [type]/_search; GET .../_history.
func requestKind(t *T, s Served) string {
	base, _ := url.Parse(t.env.base)
	p, _, _ := strings.Cut(s.Path, "?")
	p = strings.Trim(strings.TrimPrefix(p, base.Path), "/")
	seg := strings.Split(p, "/")
	isType := func(x string) bool { return x != "" && x[0] >= 'A' && x[0] <= 'Z' }
	switch {
	case s.Method == http.MethodGet && seg[len(seg)-1] == "_history":
		return "history"
	case s.Method == http.MethodGet && len(seg) == 1 && isType(seg[0]):
		return "search"
	case s.Method == http.MethodGet && len(seg) == 3 && seg[0] == "Patient" && isType(seg[2]):
		return "search"
	case s.Method == http.MethodPost && len(seg) == 2 && isType(seg[0]) && seg[1] == "_search":
		return "search"
	}
	return ""
}

// fhirResource is what the Bundle and OperationOutcome rules read of a
// resource; entries' resources stay raw until they turn out to be a Bundle
// or an OperationOutcome.
type fhirResource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID string `json:"versionId"`
	} `json:"meta"`
	// OperationOutcome
	Issue []struct {
		Severity any `json:"severity"`
		Code     any `json:"code"`
	} `json:"issue"`
	// Bundle
	Type  string          `json:"type"`
	Total json.RawMessage `json:"total"`
	Link  []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode any `json:"mode"`
		} `json:"search"`
		Request *struct {
			Method any `json:"method"`
			URL    any `json:"url"`
		} `json:"request"`
		Response *struct {
			Status  any             `json:"status"`
			Outcome json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

// resourceRules checks one resource and the resources in it; wantBundle
// is the Bundle type the request calls for ("" when any).
func resourceRules(raw json.RawMessage, wantBundle string) []string {
	var r fhirResource
	if json.Unmarshal(raw, &r) != nil {
		return nil // json-schema-served reports what is not FHIR JSON
	}
	return rulesOf(&r, wantBundle)
}

func rulesOf(r *fhirResource, wantBundle string) []string {
	switch r.ResourceType {
	case "OperationOutcome":
		return outcomeRules(r)
	case "Bundle":
		return bundleRules(r, wantBundle)
	}
	return nil
}

func outcomeRules(r *fhirResource) []string {
	if len(r.Issue) == 0 {
		return []string{"OperationOutcome without an issue"}
	}
	var out []string
	for i, is := range r.Issue {
		if sev, _ := is.Severity.(string); !slices.Contains([]string{"fatal", "error", "warning", "information"}, sev) {
			out = append(out, fmt.Sprintf("OperationOutcome.issue[%d].severity %v, want fatal, error, warning or information", i, is.Severity))
		}
		if code, _ := is.Code.(string); code == "" {
			out = append(out, fmt.Sprintf("OperationOutcome.issue[%d] has no code", i))
		}
	}
	return out
}

func bundleRules(b *fhirResource, want string) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	typ := b.Type
	if want != "" && typ != want {
		add("Bundle.type %q, want %s", typ, want)
	}
	if len(b.Total) > 0 && typ != "searchset" && typ != "history" {
		add("a %s Bundle has total (bdl-1: only searchset and history)", typ)
	}
	if typ == "searchset" && !slices.ContainsFunc(b.Link, func(l struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}) bool {
		return l.Relation == "self" && l.URL != ""
	}) {
		add("searchset Bundle without a self link")
	}
	fullURLs := map[string]bool{}
	for i, e := range b.Entry {
		at := fmt.Sprintf("Bundle.entry[%d]", i)
		var res fhirResource
		hasResource := len(e.Resource) > 0 && json.Unmarshal(e.Resource, &res) == nil
		if e.Search != nil && typ != "searchset" {
			add("%s.search in a %s Bundle (bdl-2: only in searchset)", at, typ)
		}
		if e.FullURL != "" {
			if u, err := url.Parse(e.FullURL); err != nil || !u.IsAbs() {
				add("%s.fullUrl %q is not absolute", at, e.FullURL)
			}
			if strings.Contains(e.FullURL, "/_history/") {
				add("%s.fullUrl %q is version specific (bdl-8)", at, e.FullURL)
			}
			if res.ID != "" && strings.HasPrefix(e.FullURL, "http") && !strings.HasSuffix(e.FullURL, "/"+res.ResourceType+"/"+res.ID) {
				add("%s.fullUrl %q does not end with the resource's %s/%s", at, e.FullURL, res.ResourceType, res.ID)
			}
			// bdl-7: unique, except for versions of one resource in a
			// history.
			key := e.FullURL
			if typ == "history" {
				key += "|" + res.Meta.VersionID
			}
			if fullURLs[key] {
				add("%s.fullUrl %q appears twice (bdl-7)", at, e.FullURL)
			}
			fullURLs[key] = true
		}
		switch typ {
		case "searchset":
			// An entry of a resource with an id names it by its absolute
			// URL; an OperationOutcome made for this answer has no id
			// and needs none.
			if e.FullURL == "" && res.ID != "" {
				add("%s has no fullUrl; a searchset entry of %s/%s needs its absolute URL", at, res.ResourceType, res.ID)
			}
			var mode any
			if e.Search != nil {
				mode = e.Search.Mode
			}
			if m, _ := mode.(string); !slices.Contains([]string{"match", "include", "outcome"}, m) {
				add("%s.search.mode %v, want match, include or outcome", at, mode)
			}
		case "history":
			if e.Request == nil || e.Request.Method == nil || e.Request.URL == nil {
				add("%s.request needs method and url in a history (bdl-3)", at)
			}
			if e.Response == nil || e.Response.Status == nil {
				add("%s.response.status is required in a history (bdl-4)", at)
			}
		}
		if hasResource && (res.ResourceType == "OperationOutcome" || res.ResourceType == "Bundle") {
			for _, p := range rulesOf(&res, "") {
				add("%s.resource: %s", at, p)
			}
		}
		if e.Response != nil && len(e.Response.Outcome) > 0 {
			for _, p := range resourceRules(e.Response.Outcome, "") {
				add("%s.response.outcome: %s", at, p)
			}
		}
	}
	return out
}
