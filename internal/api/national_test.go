package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// nationalToken mints an HP token as an EHR on the national APIs holds
// it: no FHIR patient, the person number in the attest's patients[].
func (s *secured) nationalToken(persona, pid string) string {
	s.t.Helper()
	tok, err := s.as.IssueToken(context.Background(), smart.TokenRequest{Persona: persona, PatientPID: pid})
	require.NoError(s.t, err)
	return tok.AccessToken
}

// national sends a request with the national headers given as pairs.
func (s *secured) national(tok, method, path string, body []byte, headers ...string) response {
	return s.do(method, path, body, append([]string{"Authorization", "Bearer " + tok, "nhn-access-basis", "SAMTYKKE"}, headers...)...)
}

func roleHeader(code string) string {
	return url.QueryEscape(`{"system":"` + domain.SystemHPCategory + `","code":"` + code + `"}`)
}

// TestNationalPatientHeader: nhn-patient-nin (or hit-patient-nin) names
// the patient of every route for a token without a FHIR patient, a
// request that touches another patient is refused, an unknown person
// answers exactly as a reserved one, and a malformed number is a 400.
func TestNationalPatientHeader(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		codec, err := fhir.NewCodec(domain.RecordTypes()...)
		require.NoError(t, err)
		pn0, pn1 := personNumber(t, 40), personNumber(t, 41)
		s.put(t, codec, clinical("AllergyIntolerance", s.patients[0], "sec-allergy-0", "penicillin"))
		tok := s.nationalToken("hospital-doctor", pn0)

		// A search without a patient parameter is bound to the header's.
		r := s.national(tok, "GET", "/AllergyIntolerance", nil, "nhn-patient-nin", pn0)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Contains(t, string(r.body), `"id":"sec-allergy-0"`)
		r = s.national(tok, "GET", "/Flag", nil, "hit-patient-nin", pn0)
		require.Equal(t, http.StatusOK, r.status, "legacy name; body: %s", r.body)
		assert.Contains(t, string(r.body), `"id":"sec-flag-0"`)
		assert.NotContains(t, string(r.body), "sec-flag-1")
		// The same with the parameter agreeing, a read, history, _include,
		// $kj-status.
		for _, path := range []string{"/Flag?patient=" + s.patients[0], "/Flag/sec-flag-0", "/Flag/sec-flag-0/_history",
			"/AllergyIntolerance?_include=AllergyIntolerance:patient", "/Patient/" + s.patients[0] + "/$kj-status", "/Patient"} {
			r = s.national(tok, "GET", path, nil, "nhn-patient-nin", pn0)
			assert.Equal(t, http.StatusOK, r.status, "%s: %s", path, r.body)
		}
		// Without the header the token names no patient: its patient/
		// scopes reach nobody.
		assert.Equal(t, "insufficient-scope", reasonOf(t, s.national(tok, "GET", "/Flag?patient="+s.patients[0], nil)))

		// Another patient than the header names: parameter, path, compartment,
		// Bundle entry, history.
		for _, path := range []string{"/Flag?patient=" + s.patients[1], "/Flag/sec-flag-1", "/Patient/" + s.patients[1] + "/Flag",
			"/Flag/sec-flag-1/_history", "/Patient/" + s.patients[1] + "/$kj-status"} {
			r = s.national(tok, "GET", path, nil, "nhn-patient-nin", pn0)
			assert.Equal(t, "patient-not-named", reasonOf(t, r), path)
			assert.Equal(t, http.StatusForbidden, r.status, path)
			assert.NotContains(t, string(r.body), s.patients[0], "the header's patient is not named")
		}
		batch := []byte(`{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Flag"}},{"request":{"method":"GET","url":"Flag/sec-flag-1"}}]}`)
		r = s.national(tok, "POST", "/", batch, "nhn-patient-nin", pn0)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		entries := r.json(t)["entry"].([]any)
		assert.True(t, strings.HasPrefix(entries[0].(map[string]any)["response"].(map[string]any)["status"].(string), "200"))
		assert.Contains(t, fmt.Sprint(entries[0]), "sec-flag-0")
		assert.True(t, strings.HasPrefix(entries[1].(map[string]any)["response"].(map[string]any)["status"].(string), "403"))
		assert.NotContains(t, string(r.body), `"id":"sec-flag-1"`)
		// A write for another patient than the header names.
		r = s.national(s.nationalToken("hospital-doctor", pn1), "POST", "/Flag", clinical("Flag", s.patients[0], "", "new"), "nhn-patient-nin", pn1)
		assert.Equal(t, "patient-not-named", reasonOf(t, r))

		// Malformed, or two different numbers: 400, nothing read.
		for _, h := range [][]string{{"nhn-patient-nin", "12345678901"}, {"nhn-patient-nin", pn0[:10]}, {"nhn-patient-nin", "0" + pn0},
			{"nhn-patient-nin", pn0, "hit-patient-nin", pn1}} {
			r = s.national(tok, "GET", "/Flag", nil, h...)
			issue := outcome(t, r, http.StatusBadRequest)
			assert.Equal(t, []any{"nhn-patient-nin"}, issue["expression"], "%v", h)
			assert.NotContains(t, string(r.body), "sec-flag")
		}

		// A reserved person (secret address) and an unknown one answer
		// alike, on a search and on a read.
		body := patientJSON(t, 42, "sec-secret")
		body = bytes.Replace(body, []byte(`"gender"`), []byte(`"extension":[{"url":"`+domain.SecretAddressExtension+`","valueBoolean":true}],"gender"`), 1)
		s.put(t, codec, body)
		s.put(t, codec, clinical("Flag", "sec-secret", "sec-secret-flag", "x"))
		reserved, unknown := personNumber(t, 42), personNumber(t, 43)
		answer := func(pid, path string) (int, string) {
			r := s.national(s.nationalToken("hospital-doctor", pid), "GET", path, nil, "nhn-patient-nin", pid)
			return r.status, strings.ReplaceAll(string(r.body), pid, "PID")
		}
		for _, path := range []string{"/AllergyIntolerance", "/Flag", "/Patient", "/Flag?_id=x", "/DocumentReference"} {
			rs, rb := answer(reserved, path)
			us, ub := answer(unknown, path)
			assert.Equal(t, rs, us, path)
			assert.Equal(t, rb, ub, path)
			assert.NotContains(t, rb, "sec-secret", path)
			assert.NotEqual(t, http.StatusOK, rs, path)
		}
	})
}

// TestNationalUserRoleAndSourceSystem: nhn-user-role must agree with the
// token's attest (refused with a reason, and logged, when not), and
// nhn-source-system reaches the usage log.
func TestNationalUserRoleAndSourceSystem(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	pn0 := personNumber(t, 40)
	tok := s.nationalToken("hospital-doctor", pn0)

	r := s.national(tok, "GET", "/Flag", nil, "nhn-patient-nin", pn0, "nhn-user-role", roleHeader("LE"), "nhn-source-system", "DIPS Arena")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	ev := lastAuditOf(t, s.st, s.patients[0])
	assert.Contains(t, fmt.Sprint(ev["agent"]), "display:DIPS Arena", "the source system on the client agent")

	// Unencoded JSON, and the legacy names.
	r = s.national(tok, "GET", "/Flag", nil, "hit-patient-nin", pn0, "hit-user-role", `{"system":"`+domain.SystemHPCategory+`","code":"LE"}`,
		"hit-source-system", "Infodoc Plenario")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Contains(t, fmt.Sprint(lastAuditOf(t, s.st, s.patients[0])["agent"]), "display:Infodoc Plenario")

	r = s.national(tok, "GET", "/Flag", nil, "nhn-patient-nin", pn0, "nhn-user-role", roleHeader("SP"), "nhn-source-system", "DIPS Arena")
	issue := outcome(t, r, http.StatusForbidden)
	assert.Equal(t, "user-role-mismatch", reasonOf(t, r))
	assert.Contains(t, issue["diagnostics"], "SP")
	ev = lastAuditOf(t, s.st, s.patients[0])
	assert.Contains(t, fmt.Sprint(ev["outcomeDesc"]), "user-role-mismatch", "the refusal is logged")
	assert.Contains(t, fmt.Sprint(ev["agent"]), "display:DIPS Arena")

	for _, h := range [][]string{
		{"nhn-user-role", "LE"},
		{"nhn-user-role", url.QueryEscape(`{"system":"urn:oid:1.2.3","code":"LE"}`)},
		{"nhn-user-role", roleHeader("le")},
		{"nhn-user-role", roleHeader("LE"), "hit-user-role", roleHeader("SP")},
		{"nhn-source-system", strings.Repeat("x", 201)},
		{"nhn-source-system", "DIPS\tArena"},
		{"nhn-source-system", "DIPS", "hit-source-system", "Infodoc"},
		{"nhn-access-basis", "SAMTYKKE", "hit-access-basis", "UNNTAK"},
	} {
		head := auditHead(t, s.st)
		r = s.national(tok, "GET", "/Flag", nil, append([]string{"nhn-patient-nin", pn0}, h...)...)
		outcome(t, r, http.StatusBadRequest)
		assert.NotContains(t, string(r.body), "sec-flag", "%v", h)
		assert.Greater(t, auditHead(t, s.st), head, "the refusal is logged: %v", h)
	}

	// hit-access-basis alone is the access basis.
	r = s.do("GET", "/Flag", nil, "Authorization", "Bearer "+tok, "hit-access-basis", "SAMTYKKE", "nhn-patient-nin", pn0)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
}

// TestNationalHeadersCORS: a browser app may send the national headers,
// under both names.
func TestNationalHeadersCORS(t *testing.T) {
	s := browserServer(t, &api.CORS{Loopback: true})
	asked := "hit-access-basis,hit-patient-nin,hit-source-system,hit-user-role,nhn-access-basis,nhn-patient-nin,nhn-source-system,nhn-user-role"
	r := s.do("OPTIONS", "/AllergyIntolerance", nil, "Origin", appOrigin, "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", asked)
	require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
	allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	for _, h := range strings.Split(asked, ",") {
		assert.Contains(t, allowed, h)
	}
}

// TestNationalPatientHeaderDocuments: journal documents are searched and
// opened for the patient nhn-patient-nin names, with a token that has no
// FHIR patient.
func TestNationalPatientHeaderDocuments(t *testing.T) {
	s, _ := withSources(t)
	tok := s.nationalToken("hospital-doctor", citizenPID)
	r := s.national(tok, "GET", "/DocumentReference", nil, "nhn-patient-nin", citizenPID, "nhn-source-system", "DIPS Arena")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Contains(t, string(r.body), "ous.")
	urls := proxyURL.FindAllStringSubmatch(string(r.body), -1)
	require.NotEmpty(t, urls)
	link := strings.TrimPrefix(urls[0][1], s.base)
	res := s.national(tok, "GET", link, nil, "nhn-patient-nin", citizenPID)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	// Without the header the token names no patient to open it for.
	assert.NotEqual(t, http.StatusOK, s.national(tok, "GET", link, nil).status)
	// Another patient's number does not open it.
	other := s.nationalToken("hospital-doctor", personNumber(t, 40))
	assert.NotEqual(t, http.StatusOK, s.national(other, "GET", link, nil, "nhn-patient-nin", personNumber(t, 40)).status)
	ev := lastAuditOf(t, s.st, citizenPatient)
	assert.Contains(t, fmt.Sprint(ev["subtype"]), "ITI-68")
}
