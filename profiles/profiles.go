// Package profiles holds the conformance resources the server is built
// from. They are embedded so that the binary, its tests and its
// CapabilityStatement always use the same definitions.
package profiles

import _ "embed"

// SearchParameters is a collection Bundle of the R4 SearchParameter
// resources for the served types. Shared R4 definitions (clinical-patient,
// clinical-date, ...) keep their R4 url but list only the served types in
// base and expression, so a reader can compare them with the R4
// specification line by line. Parameters R4 does not define (Flag status,
// category and code) carry a kjernejournal url.
//
// Expressions use the FHIRPath subset fhir/search evaluates: dotted paths,
// "|" unions, ".where(resolve() is Type)" and "(path as Type)".
//
//go:embed search-parameters.json
var SearchParameters []byte
