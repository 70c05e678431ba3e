// Package source is a development source hospital: a small FHIR R4 document
// endpoint in the style of IHE MHD that kjernejournal fans document searches
// out to and streams document bytes from (see DOMAIN.md, "Documents"), and
// in the same server, under {base}/lab, a lab result service in the style
// of the national service "Pasientens prøvesvar" (DiagnosticReport and
// Observation; DOMAIN.md, "Prøvesvar").
//
// A real source hospital keeps its documents in its own EHR and answers in
// real time; this one generates synthetic documents and lab results for the
// same synthetic patients the kjernejournal demo is seeded with, renders
// document bytes on the fly (nothing large is ever stored or held in
// memory), and can misbehave on purpose (latency, errors, cut streams,
// garbage and oversized answers, being down) so that kjernejournal's
// handling of slow and failing sources can be tested against real HTTP.
//
// # HTTP contract
//
//	GET {base}/DocumentReference?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|<person number>
//	    [&type=[urn:oid:2.16.578.1.12.4.1.1.9602|]<code>[,<code>...]]
//	    [&category=[urn:oid:2.16.578.1.12.4.1.1.9602|]<group>[,<group>...]]
//	    [&date=ge<date>][&date=le<date>]  (also gt, lt, eq; YYYY, YYYY-MM, YYYY-MM-DD or dateTime)
//	    [&_count=<n>]
//	  -> 200 application/fhir+json searchset Bundle of DocumentReference,
//	     newest first; total counts every match, _count only limits entries.
//	     A type code matches exactly; a group code (A00, C00, D00, E00, I00)
//	     given as type matches every type of that group.
//	     Any other parameter, a malformed value or a missing
//	     patient.identifier -> 400 OperationOutcome.
//	GET {base}/Binary/<document id>
//	  -> 200 with the document bytes, Content-Type and Content-Length.
//	GET {base}/healthz -> 200 "ok" (no assertion; 503 when down).
//
// The source does not filter by confidentiality: documents labelled NORS
// are listed and served like any other. Hiding them is kjernejournal's job.
//
// # Lab results
//
//	GET {base}/lab/DiagnosticReport?[date=<prefix><date>]...[&category=<token>][&code=<token>]
//	    [&status=<code>][&_count=<n>][&_offset=<n>][&_include=DiagnosticReport:result]
//	GET {base}/lab/Observation?[date=...][&category=<token>][&code=<token>][&status=<code>]
//	    [&_count=<n>][&_offset=<n>]
//	GET {base}/lab/healthz -> 200 "ok" (no assertion; 503 when down).
//
// Headers on every search:
//
//	Authorization: Bearer <assertion>  as for documents, but aud must be
//	                                   {base}/lab or the organisation number
//	                                   (not {base}); patient is the person number
//	nhn-patient-nin: <person number>   required; must equal the assertion's patient
//	nhn-access-basis: <basis>          required; must equal the assertion's access_basis
//
// A missing header is answered 400, a header that differs from the
// assertion 403, both with an OperationOutcome. The person number never
// appears in the URL: patient, subject and their chains are refused (400).
//
// Parameters (each filter may repeat: repeats are AND, a comma within one
// value is OR):
//
//	date      on effectiveDateTime (the sampling time), as for documents:
//	          prefixes eq (default), ge, gt, le, lt; YYYY, YYYY-MM, YYYY-MM-DD
//	          or a dateTime with zone
//	category  [system|]code; DiagnosticReport: system
//	          http://terminology.hl7.org/CodeSystem/v2-0074, codes LAB
//	          (clinical chemistry and haematology) and MB (microbiology);
//	          Observation: system
//	          http://terminology.hl7.org/CodeSystem/observation-category,
//	          code laboratory
//	code      [system|]code against code.coding, system
//	          urn:oid:2.16.578.1.12.4.1.1.7280 (NLK). Panels have no national
//	          code, so on DiagnosticReport only single-analysis reports
//	          (e.g. HbA1c NPU27300) match a code; microbiology findings have
//	          text only
//	status    the resource's FHIR status codes (final, preliminary, amended,
//	          entered-in-error, ...)
//	_count    non-negative integer: how many matches to return (default all)
//	_offset   non-negative integer: matches to skip (the next link's paging)
//	_include  DiagnosticReport:result (DiagnosticReport only)
//
// A token in another code system, an unknown status, any other parameter
// or a malformed value is answered 400 with an OperationOutcome naming it:
// silently ignoring a filter would return results nobody asked for.
//
// The answer is a 200 application/fhir+json searchset Bundle, matches
// newest first by effectiveDateTime (ties by id), search.mode "match";
// total counts every match, _count and _offset only select entries. When
// matches are left after the returned ones (and _count > 0), link "next"
// repeats the query with _offset set. With _include, every Observation a
// returned DiagnosticReport lists in result follows once, search.mode
// "include", after the matches. A person the service holds nothing for
// gets an empty searchset (total 0), not an error. References in result
// are relative (Observation/<id>) and resolve against the entries'
// fullUrl base {base}/lab. The subject is
// {"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":<person number>}},
// the performer the laboratory by organisation number.
//
// Like the document endpoint, the lab service does not filter: preliminary,
// amended and entered-in-error results are returned like final ones.
//
// # Assertion
//
// Every DocumentReference, Binary and lab search request must carry
// "Authorization: Bearer <JWS>" signed by kjernejournal (ES256 or RS256,
// header typ "kj-source-assertion+jwt", key found by kid in the JWKS at
// Config.JWKSURL) with the claims
//
//	iss             kjernejournal's base URL (Config.Issuer)
//	aud             this source's base URL or its organisation number
//	                (lab searches: {base}/lab or the organisation number)
//	iat, exp        exp at most 5 minutes after iat, and not in the past
//	jti             unique; a jti seen before (until its exp) is refused
//	hpr             HPR number of the health worker
//	hp_category     HP category (code system 9060, e.g. LE, SP)
//	org             organisation number of the requester's legal entity
//	purpose_of_use  e.g. TREAT, ETREAT
//	access_basis    e.g. UNNTAK, SAMTYKKE, AKUTT
//	patient         the person number searched for / the document's patient
//	                (lab searches: equal to the nhn-patient-nin header)
//	document        (retrieval only) the requested document id
//
// All claims are strings (aud may be a string or a list). A missing or
// invalid assertion is answered 401 with an OperationOutcome. The separate
// audience keeps an assertion minted for the document endpoint from being
// spent on lab results and the other way round. Each lookup, allowed or
// refused, is recorded in the source's own log (Server.Lookups and one
// JSON line per lookup to Config.Log; lab searches with Action
// "lab-search").
//
// # Faults
//
// Faults apply to document and lab requests alike: Latency, ErrorRate and
// Down to every request, Garbage and HugeSearchBytes to the answers of
// successful searches (document and lab), DisconnectAfterBytes and Chunked
// to document bytes.
package source

//go:generate go run ../../cmd/kjsource generate -out ../../testdata/sources
