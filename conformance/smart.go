package conformance

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/kjernejournal/kjernejournal/internal/clientkey"
)

// The SMART group: discovery, the authorisation flows of SMART App Launch
// 2.2 (EHR and standalone launch with PKCE, refresh, backend services),
// introspection, the token attacks (smart_attacks.go) and scope
// enforcement (smart_scopes.go). Everything goes through the server's
// public endpoints as a SMART client would.

func init() {
	register(
		Check{GroupSMART, "smart/discovery", "/.well-known/smart-configuration is JSON with every SMART App Launch 2.2 field, offers PKCE S256 only, and agrees with the CapabilityStatement's rest.security", checkDiscovery},
		Check{GroupSMART, "smart/pkce-required", "the authorization endpoint refuses a request without PKCE or with the plain method, and the token endpoint a wrong or missing code_verifier", checkPKCERequired},
		Check{GroupSMART, "smart/code-single-use", "an authorization code buys one token response; its reuse is refused and revokes what it bought", checkCodeSingleUse},
		Check{GroupSMART, "smart/ehr-launch", "an EHR launch yields a Bearer token with the patient in context and an OpenID id_token with fhirUser, and the token reads that patient", checkEHRLaunch},
		Check{GroupSMART, "smart/standalone-launch", "a standalone launch (login page) yields a token and an id_token whose fhirUser resolves to the citizen's own Patient", checkStandaloneLaunch},
		Check{GroupSMART, "smart/refresh", "offline_access and online_access give refresh tokens; refreshing works, never widens scope, rotates the token and detects reuse", checkRefresh},
		Check{GroupSMART, "smart/introspection", "the introspection endpoint needs client authentication and reports live tokens active with scope, patient and exp, and garbage inactive", checkIntrospection},
		Check{GroupSMART, "smart/backend-services", "client_credentials with a private_key_jwt assertion works; a replayed assertion, a wrong aud or an unregistered key is refused; system scopes feed but never read health data", checkBackendServices},
	)
}

const (
	formContentType = "application/x-www-form-urlencoded"
	jwtBearerType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// ehrScope is what the EHR-launch checks ask for: the launch context,
	// the user's identity and read access to the patient's record.
	ehrScope = "launch openid fhirUser patient/*.rs"
)

// smartEndpoint returns a URL field of the SMART configuration; the check is
// skipped when the server does not publish it.
func (t *T) smartEndpoint(field string) string {
	u, _ := t.SMART()[field].(string)
	if u == "" {
		t.Skipf("the SMART configuration has no %s", field)
	}
	return u
}

// postOAuthForm posts an application/x-www-form-urlencoded body to an endpoint
// of the authorisation server.
func (t *T) postOAuthForm(u string, form url.Values) *Response {
	return t.Do(Request{Method: http.MethodPost, Path: u, Body: form.Encode(), ContentType: formContentType,
		Header: http.Header{"Accept": {"application/json"}}})
}

// authorizeRedirect sends an authorisation request as the browser would
// and returns where the server redirected it (nil, with a failure
// recorded, when it did not).
func (t *T) authorizeRedirect(what string, q url.Values) *url.URL {
	res := t.Do(Request{Path: t.smartEndpoint("authorization_endpoint") + "?" + q.Encode(), Header: http.Header{"Accept": {"text/html"}}})
	if res.Status/100 != 3 {
		t.Errorf("%s: the authorization endpoint answered %d, want a redirect back to the client", what, res.Status)
		return nil
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Errorf("%s: redirect Location %q: %v", what, res.Header.Get("Location"), err)
		return nil
	}
	return loc
}

// toClient reports whether loc is the suite's registered redirect URI.
func (t *T) toClient(loc *url.URL) bool {
	want, _ := url.Parse(t.env.cfg.RedirectURI)
	return loc.Scheme == want.Scheme && loc.Host == want.Host && loc.Path == want.Path
}

// expectErrorRedirect checks an RFC 6749 4.1.2.1 error response: back to
// the client's redirect URI with error=code, the state echoed, no code.
func (t *T) expectErrorRedirect(what string, loc *url.URL, state, code string) {
	if loc == nil {
		return
	}
	q := loc.Query()
	switch {
	case !t.toClient(loc):
		t.Errorf("%s: redirected to %s, not to the client's redirect URI", what, loc.Redacted())
	case q.Get("code") != "":
		t.Errorf("%s: the server issued an authorization code; want error=%s", what, code)
	case q.Get("error") != code:
		t.Errorf("%s: error=%q (%s), want %s", what, q.Get("error"), q.Get("error_description"), code)
	case q.Get("state") != state:
		t.Errorf("%s: state %q in the error redirect, want %q echoed (RFC 6749 4.1.2.1)", what, q.Get("state"), state)
	}
}

// expectCode reads the authorization code from a successful redirect and
// checks state and, when present, iss (RFC 9207).
func (t *T) expectCode(what string, loc *url.URL, state string) string {
	if loc == nil {
		t.Fatalf("%s: no redirect with a code", what)
	}
	q := loc.Query()
	if !t.toClient(loc) {
		t.Fatalf("%s: redirected to %s, not to the client's redirect URI", what, loc.Redacted())
	}
	if q.Get("code") == "" {
		t.Fatalf("%s: redirected without a code: error=%s %s", what, q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		t.Errorf("%s: state %q, want %q echoed (RFC 6749 4.1.2)", what, q.Get("state"), state)
	}
	if iss := q.Get("iss"); iss != "" && iss != t.SMART()["issuer"] {
		t.Errorf("%s: iss %q in the redirect is not the issuer %v (RFC 9207)", what, iss, t.SMART()["issuer"])
	}
	return q.Get("code")
}

// expectOAuthError checks an RFC 6749 5.2 error answer of the token,
// introspection or similar endpoint: one of the statuses, JSON, error=code
// (any of codes).
func (t *T) expectOAuthError(what string, res *Response, statuses []int, codes ...string) {
	if !slices.Contains(statuses, res.Status) {
		t.Errorf("%s: status %d, want %v with an OAuth error: %s", what, res.Status, statuses, Outcome(res))
		return
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json (RFC 6749 5.2)", what, ct)
	}
	if code, _ := res.JSON()["error"].(string); !slices.Contains(codes, code) {
		t.Errorf("%s: error %q (%v), want %s", what, code, res.JSON()["error_description"], strings.Join(codes, " or "))
	}
	if _, ok := res.JSON()["access_token"]; ok {
		t.Errorf("%s: an error answer carries an access_token", what)
	}
}

var (
	status400      = []int{http.StatusBadRequest}
	status400or401 = []int{http.StatusBadRequest, http.StatusUnauthorized}
)

// expectTokenResponse checks a successful token response (RFC 6749 5.1,
// SMART App Launch 2.2 "access token response") and returns it. Every
// granted scope must have been asked for: a server may narrow, never
// widen.
func (t *T) expectTokenResponse(what string, res *Response, requested string) map[string]any {
	if res.Status != http.StatusOK {
		t.Fatalf("%s: token endpoint status %d: %s", what, res.Status, Outcome(res))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s: Cache-Control %q, want no-store (RFC 6749 5.1)", what, cc)
	}
	tr := res.JSON()
	if tok, _ := tr["access_token"].(string); tok == "" {
		t.Fatalf("%s: no access_token in %s", what, res.Body)
	}
	if tt, _ := tr["token_type"].(string); !strings.EqualFold(tt, "Bearer") {
		t.Errorf("%s: token_type %q, want Bearer", what, tt)
	}
	if n, ok := tr["expires_in"].(float64); !ok || n <= 0 {
		t.Errorf("%s: expires_in %v, want a positive number of seconds", what, tr["expires_in"])
	}
	scope, _ := tr["scope"].(string)
	if scope == "" {
		t.Errorf("%s: no scope in the token response (SMART requires it)", what)
	}
	asked := strings.Fields(requested)
	for _, s := range strings.Fields(scope) {
		if !slices.Contains(asked, s) {
			t.Errorf("%s: granted scope %q was not requested (%q)", what, s, requested)
		}
	}
	return tr
}

// jwks fetches the server's signing keys from jwks_uri.
func (t *T) jwks() jwk.Set {
	res := t.Do(Request{Path: t.smartEndpoint("jwks_uri"), Header: http.Header{"Accept": {"application/json"}}})
	if res.Status != http.StatusOK {
		t.Fatalf("GET jwks_uri: status %d", res.Status)
	}
	set, err := jwk.Parse(res.Body)
	if err != nil {
		t.Fatalf("jwks_uri is not a JWK Set: %v", err)
	}
	return set
}

// verifiedClaims verifies a JWT the server issued against its JWKS and
// returns its header typ and claims.
func (t *T) verifiedClaims(what, token string, keys jwk.Set) (string, map[string]any) {
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		t.Fatalf("%s is not a compact JWS: %v", what, err)
	}
	if _, err := jws.Verify([]byte(token), jws.WithKeySet(keys, jws.WithInferAlgorithmFromKey(true))); err != nil {
		t.Errorf("%s: signature does not verify with a key from jwks_uri: %v", what, err)
	}
	typ, _ := msg.Signatures()[0].ProtectedHeaders().Type()
	c, err := Claims(token)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return typ, c
}

// hasAud reports whether a JWT's aud (string or array) contains want.
func hasAud(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return strings.TrimRight(a, "/") == want
	case []any:
		for _, x := range a {
			if s, _ := x.(string); strings.TrimRight(s, "/") == want {
				return true
			}
		}
	}
	return false
}

// checkAccessToken checks an access token that is a JWT against RFC 9068
// (typ at+jwt, iss, aud = the FHIR base URL, exp, iat, jti, sub,
// client_id, scope) and returns its claims. Opaque tokens are allowed by
// SMART; for them it returns nil and checks nothing.
func (t *T) checkAccessToken(what, token string, keys jwk.Set) map[string]any {
	if strings.Count(token, ".") != 2 {
		return nil
	}
	typ, c := t.verifiedClaims(what, token, keys)
	if strings.TrimPrefix(strings.ToLower(typ), "application/") != "at+jwt" {
		t.Errorf("%s: typ %q, want at+jwt (RFC 9068 2.1)", what, typ)
	}
	if c["iss"] != t.SMART()["issuer"] {
		t.Errorf("%s: iss %v is not the issuer %v of the SMART configuration", what, c["iss"], t.SMART()["issuer"])
	}
	if !hasAud(c["aud"], t.env.base) {
		t.Errorf("%s: aud %v does not name the FHIR base URL %s (RFC 9068, SMART aud)", what, c["aud"], t.env.base)
	}
	for _, k := range []string{"exp", "iat", "jti", "sub", "client_id", "scope"} {
		if _, ok := c[k]; !ok {
			t.Errorf("%s: claim %s is missing (RFC 9068 2.2)", what, k)
		}
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if exp <= iat {
		t.Errorf("%s: exp %v is not after iat %v", what, c["exp"], c["iat"])
	}
	return c
}

// checkIDToken checks the OpenID Connect id_token of a token response
// (signature, iss, aud = client_id, exp, sub, nonce, fhirUser) and returns
// its claims.
func (t *T) checkIDToken(what string, tr map[string]any, nonce string, keys jwk.Set) map[string]any {
	idt, _ := tr["id_token"].(string)
	if idt == "" {
		t.Fatalf("%s: no id_token although openid was granted", what)
	}
	_, c := t.verifiedClaims(what+" id_token", idt, keys)
	if c["iss"] != t.SMART()["issuer"] {
		t.Errorf("%s id_token: iss %v is not the issuer %v", what, c["iss"], t.SMART()["issuer"])
	}
	if !hasAud(c["aud"], t.env.cfg.ClientID) {
		t.Errorf("%s id_token: aud %v does not contain the client_id %s (OIDC Core 2)", what, c["aud"], t.env.cfg.ClientID)
	}
	for _, k := range []string{"sub", "exp", "iat"} {
		if _, ok := c[k]; !ok {
			t.Errorf("%s id_token: claim %s is missing (OIDC Core 2)", what, k)
		}
	}
	if nonce != "" && c["nonce"] != nonce {
		t.Errorf("%s id_token: nonce %v, want the request's %q (OIDC Core 3.1.3.7)", what, c["nonce"], nonce)
	}
	if algs, ok := t.SMART()["id_token_signing_alg_values_supported"].([]any); ok {
		msg, _ := jws.Parse([]byte(idt))
		alg, _ := msg.Signatures()[0].ProtectedHeaders().Algorithm()
		if !slices.Contains(algs, any(alg.String())) {
			t.Errorf("%s id_token: alg %s is not in id_token_signing_alg_values_supported %v", what, alg, algs)
		}
	}
	if fu, _ := c["fhirUser"].(string); fu == "" {
		t.Errorf("%s id_token: no fhirUser claim although fhirUser was granted", what)
	}
	return c
}

// fhirUserRef splits a fhirUser claim (absolute, or relative to the FHIR
// base) into resource type and id.
func (t *T) fhirUserRef(fu string) (typ, id string, ok bool) {
	rel := strings.TrimPrefix(fu, t.env.base+"/")
	if strings.Contains(rel, "://") {
		return "", "", false // on another server: cannot be resolved here
	}
	typ, id, ok = strings.Cut(rel, "/")
	return typ, id, ok && id != "" && !strings.Contains(id, "/")
}

func checkDiscovery(t *T) {
	res := t.Do(Request{Path: ".well-known/smart-configuration", Header: http.Header{"Accept": {"application/json"}}})
	if res.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/smart-configuration: status %d", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json (SMART App Launch 2.2, Conformance)", ct)
	}
	c := res.JSON()
	if c == nil {
		t.Fatalf("the SMART configuration is not a JSON object: %.200s", res.Body)
	}
	str := func(k string) string {
		s, _ := c[k].(string)
		return s
	}
	list := func(k string) []string {
		raw, ok := c[k].([]any)
		if !ok {
			t.Errorf("%s is missing or not an array", k)
			return nil
		}
		var out []string
		for _, x := range raw {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	for _, k := range []string{"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "introspection_endpoint"} {
		u, err := url.Parse(str(k))
		if str(k) == "" || err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") {
			t.Errorf("%s %q is missing or not an absolute http(s) URL", k, str(k))
		}
	}
	grants := list("grant_types_supported")
	for _, g := range []string{"authorization_code", "client_credentials"} {
		if !slices.Contains(grants, g) {
			t.Errorf("grant_types_supported %v lacks %s", grants, g)
		}
	}
	caps := list("capabilities")
	for _, want := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-asymmetric", "context-ehr-patient", "permission-v2"} {
		if !slices.Contains(caps, want) {
			t.Errorf("capabilities %v lack %s", caps, want)
		}
	}
	if (slices.Contains(caps, "permission-offline") || slices.Contains(caps, "permission-online")) && !slices.Contains(grants, "refresh_token") {
		t.Errorf("capabilities offer refresh (permission-offline/online) but grant_types_supported %v lacks refresh_token", grants)
	}
	if auth := list("token_endpoint_auth_methods_supported"); !slices.Contains(auth, "private_key_jwt") {
		t.Errorf("token_endpoint_auth_methods_supported %v lacks private_key_jwt (client-confidential-asymmetric, backend services)", auth)
	}
	if _, ok := c["token_endpoint_auth_signing_alg_values_supported"]; ok {
		algs := list("token_endpoint_auth_signing_alg_values_supported")
		for _, want := range []string{"RS384", "ES384"} {
			if !slices.Contains(algs, want) {
				t.Errorf("token_endpoint_auth_signing_alg_values_supported %v lacks %s, which SMART backend services require", algs, want)
			}
		}
		for _, a := range algs {
			if strings.HasPrefix(a, "HS") || strings.EqualFold(a, "none") {
				t.Errorf("token_endpoint_auth_signing_alg_values_supported offers %s: asymmetric keys only", a)
			}
		}
	}
	scopes := list("scopes_supported")
	for cp, sc := range map[string]string{"sso-openid-connect": "openid", "launch-ehr": "launch", "context-standalone-patient": "launch/patient",
		"permission-offline": "offline_access", "permission-online": "online_access"} {
		if slices.Contains(caps, cp) && !slices.Contains(scopes, sc) {
			t.Errorf("capability %s without scope %s in scopes_supported", cp, sc)
		}
	}
	if slices.Contains(caps, "sso-openid-connect") && !slices.Contains(scopes, "fhirUser") {
		t.Errorf("capability sso-openid-connect without scope fhirUser in scopes_supported")
	}
	if rt := list("response_types_supported"); !slices.Contains(rt, "code") {
		t.Errorf("response_types_supported %v lacks code", rt)
	}
	pkce := list("code_challenge_methods_supported")
	if !slices.Contains(pkce, "S256") {
		t.Errorf("code_challenge_methods_supported %v lacks S256", pkce)
	}
	if slices.Contains(pkce, "plain") {
		t.Errorf("code_challenge_methods_supported %v offers plain, which SMART forbids", pkce)
	}

	// jwks_uri: public keys only, none symmetric.
	keys := t.jwks()
	if keys.Len() == 0 {
		t.Errorf("jwks_uri has no keys")
	}
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		if k.KeyType().String() == "oct" {
			t.Errorf("jwks_uri publishes a symmetric key")
		}
		if priv, err := jwk.IsPrivateKey(k); err == nil && priv {
			t.Errorf("jwks_uri publishes a private key")
		}
	}

	// The CapabilityStatement says the same: SMART-on-FHIR service and,
	// when given, oauth-uris matching the discovery document.
	meta := t.Do(Request{Path: "metadata"})
	if meta.Status != http.StatusOK {
		t.Fatalf("GET /metadata: status %d", meta.Status)
	}
	rest, _ := meta.JSON()["rest"].([]any)
	if len(rest) == 0 {
		t.Fatalf("CapabilityStatement has no rest element")
	}
	r0, _ := rest[0].(map[string]any)
	sec, _ := r0["security"].(map[string]any)
	if sec == nil {
		t.Fatalf("CapabilityStatement.rest.security is missing although the server publishes a SMART configuration")
	}
	smartService := false
	services, _ := sec["service"].([]any)
	for _, s := range services {
		cc, _ := s.(map[string]any)
		codings, _ := cc["coding"].([]any)
		for _, x := range codings {
			cd, _ := x.(map[string]any)
			if cd["system"] == "http://terminology.hl7.org/CodeSystem/restful-security-service" && cd["code"] == "SMART-on-FHIR" {
				smartService = true
			}
		}
	}
	if !smartService {
		t.Errorf("rest.security.service lacks the restful-security-service code SMART-on-FHIR")
	}
	exts, _ := sec["extension"].([]any)
	for _, e := range exts {
		em, _ := e.(map[string]any)
		if em["url"] != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			continue
		}
		sub, _ := em["extension"].([]any)
		for _, x := range sub {
			xm, _ := x.(map[string]any)
			name, _ := xm["url"].(string)
			field := map[string]string{"authorize": "authorization_endpoint", "token": "token_endpoint",
				"introspect": "introspection_endpoint", "revoke": "revocation_endpoint", "manage": "management_endpoint"}[name]
			if field != "" && str(field) != "" && xm["valueUri"] != str(field) {
				t.Errorf("oauth-uris %s = %v, but the SMART configuration's %s is %s", name, xm["valueUri"], field, str(field))
			}
		}
	}
}

func checkPKCERequired(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	try := func(what string, alter func(q url.Values, pk PKCE)) {
		pk := NewPKCE()
		q := t.AuthorizeQuery(ehrScope, pk)
		q.Set("launch", t.CreateLaunch(PersonaGP, id))
		alter(q, pk)
		t.expectErrorRedirect(what, t.authorizeRedirect(what, q), q.Get("state"), "invalid_request")
	}
	try("authorize without code_challenge", func(q url.Values, _ PKCE) {
		q.Del("code_challenge")
		q.Del("code_challenge_method")
	})
	try("authorize with code_challenge_method=plain", func(q url.Values, pk PKCE) {
		q.Set("code_challenge", pk.Verifier)
		q.Set("code_challenge_method", "plain")
	})
	// RFC 7636 4.3: no method means plain, which SMART forbids.
	try("authorize with a code_challenge but no code_challenge_method", func(q url.Values, _ PKCE) {
		q.Del("code_challenge_method")
	})

	token := t.smartEndpoint("token_endpoint")
	pk := NewPKCE()
	code := t.AuthorizationCode(PersonaGP, id, ehrScope, pk)
	t.expectOAuthError("code exchange with another code_verifier", t.postOAuthForm(token, t.CodeExchange(code, NewPKCE())), status400, "invalid_grant")

	pk = NewPKCE()
	code = t.AuthorizationCode(PersonaGP, id, ehrScope, pk)
	form := t.CodeExchange(code, pk)
	form.Del("code_verifier")
	t.expectOAuthError("code exchange without code_verifier", t.postOAuthForm(token, form), status400, "invalid_request", "invalid_grant")

	// The control: the same steps with the right verifier succeed, so the
	// refusals above are PKCE's.
	pk = NewPKCE()
	code = t.AuthorizationCode(PersonaGP, id, ehrScope, pk)
	t.expectTokenResponse("code exchange with the right code_verifier", t.postOAuthForm(token, t.CodeExchange(code, pk)), ehrScope)
}

// introspect asks the introspection endpoint about token as the
// resource-server client and returns the answer.
func (t *T) introspect(token string) map[string]any {
	u := t.smartEndpoint("introspection_endpoint")
	form := url.Values{"token": {token}, "client_assertion_type": {jwtBearerType}, "client_assertion": {t.ResourceServerAssertion(u)}}
	res := t.postOAuthForm(u, form)
	if res.Status != http.StatusOK || res.JSON() == nil {
		t.Fatalf("introspection as %s: status %d: %s", t.env.cfg.ResourceServerClientID, res.Status, Outcome(res))
	}
	return res.JSON()
}

func checkCodeSingleUse(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	token := t.smartEndpoint("token_endpoint")
	pk := NewPKCE()
	code := t.AuthorizationCode(PersonaGP, id, ehrScope, pk)
	tr := t.expectTokenResponse("first code exchange", t.postOAuthForm(token, t.CodeExchange(code, pk)), ehrScope)
	at, _ := tr["access_token"].(string)
	if got := t.introspect(at); got["active"] != true {
		t.Fatalf("the token bought with the code is not active before any reuse: %v", got)
	}
	t.expectOAuthError("second exchange of the same code", t.postOAuthForm(token, t.CodeExchange(code, pk)), status400, "invalid_grant")
	// RFC 6749 4.1.2 (and RFC 9700 4.5): on reuse the server SHOULD revoke
	// the tokens already issued on the code; this server promises it.
	if got := t.introspect(at); got["active"] != false {
		t.Errorf("after the code was replayed, the token it bought is still active: %v", got)
	}
}

func checkEHRLaunch(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	pk := NewPKCE()
	q := t.AuthorizeQuery(ehrScope, pk)
	q.Set("launch", t.CreateLaunch(PersonaGP, id))
	nonce := randomState()
	q.Set("nonce", nonce)
	code := t.expectCode("EHR launch", t.authorizeRedirect("EHR launch", q), q.Get("state"))
	tr := t.expectTokenResponse("EHR launch", t.postOAuthForm(t.smartEndpoint("token_endpoint"), t.CodeExchange(code, pk)), ehrScope)
	if tr["patient"] != id {
		t.Errorf("token response patient %v, want the launch's Patient/%s", tr["patient"], id)
	}
	keys := t.jwks()
	at, _ := tr["access_token"].(string)
	ac := t.checkAccessToken("EHR launch access token", at, keys)
	if ac != nil {
		if ac["patient"] != nil && ac["patient"] != id {
			t.Errorf("access token patient claim %v, want %s", ac["patient"], id)
		}
		if ac["client_id"] != t.env.cfg.ClientID {
			t.Errorf("access token client_id %v, want %s", ac["client_id"], t.env.cfg.ClientID)
		}
	}
	ic := t.checkIDToken("EHR launch", tr, nonce, keys)
	fu, _ := ic["fhirUser"].(string)
	if typ, _, ok := t.fhirUserRef(fu); !ok || (typ != "Practitioner" && typ != "PractitionerRole") {
		t.Errorf("id_token fhirUser %q of a GP is not a Practitioner or PractitionerRole URL", fu)
	}
	if ac != nil && ac["fhirUser"] != nil && ac["fhirUser"] != fu {
		t.Errorf("fhirUser differs: access token %v, id_token %s", ac["fhirUser"], fu)
	}

	res := t.Do(Request{Path: "Patient/" + id, Token: at, Basis: "UNNTAK"})
	if res.Status != http.StatusOK {
		t.Fatalf("GET Patient/%s with the launched token and basis UNNTAK: status %d: %s", id, res.Status, Outcome(res))
	}
	if res.JSON()["id"] != id {
		t.Errorf("GET Patient/%s answered id %v", id, res.JSON()["id"])
	}
}

func checkStandaloneLaunch(t *T) {
	id, _ := t.CitizenPatient()
	scope := "launch/patient openid fhirUser patient/*.rs"
	pk := NewPKCE()
	q := t.AuthorizeQuery(scope, pk)
	nonce := randomState()
	q.Set("nonce", nonce)
	page := t.Do(Request{Path: t.smartEndpoint("authorization_endpoint") + "?" + q.Encode(), Header: http.Header{"Accept": {"text/html"}}})
	m := sessionField.FindSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		t.Skipf("the authorization endpoint shows no development login page (status %d): a standalone login cannot be automated", page.Status)
	}
	if fo := page.Header.Get("X-Frame-Options"); fo == "" && !strings.Contains(page.Header.Get("Content-Security-Policy"), "frame-ancestors") {
		t.Errorf("the login page may be framed (no X-Frame-Options or CSP frame-ancestors): clickjacking of the consent")
	}
	login := strings.Replace(t.smartEndpoint("authorization_endpoint"), "/authorize", "/login", 1)
	form := url.Values{"session": {string(m[1])}, "persona": {PersonaCitizen}}
	res := t.Do(Request{Method: http.MethodPost, Path: login, Body: form.Encode(), ContentType: formContentType, Header: http.Header{"Accept": {"text/html"}}})
	if res.Status/100 != 3 {
		t.Fatalf("POST the login form: status %d, want a redirect to the client", res.Status)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	code := t.expectCode("standalone launch", loc, q.Get("state"))
	tr := t.expectTokenResponse("standalone launch", t.postOAuthForm(t.smartEndpoint("token_endpoint"), t.CodeExchange(code, pk)), scope)
	if tr["patient"] != id {
		t.Errorf("token response patient %v, want the citizen's own Patient/%s", tr["patient"], id)
	}
	keys := t.jwks()
	at, _ := tr["access_token"].(string)
	t.checkAccessToken("standalone access token", at, keys)
	ic := t.checkIDToken("standalone launch", tr, nonce, keys)

	// fhirUser names the logged-in user's own resource: for a citizen the
	// Patient in context, which the token can read.
	fu, _ := ic["fhirUser"].(string)
	typ, fid, ok := t.fhirUserRef(fu)
	if !ok || typ != "Patient" || fid != id {
		t.Errorf("id_token fhirUser %q, want the citizen's Patient/%s", fu, id)
	}
	if ok {
		got := t.Do(Request{Path: typ + "/" + fid, Token: at})
		if got.Status != http.StatusOK || got.ResourceType() != typ || got.JSON()["id"] != fid {
			t.Errorf("fhirUser %s does not resolve with the user's own token: status %d: %s", fu, got.Status, Outcome(got))
		}
	}
}

func checkRefresh(t *T) {
	id, _ := t.NewPatient(PatientSpec{})
	token := t.smartEndpoint("token_endpoint")
	scope := ehrScope + " offline_access"
	tr := t.TokenResponse(PersonaGP, id, scope)
	rt0, _ := tr["refresh_token"].(string)
	if rt0 == "" {
		t.Fatalf("no refresh_token although offline_access was asked for (granted %v)", tr["scope"])
	}
	refresh := func(rt, scope string) *Response {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {t.env.cfg.ClientID}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return t.postOAuthForm(token, f)
	}
	granted, _ := tr["scope"].(string)
	tr1 := t.expectTokenResponse("refresh", refresh(rt0, ""), granted)
	at1, _ := tr1["access_token"].(string)
	if res := t.Do(Request{Path: "Patient/" + id, Token: at1, Basis: "UNNTAK"}); res.Status != http.StatusOK {
		t.Errorf("GET Patient/%s with the refreshed access token: status %d: %s", id, res.Status, Outcome(res))
	}
	rt1, _ := tr1["refresh_token"].(string)
	if rt1 == "" || rt1 == rt0 {
		// Without rotation the old token stays the live one.
		t.Errorf("the refresh response carries no new refresh_token: this server rotates refresh tokens (RFC 9700 4.14.2)")
		return
	}

	// RFC 6749 6: a refresh may narrow the scope, never widen it.
	t.expectOAuthError("refresh asking for a scope never granted", refresh(rt1, "patient/*.cruds"), status400, "invalid_scope")
	tr2 := t.expectTokenResponse("refresh narrowed to patient/*.rs", refresh(rt1, "patient/*.rs"), "patient/*.rs")
	if tr2["scope"] != "patient/*.rs" {
		t.Errorf("refresh narrowed to patient/*.rs granted %v", tr2["scope"])
	}
	// The rotated refresh token keeps the scope of the one it replaces
	// (RFC 6749 6): asking for less once does not lose the grant, and the
	// next refresh without scope gets everything originally granted.
	rt2, _ := tr2["refresh_token"].(string)
	if rt2 == "" {
		t.Fatalf("a refresh narrowed to patient/*.rs gave no new refresh token: the grant is lost (RFC 6749 6)")
	}
	tr3 := t.expectTokenResponse("refresh with the rotated token", refresh(rt2, ""), granted)
	if tr3["scope"] != granted {
		t.Errorf("a refresh without scope after a narrowed one granted %v, want the original %q (RFC 6749 6)", tr3["scope"], granted)
	}
	rt3, _ := tr3["refresh_token"].(string)

	// Reuse detection: a rotated-out token coming back means it leaked, so
	// it is refused and the grant's live refresh token dies with it.
	t.expectOAuthError("reuse of a rotated-out refresh token", refresh(rt2, ""), status400, "invalid_grant")
	if rt3 != "" {
		t.expectOAuthError("the live refresh token after its predecessor was replayed", refresh(rt3, ""), status400, "invalid_grant")
	}

	// online_access gives a refresh token as well.
	on := t.TokenResponse(PersonaGP, id, ehrScope+" online_access")
	if rt, _ := on["refresh_token"].(string); rt == "" {
		t.Errorf("no refresh_token although online_access was asked for (granted %v)", on["scope"])
	} else {
		g, _ := on["scope"].(string)
		t.expectTokenResponse("refresh of an online_access grant", refresh(rt, ""), g)
	}
}

func checkIntrospection(t *T) {
	u := t.smartEndpoint("introspection_endpoint")
	id, _ := t.NewPatient(PatientSpec{})
	tr := t.TokenResponse(PersonaGP, id, ehrScope)
	at, _ := tr["access_token"].(string)

	// RFC 7662 2.1: the endpoint requires authorisation of the caller.
	t.expectOAuthError("introspection without client authentication", t.postOAuthForm(u, url.Values{"token": {at}}), status400or401, "invalid_client")
	t.expectOAuthError("introspection as a public client", t.postOAuthForm(u, url.Values{"token": {at}, "client_id": {t.env.cfg.ClientID}}), status400or401, "invalid_client")

	got := t.introspect(at)
	if got["active"] != true {
		t.Fatalf("a live token introspects as %v", got)
	}
	if got["scope"] != tr["scope"] {
		t.Errorf("introspected scope %v, want the granted %v", got["scope"], tr["scope"])
	}
	if got["patient"] != id {
		t.Errorf("introspected patient %v, want %s (SMART App Launch 2.2, token introspection)", got["patient"], id)
	}
	if got["client_id"] != t.env.cfg.ClientID {
		t.Errorf("introspected client_id %v, want %s", got["client_id"], t.env.cfg.ClientID)
	}
	exp, ok := got["exp"].(float64)
	if !ok {
		t.Errorf("introspected exp %v is not a number", got["exp"])
	} else if c, err := Claims(at); err == nil && c["exp"] != nil && c["exp"] != exp {
		t.Errorf("introspected exp %v differs from the token's %v", exp, c["exp"])
	}

	// Inactive answers say nothing else (RFC 7662 2.2).
	for what, tok := range map[string]string{"a garbage token": "not-a-token", "a tampered token": tamperPatient(at)} {
		got := t.introspect(tok)
		if got["active"] != false {
			t.Errorf("%s introspects as %v, want active false", what, got)
		}
		if len(got) != 1 {
			t.Errorf("the inactive answer for %s carries more than active: %v", what, got)
		}
	}
}

// tamperPatient changes the patient claim of a JWT without re-signing it.
func tamperPatient(token string) string {
	return reencode(token, nil, func(c map[string]any) { c["patient"] = "tampered-" + randomState() })
}

func checkBackendServices(t *T) {
	token := t.smartEndpoint("token_endpoint")
	form := func(assertion, scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
			"client_assertion_type": {jwtBearerType}, "client_assertion": {assertion}}
	}
	asked := "system/Patient.cu system/MedicationStatement.cud patient/*.rs"
	a := t.ClientAssertion(token)
	res := t.postOAuthForm(token, form(a, asked))
	tr := t.expectTokenResponse("client_credentials", res, asked)
	for _, s := range strings.Fields(fmt.Sprint(tr["scope"])) {
		if !strings.HasPrefix(s, "system/") {
			t.Errorf("a backend service was granted %s: it acts for no user or patient, only system/ scopes", s)
		}
	}
	if tr["refresh_token"] != nil {
		t.Errorf("client_credentials answered a refresh_token (RFC 6749 4.4.3: SHOULD NOT; SMART backend services: the client signs a new assertion instead)")
	}
	if tr["patient"] != nil || tr["id_token"] != nil {
		t.Errorf("client_credentials answered a patient context or id_token: %v %v", tr["patient"], tr["id_token"])
	}
	at, _ := tr["access_token"].(string)

	// SMART backend services: the jti must not have been seen before.
	t.expectOAuthError("the same client assertion a second time", t.postOAuthForm(token, form(a, asked)), status400or401, "invalid_client")
	t.expectOAuthError("a client assertion for another audience", t.postOAuthForm(token, form(t.ClientAssertion("https://attacker.example/token"), asked)), status400or401, "invalid_client")
	key, alg := attackerKey(t)
	forged, err := clientkey.Sign(key, alg, "", clientkey.Claims(t.env.cfg.FeederClientID, token, time.Now()))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	t.expectOAuthError("a client assertion signed with a key the client never registered", t.postOAuthForm(token, form(forged, asked)), status400or401, "invalid_client")

	// The token feeds: system scopes write the feeder's types...
	id, _ := t.NewPatient(PatientSpec{})
	ms := map[string]any{
		"resourceType": "MedicationStatement", "status": "active",
		"medicationCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "http://www.whocc.no/atc", "code": "C07AB02", "display": "Metoprolol"}}},
		"subject":                   map[string]any{"reference": "Patient/" + id},
		"effectivePeriod":           map[string]any{"start": "2024-01-10"},
	}
	res = t.Do(Request{Method: http.MethodPost, Path: "MedicationStatement", Token: at, Body: ms})
	if res.Status != http.StatusCreated {
		t.Fatalf("POST MedicationStatement with the backend-services token: status %d: %s", res.Status, Outcome(res))
	}
	msID, _ := res.JSON()["id"].(string)
	// ...but never read health data: DOMAIN rule 1, no extraction without
	// an HP and a patient in context.
	for _, path := range []string{"MedicationStatement/" + msID, "Patient/" + id, "MedicationStatement?patient=" + id} {
		got := t.Do(Request{Path: path, Token: at})
		if got.Status != http.StatusForbidden || got.ResourceType() != "OperationOutcome" {
			t.Errorf("GET %s with a system/ token: status %d %s, want 403 with an OperationOutcome", path, got.Status, got.ResourceType())
		}
		if strings.Contains(string(got.Body), "Metoprolol") || strings.Contains(string(got.Body), "Konformansesen") {
			t.Errorf("GET %s with a system/ token leaked health data: %.200s", path, got.Body)
		}
	}
}
