package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/auth"
)

// Authorize is the decision for one access of a request: the token's SMART
// scopes first, then the rules of Decide for the subject the token names.
// p nil (no verified token) is refused. A permit carries the scope grant,
// whose granular constraints results must meet (Decision.Admits).
func (pol *Policy) Authorize(p *auth.Principal, r Request, st PatientState) Decision {
	if p == nil {
		return deny(NotAuthenticated, "this request needs a valid access token")
	}
	// The national headers first (national.go): a request about another
	// patient than nhn-patient-nin names is refused as that, not as
	// whatever the scopes make of the other patient.
	if d, ok := national(Subject{Role: RoleOf(p), HPCategory: p.HPCategory}, r); !ok {
		return d
	}
	if r.ResourceType == "Practitioner" {
		return ownUser(p, r)
	}
	sd, ok := scopes(p, r.Interaction.scope(), r.ResourceType, r.Patient, r.NamedPatient)
	if !ok {
		d := deny(InsufficientScope, "the token's scopes do not allow %s on %s%s", r.Interaction.scope(), r.ResourceType, forPatient(r.Patient))
		if p.Patient != "" && r.Patient != p.Patient && p.Scopes.Permits(auth.ContextPatient, r.ResourceType, r.Interaction.scope()).Allowed {
			d.Reason = PatientNotInContext
			d.Message = fmt.Sprintf("the token's patient/ scopes cover Patient/%s only, not%s", p.Patient, forPatient(r.Patient))
		}
		d.ScopeRefused = true
		return d
	}
	d := pol.Decide(SubjectOf(p, r.Patient, st), r, st)
	d.Scopes = sd
	return d
}

// NotAdmitted is the refusal of a resource that a permit's granular scope
// constraints do not admit (Decision.Admits), named in msg.
func NotAdmitted(msg string) Decision {
	d := deny(InsufficientScope, "%s", msg)
	d.ScopeRefused = true
	return d
}

// Unauthenticated is the refusal of a request whose token could not be
// verified, for the usage log.
func Unauthenticated(msg string) Decision { return deny(NotAuthenticated, "%s", msg) }

func forPatient(patient string) string {
	if patient == "" {
		return " across patients"
	}
	return " for Patient/" + patient
}

// scope is the SMART permission an interaction needs: vread, history,
// $kj-status and included resources are reads.
func (i Interaction) scope() auth.Interaction {
	switch i {
	case Create:
		return auth.Create
	case Update:
		return auth.Update
	case Delete:
		return auth.Delete
	case Search:
		return auth.Search
	}
	return auth.Read
}

// scopes applies the SMART scopes. patient/ scopes reach only the token's
// own patient (a citizen's own record is bound by the pid rule instead of
// a launch context); user/ scopes reach the records the rules allow;
// system/ scopes only ever write (no automatic extraction). A token
// without a launch patient takes the patient nhn-patient-nin names as its
// patient context (named; the national APIs' way of naming it): the rules
// still ask that the token's attest names that patient.
func scopes(p *auth.Principal, in auth.Interaction, typ, patient, named string) (auth.Decision, bool) {
	if patient != "" && (patient == p.Patient || p.Patient == "" && patient == named) {
		if d := p.Scopes.Permits(auth.ContextPatient, typ, in); d.Allowed {
			return d, true
		}
	}
	if p.Kind() == auth.KindCitizen && p.Patient == "" {
		if d := p.Scopes.Permits(auth.ContextPatient, typ, in); d.Allowed {
			return d, true
		}
	}
	if d := p.Scopes.Permits(auth.ContextUser, typ, in); d.Allowed {
		return d, true
	}
	if in == auth.Create || in == auth.Update || in == auth.Delete {
		if d := p.Scopes.Permits(auth.ContextSystem, typ, in); d.Allowed {
			return d, true
		}
	}
	return auth.Decision{}, false
}

// RoleOf maps the token's kind onto the policy's roles ("" for a token of
// no known kind, which the rules refuse).
func RoleOf(p *auth.Principal) Role {
	if p == nil {
		return ""
	}
	switch p.Kind() {
	case auth.KindPractitioner:
		return Practitioner
	case auth.KindCitizen:
		return Citizen
	case auth.KindSystem:
		return System
	case auth.KindCitizenSupport:
		return CitizenSupport
	case auth.KindAuditor:
		return Auditor
	}
	return ""
}

// SubjectOf maps the verified token onto the rules' subject for an access
// to patient's record: the SMART launch patient and, when the attest's
// patients[] names the patient's person number, the patient itself are the
// patients in the token's context.
func SubjectOf(p *auth.Principal, patient string, st PatientState) Subject {
	s := Subject{
		Role: RoleOf(p), HPR: p.HPR, PID: p.PID, SecurityLevel: p.SecurityLevel, HPCategory: p.HPCategory,
		LegalEntity: p.OrgParent, PointOfCare: p.OrgChild, PurposeOfUse: p.PurposeOfUse,
		AttestPatients: p.Patients,
	}
	if p.Patient != "" {
		s.Patients = append(s.Patients, p.Patient)
	}
	if patient != "" && st.PersonNumber != "" && slices.Contains(p.Patients, st.PersonNumber) {
		s.Patients = append(s.Patients, patient)
	}
	return s
}

// Binding is what a search's parameters say about its patient.
type Binding struct {
	// Patients are the patient ids the parameters name (patient=,
	// subject=, Patient?_id=, identifiers resolved to patients, the
	// compartment in the path), without repeats.
	Patients []string
	// Bound is false when no parameter binds a patient at all.
	Bound bool
	// Unknown are patient identifiers the search named that no patient
	// carries.
	Unknown []string
}

// BindSearch is rule 1 for a search of resourceType: it must be bound to
// exactly one patient, because kjernejournal may not by law be searched
// across patients (for example to find risk groups). It returns the patient
// the search is bound to ("" for a search of Patient by an identifier
// nobody has, or by contradicting parameters, which then finds nothing)
// and a refusal with reason NoPatientBound otherwise.
func BindSearch(resourceType string, b Binding) (string, Decision) {
	refuse := func(detail string) (string, Decision) {
		d := deny(NoPatientBound, "a search of %s must be bound to exactly one patient (patient=, subject=, "+
			"Patient?_id=, identifier=, or /Patient/{id}/%s): kjernejournal may not by law be searched across patients "+
			"(for example to find risk groups), so a search that could reach more than one patient's record is refused%s",
			resourceType, resourceType, detail)
		return "", d
	}
	switch {
	case len(b.Unknown) > 0 && resourceType != "Patient" && len(b.Patients) == 0:
		return refuse("; no patient has the identifier " + strings.Join(b.Unknown, " or "))
	case !b.Bound:
		return refuse("")
	case len(b.Patients) > 1:
		return refuse(fmt.Sprintf("; this search names %d patients", len(b.Patients)))
	case len(b.Patients) == 0:
		d := permit()
		d.Message = "the search binds no patient and finds nothing"
		return "", d
	}
	return b.Patients[0], permit()
}

// ownUser decides a read of a Practitioner. This server holds no
// practitioner register: it answers the fhirUser of a practitioner's
// token (Practitioner/<HPR number>) from the token itself, so that an app
// can show who is signed in. SMART's fhirUser scope is the permission to
// read it; nobody reads another practitioner's.
func ownUser(p *auth.Principal, r Request) Decision {
	switch {
	case r.Interaction != Read:
		return deny(RoleNotAllowed, "a Practitioner is read by id only: the signed-in practitioner's own, named by fhirUser")
	case RoleOf(p) != Practitioner || p.HPR == "" || r.ID != p.HPR:
		return deny(NotOwnUser, "a practitioner reads only their own Practitioner (Practitioner/<own HPR number>)")
	case !p.Scopes.Has("fhirUser") && !p.Scopes.Permits(auth.ContextUser, "Practitioner", auth.Read).Allowed:
		d := deny(InsufficientScope, "reading the signed-in user's Practitioner needs the fhirUser scope")
		d.ScopeRefused = true
		return d
	}
	return permit()
}
