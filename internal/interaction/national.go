package interaction

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
)

// The national API conventions (DOMAIN.md): an EHR names the patient by
// person number in nhn-patient-nin instead of by our FHIR id, so that it
// never needs our ids and the person number never appears in a URL. The
// number is resolved once per request, in Do, to the Patient that carries
// it (FindByIdentifier), and from then on every access of the request —
// REST call, Bundle entry, _include, history, operation, document — must
// concern that patient: the decision point refuses any other
// (access.PatientNotNamed). Where the request names no patient of its own
// (a search without patient=, a document search, a document opened with a
// token without launch patient) the header's patient is the one.

// unknownPerson is the patient of a request whose nhn-patient-nin no
// Patient carries. The ':' makes it no FHIR id, so no stored resource can
// have it; the rules see a patient that does not exist with the person
// number the header gave, which answers exactly as a reserved patient's
// record does (rule 4: as if no record existed), so that the answer does
// not tell an unknown person from a reserved one.
const unknownPerson = "nhn-patient-nin:unknown"

// namedRef is how messages name the header's patient: neither the FHIR id
// a number resolved to nor the placeholder of an unknown one, either of
// which would tell a reserved person from an unknown one.
const namedRef = "the patient named in nhn-patient-nin"

// resolveNamed resolves req.PersonNumber to the patient's FHIR id, once
// per request (Bundle entries share their Bundle's).
func (s *Service) resolveNamed(ctx context.Context, req *Request) error {
	if req.PersonNumber == "" {
		return nil
	}
	if !req.resolved {
		ids, err := s.findPerson(ctx, req.PersonNumber)
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			req.named = unknownPerson
		case 1:
			req.named = ids[0]
		default:
			// A person has one Patient (a second is refused with 409 on
			// write); two mean the store is wrong, and guessing one would
			// show one person another's record.
			return fmt.Errorf("nhn-patient-nin: %d patients carry the same person number", len(ids))
		}
		req.resolved = true
	}
	// A request refused before it touched the patient (and each Bundle
	// entry's) is logged under the patient the header named.
	if req.Facts != nil && req.Facts.NamedPatient == "" && req.named != unknownPerson {
		req.Facts.NamedPatient = req.named
	}
	return nil
}

// findPerson returns the ids of the current Patients carrying the person
// number, as fødselsnummer or D-nummer: the system the number's first
// digit implies (a D-nummer's day is +40) is asked first, the other too,
// so that a number stored under the other system is not taken for
// nobody's.
func (s *Service) findPerson(ctx context.Context, number string) ([]string, error) {
	systems := [2]string{domain.SystemFNR, domain.SystemDNR}
	if number[0] >= '4' {
		systems[0], systems[1] = systems[1], systems[0]
	}
	var ids []string
	for _, sys := range systems {
		found, err := s.store.FindByIdentifier(ctx, "Patient", ingest.IdentifierKey(sys, number))
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// patientOr is the patient a call names itself, or, when it names none,
// the one nhn-patient-nin names ("" without the header).
func (r *Request) patientOr(patient string) string {
	if patient == "" {
		return r.named
	}
	return patient
}

// national adds the national headers to an access question.
func (r *Request) national(ar *access.Request) {
	ar.NamedPatient, ar.UserRole = r.named, r.UserRole
}

// hideNamed rewrites a decision about the header's patient so that its
// message does not name the patient's FHIR id (see namedRef).
func (r *Request) hideNamed(d *access.Decision, patient string) {
	if r.named != "" && patient == r.named {
		d.Message = strings.ReplaceAll(d.Message, "Patient/"+patient, namedRef)
	}
}

// loggedPatient is the patient the usage log records an access under:
// none for the placeholder of an unknown person.
func loggedPatient(patient string) string {
	if patient == unknownPerson {
		return ""
	}
	return patient
}
