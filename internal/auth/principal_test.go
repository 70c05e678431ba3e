package auth

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKind(t *testing.T) {
	cases := []struct {
		name string
		mod  func(c map[string]any)
		want Kind
	}{
		{"practitioner with HPR", func(c map[string]any) {}, KindPractitioner},
		{"practitioner by fhirUser only", func(c map[string]any) { delete(c, ClaimHPRNumber) }, KindPractitioner},
		{"practitioner absolute fhirUser", func(c map[string]any) {
			delete(c, ClaimHPRNumber)
			c["fhirUser"] = "https://fhir.kj.test/Practitioner/hp-123"
		}, KindPractitioner},
		{"citizen", func(c map[string]any) {
			delete(c, ClaimHPRNumber)
			delete(c, "authorization_details")
			c["fhirUser"] = "Patient/pat-1"
		}, KindCitizen},
		{"citizen without pid is unknown", func(c map[string]any) {
			delete(c, ClaimHPRNumber)
			delete(c, ClaimPID)
			c["fhirUser"] = "Patient/pat-1"
		}, KindUnknown},
		{"HPR and Patient fhirUser is contradictory", func(c map[string]any) { c["fhirUser"] = "Patient/pat-1" }, KindUnknown},
		{"system", func(c map[string]any) {
			for _, k := range []string{ClaimHPRNumber, ClaimPID, "fhirUser", "patient", "authorization_details"} {
				delete(c, k)
			}
			c["sub"] = "feeder-client"
			c["scope"] = "system/MedicationStatement.cu system/Encounter.cu"
		}, KindSystem},
		{"system scopes mixed with user scopes", func(c map[string]any) {
			for _, k := range []string{ClaimHPRNumber, ClaimPID, "fhirUser"} {
				delete(c, k)
			}
			c["scope"] = "system/Encounter.cu user/Flag.rs"
		}, KindUnknown},
		{"nobody with no scopes", func(c map[string]any) {
			for _, k := range []string{ClaimHPRNumber, ClaimPID, "fhirUser"} {
				delete(c, k)
			}
			c["scope"] = "openid"
		}, KindUnknown},
	}
	f := newFixture(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.claims()
			c["jti"] = tc.name
			tc.mod(c)
			p, err := f.v.Validate(context.Background(), bearer(f.token(f.ec1, c)))
			require.NoError(t, err, "case %d", i)
			assert.Equal(t, tc.want, p.Kind())
		})
	}
}

func TestAttestShapes(t *testing.T) {
	att, err := json.Marshal(sampleAttest())
	require.NoError(t, err)

	t.Run("lone object", func(t *testing.T) {
		a, err := parseAttest(att)
		require.NoError(t, err)
		require.NotNil(t, a)
		assert.Equal(t, "TREAT", a.CareRelationship.PurposeOfUse.Code)
	})
	t.Run("array with other types", func(t *testing.T) {
		a, err := parseAttest(json.RawMessage(`[{"type":"helseid_authorization","practitioner_role":{}},` + string(att) + `]`))
		require.NoError(t, err)
		require.NotNil(t, a)
		assert.Equal(t, "LE", a.Practitioner.Authorization.Code)
	})
	t.Run("absent", func(t *testing.T) {
		a, err := parseAttest(json.RawMessage(`[{"type":"helseid_authorization"}]`))
		require.NoError(t, err)
		assert.Nil(t, a)
		a, err = parseAttest(nil)
		require.NoError(t, err)
		assert.Nil(t, a)
	})
	t.Run("two attests refused", func(t *testing.T) {
		_, err := parseAttest(json.RawMessage(`[` + string(att) + `,` + string(att) + `]`))
		assert.Error(t, err)
	})
	t.Run("wrong types refused", func(t *testing.T) {
		_, err := parseAttest(json.RawMessage(`{"type":"nhn:tillitsrammeverk:parameters","patients":"x"}`))
		assert.Error(t, err)
		_, err = parseAttest(json.RawMessage(`"x"`))
		assert.Error(t, err)
	})

	f := newFixture(t, nil)
	t.Run("foreign code systems are not trusted as HP category or purpose", func(t *testing.T) {
		a := sampleAttest()
		a["practitioner"].(map[string]any)["authorization"] = map[string]any{"code": "LE", "system": "urn:other"}
		a["care_relationship"].(map[string]any)["purpose_of_use"] = map[string]any{"code": "ETREAT", "system": "urn:other"}
		c := f.claims()
		c["authorization_details"] = a
		p, err := f.v.Validate(context.Background(), bearer(f.token(f.rsa1, c)))
		require.NoError(t, err)
		assert.Empty(t, p.HPCategory)
		assert.Empty(t, p.PurposeOfUse)
		assert.Equal(t, "LE", p.Attest.Practitioner.Authorization.Code)
	})
	t.Run("malformed attest makes the token invalid", func(t *testing.T) {
		c := f.claims()
		c["jti"] = "bad-attest"
		c["authorization_details"] = []any{map[string]any{"type": AttestType, "practitioner": "LE"}}
		_, err := f.v.Validate(context.Background(), bearer(f.token(f.rsa1, c)))
		assert.Equal(t, CodeInvalidToken, asAuthError(t, err).Code)
	})
	t.Run("numeric security level and HPR", func(t *testing.T) {
		c := f.claims()
		c["jti"] = "numeric"
		c[ClaimSecurityLevel] = 4
		c[ClaimHPRNumber] = 565501872
		p, err := f.v.Validate(context.Background(), bearer(f.token(f.rsa1, c)))
		require.NoError(t, err)
		assert.Equal(t, 4, p.SecurityLevel)
		assert.Equal(t, "565501872", p.HPR)
	})
}

func TestFHIRUserRef(t *testing.T) {
	for in, want := range map[string][2]string{
		"Practitioner/1":                      {"Practitioner", "1"},
		"https://x.example/fhir/Patient/abc":  {"Patient", "abc"},
		"https://x.example/fhir/Patient/abc/": {"Patient", "abc"},
		"Patient":                             {"", ""},
		"":                                    {"", ""},
		"patient/1":                           {"", ""},
	} {
		rt, id := (&Principal{FHIRUser: in}).FHIRUserRef()
		assert.Equal(t, want, [2]string{rt, id}, in)
	}
}
