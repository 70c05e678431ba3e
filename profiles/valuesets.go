package profiles

import "embed"

// ValueSets are the ValueSet resources of this directory (valueset-*.json),
// the same ones served as conformance resources; fhir/search resolves the
// :in and :not-in modifiers against them.
//
//go:embed valueset-*.json
var ValueSets embed.FS
