package documents

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"regexp"
	"time"
)

// A document token is what the rewritten attachment URL carries:
//
//	base64url( version | expiry (8 bytes, Unix seconds) | len+source name |
//	           len+document id | len+9602 type code | HMAC-SHA256 )
//
// The MAC covers the version, the fields, the patient's person number and
// the session that received the URL (Requester.Session: the user and the
// access token), but neither is in the token: URLs end up in access logs
// and browser histories, and the binding works just as well by recomputing
// the MAC with the patient and session of the request that opens it. A
// token for another patient, opened by another user, or with another
// access token (rule 7: document links are valid only for the user and
// session that received them) therefore fails exactly like a forged one,
// which also tells a prober nothing.
//
// The server only ever calls {registered source base}/Binary/{id} with a
// source name looked up in the registry and an id matching idRe, so even a
// token made with a leaked key cannot point the server at another host.

const (
	tokenVersion = 2 // 2: bound to the session too
	macLen       = sha256.Size
	maxTokenLen  = 512 // base64 characters; well above any valid token
)

// idRe is the FHIR id syntax; document ids outside it are never proxied.
var idRe = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

type docRef struct {
	Source  string
	ID      string
	Type    string // 9602 code, re-checked against the sharing policy on Open
	Expires time.Time
}

// binding is what a token is bound to besides its fields: the patient's
// person number and the session that received it.
type binding struct{ patient, session string }

func tokenMAC(key []byte, payload []byte, to binding) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kjernejournal document token\x00"))
	m.Write(payload)
	for _, s := range []string{to.patient, to.session} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

func appendField(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func makeToken(key []byte, r docRef, to binding) string {
	b := make([]byte, 0, 12+len(r.Source)+len(r.ID)+len(r.Type)+macLen)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Expires.Unix()))
	b = appendField(b, r.Source)
	b = appendField(b, r.ID)
	b = appendField(b, r.Type)
	b = append(b, tokenMAC(key, b, to)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken verifies the MAC for the binding and decodes the reference.
// It returns ErrTokenInvalid for anything malformed, forged, altered or
// bound to another patient or session, and ErrTokenExpired for a genuine
// token past its expiry (only a genuine token gets the more specific
// answer).
func parseToken(key []byte, token string, to binding, now time.Time) (docRef, error) {
	if len(token) == 0 || len(token) > maxTokenLen {
		return docRef{}, ErrTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+8+3+macLen || b[0] != tokenVersion {
		return docRef{}, ErrTokenInvalid
	}
	payload, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, tokenMAC(key, payload, to)) {
		return docRef{}, ErrTokenInvalid
	}
	var r docRef
	r.Expires = time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	rest := payload[9:]
	for _, f := range []*string{&r.Source, &r.ID, &r.Type} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return docRef{}, ErrTokenInvalid
		}
		*f, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	if len(rest) != 0 || !idRe.MatchString(r.ID) {
		return docRef{}, ErrTokenInvalid
	}
	if !now.Before(r.Expires) {
		return docRef{}, ErrTokenExpired
	}
	return r, nil
}
