package conformance

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/kjernejournal/kjernejournal/internal/clientkey"
)

// The token attacks of the SMART issue, each against the FHIR endpoint:
// a real token of the patient's GP is decoded, altered and re-encoded (or
// signed with a key the attacker holds) and presented on a read of the
// patient. Every one must be answered 401 with an OperationOutcome and a
// WWW-Authenticate challenge, and must not return the patient's data.
//
// Altering a real token breaks its signature, so those variants show that
// a forgery fails, not which check refused it. When the suite has the
// development issuer's signing key and the server publishes it, the
// claim attacks (expired, not yet valid, wrong aud, wrong iss, typ) also
// come well signed and wrong in that one claim only, next to a control
// minted the same way that must succeed; DPoP-bound tokens, which the
// built-in server does not issue, can only be had that way.

func init() {
	register(
		Check{GroupSMART, "smart/attack-no-token", "a request without a token, or with a non-Bearer scheme, gets 401, a Bearer challenge without an error code, and no data", checkAttackNoToken},
		Check{GroupSMART, "smart/attack-alg-none", "a token re-encoded with alg=none (any spelling) and no signature is refused with 401", checkAttackAlgNone},
		Check{GroupSMART, "smart/attack-hs256", "a token signed HS256 with the server's public key as the HMAC secret is refused with 401", checkAttackHS256},
		Check{GroupSMART, "smart/attack-unknown-kid", "a token signed by a key that is not in the issuer's JWKS (unknown or no kid) is refused with 401", checkAttackUnknownKid},
		Check{GroupSMART, "smart/attack-bad-signature", "a token with a corrupted signature, or signed by another key under the issuer's kid, is refused with 401", checkAttackBadSignature},
		Check{GroupSMART, "smart/attack-tampered-payload", "a real token whose patient or scope was edited is refused with 401", checkAttackTampered},
		Check{GroupSMART, "smart/attack-embedded-key", "a token that brings its own key (jwk or jku header) is refused with 401", checkAttackEmbeddedKey},
		Check{GroupSMART, "smart/attack-expired", "an expired token is refused with 401", claimAttack("expired", func(c map[string]any, now int64) {
			c["iat"], c["nbf"], c["exp"] = now-7200, now-7200, now-3600
		})},
		Check{GroupSMART, "smart/attack-not-yet-valid", "a token whose nbf lies an hour ahead is refused with 401", claimAttack("not yet valid", func(c map[string]any, now int64) {
			c["nbf"], c["exp"] = now+3600, now+7200
		})},
		Check{GroupSMART, "smart/attack-wrong-aud", "a token issued for another resource server (aud) is refused with 401", claimAttack("for another audience", func(c map[string]any, _ int64) {
			c["aud"] = "https://another-fhir-server.example/fhir"
		})},
		Check{GroupSMART, "smart/attack-wrong-iss", "a token naming an untrusted issuer is refused with 401", claimAttack("from an untrusted issuer", func(c map[string]any, _ int64) {
			c["iss"] = "https://attacker.example"
		})},
		Check{GroupSMART, "smart/attack-typ", "an id_token, or a token whose typ is not at+jwt or JWT, is refused as an access token with 401", checkAttackTyp},
		Check{GroupSMART, "smart/attack-dpop-as-bearer", "a DPoP-bound token presented as Bearer is refused with 401 (RFC 9449 7.2)", dpopAttack(func(t *T, d *dpopFixture) {
			t.expectUnauthorized("a DPoP-bound token as Bearer", d.victim, http.Header{"Authorization": {"Bearer " + d.token}})
		})},
		Check{GroupSMART, "smart/attack-dpop-wrong-htu", "a DPoP proof made for another URL is refused with 401", dpopAttack(func(t *T, d *dpopFixture) {
			d.refused(t, "a DPoP proof for another URL", d.proof(t, http.MethodGet, t.URL("Patient/another-"+randomState()), d.token, d.key))
		})},
		Check{GroupSMART, "smart/attack-dpop-wrong-htm", "a DPoP proof made for another method is refused with 401", dpopAttack(func(t *T, d *dpopFixture) {
			d.refused(t, "a DPoP proof for POST on a GET", d.proof(t, http.MethodPost, d.url, d.token, d.key))
		})},
		Check{GroupSMART, "smart/attack-dpop-replay", "a DPoP proof used a second time (same jti) is refused with 401", dpopAttack(func(t *T, d *dpopFixture) {
			p := d.proof(t, http.MethodGet, d.url, d.token, d.key)
			if res := d.send(t, p); res.Status != http.StatusOK {
				t.Fatalf("first use of a fresh DPoP proof: status %d: %s", res.Status, Outcome(res))
			}
			d.refused(t, "the same DPoP proof again", p)
		})},
		Check{GroupSMART, "smart/attack-dpop-missing-ath", "a DPoP proof without ath, or with the hash of another token, is refused with 401", dpopAttack(func(t *T, d *dpopFixture) {
			d.refused(t, "a DPoP proof without ath", d.proof(t, http.MethodGet, d.url, "", d.key))
			d.refused(t, "a DPoP proof whose ath is another token's", d.proof(t, http.MethodGet, d.url, d.token+"x", d.key))
		})},
		Check{GroupSMART, "smart/attack-dpop-wrong-key", "a DPoP proof signed by a key other than the token's cnf.jkt is refused with 401", dpopAttack(func(t *T, d *dpopFixture) {
			other, _ := attackerKey(t)
			d.refused(t, "a DPoP proof by another key", d.proof(t, http.MethodGet, d.url, d.token, other))
		})},
	)
}

// victim is a fixture patient and a real token of their GP for them.
type victim struct {
	id, pid, family string
	token           string
	claims          map[string]any
}

// attackVictim feeds a patient with a family name found nowhere else, gets
// the GP a token for them and reads the patient once: the control that
// shows the data are there and the token works, so a later 401 without
// the name is the refusal of the forgery.
func (t *T) attackVictim() victim {
	n, _ := rand.Int(rand.Reader, big.NewInt(1e9))
	v := victim{family: fmt.Sprintf("Angrepsmaal%09d", n)}
	v.id, v.pid = t.NewPatient(PatientSpec{Family: v.family})
	v.token = t.Token(PersonaGP, v.id)
	c, err := Claims(v.token)
	if err != nil {
		t.Skipf("the server's access tokens are not JWTs (%v): the attacks forge JWTs", err)
	}
	v.claims = c
	res := t.Do(Request{Path: "Patient/" + v.id, Token: v.token, Basis: "UNNTAK"})
	if res.Status != http.StatusOK || !strings.Contains(string(res.Body), v.family) {
		t.Fatalf("control: GET Patient/%s with the GP's real token: status %d: %s", v.id, res.Status, Outcome(res))
	}
	return v
}

// expectUnauthorized reads the victim with the given headers and checks
// the refusal: 401, an OperationOutcome, a WWW-Authenticate challenge with
// error="invalid_token" (or invalid_dpop_proof for DPoP), no data.
func (t *T) expectUnauthorized(what string, v victim, h http.Header) {
	res := t.Do(Request{Path: "Patient/" + v.id, Basis: "UNNTAK", Header: h})
	if res.Status != http.StatusUnauthorized {
		t.Errorf("%s: status %d, want 401", what, res.Status)
	}
	if res.ResourceType() != "OperationOutcome" {
		t.Errorf("%s: the refusal is not an OperationOutcome: %.200s", what, res.Body)
	}
	if leakedVictim(res, v) {
		t.Errorf("%s: the answer carries the patient's data", what)
	}
	challenges := res.Header.Values("WWW-Authenticate")
	ok := false
	for _, c := range challenges {
		lc := strings.ToLower(c)
		if (strings.HasPrefix(lc, "bearer") || strings.HasPrefix(lc, "dpop")) &&
			(strings.Contains(lc, `error="invalid_token"`) || strings.Contains(lc, `error="invalid_dpop_proof"`)) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("%s: WWW-Authenticate %q lacks a Bearer or DPoP challenge with error=\"invalid_token\" (RFC 6750 3.1, RFC 9449 7.1)", what, challenges)
	}
}

func leakedVictim(res *Response, v victim) bool {
	return strings.Contains(string(res.Body), v.family) || strings.Contains(string(res.Body), v.pid)
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// jwtSegments splits a compact JWS and decodes its header and claims.
func jwtSegments(token string) (hdr, claims map[string]any, sig string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, "", false
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &hdr) != nil || json.Unmarshal(p, &claims) != nil {
		return nil, nil, "", false
	}
	return hdr, claims, parts[2], true
}

// jwtSegment encodes v as one base64url JSON segment of a compact JWS.
func jwtSegment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// reencode alters a JWT's header and claims and puts it back together with
// its original signature, which then no longer fits. A token that is not
// a JWT comes back with a character appended.
func reencode(token string, alterHeader, alterClaims func(map[string]any)) string {
	hdr, claims, sig, ok := jwtSegments(token)
	if !ok {
		return token + "x"
	}
	if alterHeader != nil {
		alterHeader(hdr)
	}
	if alterClaims != nil {
		alterClaims(claims)
	}
	return jwtSegment(hdr) + "." + jwtSegment(claims) + "." + sig
}

// withSignature replaces a compact JWS's signature segment.
func withSignature(token, sig string) string {
	return token[:strings.LastIndexByte(token, '.')+1] + sig
}

// attackerKey is a fresh ES256 key the server has never seen.
func attackerKey(t *T) (jwk.Key, jwa.SignatureAlgorithm) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate a key: %v", err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatalf("import a key: %v", err)
	}
	return k, jwa.ES256()
}

// freshClaims copies a token's claims with a new jti.
func freshClaims(c map[string]any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	out["jti"] = randomState()
	return out
}

// signWith signs claims with key under the given protected header fields.
func signWith(t *T, key jwk.Key, alg jwa.SignatureAlgorithm, claims map[string]any, header map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	hdr := jws.NewHeaders()
	for k, v := range header {
		if err := hdr.Set(k, v); err != nil {
			t.Fatalf("header %s: %v", k, err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return string(signed)
}

// issuerKey is the development issuer's private key with the kid the
// server's JWKS gives it, when the suite has that key and the JWKS
// publishes its public half.
func (t *T) issuerKey() (jwk.Key, jwa.SignatureAlgorithm, bool) {
	key, alg, err := clientkey.Load(t.env.cfg.IssuerKeyFile)
	if err != nil {
		return nil, alg, false
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, alg, false
	}
	want, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, alg, false
	}
	keys := t.jwks()
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		if tp, err := k.Thumbprint(crypto.SHA256); err == nil && bytes.Equal(tp, want) {
			if kid, ok := k.KeyID(); ok {
				if err := key.Set(jwk.KeyIDKey, kid); err != nil {
					return nil, alg, false
				}
			}
			return key, alg, true
		}
	}
	return nil, alg, false
}

// mintControl signs the victim's claims unaltered with the issuer key and
// reads with it: a refusal of a minted attack token then shows the one
// altered claim, not a key that does not fit.
func (t *T) mintControl(v victim, key jwk.Key, alg jwa.SignatureAlgorithm, typ string) {
	tok := signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ})
	res := t.Do(Request{Path: "Patient/" + v.id, Token: tok, Basis: "UNNTAK"})
	if res.Status != http.StatusOK {
		t.Fatalf("control: a token minted with the issuer key and the real claims: status %d: %s", res.Status, Outcome(res))
	}
}

func headerTyp(v victim) string {
	hdr, _, _, _ := jwtSegments(v.token)
	typ, _ := hdr["typ"].(string)
	return typ
}

func checkAttackNoToken(t *T) {
	v := t.attackVictim()
	for what, h := range map[string]http.Header{
		"no Authorization header":  nil,
		"Authorization: Basic":     {"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("gp:secret"))}},
		"the token without scheme": {"Authorization": {v.token}},
	} {
		res := t.Do(Request{Path: "Patient/" + v.id, Basis: "UNNTAK", Header: h})
		if res.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", what, res.Status)
		}
		if res.ResourceType() != "OperationOutcome" {
			t.Errorf("%s: the refusal is not an OperationOutcome: %.200s", what, res.Body)
		}
		if leakedVictim(res, v) {
			t.Errorf("%s: the answer carries the patient's data", what)
		}
		found := false
		for _, c := range res.Header.Values("WWW-Authenticate") {
			if strings.HasPrefix(strings.ToLower(c), "bearer") {
				found = true
				// RFC 6750 3.1: no credentials, no error code.
				if strings.Contains(c, "error=") {
					t.Errorf("%s: the Bearer challenge %q carries an error code although no credentials were sent", what, c)
				}
			}
		}
		if !found {
			t.Errorf("%s: WWW-Authenticate %q has no Bearer challenge (RFC 6750 3)", what, res.Header.Values("WWW-Authenticate"))
		}
	}
}

func checkAttackAlgNone(t *T) {
	v := t.attackVictim()
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		forged := reencode(v.token, func(h map[string]any) { h["alg"] = alg }, nil)
		t.expectUnauthorized("alg="+alg+" without a signature", v, bearerHeader(withSignature(forged, "")))
		t.expectUnauthorized("alg="+alg+" with the original signature", v, bearerHeader(forged))
	}
	forged := reencode(v.token, func(h map[string]any) { delete(h, "alg") }, nil)
	t.expectUnauthorized("no alg header", v, bearerHeader(withSignature(forged, "")))
}

func checkAttackHS256(t *T) {
	v := t.attackVictim()
	keys := t.jwks()
	if keys.Len() == 0 {
		t.Fatalf("jwks_uri has no keys")
	}
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		kid, _ := k.KeyID()
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			t.Fatalf("export the JWKS key %s: %v", kid, err)
		}
		der, err := x509.MarshalPKIXPublicKey(raw)
		if err != nil {
			t.Fatalf("encode the JWKS key %s: %v", kid, err)
		}
		jwkJSON, _ := json.Marshal(k)
		secrets := map[string][]byte{
			"PEM":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
			"DER":      der,
			"JWK JSON": jwkJSON,
		}
		for form, secret := range secrets {
			for alg, newHash := range map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New} {
				unsigned := reencode(v.token, func(h map[string]any) { h["alg"] = alg; h["kid"] = kid }, nil)
				unsigned = unsigned[:strings.LastIndexByte(unsigned, '.')]
				m := hmac.New(newHash, secret)
				m.Write([]byte(unsigned))
				mac := m.Sum(nil)
				forged := unsigned + "." + base64.RawURLEncoding.EncodeToString(mac)
				t.expectUnauthorized(fmt.Sprintf("%s with the public key %s (%s) as the secret", alg, kid, form), v, bearerHeader(forged))
			}
		}
	}
}

func checkAttackUnknownKid(t *T) {
	v := t.attackVictim()
	key, alg := attackerKey(t)
	typ := headerTyp(v)
	t.expectUnauthorized("signed by an unknown key with an unknown kid", v,
		bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ, jws.KeyIDKey: "conformance-unknown-" + randomState()})))
	t.expectUnauthorized("signed by an unknown key without kid", v,
		bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ})))
}

func checkAttackBadSignature(t *T) {
	v := t.attackVictim()
	sig := v.token[strings.LastIndexByte(v.token, '.')+1:]
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(raw) == 0 {
		t.Fatalf("the real token's signature is not base64url")
	}
	raw[len(raw)/2] ^= 0x01
	t.expectUnauthorized("one bit of the signature flipped", v, bearerHeader(withSignature(v.token, base64.RawURLEncoding.EncodeToString(raw))))
	t.expectUnauthorized("the signature cut short", v, bearerHeader(withSignature(v.token, sig[:len(sig)/2])))

	hdr, _, _, _ := jwtSegments(v.token)
	kid, _ := hdr["kid"].(string)
	key, alg := attackerKey(t)
	t.expectUnauthorized("signed by another key under the issuer's kid", v,
		bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: headerTyp(v), jws.KeyIDKey: kid})))
}

func checkAttackTampered(t *T) {
	v := t.attackVictim()
	other, _ := t.NewPatient(PatientSpec{})
	// The GP may read the other patient with their own launch; the
	// tampered token must not let them do it with this one.
	forged := reencode(v.token, nil, func(c map[string]any) { c["patient"] = other })
	res := t.Do(Request{Path: "Patient/" + other, Token: forged, Basis: "UNNTAK"})
	if res.Status != http.StatusUnauthorized || res.ResourceType() != "OperationOutcome" {
		t.Errorf("patient claim edited to Patient/%s, reading it: status %d %s, want 401 with an OperationOutcome", other, res.Status, res.ResourceType())
	}
	t.expectUnauthorized("scope widened to user/*.cruds", v, bearerHeader(reencode(v.token, nil, func(c map[string]any) { c["scope"] = "user/*.cruds" })))
	t.expectUnauthorized("exp pushed a day ahead", v, bearerHeader(reencode(v.token, nil, func(c map[string]any) {
		exp, _ := c["exp"].(float64)
		c["exp"] = int64(exp) + 86400
	})))
}

func checkAttackEmbeddedKey(t *T) {
	v := t.attackVictim()
	key, alg := attackerKey(t)
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	typ := headerTyp(v)
	t.expectUnauthorized("signed by the attacker's key carried in the jwk header", v,
		bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ, jws.JWKKey: pub})))
	t.expectUnauthorized("signed by the attacker's key published at a jku header URL", v,
		bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ, jws.JWKSetURLKey: "https://attacker.example/jwks.json"})))
}

// claimAttack is a check for a token wrong in one claim: the real token
// altered (signature broken) and, with the issuer key, minted well signed
// next to a control.
func claimAttack(what string, alter func(c map[string]any, now int64)) func(*T) {
	return func(t *T) {
		v := t.attackVictim()
		now := time.Now().Unix()
		t.expectUnauthorized("a real token altered to be "+what, v, bearerHeader(reencode(v.token, nil, func(c map[string]any) { alter(c, now) })))
		key, alg, ok := t.issuerKey()
		if !ok {
			return
		}
		t.mintControl(v, key, alg, headerTyp(v))
		c := freshClaims(v.claims)
		alter(c, now)
		t.expectUnauthorized("a well-signed token "+what, v, bearerHeader(signWith(t, key, alg, c, map[string]any{jws.TypeKey: headerTyp(v)})))
	}
}

func checkAttackTyp(t *T) {
	v := t.attackVictim()
	tr := t.TokenResponse(PersonaGP, v.id, ehrScope)
	idt, _ := tr["id_token"].(string)
	if idt == "" {
		t.Fatalf("no id_token from an EHR launch with openid")
	}
	// Token confusion: the id_token is signed by the same issuer but is
	// meant for the client, not for the resource server.
	t.expectUnauthorized("the id_token as an access token", v, bearerHeader(idt))
	t.expectUnauthorized("typ changed to dpop+jwt", v, bearerHeader(reencode(v.token, func(h map[string]any) { h["typ"] = "dpop+jwt" }, nil)))
	key, alg, ok := t.issuerKey()
	if !ok {
		return
	}
	t.mintControl(v, key, alg, headerTyp(v))
	for _, typ := range []string{"dpop+jwt", "secevent+jwt", "id_token+jwt"} {
		t.expectUnauthorized("a well-signed token with typ "+typ, v, bearerHeader(signWith(t, key, alg, freshClaims(v.claims), map[string]any{jws.TypeKey: typ})))
	}
	t.expectUnauthorized("a well-signed token without typ", v, bearerHeader(signWith(t, key, alg, freshClaims(v.claims), nil)))
}

// dpopFixture is a DPoP-bound token minted with the issuer key for the
// victim, with the proof key it is bound to.
type dpopFixture struct {
	victim victim
	token  string
	key    jwk.Key // the proof key; cnf.jkt is its thumbprint
	url    string  // the read the checks make
}

// dpopAttack runs a DPoP check after a control: the bound token with a
// correct proof reads the victim.
func dpopAttack(attack func(t *T, d *dpopFixture)) func(*T) {
	return func(t *T) {
		v := t.attackVictim()
		ikey, alg, ok := t.issuerKey()
		if !ok {
			t.Skipf("DPoP-bound tokens are minted with the development issuer's key, which the suite does not have for this server (--issuer-key)")
		}
		pk, _ := attackerKey(t)
		pub, _ := pk.PublicKey()
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatalf("thumbprint: %v", err)
		}
		c := freshClaims(v.claims)
		c["cnf"] = map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(tp)}
		d := &dpopFixture{victim: v, key: pk, url: t.URL("Patient/" + v.id),
			token: signWith(t, ikey, alg, c, map[string]any{jws.TypeKey: headerTyp(v)})}
		if res := d.send(t, d.proof(t, http.MethodGet, d.url, d.token, pk)); res.Status != http.StatusOK {
			t.Fatalf("control: the DPoP-bound token with a correct proof: status %d: %s", res.Status, Outcome(res))
		}
		attack(t, d)
	}
}

// proof makes an RFC 9449 proof for method and u signed by key; ath is
// the hash of token, or left out when token is empty.
func (d *dpopFixture) proof(t *T, method, u, token string, key jwk.Key) string {
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	c := map[string]any{"jti": randomState(), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return signWith(t, key, jwa.ES256(), c, map[string]any{jws.TypeKey: "dpop+jwt", jws.JWKKey: pub})
}

func (d *dpopFixture) send(t *T, proof string) *Response {
	return t.Do(Request{Path: d.url, Basis: "UNNTAK", Header: http.Header{"Authorization": {"DPoP " + d.token}, "Dpop": {proof}}})
}

func (d *dpopFixture) refused(t *T, what, proof string) {
	t.expectUnauthorized(what, d.victim, http.Header{"Authorization": {"DPoP " + d.token}, "Dpop": {proof}})
}
