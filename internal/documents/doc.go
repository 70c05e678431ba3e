// Package documents implements journal documents (journaldokumenter,
// ../shared/DOMAIN.md "Documents" and access rule 7): a federated
// DocumentReference search over the source hospitals and a streaming proxy
// for the document bytes. Nothing is stored or cached: every search and
// every retrieval goes to the source in real time, and the bytes pass
// through one fixed buffer (CopyBufferSize).
//
// Division of labour with the REST layer (internal/api):
//
//   - The access policy (access.Decide with Section Documents) runs first,
//     on search and again on retrieval. It decides the patient's blocks
//     (PatientState.DocumentsBlocked), restrictions and blocked visit
//     history; this package does not see PatientState and assumes the
//     caller has already permitted the access. What this package decides is
//     what only it can see: which sources share with the requester, the
//     sources' per-type sharing policy, NORS, and the regulation's time
//     windows per document group.
//   - The REST layer writes the AuditEvent (Result.Documents,
//     Stream.Document) before any data leaves the server; Open returns
//     before any byte is written so that the event can be written first.
//
// The wire contract with the sources (internal/source, cmd/kjsource):
//
//	GET {base}/DocumentReference?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|<pnr>[&type=<code>][&date=geYYYY-MM-DD][&_count=N]
//	GET {base}/Binary/<id>
//	Authorization: Bearer <assertion>   (see Signer)
package documents
