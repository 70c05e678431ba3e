// Package audit is the pure part of the usage log ("Logg over bruk"): it
// turns one access into FHIR R4 AuditEvents, links them into a
// tamper-evident hash chain, and derives the citizen's view of them. It does
// no I/O; the REST layer builds a Record per request and the storage engine
// links and stores the events (see ../shared/DOMAIN.md, "Usage log").
//
// # Layout (IHE Basic Audit Log Patterns)
//
// Every event has type audit-event-type#rest, a restful-interaction subtype
// (read, vread, search, history-*, create, update, delete, batch,
// transaction, operation; the IHE ITI-67/ITI-68 codes for document search
// and retrieval) plus a subtype in CodeSystemInteraction naming this
// server's interaction exactly, action C/R/U/D/E, recorded (UTC,
// microseconds) and outcome 0 (success), 4 (refused by the policy or a
// client error) or 8 (server failure), with outcomeDesc "reason: message"
// whenever the outcome is not a plain success.
//
// Agents, as BALP orders them:
//   - the user (when a person is behind the token), requestor true: type
//     IRCP for reads and queries, AGNT for writes, RoleClass#PAT when the
//     user is the citizen; role = HP category (urn:oid:…1.9060) and the
//     access role (CodeSystemUserRole); who.identifier = HPR number (…4.4),
//     or the national identity number (…4.1, D-number …4.2) when there is
//     no HPR number; name; purposeOfUse from the token;
//   - the client application (DICOM 110153 Source Role ID), who.identifier
//     = client id in the issuer's namespace; it is the requestor when no
//     person is (feeder systems);
//   - this server (DICOM 110152 Destination Role ID), also source.observer
//     (security-source-type 4, application server).
//
// Entities: the patient (Patient/<id>, audit-entity-type 1 Person,
// object-role 1 Patient), the resource read or written (Type/id[/_history/v],
// 2 System Object, 4 Domain Resource), the query (2, 24 Query, the raw query
// base64 in query, the searched type or the operation in description), each
// journal document (resource-types#DocumentReference, 3 Report, the id at the
// source with the source hospital as identifier.assigner) and the request
// id (BALP BasicAuditEntityType#XrequestId, as BALP records X-Request-Id).
//
// A record concerning several patients gives one event per patient
// (Events). Successful events claim the BALP profile that fits
// (PatientRead, PatientQuery, PatientCreate, PatientUpdate, PatientDelete,
// or the base Read/Query/... when no single patient is known); refusals,
// history, batch, transaction, operations, document retrieval and privacy
// changes claim none, because BALP's profiles describe successful RESTful
// interactions only.
//
// # Extensions (our choice, where BALP has no element)
//
// ExtAccess, on the AuditEvent: sub-extensions basis (valueCoding,
// CodeSystemAccessBasis: UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE,
// FORHOYET_AKUTT), reason (valueCoding, CodeSystemAccessReason: the
// access.Reason code), httpStatus (valueInteger), refused, openedRestricted
// and emergency (valueBoolean, only when true). The basis describes the
// access as a whole, not one of the objects it touched, so it is not an
// entity.detail, and a Coding can be searched by the auditor.
//
// ExtOrganisation, on the requesting agent: legalEntity and pointOfCare,
// each a valueReference with identifier (organisation number, …4.1.4.101)
// and display (the name, when the attest gives it). It describes where that
// agent acts from; R4's agent has no other element for it.
//
// ExtChain: the hash chain link, see chain.go.
package audit
