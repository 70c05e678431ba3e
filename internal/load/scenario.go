package load

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
)

// FHIRJSON is the FHIR R4 JSON media type.
const FHIRJSON = "application/fhir+json"

// Request is one request a Scenario asks for.
type Request struct {
	Method string // "" means GET
	// Path is appended to Config.BaseURL; it starts with "/" and may carry
	// a query string.
	Path string
	Body []byte
	// ContentType is sent when Body is non-nil; "" means FHIRJSON.
	ContentType string
	// Expect lists the status codes that count as success; empty means 200.
	Expect []int
}

func (r *Request) expected(status int) bool {
	if len(r.Expect) == 0 {
		return status == http.StatusOK
	}
	for _, s := range r.Expect {
		if s == status {
			return true
		}
	}
	return false
}

// Scenario returns a worker's next request. Each worker calls it from its
// own goroutine with its own generator, so a Scenario must not mutate shared
// state without synchronisation; it is called outside the timed section.
type Scenario func(r *rand.Rand) Request

// ReadScenario GETs paths (e.g. "Patient/123" or "/Patient/123") uniformly
// at random and expects 200. It panics if paths is empty.
func ReadScenario(paths []string) Scenario {
	if len(paths) == 0 {
		panic("load: ReadScenario needs at least one path")
	}
	ps := make([]string, len(paths))
	for i, p := range paths {
		ps[i] = "/" + strings.TrimLeft(strings.TrimSpace(p), "/")
	}
	return func(r *rand.Rand) Request {
		return Request{Method: http.MethodGet, Path: ps[r.IntN(len(ps))]}
	}
}

// CompartmentScenario GETs /Patient/{id}/{Type} for a random patient and
// type and expects 200 (a searchset Bundle). patientIDs may be bare ids or
// "Patient/{id}". It panics if either list is empty.
func CompartmentScenario(patientIDs []string, types []string) Scenario {
	if len(patientIDs) == 0 || len(types) == 0 {
		panic("load: CompartmentScenario needs at least one patient id and one type")
	}
	// Precomputing every path keeps the per-request work to one random draw.
	paths := make([]string, 0, len(patientIDs)*len(types))
	for _, id := range patientIDs {
		for _, t := range types {
			paths = append(paths, "/Patient/"+url.PathEscape(BarePatientID(id))+"/"+t)
		}
	}
	return func(r *rand.Rand) Request {
		return Request{Method: http.MethodGet, Path: paths[r.IntN(len(paths))]}
	}
}

// CreateScenario POSTs bodies(r) to /{typ} as FHIR JSON and expects 201.
func CreateScenario(bodies func(r *rand.Rand) []byte, typ string) Scenario {
	if bodies == nil || typ == "" {
		panic("load: CreateScenario needs a body generator and a resource type")
	}
	path := "/" + strings.Trim(typ, "/")
	return func(r *rand.Rand) Request {
		return Request{
			Method:      http.MethodPost,
			Path:        path,
			Body:        bodies(r),
			ContentType: FHIRJSON,
			Expect:      []int{http.StatusCreated},
		}
	}
}

// BarePatientID strips surrounding space, slashes and a "Patient/" prefix,
// so an ids file may list either form.
func BarePatientID(s string) string {
	s = strings.Trim(strings.TrimSpace(s), "/")
	return strings.TrimPrefix(s, "Patient/")
}
