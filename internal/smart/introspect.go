package smart

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// introspect is the RFC 7662 endpoint. Callers authenticate as a
// confidential client (private_key_jwt); a client marked introspect (a
// resource server) sees every token, others only their own.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	caller, oerr := s.authenticateClient(r, s.issuer+"/auth/introspect", s.issuer+"/auth/token", s.issuer)
	if oerr != nil {
		oerr.write(w)
		return
	}
	if caller.AuthMethod != AuthPrivateKeyJWT {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "introspection needs a confidential client")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is missing")
		return
	}
	inactive := map[string]any{"active": false}
	claims, ok := s.activeAccessToken(tok)
	if ok {
		if cid, _ := claims["client_id"].(string); !caller.Introspect && cid != caller.ID {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		claims["active"] = true
		claims["token_type"] = "Bearer"
		writeJSON(w, http.StatusOK, claims)
		return
	}
	now := s.now()
	s.mu.Lock()
	g, ok := s.refresh[hashToken(tok)]
	s.mu.Unlock()
	if ok && !now.After(g.expires) && (caller.Introspect || g.client.ID == caller.ID) {
		out := map[string]any{"active": true, "token_type": "refresh_token", "client_id": g.client.ID,
			"scope": strings.Join(g.scopes, " "), "exp": g.expires.Unix(), "iss": s.issuer}
		if g.persona != nil {
			out["sub"] = g.persona.subject()
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, inactive)
}

// activeAccessToken verifies an access token issued by this server and
// reports whether it is active now.
func (s *Server) activeAccessToken(tok string) (map[string]any, bool) {
	hdr, claims, err := s.signer.verify(tok)
	if err != nil {
		return nil, false
	}
	if typ, _ := hdr.Type(); typ != TypeAccessToken {
		return nil, false
	}
	now := s.now().Unix()
	num := func(k string) (int64, bool) {
		f, ok := claims[k].(float64)
		return int64(f), ok
	}
	exp, ok := num("exp")
	if !ok || now >= exp {
		return nil, false
	}
	if nbf, ok := num("nbf"); ok && now < nbf {
		return nil, false
	}
	if iss, _ := claims["iss"].(string); iss != s.issuer {
		return nil, false
	}
	jti, _ := claims["jti"].(string)
	s.mu.Lock()
	_, revoked := s.revoked[jti]
	s.mu.Unlock()
	if revoked {
		return nil, false
	}
	// Whole-number claims come back from JSON as float64; give them back
	// as integers so the response reads like the token.
	for k, v := range claims {
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			claims[k] = int64(f)
		}
	}
	return claims, true
}

// revoke is the RFC 7009 endpoint. A refresh token takes its whole family
// with it; an access token is revoked as far as introspection can tell.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	caller, oerr := s.authenticateClient(r, s.issuer+"/auth/revoke", s.issuer+"/auth/token", s.issuer)
	if oerr != nil {
		oerr.write(w)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is missing")
		return
	}
	s.mu.Lock()
	if g, ok := s.refresh[hashToken(tok)]; ok && g.client.ID == caller.ID {
		s.revokeFamily(g.family)
	}
	s.mu.Unlock()
	if claims, ok := s.activeAccessToken(tok); ok {
		if cid, _ := claims["client_id"].(string); cid == caller.ID {
			jti, _ := claims["jti"].(string)
			exp, _ := claims["exp"].(int64)
			s.mu.Lock()
			s.revoked[jti] = time.Unix(exp, 0)
			s.mu.Unlock()
		}
	}
	// RFC 7009 2.2: unknown tokens are not an error.
	w.WriteHeader(http.StatusOK)
}

// jwks serves the public signing key.
func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	buf, err := json.Marshal(s.signer.public)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// Keys change only on restart; a short public cache spares resource
	// servers a fetch per token while still following a new key soon.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Del("Pragma")
	_, _ = w.Write(buf)
}

var managePage = template.Must(template.New("manage").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kjernejournal development grants</title></head>
<body><h1>Active grants (development server)</h1>
{{if not .}}<p>No active grants.</p>{{else}}<table>
<tr><th>Client</th><th>User</th><th>Patient</th><th>Scopes</th><th>Since</th><th></th></tr>
{{range .}}<tr><td>{{.Client}}</td><td>{{.Persona}}</td><td>{{.Patient}}</td><td><code>{{.Scopes}}</code></td><td>{{.Since}}</td>
<td><form method="post"><input type="hidden" name="grant" value="{{.ID}}"><button>Revoke</button></form></td></tr>
{{end}}</table>{{end}}</body></html>`))

// manage is SMART's management_endpoint: a page listing the grants that
// still hold refresh tokens, each revocable. There is no login, as for the
// rest of this server: it knows synthetic users only.
func (s *Server) manage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			s.mu.Lock()
			s.revokeFamily(r.PostForm.Get("grant"))
			s.mu.Unlock()
		}
		http.Redirect(w, r, s.issuer+"/auth/manage", http.StatusSeeOther)
		return
	}
	type row struct{ ID, Client, Persona, Patient, Scopes, Since string }
	var rows []row
	s.mu.Lock()
	live := map[string]bool{}
	for _, g := range s.refresh {
		live[g.family] = true
	}
	for id, f := range s.families {
		if live[id] && !f.revoked {
			rows = append(rows, row{id, f.client, f.persona, f.patient, strings.Join(f.scopes, " "), f.created.UTC().Format(time.RFC3339)})
		}
	}
	s.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].Since < rows[j].Since })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = managePage.Execute(w, rows)
}

// capabilities the server implements (SMART App Launch 2.2, 2.1).
var capabilities = []string{
	"launch-ehr", "launch-standalone", "authorize-post",
	"client-public", "client-confidential-asymmetric",
	"context-ehr-patient", "context-ehr-encounter",
	"context-standalone-patient", "context-standalone-encounter",
	"context-banner", "context-style",
	"permission-offline", "permission-online", "permission-patient", "permission-user",
	"permission-v1", "permission-v2",
	"sso-openid-connect",
}

// SMARTConfiguration is the /.well-known/smart-configuration document.
func (s *Server) SMARTConfiguration() map[string]any {
	e := s.Endpoints()
	return map[string]any{
		"issuer":                                s.issuer,
		"jwks_uri":                              e.JWKS,
		"authorization_endpoint":                e.Authorize,
		"token_endpoint":                        e.Token,
		"introspection_endpoint":                e.Introspect,
		"revocation_endpoint":                   e.Revoke,
		"management_endpoint":                   e.Manage,
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported": []string{AuthPrivateKeyJWT, AuthNone},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"scopes_supported":                      scopesSupported,
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"capabilities":                          capabilities,
		"code_challenge_methods_supported":      []string{"S256"},
		"dpop_signing_alg_values_supported":     dpopAlgs, // RFC 9449 §5.1
		"id_token_signing_alg_values_supported": []string{s.signer.alg.String()},
		"subject_types_supported":               []string{"public"},
		"user_access_brand_bundle":              s.issuer + "/auth/brands",
		"user_access_brand_identifier":          brandIdentifier,
	}
}

var scopesSupported = []string{
	"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
	"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cud",
	"patient/*.read", "patient/*.write", "user/*.read", "user/*.write", "system/*.read", "system/*.write",
	"patient/Flag.rs", "patient/AllergyIntolerance.rs", "patient/MedicationStatement.rs",
	"patient/Encounter.rs", "patient/DocumentReference.rs", "patient/AuditEvent.rs",
	"system/MedicationStatement.cud", "system/Encounter.cud",
}

// brandIdentifier names the development brand; the organisation number is
// synthetic (the test range starting with 3).
var brandIdentifier = map[string]string{"system": domain.SystemOrgNr, "value": "300000008"}

// brands serves the User-access Brand Bundle for the discovery document.
func (s *Server) brands(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json")
	writeJSONBody(w, map[string]any{
		"resourceType": "Bundle",
		"type":         "collection",
		"entry": []any{map[string]any{
			"fullUrl": s.issuer + "/auth/brands#kjernejournal",
			"resource": map[string]any{
				"resourceType": "Organization",
				"id":           "kjernejournal",
				"identifier":   []any{brandIdentifier},
				"name":         "Kjernejournal (development)",
				"endpoint":     []any{map[string]any{"reference": "#fhir"}},
				"contained": []any{map[string]any{
					"resourceType":   "Endpoint",
					"id":             "fhir",
					"status":         "active",
					"connectionType": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
					"payloadType":    []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "none"}}}},
					"address":        s.audience,
				}},
			},
		}},
	})
}

func writeJSONBody(w http.ResponseWriter, v any) {
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) smartConfiguration(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Del("Pragma")
	writeJSON(w, http.StatusOK, s.SMARTConfiguration())
}

// openIDConfiguration is the OpenID Connect discovery document, which an
// OIDC library looks for at the issuer when it checks id_tokens.
func (s *Server) openIDConfiguration(w http.ResponseWriter, _ *http.Request) {
	e := s.Endpoints()
	claims := []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Del("Pragma")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer,
		"authorization_endpoint":                e.Authorize,
		"token_endpoint":                        e.Token,
		"jwks_uri":                              e.JWKS,
		"introspection_endpoint":                e.Introspect,
		"revocation_endpoint":                   e.Revoke,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{s.signer.alg.String()},
		"scopes_supported":                      slices.Clip(scopesSupported),
		"claims_supported":                      claims,
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported": []string{AuthPrivateKeyJWT, AuthNone},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}
