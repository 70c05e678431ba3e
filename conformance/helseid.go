package conformance

import (
	"net/http"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// HelseID as the national APIs use it (issue 16, item 3), as a client can
// observe it: tokens living longer than the server accepts, an attest older
// than its 60 minutes, an attest whose patients[] names another patient
// than the request's. A DPoP proof replayed is smart/attack-dpop-replay.
// Replays across restarts and server processes, and Bearer tokens refused
// by a server started with --require-dpop, are tested in Go with real
// server processes (internal/cli/helseid_test.go): the suite cannot restart
// the server, and its server takes Bearer tokens.
//
// The well-signed variants need the development issuer's key
// (--issuer-key), as the other claim attacks do.

func init() {
	register(
		Check{GroupSMART, "smart/attack-token-too-long", "a token whose lifetime (exp - iat) exceeds what the server accepts (a day here) is refused with 401",
			claimAttack("valid for a day", func(c map[string]any, now int64) {
				c["iat"], c["nbf"], c["exp"] = now, now, now+24*3600
			})},
		Check{GroupSMART, "smart/attack-old-attest", "a token whose trust-framework attest is older than 60 minutes (toa) is refused with 401",
			claimAttack("with an attest made 61 minutes ago", func(c map[string]any, now int64) {
				withAttest(c, func(a map[string]any) { a["toa"] = now - 61*60 })
			})},
		Check{GroupRules, "rules/attest-patient-mismatch", "an HP whose attest's patients[] names another patient than the one the request is about is refused with 403 (attest-patient-mismatch), even with that patient as the SMART launch context",
			checkAttestPatientMismatch},
	)
}

// withAttest changes a copy of the claims' trust-framework attest (the
// token's claims share their nested maps with the victim's).
func withAttest(c map[string]any, change func(a map[string]any)) {
	var out []any
	for _, d := range alList(c["authorization_details"]) {
		m := map[string]any{}
		for k, v := range d {
			m[k] = v
		}
		if alStr(m, "type") == "nhn:tillitsrammeverk:parameters" {
			change(m)
		}
		out = append(out, m)
	}
	c["authorization_details"] = out
}

func attestPatient(pid string) []any {
	return []any{map[string]any{"identifier": map[string]any{"id": pid, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}}}
}

func checkAttestPatientMismatch(t *T) {
	v := t.attackVictim()
	key, alg, ok := t.issuerKey()
	if !ok {
		t.Skipf("an attest that disagrees with the launch context is minted with the development issuer's key, which the suite does not have for this server (--issuer-key)")
	}
	_, otherPID := t.NewPatient(PatientSpec{})
	mint := func(pid string) string {
		c := freshClaims(v.claims)
		c["patient"] = v.id
		withAttest(c, func(a map[string]any) { a["patients"] = attestPatient(pid) })
		return signWith(t, key, alg, c, map[string]any{jws.TypeKey: headerTyp(v)})
	}
	res := t.Do(Request{Path: "Patient/" + v.id, Token: mint(v.pid), Basis: "UNNTAK"})
	wantStatus(t, "control: the attest names the patient read", res, http.StatusOK)
	for _, path := range []string{"Patient/" + v.id, "Flag?patient=" + v.id} {
		res = t.Do(Request{Path: path, Token: mint(otherPID), Basis: "UNNTAK"})
		wantRefusal(t, "GET "+path+" with an attest naming another patient", res, http.StatusForbidden, "attest-patient-mismatch")
		if leakedVictim(res, v) {
			t.Errorf("GET %s with an attest naming another patient: the answer carries the patient's data", path)
		}
	}
}
