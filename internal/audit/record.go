package audit

import (
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
)

// Interaction is what the logged request did. It is finer than
// access.Interaction because the usage log must tell a vread from a read
// and a document retrieval from a FHIR read.
type Interaction string

const (
	Read           Interaction = "read"
	VRead          Interaction = "vread"
	Search         Interaction = "search"
	History        Interaction = "history"
	Create         Interaction = "create"
	Update         Interaction = "update"
	Delete         Interaction = "delete"
	Batch          Interaction = "batch"
	Transaction    Interaction = "transaction"
	Operation      Interaction = "operation"
	DocumentSearch Interaction = "document-search" // DocumentReference search fanned out to the sources (ITI-67)
	DocumentRead   Interaction = "document-read"   // a document streamed through from a source (ITI-68)
	LabSearch      Interaction = "lab-search"      // DiagnosticReport or Observation search fanned out to the lab sources
	PrivacyChange  Interaction = "privacy-change"  // reservation, restriction, HP block, portal access
)

// Record is everything one access needs to be logged. The REST layer fills
// it once per request (and once per batch or transaction entry); Events
// turns it into AuditEvents.
type Record struct {
	// ID is the AuditEvent id. Empty means a random one; a record about
	// several patients gives ID, ID-2, ID-3, ... (or random ids when those
	// would not be valid FHIR ids).
	ID   string
	Time time.Time
	// RequestID is the server's own id of the request, answered to the
	// client in X-Request-Id; CorrelationID is the X-Request-Id the
	// client sent, kept only to find the client's side of it (a caller
	// chooses it, so it identifies nothing on its own).
	RequestID     string
	CorrelationID string
	// Request is the request line as received ("GET /Flag/1") of a
	// request that was not understood as a FHIR interaction (refused at
	// routing), so that it is still recognisable; "" otherwise.
	Request     string
	Interaction Interaction
	// ResourceType and ResourceID name the resource read or written, or
	// (ResourceID empty) the type searched.
	ResourceType string
	ResourceID   string
	VersionID    string // vread, history of one version
	Operation    string // operation name with its $, for Interaction Operation
	// Query is the raw query string as received, without the '?'. It is
	// stored base64-encoded so that malformed or hostile input is kept
	// exactly and cannot inject anything into a log viewer.
	Query string
	// Patients are the FHIR ids of the patients the access concerns. Each
	// gets an AuditEvent of its own (BALP: one per patient); none means
	// the request bound no patient (a refused cross-patient search, a
	// feeder write before the patient is known).
	Patients []string
	Outcome  Outcome

	User User
	Org  Organisation
	// Claimed is the identity a refused token claimed, unverified: it
	// names nobody, it only helps to trace the attempt. nil when the
	// identity was verified or no token came.
	Claimed *Claimed
	// ClientID is the OAuth client; Issuer is the token issuer, used as
	// the namespace of the client id.
	ClientID string
	Issuer   string
	// SourceSystem is the name the requesting system gives itself in the
	// nhn-source-system header (hit-source-system from older clients), as
	// sent: a claim of the caller, shown to the auditor with the client.
	// Stored from compact version 4 on.
	SourceSystem string
	// PurposeOfUse is the token's purpose (TREAT, ETREAT, COC, BTG).
	PurposeOfUse string
	Basis        access.Basis
	// OpenedRestricted is set when an elevated basis opened a restricted
	// section (access.Decision.OpenedRestricted).
	OpenedRestricted bool
	// Emergency marks emergency access. A basis of AKUTT or FORHOYET_AKUTT
	// implies it; the REST layer may also set it for other reasons.
	Emergency bool
	// Documents are the documents retrieved (DocumentRead) or listed
	// (DocumentSearch), or the lab results listed (LabSearch: the matches,
	// of ResourceType), each with its source.
	Documents []Document
	// Server names this server in the agent and source elements (its base
	// URL); "kjernejournal" when empty.
	Server string
}

// Outcome is how the request ended.
type Outcome struct {
	// Refused is set when the access policy said no.
	Refused bool
	// Reason is the policy's reason code (access.OK for a plain permit).
	Reason access.Reason
	// Message is the decision's or the error's sentence, in English.
	Message    string
	HTTPStatus int
}

// User is the person (or role) behind the token.
type User struct {
	Role       access.Role
	HPR        string // HPR number, for health personnel
	PID        string // national identity number, for citizens (and support staff without HPR)
	Name       string
	HPCategory string // code system urn:oid:2.16.578.1.12.4.1.1.9060: LE, SP, ...
}

// Claimed is what an unverified token said about its holder.
type Claimed struct {
	Subject, ClientID, Issuer, HPR string
}

// Organisation is where the user works: the legal entity (orgnr_parent)
// and the point of care (orgnr_child), by organisation number.
type Organisation struct {
	LegalEntity     string
	LegalEntityName string
	PointOfCare     string
	PointOfCareName string
}

// Document is one journal document from a source hospital, or one lab
// result from a lab source.
type Document struct {
	ID         string // the document's id at the source
	Source     string // organisation number of the source hospital
	SourceName string
}

// SetPrincipal fills the actor fields from a verified token: user,
// organisation, client and purpose of use.
func (r *Record) SetPrincipal(p *auth.Principal, role access.Role) {
	if p == nil {
		r.User.Role = role
		return
	}
	r.User = User{Role: role, HPR: p.HPR, PID: p.PID, Name: p.Name, HPCategory: p.HPCategory}
	r.ClientID, r.Issuer, r.PurposeOfUse = p.ClientID, p.Issuer, p.PurposeOfUse
	r.Org = Organisation{LegalEntity: p.OrgParent, PointOfCare: p.OrgChild}
	if a := p.Attest; a != nil {
		// The attest carries the names HelseID's claims lack; its numbers
		// fill in when the client claims are absent.
		le, pc := a.Practitioner.LegalEntity, a.Practitioner.PointOfCare
		if r.Org.LegalEntity == "" {
			r.Org.LegalEntity = le.ID
		}
		if r.Org.PointOfCare == "" {
			r.Org.PointOfCare = pc.ID
		}
		if le.ID == r.Org.LegalEntity {
			r.Org.LegalEntityName = le.Name
		}
		if pc.ID == r.Org.PointOfCare {
			r.Org.PointOfCareName = pc.Name
		}
	}
}

// SetDecision records the policy's decision and the HTTP status answered.
func (r *Record) SetDecision(d access.Decision, httpStatus int) {
	r.Outcome = Outcome{Refused: !d.Allowed(), Reason: d.Reason, Message: d.Message, HTTPStatus: httpStatus}
	r.OpenedRestricted = d.OpenedRestricted
}

// emergency reports whether the access is logged as an emergency.
func (r *Record) emergency() bool {
	return r.Emergency || r.Basis == access.Akutt || r.Basis == access.ForhoyetAkutt
}

// Code is the AuditEvent outcome: 0 success, 4 minor failure (the
// request was refused or was wrong), 8 serious failure (the server failed).
func (o Outcome) Code() string {
	switch {
	case o.HTTPStatus >= 500:
		return "8"
	case o.Refused || o.HTTPStatus >= 400:
		return "4"
	}
	return "0"
}
