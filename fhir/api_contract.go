package fhir

// This file is the seam between the FHIR layer and the REST layer
// (internal/api): the exported API, whose implementations live in the other
// files of the package.

import (
	"slices"
	"time"
)

// Codec parses, validates and prints R4 JSON with github.com/google/fhir/go.
// It is safe for concurrent use.
type Codec struct {
	impl  codecImpl
	types []string
}

// NewCodec builds a codec for FHIR R4 that accepts the given resource
// types (the types a server stores) and refuses every other.
func NewCodec(types ...string) (*Codec, error) { return newCodec(types) }

// Types returns the resource types the codec accepts, in the order given
// to NewCodec (a new slice).
func (c *Codec) Types() []string { return slices.Clone(c.types) }

// Accepts reports whether the codec accepts resource type t.
func (c *Codec) Accepts(t string) bool { return slices.Contains(c.types, t) }

// Resource is a parsed and validated resource.
type Resource struct {
	Type string
	ID   string // "" when the body had none
	// Patient is the FHIR id of the patient the resource belongs to: its own
	// id for Patient, otherwise the id from AllergyIntolerance.patient,
	// Flag.subject, MedicationStatement.subject or Encounter.subject when
	// that is a relative reference Patient/{id}. Empty if none.
	Patient string
	msg     resourceMsg
}

// Parse parses one resource and validates it (JSON syntax, types, required
// elements, reference target types, code enums). The error is a
// *ValidationError whose issues name the element (FHIRPath-like expression,
// e.g. "AllergyIntolerance.patient") wherever the parser tells it. Types
// the codec does not accept are refused with a *ValidationError too.
func (c *Codec) Parse(body []byte) (*Resource, error) { return c.parse(body) }

// SetID sets the resource's id (server-assigned on create, URL id on update).
func (r *Resource) SetID(id string) { r.setID(id) }

// References returns every Reference.reference string in the resource.
func (r *Resource) References() []string { return r.references() }

// RewriteReferences replaces every Reference.reference equal to a key of
// m by its value (used to resolve urn:uuid: references in transactions),
// and recomputes Patient.
func (r *Resource) RewriteReferences(m map[string]string) { r.rewriteReferences(m) }

// Profiles returns meta.profile.
func (r *Resource) Profiles() []string { return r.profiles() }

// SetProfiles replaces meta.profile (nil or empty removes it), so that
// Marshal prints it: cheaper than editing the printed JSON.
func (r *Resource) SetProfiles(urls []string) { r.setProfiles(urls) }

// Marshal prints the resource as compact JSON for storage, without
// meta.versionId and meta.lastUpdated (the store decides those; see
// WithMeta). Other meta content (profile, security, tag) is kept.
func (c *Codec) Marshal(r *Resource) ([]byte, error) { return c.marshal(r) }

// WithMeta returns body with meta.versionId and meta.lastUpdated set,
// keeping the order of the other elements (resourceType first, then id,
// then meta). It must be cheap: it runs inside the store's commit.
func WithMeta(body []byte, versionID int64, lastUpdated time.Time) ([]byte, error) {
	return withMeta(body, versionID, lastUpdated)
}

// Pretty re-indents compact JSON with two spaces.
func Pretty(body []byte) []byte { return pretty(body) }

// Elements keeps resourceType, id, meta and the named top-level elements,
// and marks the result with the SUBSETTED tag
// (http://terminology.hl7.org/CodeSystem/v3-ObservationValue).
func Elements(body []byte, names []string) ([]byte, error) { return elements(body, names) }

// Summary keeps the elements the R4 specification marks as summary for the
// resource's type (plus mandatory ones), and marks the result SUBSETTED.
func Summary(body []byte) ([]byte, error) { return summary(body) }

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string   // fatal | error | warning | information
	Code        string   // issue-type code: invalid, structure, required, value, not-found, deleted, conflict, not-supported, too-costly, security, processing, exception, ...
	Diagnostics string   // a sentence a developer understands
	Expression  []string // FHIRPath of the offending element(s), if known
	// Details, when Details.Code is set, becomes issue.details.coding: a
	// machine-readable reason (e.g. an access-rule reason code).
	Details Coding
}

// Coding is a code from a code system.
type Coding struct{ System, Code, Display string }

// ValidationError is returned by Parse.
type ValidationError struct{ Issues []Issue }

func (e *ValidationError) Error() string { return validationErrorString(e) }

// Outcome renders an OperationOutcome with the given issues as compact JSON.
func Outcome(issues ...Issue) []byte { return outcome(issues) }

// BundleEntry is one entry of a Bundle the server produces.
type BundleEntry struct {
	FullURL  string
	Resource []byte // JSON, may be nil (e.g. batch response entries without body)
	// Search mode (match | include | outcome), empty for non-search bundles.
	SearchMode string
	// Request, for history bundles: method and url.
	RequestMethod, RequestURL string
	// Response, for batch/transaction-response and history bundles.
	ResponseStatus, ResponseLocation, ResponseETag string
	ResponseLastModified                           time.Time
	ResponseOutcome                                []byte // OperationOutcome JSON, may be nil
}

// Link is a Bundle.link.
type Link struct{ Relation, URL string }

// BundleOptions describe a Bundle the server produces.
type BundleOptions struct {
	Type  string // searchset | history | batch-response | transaction-response
	Total *int   // nil: leave out
	Links []Link
	ID    string // server-assigned id (optional)
	// Security labels for Bundle.meta.security (e.g. that restricted
	// information was left out).
	Security []Coding
}

// Bundle renders a Bundle as compact JSON, copying the entries' JSON as is
// (no re-parsing: stored JSON is served as stored).
func Bundle(opts BundleOptions, entries []BundleEntry) []byte { return bundle(opts, entries) }

// RequestEntry is one entry of an incoming batch or transaction Bundle.
type RequestEntry struct {
	FullURL     string
	Method      string // GET | POST | PUT | DELETE
	URL         string // relative: "Flag", "Flag/123", "Flag/123/_history/2", "Patient/1/Flag"
	IfMatch     string
	IfNoneExist string
	Resource    []byte // raw JSON of entry.resource, nil if absent; parse with Codec.Parse
}

// ParseRequestBundle reads the envelope of a batch or transaction Bundle
// (resourceType Bundle, type batch|transaction, entry.request required)
// without parsing the entries' resources. Errors are *ValidationError with
// expressions like "Bundle.entry[2].request.method".
func ParseRequestBundle(body []byte) (bundleType string, entries []RequestEntry, err error) {
	return parseRequestBundle(body)
}
