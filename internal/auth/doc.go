// Package auth is the resource-server side of SMART on FHIR for
// kjernejournal: it verifies access tokens from HelseID, the citizen portal
// and the built-in authorisation server (signature against the issuer's
// JWKS, iss, aud, exp/nbf/iat, typ), enforces DPoP sender constraints
// (RFC 9449), turns the claims into a Principal (HelseID claim names and the
// trust-framework attest) and parses SMART v1/v2 scopes.
//
// What it does not decide: whether a principal may see a given patient's
// data (HPR number, security level 4, patient in context, access basis,
// reservations, blocks). Those are access rules for the REST layer, which
// has the patient; this package only supplies verified facts.
//
// Per request the REST layer does:
//
//	p, err := v.Validate(r.Context(), r)
//	if err != nil {
//		var ae *auth.Error
//		errors.As(err, &ae) // Validate only returns *auth.Error
//		if ae.Missing() && publicRoute {
//			// anonymous is fine for /metadata, /.well-known/…
//		}
//		ae.SetHeader(w.Header())       // WWW-Authenticate (Bearer and/or DPoP)
//		writeOutcome(w, ae.Status, ae) // 400/401 + OperationOutcome, audited
//		return
//	}
//	// one check per interaction, e.g. a Flag search in patient context:
//	d := p.Scopes.Permits(auth.ContextPatient, "Flag", auth.Search)
//	if !d.Allowed {
//		e := auth.InsufficientScope(p.Scheme, "no scope permits Flag search", "patient/Flag.s")
//		e.SetHeader(w.Header()) // 403
//		...
//	}
//	for _, res := range results {
//		if d.Constrained() && !d.Admits(func(c auth.Constraint) bool { return matchToken(res, c) }) {
//			continue // granular scope (e.g. ?category=…) leaves it out
//		}
//		...
//	}
//
// p.Kind() says practitioner, citizen or system; p.HPR, p.PID,
// p.SecurityLevel, p.Patient, p.PurposeOfUse, p.Attest and friends feed the
// access rules and the audit log.
package auth
