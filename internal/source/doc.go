// Package source is a development source hospital: a small FHIR R4 document
// endpoint in the style of IHE MHD that kjernejournal fans document searches
// out to and streams document bytes from (see DOMAIN.md, "Documents").
//
// A real source hospital keeps its documents in its own EHR and answers in
// real time; this one generates synthetic documents for the same synthetic
// patients the kjernejournal demo is seeded with, renders their bytes on the
// fly (nothing large is ever stored or held in memory), and can misbehave on
// purpose (latency, errors, cut streams, being down) so that kjernejournal's
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
// # Assertion
//
// Every DocumentReference and Binary request must carry
// "Authorization: Bearer <JWS>" signed by kjernejournal (ES256 or RS256,
// header typ "kj-source-assertion+jwt", key found by kid in the JWKS at
// Config.JWKSURL) with the claims
//
//	iss             kjernejournal's base URL (Config.Issuer)
//	aud             this source's base URL or its organisation number
//	iat, exp        exp at most 5 minutes after iat, and not in the past
//	jti             unique; a jti seen before (until its exp) is refused
//	hpr             HPR number of the health worker
//	hp_category     HP category (code system 9060, e.g. LE, SP)
//	org             organisation number of the requester's legal entity
//	purpose_of_use  e.g. TREAT, ETREAT
//	access_basis    e.g. UNNTAK, SAMTYKKE, AKUTT
//	patient         the person number searched for / the document's patient
//	document        (retrieval only) the requested document id
//
// All claims are strings (aud may be a string or a list). A missing or
// invalid assertion is answered 401 with an OperationOutcome. Each lookup,
// allowed or refused, is recorded in the source's own log (Server.Lookups
// and one JSON line per lookup to Config.Log).
package source

//go:generate go run ../../cmd/kjsource generate -out ../../testdata/sources
