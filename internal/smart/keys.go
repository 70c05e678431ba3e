package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// signer holds the server's one signing key. Only asymmetric algorithms
// are offered: the resource server refuses HMAC, so a shared secret would
// make tokens nobody can use.
type signer struct {
	alg    jwa.SignatureAlgorithm
	key    crypto.Signer
	kid    string
	public jwk.Set
}

func newSigner(keyFile, alg string) (*signer, error) {
	var key crypto.Signer
	if keyFile != "" {
		k, err := loadPrivateKey(keyFile)
		if err != nil {
			return nil, err
		}
		key = k
	} else {
		k, err := generateKey(alg)
		if err != nil {
			return nil, err
		}
		key = k
	}
	var a jwa.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("smart: EC signing key must be on P-256 (ES256)")
		}
		a = jwa.ES256()
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("smart: RSA signing key must be at least 2048 bits")
		}
		a = jwa.RS256()
	default:
		return nil, fmt.Errorf("smart: unsupported signing key type %T", key)
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return nil, fmt.Errorf("smart: public key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: a, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return &signer{alg: a, key: key, kid: kid, public: set}, nil
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("smart: signing algorithm %q not supported (ES256 or RS256)", alg)
	}
}

// loadPrivateKey reads the first private key block of a PEM file, in any
// of the usual encodings (PKCS#8, SEC 1, PKCS#1).
func loadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smart: signing key: %w", err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("smart: signing key: no private key in %s", path)
		}
		var k any
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("smart: signing key %s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("smart: signing key %s: %T cannot sign", path, k)
		}
		return s, nil
	}
}

// sign produces a compact JWS over the JSON of claims with the given typ.
func (s *signer) sign(typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, s.kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("smart: sign: %w", err)
	}
	return string(out), nil
}

// verify checks a compact JWS made by this server and returns its claims.
// It is used by introspection; expiry is judged by the caller.
func (s *signer) verify(token string) (header jws.Headers, claims map[string]any, err error) {
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return nil, nil, err
	}
	if len(msg.Signatures()) != 1 {
		return nil, nil, errors.New("not a compact JWS")
	}
	header = msg.Signatures()[0].ProtectedHeaders()
	if alg, ok := header.Algorithm(); !ok || alg != s.alg {
		return nil, nil, errors.New("unexpected algorithm")
	}
	if kid, ok := header.KeyID(); !ok || kid != s.kid {
		return nil, nil, errors.New("unknown key")
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(s.alg, s.key.Public()))
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, nil, err
	}
	return header, claims, nil
}
