package access

// The national API conventions (DOMAIN.md, "The national API
// conventions"): an EHR that talks to the national kjernejournal APIs
// names the patient by person number in nhn-patient-nin and the HP's
// category in nhn-user-role. Both are claims of the request, not of the
// token, so they are checked against what the request touches and what
// the verified token says before any other rule.

const (
	// PatientNotNamed: the request touches another patient than the one
	// nhn-patient-nin names. A request names one patient; a parameter,
	// path or resource that disagrees with the header is refused rather
	// than either one silently winning.
	PatientNotNamed Reason = "patient-not-named"
	// UserRoleMismatch: nhn-user-role declares another HP category than
	// the token's trust-framework attest. The header is what the EHR
	// shows its user; the attest is what HelseID vouches for, so an EHR
	// that disagrees with its own token is refused, not believed.
	UserRoleMismatch Reason = "user-role-mismatch"
)

// national checks the request's national headers; ok is false with the
// refusal when they disagree with the request or the token.
func national(s Subject, r Request) (Decision, bool) {
	if r.NamedPatient != "" && r.Patient != "" && r.Patient != r.NamedPatient {
		// The header's patient is not named in the message: the answer must
		// not tell what (or whether anything) the number resolved to.
		return deny(PatientNotNamed, "the request concerns Patient/%s, but nhn-patient-nin names another person; "+
			"a request concerns the patient in nhn-patient-nin only", r.Patient), false
	}
	if r.UserRole != "" {
		switch {
		case s.Role != Practitioner:
			return deny(UserRoleMismatch, "nhn-user-role declares health personnel category %s, but the token is not a health personnel's", r.UserRole), false
		case s.HPCategory != r.UserRole:
			return deny(UserRoleMismatch, "nhn-user-role declares health personnel category %s, but the token's trust-framework attest says %q; the two must agree",
				r.UserRole, s.HPCategory), false
		}
	}
	return Decision{}, true
}
