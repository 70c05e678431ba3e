package interaction

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Facts are what the usage log records of one request (or one Bundle
// entry): who asked, on what basis, which patient the request named,
// what it did, every access decision taken for it and how it ended. The
// HTTP adapter starts them when a request arrives, the interactions add to
// them, and the AuditEvents are built from them (Entries) — for a write,
// inside the very commit that stores it.
type Facts struct {
	// RequestID is the server's own id of the request; CorrelationID the
	// X-Request-Id the caller sent, if any (a correlation id only).
	RequestID, CorrelationID string
	Time                     time.Time
	Method, Path, RawQuery   string
	// Kind and the target of the call, once routed.
	Kind         Kind
	Type, ID     string
	Version      int64
	Compartment  string
	Bundle       string // "batch" or "transaction" for a Bundle call
	BasisHeader  string
	Principal    *auth.Principal
	Unverified   *audit.Claimed // what a refused token claimed
	NamedPatient string         // the patient the request named, checked or not
	// SourceSystem is the nhn-source-system header (the EHR's name for
	// itself), for the usage log.
	SourceSystem string
	// CriticalConsent marks a write of a Consent that is critical
	// information, which the log names as the write it is, not as a change
	// of privacy settings.
	CriticalConsent bool
	// Status is how the request (or entry) was answered.
	Status    int
	Accesses  []Access
	Documents []audit.Document
	// Entry is the Bundle entry index + 1 (0: the request itself).
	Entry   int
	entries []*Facts
	logged  bool
	// first holds the first access, which is all most requests make.
	first [1]Access
}

// Access is one pass through the decision point.
type Access struct {
	Patient, Type string
	Decision      access.Decision
}

// Start starts the facts of a request as it arrives. (Facts are a value
// the caller keeps with its own state of the request: one allocation
// fewer on every request.)
func (f *Facts) Start(requestID, correlationID, method, path, rawQuery string, now time.Time) {
	*f = Facts{RequestID: requestID, CorrelationID: correlationID, Time: now, Method: method,
		Path: path, RawQuery: rawQuery}
	f.Accesses = f.first[:0]
}

// Note records a refusal taken before the interactions ran (an invalid
// token), for the usage log.
func (f *Facts) Note(patient, typ string, d access.Decision) { f.note(patient, typ, d) }

// note records one access decision.
func (f *Facts) note(patient, typ string, d access.Decision) {
	f.Accesses = append(f.Accesses, Access{Patient: patient, Type: typ, Decision: d})
}

// refuse turns the decision recorded for patient into d: a later check of
// the same request refused it, and the log must say so, not the permit.
func (f *Facts) refuse(patient, typ string, d access.Decision) {
	for i := range f.Accesses {
		if f.Accesses[i].Patient == patient {
			f.Accesses[i].Decision = d
			return
		}
	}
	f.note(patient, typ, d)
}

// Describe takes what the call is about, and the patient it names on its
// face (before any check: an unauthenticated request is logged under the
// patient it asked for).
func (f *Facts) Describe(c *Call) { f.describe(c) }

func (f *Facts) describe(c *Call) {
	f.Kind, f.Type, f.ID, f.Version, f.Compartment = c.Kind, c.Type, c.ID, c.Version, c.Compartment
	if f.NamedPatient == "" {
		f.NamedPatient = namedPatient(c)
	}
}

// namedPatient is the patient a call names in its URL: Patient/{id}, the
// compartment, or a patient= / subject= parameter with one id.
func namedPatient(c *Call) string {
	switch {
	case c.Compartment != "":
		return c.Compartment
	case c.Type == "Patient" && c.ID != "":
		return c.ID
	}
	for _, name := range []string{"patient", "subject", "_id"} {
		if name == "_id" && c.Type != "Patient" {
			continue
		}
		vs := c.Query[name]
		if len(vs) != 1 || strings.Contains(vs[0], ",") {
			continue
		}
		id := strings.TrimPrefix(vs[0], "Patient/")
		if ValidID(id) {
			return id
		}
	}
	return ""
}

// entry starts the facts of Bundle entry index (from 0).
func (f *Facts) entry(index int, c *Call) *Facts {
	e := &Facts{}
	e.Start(f.RequestID, f.CorrelationID, c.Method, c.Path, c.RawQuery, f.Time)
	e.BasisHeader, e.Principal, e.Entry = f.BasisHeader, f.Principal, index+1
	e.SourceSystem = f.SourceSystem
	f.entries = append(f.entries, e)
	return e
}

// Pending are the facts of the request and of its Bundle entries whose
// usage-log records are not written yet.
func (f *Facts) Pending() []*Facts {
	var out []*Facts
	if !f.logged {
		out = append(out, f)
	}
	for _, e := range f.entries {
		out = append(out, e.Pending()...)
	}
	return out
}

// Logged marks the facts as written to the usage log.
func (f *Facts) Logged() { f.logged = true }

// IsLogged reports whether the facts are in the usage log already.
func (f *Facts) IsLogged() bool { return f.logged }

// Entries builds the usage-log records of the facts: one per patient the
// request touched (BALP: one AuditEvent per patient), the first decision
// for a patient being the request's own; one without a patient when it
// touched none — under the patient the request named, if it named one.
func (f *Facts) Entries(now time.Time, server string) []store.AuditEntry {
	basis, _ := access.ParseBasis(f.BasisHeader)
	rec := audit.Record{
		Time:          now.UTC(),
		RequestID:     f.RequestID,
		CorrelationID: f.CorrelationID,
		Interaction:   f.interaction(),
		ResourceType:  f.Type,
		Query:         f.RawQuery,
		Basis:         basis,
		Server:        server,
		Documents:     f.Documents,
		Claimed:       f.Unverified,
		SourceSystem:  f.SourceSystem,
	}
	if f.Kind == "" {
		// Not understood as a FHIR call (a routing refusal, a mounted
		// handler): the request line is all there is to tell what it was.
		rec.Request = f.Method + " /" + f.Path
		if f.Entry > 0 {
			rec.Request = "entry " + strconv.Itoa(f.Entry-1) + ": " + rec.Request
		}
	}
	if f.ID != "" && ValidID(f.ID) {
		rec.ResourceID = f.ID
	}
	if f.Version > 0 {
		rec.VersionID = strconv.FormatInt(f.Version, 10)
	}
	if rec.Interaction == audit.Operation {
		rec.Operation = string(f.Kind)
	}
	rec.SetPrincipal(f.Principal, access.RoleOf(f.Principal))

	var out []store.AuditEntry
	add := func(patient string, d *access.Decision) {
		r := rec
		// The request's own id, which entry and which of its records:
		// unique in the log (a request id is the server's, random), and
		// stored as the short suffix (audit.Compact).
		r.ID = f.RequestID + "-" + strconv.Itoa(f.Entry) + "-" + strconv.Itoa(len(out))
		if patient != "" {
			r.Patients = []string{patient}
		}
		if d != nil {
			r.SetDecision(*d, f.Status)
			if d.Allowed() && f.Status >= 400 {
				r.Outcome.Refused = false
			}
		} else {
			r.Outcome = audit.Outcome{Refused: f.Status == http.StatusUnauthorized || f.Status == http.StatusForbidden,
				HTTPStatus: f.Status, Message: http.StatusText(f.Status)}
		}
		// Stored compact (the facts); the AuditEvent is rendered on read.
		for _, ev := range audit.Compact(r) {
			out = append(out, store.AuditEntry{
				Patient: patient, AgentHPR: r.User.HPR, Org: r.Org.LegalEntity, Recorded: r.Time,
				Outcome: r.Outcome.Code(), Body: ev,
			})
		}
	}
	anyPatient := false
	for _, a := range f.Accesses {
		anyPatient = anyPatient || a.Patient != ""
	}
	seen := map[string]bool{}
	for _, a := range f.Accesses {
		// A request that touched patients is logged per patient; its
		// patient-less pass (an auditor's search) adds nothing.
		if seen[a.Patient] || anyPatient && a.Patient == "" {
			continue
		}
		seen[a.Patient] = true
		d := a.Decision
		add(a.Patient, &d)
	}
	if len(out) == 0 {
		add(f.NamedPatient, nil)
	}
	return out
}

// interaction is how the usage log names what the request did.
func (f *Facts) interaction() audit.Interaction {
	switch f.Kind {
	case Read:
		return audit.Read
	case VRead:
		return audit.VRead
	case Search:
		if f.Type == "DocumentReference" {
			return audit.DocumentSearch
		}
		if isLabType(f.Type) {
			return audit.LabSearch
		}
		return audit.Search
	case History:
		return audit.History
	case Create, Update, Delete:
		if f.Type == "Consent" && !f.CriticalConsent {
			return audit.PrivacyChange
		}
		return audit.Interaction(f.Kind)
	case DocumentRead:
		return audit.DocumentRead
	case Bundle:
		if f.Bundle == "batch" {
			return audit.Batch
		}
		return audit.Transaction
	}
	return audit.Operation
}
