package auth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Claimed is what a token says about its holder before (or instead of)
// verification. It names nobody and grants nothing: the usage log keeps
// it, marked unverified, for a request whose token was refused, so that
// an attempt with a forged or expired token can be traced.
type Claimed struct {
	Subject, ClientID, Issuer, HPR string
}

// Unverified reads the claims of the request's bearer or DPoP token
// without checking anything about it; ok is false when there is no token
// or its payload is not a JSON object. Values are cut to 128 bytes: the
// caller chose them.
func Unverified(r *http.Request) (c Claimed, ok bool) {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, SchemeBearer) && !strings.EqualFold(scheme, SchemeDPoP) || len(token) > maxTokenLen {
		return c, false
	}
	_, payload, _, split := splitJWS(strings.TrimSpace(token))
	if !split {
		return c, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return c, false
	}
	var cl struct {
		Sub      string     `json:"sub"`
		ClientID string     `json:"client_id"`
		Iss      string     `json:"iss"`
		HPR      flexString `json:"helseid://claims/hpr/hpr_number"`
	}
	if json.Unmarshal(raw, &cl) != nil {
		return c, false
	}
	cut := func(s string) string {
		if len(s) > 128 {
			return s[:128]
		}
		return s
	}
	return Claimed{Subject: cut(cl.Sub), ClientID: cut(cl.ClientID), Issuer: cut(cl.Iss), HPR: cut(string(cl.HPR))}, true
}
