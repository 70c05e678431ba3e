package clientkey

import (
	"crypto"
	"encoding/base64"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The development feeder key signs an assertion the token endpoint can
// verify: kid is the key's thumbprint (as the client registry names it),
// the claims are RFC 7523's, and each assertion has its own jti.
func TestLoadAndSign(t *testing.T) {
	key, alg, err := Load("../../testdata/smart/feeder-dev-key.pem")
	require.NoError(t, err)
	pub, err := key.PublicKey()
	require.NoError(t, err)
	tp, err := pub.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	kid, _ := key.KeyID()
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(tp), kid)

	now := time.Now()
	a1, err := Sign(key, alg, "", Claims("kj-feeder", "http://127.0.0.1:8080/auth/token", now))
	require.NoError(t, err)
	a2, err := Sign(key, alg, "", Claims("kj-feeder", "http://127.0.0.1:8080/auth/token", now))
	require.NoError(t, err)
	msg, err := jws.Parse([]byte(a1))
	require.NoError(t, err)
	hkid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	assert.Equal(t, kid, hkid, "the kid is in the header")
	tok, err := jwt.Parse([]byte(a1), jwt.WithKey(alg, pub), jwt.WithValidate(true),
		jwt.WithIssuer("kj-feeder"), jwt.WithSubject("kj-feeder"), jwt.WithAudience("http://127.0.0.1:8080/auth/token"))
	require.NoError(t, err)
	exp, _ := tok.Expiration()
	assert.WithinDuration(t, now.Add(AssertionLifetime), exp, time.Second)
	other, err := jwt.Parse([]byte(a2), jwt.WithKey(alg, pub))
	require.NoError(t, err)
	j1, _ := tok.JwtID()
	j2, _ := other.JwtID()
	assert.NotEqual(t, j1, j2)

	_, _, err = Load("no-such-key.pem")
	assert.Error(t, err)
	assert.Equal(t, jwa.ES256(), alg, "the development feeder key is a P-256 key")
}
