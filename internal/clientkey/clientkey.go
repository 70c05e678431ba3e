// Package clientkey is the client's side of SMART backend services
// authentication (private_key_jwt, RFC 7523): a client's PEM private key,
// named by its RFC 7638 thumbprint as the client registry and JWKS name
// keys, and the client assertion it signs for the token endpoint. The
// seed's feeder client and the conformance suite authenticate with it.
package clientkey

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// AssertionLifetime is how long a client assertion is valid.
const AssertionLifetime = 4 * time.Minute

// Load reads a PEM private key as a JWK whose kid is its RFC 7638
// thumbprint, with the signature algorithm that fits it (ES256, or RS256
// for an RSA key).
func Load(file string) (jwk.Key, jwa.SignatureAlgorithm, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, jwa.SignatureAlgorithm{}, err
	}
	key, err := jwk.ParseKey(pem, jwk.WithPEM(true))
	if err != nil {
		return nil, jwa.SignatureAlgorithm{}, fmt.Errorf("%s: %w", file, err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, jwa.SignatureAlgorithm{}, err
	}
	kid, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, jwa.SignatureAlgorithm{}, err
	}
	if err := key.Set(jwk.KeyIDKey, base64.RawURLEncoding.EncodeToString(kid)); err != nil {
		return nil, jwa.SignatureAlgorithm{}, err
	}
	alg := jwa.ES256()
	if key.KeyType() == jwa.RSA() {
		alg = jwa.RS256()
	}
	return key, alg, nil
}

// Claims are the claims of a client assertion of clientID for the token
// endpoint aud, issued at now, with a fresh jti.
func Claims(clientID, aud string, now time.Time) map[string]any {
	jti := make([]byte, 16)
	rand.Read(jti)
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": base64.RawURLEncoding.EncodeToString(jti),
		"iat": now.Unix(), "exp": now.Add(AssertionLifetime).Unix(),
	}
}

// Sign signs claims as a compact JWS with key (its kid in the header)
// and, when typ is not empty, that typ header.
func Sign(key jwk.Key, alg jwa.SignatureAlgorithm, typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if typ != "" {
		if err := hdr.Set(jws.TypeKey, typ); err != nil {
			return "", err
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}
