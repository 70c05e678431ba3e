package interaction

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
)

// Conditional references (R4 http.html#trules): a Bundle entry's resource
// may refer to "Type?query"; before the entry is processed the server
// resolves the query, and exactly one match replaces the reference with
// Type/id, while none or several fail the entry with 412. kjernejournal
// resolves them in every Bundle entry, batch and transaction alike (the
// same write pipeline serves both; a plain REST create or update keeps
// refusing them, as R4 defines them for Bundles only).
//
// The resolution obeys the access rules like any other access:
//   - Patient?identifier=system|value (or _id=) finds the patient by
//     identifier; the candidate passes the decision point for the entry's
//     write, and a patient the rules refuse (reserved, as if no record;
//     another patient than the one the request is bound to; no basis) is
//     no match: the answer is the same 412 as for a person nobody has,
//     naming no id.
//   - any other served type is searched only inside the record of the
//     patient the entry's resource belongs to (after its patient
//     reference is resolved), after that patient passed the decision
//     point: a reference can never reach another patient's data.

// conditionalRef reports whether ref is a conditional reference to a type
// this server serves, and splits it.
func (s *Service) conditionalRef(ref string) (typ, query string, ok bool) {
	typ, query, ok = strings.Cut(ref, "?")
	if !ok || typ == "" || strings.Contains(typ, "/") || strings.Contains(typ, ":") || !s.recordType(typ) {
		return "", "", false
	}
	return typ, query, true
}

// resolveConditionalRefs rewrites res's conditional references; Patient
// ones first, so that the patient the resource belongs to is known for
// the others.
func (s *Service) resolveConditionalRefs(ctx context.Context, req *Request, c *Call, res *fhir.Resource) (bool, error) {
	var patientRefs, otherRefs []string
	for _, ref := range res.References() {
		typ, _, ok := s.conditionalRef(ref)
		switch {
		case !ok:
		case typ == "Patient":
			patientRefs = append(patientRefs, ref)
		default:
			otherRefs = append(otherRefs, ref)
		}
	}
	if len(patientRefs) == 0 && len(otherRefs) == 0 {
		return false, nil
	}
	in := access.Create
	if c.Kind != Create {
		in = access.Update
	}
	m := map[string]string{}
	for _, ref := range slices.Compact(sortedCopy(patientRefs)) {
		id, err := s.resolvePatientRef(ctx, req, in, c.Type, ref)
		if err != nil {
			return false, err
		}
		m[ref] = "Patient/" + id
	}
	if len(m) > 0 {
		res.RewriteReferences(m)
	}
	if len(otherRefs) == 0 {
		return true, nil
	}
	if res.Type == "Patient" || res.Patient == "" {
		return false, fail(http.StatusBadRequest, "not-supported", "a conditional reference (%s) is resolved inside the record of the patient the %s belongs to; this one names no patient", otherRefs[0], c.Type)
	}
	d, _, err := s.decide(ctx, req, ask{in: in, typ: c.Type, patient: res.Patient})
	if err != nil {
		return false, err
	}
	if !d.Allowed() {
		if d.AsNotFound {
			return false, absent{kind: patientNotHeld, typ: c.Type, id: res.Patient}.err()
		}
		return false, refusal(d, absent{})
	}
	m = map[string]string{}
	for _, ref := range slices.Compact(sortedCopy(otherRefs)) {
		typ, query, _ := s.conditionalRef(ref)
		matches, err := s.matchInRecord(ctx, typ, res.Patient, query, "the conditional reference "+ref)
		if err != nil {
			return false, err
		}
		if len(matches) != 1 {
			return false, condRefFailed(ref, len(matches))
		}
		m[ref] = typ + "/" + matches[0].ID
	}
	res.RewriteReferences(m)
	return true, nil
}

// resolvePatientRef resolves Patient?identifier=system|value or
// Patient?_id=id to the one patient it names that the request may write
// typ for.
func (s *Service) resolvePatientRef(ctx context.Context, req *Request, in access.Interaction, typ, ref string) (string, error) {
	_, query, _ := s.conditionalRef(ref)
	params, err := url.ParseQuery(query)
	if err != nil || len(params) == 0 {
		return "", invalid("", "the conditional reference %q must be a search query such as Patient?identifier=system|value", ref)
	}
	var candidates []string
	first := true
	for name, values := range params {
		var found []string
		for _, v := range values {
			for _, tok := range strings.Split(v, ",") {
				switch name {
				case "_id":
					if _, err := s.store.Read(ctx, "Patient", tok); err == nil {
						found = append(found, tok)
					}
				case "identifier":
					system, value, ok := strings.Cut(tok, "|")
					if !ok || system == "" || value == "" {
						return "", invalid("", "the conditional reference %q: identifier must name system|value", ref)
					}
					ids, err := s.store.FindByIdentifier(ctx, "Patient", ingest.IdentifierKey(system, value))
					if err != nil {
						return "", err
					}
					found = append(found, ids...)
				default:
					return "", fail(http.StatusBadRequest, "not-supported", "the conditional reference %q: a patient is resolved by identifier=system|value or _id only, not %s (kjernejournal is not searched across patients)", ref, name)
				}
			}
		}
		slices.Sort(found)
		found = slices.Compact(found)
		if first {
			candidates, first = found, false
			continue
		}
		candidates = slices.DeleteFunc(candidates, func(id string) bool { return !slices.Contains(found, id) })
	}
	// Every candidate passes the decision point for the entry's write (the
	// decision is in the usage log); one the rules refuse (reserved, another
	// patient than the one the request is bound to, no basis) is no match,
	// so the answer tells neither its id nor that the person is held.
	var visible []string
	for _, id := range candidates {
		d, _, err := s.decide(ctx, req, ask{in: in, typ: typ, patient: id})
		if err != nil {
			return "", err
		}
		if d.Allowed() {
			visible = append(visible, id)
		}
	}
	if len(visible) != 1 {
		return "", condRefFailed(ref, len(visible))
	}
	return visible[0], nil
}

// condRefFailed is the 412 for a conditional reference that matched n
// resources.
func condRefFailed(ref string, n int) *Error {
	if n == 0 {
		return fail(http.StatusPreconditionFailed, "not-found", "the conditional reference %s matched no resource this request may refer to; it must match exactly one", ref)
	}
	return fail(http.StatusPreconditionFailed, "multiple-matches", "the conditional reference %s matched %d resources; it must match exactly one", ref, n)
}

func sortedCopy(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}
