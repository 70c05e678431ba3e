// Package search is kjernejournal's FHIR R4 search, independent of the
// storage engine.
//
// A clinical search is always bound to one patient, whose record holds tens
// of resources per type. So the store returns the patient's compartment for
// the type (store.Compartment) and everything else happens here, in Go:
// index values are extracted at write time (Registry.Extract), a query is
// parsed and validated (Registry.ParseQuery), matched against each index
// (Query.Match), sorted and cut into a page with a keyset cursor
// (Query.Page). Nothing from the query string ever reaches a database, as
// an operator or otherwise.
//
// The parameters come from the SearchParameter resources in package
// profiles, so extraction, parsing and the CapabilityStatement
// (Registry.Params) cannot disagree.
//
// Semantics follow the R4 search page, with these decisions where it leaves
// room:
//   - Dates without a time zone (in queries, and dates in resources) are
//     read as UTC, the server's defined local time; ranges are
//     precision-aware ("2024" is the whole year) and kept in microseconds.
//   - ap widens the search range by 10% of its distance from now, at least
//     one day, on both sides.
//   - Strings are compared after Fold (case, accents; Ø→o, Æ→ae, Å→a);
//     default is starts-with per value (each HumanName part is a value).
//   - token :text is a starts-with on any word of Coding.display,
//     CodeableConcept.text or Identifier.type.text, folded.
//   - Codes, systems, ids and identifier values compare exactly.
//   - Only the .identifier chain is supported; the caller resolves it.
//
// A REST handler follows this outline:
//
//	q, warnings, err := reg.ParseQuery(typ, params, lenient)
//	if err != nil { 400 (or 403/400 too-costly) with fhir.Outcome(err.(*search.Error).Issues...) }
//	for _, ch := range q.Chains() { ch.Resolve(idsOfPatientsWithIdentifier(ch.Identifiers)) }
//	ids, ok := q.PatientBinding()   // plus the compartment id, if any
//	if !ok || len(ids) != 1 { 400: a search must name exactly one patient }
//	var matches []search.Candidate
//	for _, v := range store.Compartment(ctx, ids[0], typ) {
//		idx := v.Index decoded (UnmarshalBinary) + idx.SetLastUpdated(v.LastUpdated), or Extract(v.Body)
//		if q.Match(idx) { matches = append(matches, search.Candidate{Index: &idx, Body: v.Body}) }
//	}
//	page, next, prev := q.Page(matches)  // total: len(matches) when q.Total != "none"
package search
