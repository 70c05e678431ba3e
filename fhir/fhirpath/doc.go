// Package fhirpath evaluates FHIRPath (the N1 normative part that R4's
// invariants and most of HL7's test suite use) on resources decoded from
// JSON with encoding/json, and checks the R4 invariants of a resource.
//
// JSON does not say that "1974-12-25" is a date or that valueQuantity is
// Observation.value, so the evaluator types what it navigates from a table
// generated from the R4 StructureDefinitions (types.txt); the invariants
// come from the same definitions (constraints.txt). Both are embedded and
// regenerated with go generate (see internal/gen).
//
// Not supported: the STU functions of FHIRPath 2.0 (sort, lowBoundary,
// encode, ...), static type checking (strict mode), UCUM unit algebra
// beyond a few conversions, and decimals beyond float64 (1.0 prints as
// 1). resolve() finds contained resources ('#id') and the root resource
// only: an invariant must not fetch other resources. suite_test.go lists
// HL7's cases that are skipped and why.
package fhirpath
