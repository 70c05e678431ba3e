package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/auth"
)

const (
	testIssuer   = "https://helseid.test"
	testAudience = "https://kj.test"
)

// tokens signs access tokens with a fresh key and verifies them with the
// real validator, so the principals the table uses are exactly what the
// server gets from a token.
type tokens struct {
	key *ecdsa.PrivateKey
	v   *auth.Validator
}

func newTokens(t *testing.T) *tokens {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := jwk.PublicKeyOf(&key.PublicKey)
	require.NoError(t, err)
	require.NoError(t, pub.Set(jwk.KeyIDKey, "k1"))
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	v, err := auth.NewValidator(context.Background(), auth.Config{
		Issuers:        []auth.Issuer{{URL: testIssuer, KeySource: func(context.Context) (jwk.Set, error) { return set, nil }}},
		Audiences:      []string{testAudience},
		TokenCacheSize: -1,
	})
	require.NoError(t, err)
	return &tokens{key: key, v: v}
}

// principal signs claims (on top of iss, aud, exp, iat, security level 4)
// and returns the verified principal.
func (tk *tokens) principal(t *testing.T, claims map[string]any) *auth.Principal {
	t.Helper()
	c := map[string]any{
		"iss": testIssuer, "aud": testAudience, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		"jti": rand.Text(), "client_id": "ehr", "helseid://claims/identity/security_level": "4",
	}
	for k, v := range claims {
		c[k] = v
	}
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	hdr := jws.NewHeaders()
	require.NoError(t, hdr.Set(jws.KeyIDKey, "k1"))
	require.NoError(t, hdr.Set(jws.TypeKey, "at+jwt"))
	signed, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), tk.key, jws.WithProtectedHeaders(hdr)))
	require.NoError(t, err)
	r, err := http.NewRequest(http.MethodGet, testAudience+"/Flag", nil)
	require.NoError(t, err)
	r.Header.Set("Authorization", "Bearer "+string(signed))
	p, err := tk.v.Validate(context.Background(), r)
	require.NoError(t, err)
	return p
}

// TestAuthorize drives the one decision every route asks, with principals
// from real tokens: scopes first, then the rules.
func TestAuthorize(t *testing.T) {
	tk := newTokens(t)
	pol := &Policy{Orgs: Organisations{Hospitals: []string{hospital}}}
	hp := func(scope string, extra map[string]any) *auth.Principal {
		c := map[string]any{"scope": scope, "fhirUser": "Practitioner/" + docHPR, "name": "Dr. Test",
			"helseid://claims/hpr/hpr_number": docHPR, "helseid://claims/client/claims/orgnr_parent": hospital,
			"authorization_details": []any{map[string]any{"type": auth.AttestType,
				"practitioner":      map[string]any{"authorization": map[string]any{"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"}},
				"care_relationship": map[string]any{"purpose_of_use": map[string]any{"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"}},
				"patients":          []any{map[string]any{"identifier": map[string]any{"id": pid, "system": "urn:oid:2.16.578.1.12.4.1.4.1"}}},
			}}}
		for k, v := range extra {
			c[k] = v
		}
		return tk.principal(t, c)
	}
	userHP := hp("openid user/*.rs user/Flag.cruds user/AllergyIntolerance.cruds", nil)
	launchHP := hp("launch patient/Flag.rs patient/MedicationStatement.rs", map[string]any{"patient": otherPat})
	granularHP := hp("user/Flag.rs?category=http://terminology.hl7.org/CodeSystem/flag-category|clinical", nil)
	citizen := tk.principal(t, map[string]any{"scope": "patient/*.rs patient/Consent.cu", "fhirUser": "Patient/" + pat, "helseid://claims/identity/pid": pid})
	feeder := tk.principal(t, map[string]any{"scope": "system/MedicationStatement.cu system/Patient.cu"})
	auditor := tk.principal(t, map[string]any{"scope": "user/AuditEvent.rs", "kjernejournal://claims/role": "auditor", "sub": "revisor"})

	r := func(i Interaction, typ string, b Basis) Request { return req(i, typ, b) }
	cases := []struct {
		name   string
		p      *auth.Principal
		r      Request
		st     PatientState
		reason Reason
		check  func(t *testing.T, d Decision)
	}{
		{"no token", nil, r(Read, "Flag", Unntak), state(), NotAuthenticated, nil},
		{"HP with user/ scopes reads a Flag", userHP, r(Read, "Flag", Unntak), state(), OK, func(t *testing.T, d Decision) {
			assert.False(t, d.Scopes.Constrained())
		}},
		{"HP without a scope for Encounter search", hp("user/Flag.rs", nil), r(Search, "Encounter", Unntak), state(), InsufficientScope, func(t *testing.T, d Decision) {
			assert.True(t, d.ScopeRefused)
			assert.Contains(t, d.Message, "Encounter")
		}},
		{"HP writes with read-only scopes", hp("user/Flag.rs", nil), r(Create, "Flag", Unntak), state(), InsufficientScope, nil},
		{"patient/ scopes reach the launch patient only", launchHP, r(Read, "Flag", Unntak), state(), PatientNotInContext, func(t *testing.T, d Decision) {
			assert.True(t, d.ScopeRefused)
		}},
		{"patient/ scopes for the launch patient", launchHP, Request{Interaction: Search, ResourceType: "Flag", Patient: otherPat, Basis: Unntak, BasisHeader: "UNNTAK"}, state(), OK, nil},
		{"granular scope: permitted, constrained", granularHP, r(Search, "Flag", Unntak), state(), OK, func(t *testing.T, d Decision) {
			assert.True(t, d.Scopes.Constrained())
			assert.True(t, d.Admits(func(c auth.Constraint) bool { return c.Param == "category" && strings.HasSuffix(c.Value, "|clinical") }))
			assert.False(t, d.Admits(func(auth.Constraint) bool { return false }))
		}},
		{"scopes pass, rules refuse: blocked HP", userHP, r(Read, "Flag", Unntak), state(func(st *PatientState) { st.BlockedHPR = []string{docHPR} }), HPBlocked, nil},
		{"scopes pass, rules refuse: reserved record as if none", userHP, r(Read, "Flag", Unntak), state(func(st *PatientState) { st.Reserved = true; st.BlockedHPR = []string{docHPR} }), NoRecord, func(t *testing.T, d Decision) {
			assert.True(t, d.AsNotFound)
		}},
		{"the attest's patients[] puts the patient in context", hp("user/Flag.rs", nil), r(Read, "Flag", Samtykke), state(), OK, nil},
		{"the attest does not name another patient", hp("user/Flag.rs", nil), Request{Interaction: Read, ResourceType: "Flag", Patient: otherPat, Basis: Samtykke, BasisHeader: "SAMTYKKE"},
			state(func(st *PatientState) { st.PersonNumber = "17837054321" }), PatientNotInContext, nil},
		{"citizen reads own record with patient/ scopes", citizen, r(Search, "MedicationStatement", ""), state(), OK, nil},
		{"citizen cannot subscribe", citizen, r(Create, "Subscription", ""), state(), InsufficientScope, nil},
		{"citizen lifts own reservation", citizen, Request{Interaction: Update, ResourceType: "Consent", Patient: pat,
			Change: &PrivacyChange{New: PrivacySetting{Kind: KindReservation, Since: setTime.Add(time.Hour)}, Previous: &PrivacySetting{Kind: KindReservation, Active: true, Since: setTime}}},
			state(func(st *PatientState) { st.Reserved = true }), OK, nil},
		{"citizen cannot set a block", citizen, Request{Interaction: Create, ResourceType: "Consent", Patient: pat,
			Change: &PrivacyChange{New: PrivacySetting{Kind: KindBlock, Active: true, Since: setTime}}}, state(), BlocksBySupportOnly, nil},
		{"feeder writes medications", feeder, r(Create, "MedicationStatement", ""), state(), OK, nil},
		{"feeder's system/ scopes never read", feeder, r(Read, "MedicationStatement", ""), state(), InsufficientScope, nil},
		{"feeder updates a reserved Patient", feeder, r(Update, "Patient", ""), state(func(st *PatientState) { st.Reserved = true }), ReservedNoNewData, nil},
		{"auditor searches the usage log across patients", auditor, Request{Interaction: Search, ResourceType: "AuditEvent"}, PatientState{}, OK, nil},
		{"HP reads their own Practitioner with the fhirUser scope", hp("openid fhirUser", nil), Request{Interaction: Read, ResourceType: "Practitioner", ID: docHPR}, PatientState{}, OK, nil},
		{"HP reads another practitioner", hp("openid fhirUser user/*.rs", nil), Request{Interaction: Read, ResourceType: "Practitioner", ID: "990000001"}, PatientState{}, NotOwnUser, nil},
		{"own Practitioner without the fhirUser scope", hp("openid user/Flag.rs", nil), Request{Interaction: Read, ResourceType: "Practitioner", ID: docHPR}, PatientState{}, InsufficientScope, func(t *testing.T, d Decision) {
			assert.True(t, d.ScopeRefused)
		}},
		{"Practitioners are not searched", hp("openid fhirUser user/*.rs", nil), Request{Interaction: Search, ResourceType: "Practitioner"}, PatientState{}, RoleNotAllowed, nil},
		{"a citizen reads no Practitioner", citizen, Request{Interaction: Read, ResourceType: "Practitioner", ID: docHPR}, PatientState{}, NotOwnUser, nil},
		{"HP cannot read the usage log even with a scope for it", hp("user/AuditEvent.rs", nil), r(Search, "AuditEvent", Unntak), state(), RoleNotAllowed, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := pol.Authorize(tc.p, tc.r, tc.st)
			assert.Equal(t, tc.reason, d.Reason, "%+v", d)
			assert.Equal(t, tc.reason == OK, d.Allowed(), "%+v", d)
			assert.NotEmpty(t, d.Message)
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestBindSearch is rule 1 for searches: exactly one patient.
func TestBindSearch(t *testing.T) {
	cases := []struct {
		name    string
		typ     string
		b       Binding
		patient string
		allowed bool
	}{
		{"bound to one patient", "Flag", Binding{Patients: []string{pat}, Bound: true}, pat, true},
		{"no patient parameter", "Flag", Binding{}, "", false},
		{"two patients", "Flag", Binding{Patients: []string{pat, otherPat}, Bound: true}, "", false},
		{"an identifier nobody has", "Flag", Binding{Bound: true, Unknown: []string{"urn:oid:2.16.578.1.12.4.1.4.1|17837054321"}}, "", false},
		{"Patient by an identifier nobody has: finds nothing", "Patient", Binding{Bound: true, Unknown: []string{"x|y"}}, "", true},
		{"contradicting parameters: finds nothing", "Flag", Binding{Bound: true}, "", true},
		{"the usage log across patients is still a search without a patient", "AuditEvent", Binding{}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := BindSearch(tc.typ, tc.b)
			assert.Equal(t, tc.patient, p)
			assert.Equal(t, tc.allowed, d.Allowed(), "%+v", d)
			if !tc.allowed {
				assert.Equal(t, NoPatientBound, d.Reason)
				assert.Contains(t, d.Message, "across patients")
			}
		})
	}
}
