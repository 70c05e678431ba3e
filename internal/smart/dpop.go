package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// DPoP at the token endpoint (RFC 9449 §5): a client that sends a DPoP
// proof gets an access token bound to the proof's key (cnf.jkt,
// token_type DPoP), as HelseID issues them for the national APIs, so that
// a server run with --require-dpop can be used with this authorisation
// server. A refresh token issued so stays bound to that key: refreshing
// needs a proof by the same key.

// dpopAlgs are the proof algorithms accepted (asymmetric only).
var dpopAlgs = []string{"ES256", "ES384", "RS256", "PS256"}

// dpopProofWindow is how old (or, by clock difference, how far ahead) a
// proof's iat may be.
const dpopProofWindow = 60 * time.Second

func invalidProof(desc string) *oauthErr {
	return &oauthErr{http.StatusBadRequest, "invalid_dpop_proof", desc}
}

// dpopKey checks the request's DPoP proof, if any, and returns the
// thumbprint of its key ("" without a proof). Called with s.mu not held.
func (s *Server) dpopKey(r *http.Request) (string, *oauthErr) {
	vals := r.Header.Values("DPoP")
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", invalidProof("more than one DPoP header")
	case len(vals[0]) > 8<<10:
		return "", invalidProof("DPoP proof too large")
	}
	msg, err := jws.Parse([]byte(vals[0]))
	if err != nil || len(msg.Signatures()) != 1 {
		return "", invalidProof("DPoP proof is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := hdr.Type(); !strings.EqualFold(typ, "dpop+jwt") {
		return "", invalidProof("DPoP proof typ must be dpop+jwt")
	}
	alg, ok := hdr.Algorithm()
	if !ok || !has(dpopAlgs, alg.String()) {
		return "", invalidProof("DPoP proof algorithm not allowed")
	}
	key, ok := hdr.JWK()
	if !ok {
		return "", invalidProof("DPoP proof has no jwk header")
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return "", invalidProof("DPoP proof jwk is not usable")
	}
	switch raw.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return "", invalidProof("DPoP proof jwk must be a public asymmetric key")
	}
	payload, err := jws.Verify([]byte(vals[0]), jws.WithKey(jwa.SignatureAlgorithm(alg), raw))
	if err != nil {
		return "", invalidProof("DPoP proof signature verification failed")
	}
	var c struct {
		Jti string   `json:"jti"`
		Htm string   `json:"htm"`
		Htu string   `json:"htu"`
		Iat *float64 `json:"iat"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Jti == "" || len(c.Jti) > 256 || c.Iat == nil {
		return "", invalidProof("DPoP proof lacks jti, htm, htu or iat")
	}
	if c.Htm != http.MethodPost {
		return "", invalidProof("DPoP proof htm must be POST")
	}
	if u, err := url.Parse(c.Htu); err != nil || !strings.EqualFold(u.Scheme+"://"+u.Host, s.issuerOrigin()) || u.Path != s.issuerPath()+"/auth/token" {
		return "", invalidProof("DPoP proof htu must be the token endpoint " + s.issuer + "/auth/token")
	}
	now := s.now()
	iat := time.Unix(int64(*c.Iat), 0)
	if iat.Before(now.Add(-dpopProofWindow)) || iat.After(now.Add(dpopProofWindow)) {
		return "", invalidProof("DPoP proof iat outside the accepted window")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", invalidProof("DPoP proof jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := "dpop " + jkt + " " + c.Jti
	if exp, seen := s.jtis[k]; seen && now.Before(exp) {
		return "", invalidProof("DPoP proof replayed")
	}
	s.jtis[k] = iat.Add(2 * dpopProofWindow)
	return jkt, nil
}

func (s *Server) issuerOrigin() string {
	u, _ := url.Parse(s.issuer)
	return u.Scheme + "://" + u.Host
}

func (s *Server) issuerPath() string {
	u, _ := url.Parse(s.issuer)
	return strings.TrimRight(u.Path, "/")
}
