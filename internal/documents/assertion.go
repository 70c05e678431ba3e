package documents

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// AssertionType is the JWS typ header of the assertion sent to sources; a
// distinct typ keeps it from being mistaken for (or replayed as) an access
// token anywhere else.
const AssertionType = "kj-source-assertion+jwt"

// AssertionTTL is the assertion's lifetime: one call, plus clock skew.
const AssertionTTL = 60 * time.Second

// Requester is the health personnel behind a search or retrieval, as the
// REST layer took it from the verified token and the request. It is passed
// to the sources in the assertion so that they log the lookup too, and
// its Org and Region select the sources that share with it.
type Requester struct {
	// Citizen marks a citizen reading their own record (lab results): the
	// assertion then names the citizen (role "citizen", pid) instead of
	// health personnel, and every lab source is asked.
	Citizen bool
	PID     string // the citizen's person number
	// Session names the user and the access token of the request; the
	// document URLs a search answers are bound to it, so that they open
	// for that user with that token only (rule 7). Not sent to sources.
	Session      string
	HPR          string // HPR number
	HPCategory   string // code system 9060: LE, SP, ...
	Org          string // organisation number (legal entity)
	Region       string // health region of Org, one of Regions ("" if none)
	PurposeOfUse string // TREAT, ETREAT, COC, BTG
	AccessBasis  string // UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE, FORHOYET_AKUTT
}

// Claims are the assertion's claims.
type Claims struct {
	Issuer       string `json:"iss"`
	Audience     string `json:"aud"`
	IssuedAt     int64  `json:"iat"`
	Expiry       int64  `json:"exp"`
	ID           string `json:"jti"`
	HPR          string `json:"hpr"`
	HPCategory   string `json:"hp_category"`
	Org          string `json:"org"`
	PurposeOfUse string `json:"purpose_of_use"`
	AccessBasis  string `json:"access_basis"`
	Patient      string `json:"patient"`
	Document     string `json:"document,omitempty"`
	// Role "citizen" and PID name a citizen reading their own record; the
	// HP claims are then empty.
	Role string `json:"role,omitempty"`
	PID  string `json:"pid,omitempty"`
}

// Signer signs the assertions kjernejournal sends to the sources, with an
// ES256 key whose public half kjernejournal publishes in its JWKS (the
// sources verify against that JWKS by kid).
type Signer struct {
	issuer string
	key    crypto.Signer
	kid    string
	public jwk.Key
	now    func() time.Time
}

// NewSigner builds a signer for issuer (kjernejournal's base URL) with a
// P-256 key. Only ES256 is offered: the contract names it, and sources
// must not have to support more.
func NewSigner(issuer string, key *ecdsa.PrivateKey) (*Signer, error) {
	if issuer == "" {
		return nil, errors.New("documents: signer: issuer (kjernejournal base URL) missing")
	}
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("documents: signer: the key must be an ECDSA P-256 key (ES256)")
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return nil, fmt.Errorf("documents: signer: public key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	// The RFC 7638 thumbprint as kid: stable for the key, so a restart
	// with the same key keeps the sources' cached JWKS valid.
	kid := "kj-source-" + base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, err
		}
	}
	return &Signer{issuer: issuer, key: key, kid: kid, public: pub, now: time.Now}, nil
}

// GenerateSigner makes a signer with a fresh key (development and tests;
// the key lives as long as the process).
func GenerateSigner(issuer string) (*Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewSigner(issuer, k)
}

// PublicKey is the public JWK (kid, alg ES256, use sig) to add to
// kjernejournal's JWKS.
func (s *Signer) PublicKey() jwk.Key { return s.public }

// KeyID is the kid in every assertion's header.
func (s *Signer) KeyID() string { return s.kid }

// Issuer is the iss claim.
func (s *Signer) Issuer() string { return s.issuer }

// Assertion signs the claims for one call to the source at audience (its
// base URL). document is "" for a search.
func (s *Signer) Assertion(audience string, req Requester, patient, document string) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	now := s.now()
	c := Claims{
		Issuer: s.issuer, Audience: audience,
		IssuedAt: now.Unix(), Expiry: now.Add(AssertionTTL).Unix(),
		ID:  base64.RawURLEncoding.EncodeToString(jti[:]),
		HPR: req.HPR, HPCategory: req.HPCategory, Org: req.Org,
		PurposeOfUse: req.PurposeOfUse, AccessBasis: req.AccessBasis,
		Patient: patient, Document: document,
	}
	if req.Citizen {
		c.Role, c.PID = "citizen", req.PID
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, s.kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, AssertionType); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("documents: sign assertion: %w", err)
	}
	return string(out), nil
}

// VerifyAssertion is the check a source makes (exported for internal/source
// and tests): ES256 signature by a key of keys matched by kid, typ, iss,
// aud equal to the source's base URL, exp and iat within skew of now, and
// the identity claims present. It returns the claims.
func VerifyAssertion(token string, keys jwk.Set, issuer, audience string, now time.Time) (*Claims, error) {
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	if len(msg.Signatures()) != 1 {
		return nil, errors.New("assertion: not a compact JWS with one signature")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if alg, ok := h.Algorithm(); !ok || alg != jwa.ES256() {
		return nil, errors.New("assertion: algorithm must be ES256")
	}
	if typ, ok := h.Type(); !ok || typ != AssertionType {
		return nil, fmt.Errorf("assertion: typ must be %s", AssertionType)
	}
	kid, ok := h.KeyID()
	if !ok {
		return nil, errors.New("assertion: no kid")
	}
	key, ok := keys.LookupKeyID(kid)
	if !ok {
		return nil, fmt.Errorf("assertion: unknown kid %q", kid)
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(jwa.ES256(), key))
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("assertion: claims: %w", err)
	}
	const skew = 30
	switch {
	case c.Issuer != issuer:
		return nil, fmt.Errorf("assertion: iss %q, want %q", c.Issuer, issuer)
	case c.Audience != audience:
		return nil, fmt.Errorf("assertion: aud %q, want %q", c.Audience, audience)
	case now.Unix() > c.Expiry+skew:
		return nil, errors.New("assertion: expired")
	case c.IssuedAt > now.Unix()+skew || c.Expiry-c.IssuedAt > int64(AssertionTTL/time.Second)+skew:
		return nil, errors.New("assertion: iat in the future or lifetime too long")
	case c.ID == "" || c.HPR == "" || c.Org == "" || c.Patient == "" || c.PurposeOfUse == "" || c.AccessBasis == "":
		return nil, errors.New("assertion: jti, hpr, org, patient, purpose_of_use and access_basis are required")
	}
	return &c, nil
}
