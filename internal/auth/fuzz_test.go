package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"", "openid fhirUser launch/patient",
		"patient/Flag.read", "user/*.write", "user/*.*", "*.*",
		"patient/Flag.rs", "user/AllergyIntolerance.cruds", "system/Encounter.cu",
		"patient/Flag.rs?category=http://terminology.hl7.org/CodeSystem/flag-category|clinical",
		"patient/Flag.rs?category=clinical&status=active",
		"patient/Flag.rsx", "patient/Flag.sr", "Patient/Flag.read", "patient/Flag.read?",
		"patient/Flag.rs?category=%7C", "helseid://scopes/identity/pid nhn:kj/api",
		"patient/Flag.rs?category=a,b", "user/\x00.rs", "patient/Flag.rs?category=%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, errs := ParseScopes(s)
		if len(scopes)+len(errs) != len(strings.Fields(s)) {
			t.Fatalf("every field must be kept or reported: %q", s)
		}
		for _, sc := range scopes {
			again, e := ParseScopes(sc.Raw)
			if len(e) != 0 || len(again) != 1 || again[0].Interactions != sc.Interactions || again[0].Context != sc.Context {
				t.Fatalf("kept scope %q does not re-parse identically", sc.Raw)
			}
			if !sc.IsResource() {
				if sc.Interactions != 0 || sc.ResourceType != "" || len(sc.Constraints) != 0 {
					t.Fatalf("non-resource scope %q grants something", sc.Raw)
				}
				continue
			}
			if sc.Interactions == 0 || sc.Interactions&^allInteractions != 0 {
				t.Fatalf("scope %q has interactions %b", sc.Raw, sc.Interactions)
			}
			if !strings.HasPrefix(sc.Raw, string(sc.Context)+"/"+sc.ResourceType+".") {
				t.Fatalf("scope %q parsed as %s/%s", sc.Raw, sc.Context, sc.ResourceType)
			}
			for _, c := range sc.Constraints {
				if !granularParams[c.Param] || c.Value == "" {
					t.Fatalf("scope %q has constraint %+v", sc.Raw, c)
				}
			}
		}
		for _, ctx := range []Context{ContextPatient, ContextUser, ContextSystem} {
			for _, in := range []Interaction{Create, Read, Update, Delete, Search} {
				d := scopes.Permits(ctx, "Flag", in)
				if d.Allowed != (len(d.Grants) > 0) {
					t.Fatalf("decision inconsistent: %+v", d)
				}
			}
			if scopes.Permits(ctx, "Flag", 0).Allowed || scopes.Permits(ctx, "Flag", Read|Search).Allowed {
				t.Fatal("non-single interaction allowed")
			}
		}
	})
}

// FuzzValidateToken feeds arbitrary strings as bearer tokens to a validator
// with a real JWKS: none may panic and none may validate, except the exact
// legitimate tokens in the seed corpus.
func FuzzValidateToken(f *testing.F) {
	fx := newFixture(f, nil)
	good := map[string]bool{}
	rs := fx.token(fx.rsa1, fx.claims())
	es := fx.token(fx.ec1, fx.claims())
	good[rs], good[es] = true, true
	for _, s := range []string{
		rs, es,
		rs[:len(rs)-1], es + "A", strings.Replace(rs, ".", "..", 1),
		rs[:strings.LastIndexByte(rs, '.')+1], // stripped signature
		"", "x", "a.b.c", "..", "eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.AAAA",
		rawJWS(f, map[string]any{"alg": "none", "typ": "at+jwt"}, fx.claims(), nil),
		rawJWS(f, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, fx.claims(), hs256(publicPEM(f, &rsaKey1.PublicKey))),
		rawJWS(f, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1"}, fx.claims(), func([]byte) []byte { return make([]byte, 256) }),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := fx.v.Validate(context.Background(), request("GET", flagURL, "Bearer "+s, ""))
		if err == nil {
			// RFC 7235 allows several spaces after the scheme.
			if !good[strings.TrimLeft(s, " ")] {
				t.Fatalf("forged token validated: %q", s)
			}
			if p == nil {
				t.Fatal("nil principal without error")
			}
			return
		}
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("error of type %T", err)
		}
		if ae.Status != 400 && ae.Status != 401 {
			t.Fatalf("status %d", ae.Status)
		}
		if strings.ContainsAny(ae.WWWAuthenticate(), "\r\n") {
			t.Fatalf("header injection: %q", ae.WWWAuthenticate())
		}
	})
}
