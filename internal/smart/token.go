package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the algorithms accepted on client assertions: SMART
// requires RS384 and ES384, and the others are their common siblings. No
// HMAC, no none.
var assertionAlgs = []string{"RS384", "ES384", "RS256", "ES256", "PS256", "PS384"}

// maxAssertionLife bounds exp - now on client assertions (SMART backend
// services: no more than five minutes in the future).
const maxAssertionLife = 5 * time.Minute

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	client, oerr := s.authenticateClient(r, s.issuer+"/auth/token")
	if oerr != nil {
		oerr.write(w)
		return
	}
	jkt, oerr := s.dpopKey(r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	var resp *tokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		resp, oerr = s.codeGrant(r, client, jkt)
	case "refresh_token":
		resp, oerr = s.refreshGrant(r, client, jkt)
	case "client_credentials":
		resp, oerr = s.clientCredentials(r, client, jkt)
	case "":
		oerr = &oauthErr{http.StatusBadRequest, "invalid_request", "grant_type is missing"}
	default:
		oerr = &oauthErr{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + gt + " is not supported"}
	}
	if oerr != nil {
		oerr.write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

type oauthErr struct {
	status      int
	code, descr string
}

func (e *oauthErr) write(w http.ResponseWriter) { oauthError(w, e.status, e.code, e.descr) }

func badGrant(desc string) *oauthErr {
	return &oauthErr{http.StatusBadRequest, "invalid_grant", desc}
}

func (s *Server) codeGrant(r *http.Request, client *Client, jkt string) (*tokenResponse, *oauthErr) {
	f := r.PostForm
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_request", "code is missing"}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	if !ok || now.After(c.expires) {
		return nil, badGrant("the authorization code is unknown or expired")
	}
	if c.used {
		// A second use means the code leaked: everything it bought goes
		// (RFC 6749 4.1.2).
		s.revokeFamily(c.family)
		return nil, badGrant("the authorization code has already been used")
	}
	// Spent on the first attempt, right or wrong, so a verifier cannot be
	// guessed across tries.
	c.used = true
	if c.client.ID != client.ID {
		return nil, badGrant("the authorization code was issued to another client")
	}
	if f.Get("redirect_uri") != c.redirectURI {
		return nil, badGrant("redirect_uri does not match the authorization request")
	}
	if verifier == "" {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_request", "code_verifier is missing (PKCE)"}
	}
	if !pkceValue.MatchString(verifier) {
		return nil, badGrant("code_verifier is malformed")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		return nil, badGrant("code_verifier does not match the code_challenge")
	}
	c.grant.jkt = jkt
	resp, _, err := s.issue(&c.grant, c.family)
	if err != nil {
		return nil, &oauthErr{http.StatusInternalServerError, "server_error", err.Error()}
	}
	return resp, nil
}

func (s *Server) refreshGrant(r *http.Request, client *Client, jkt string) (*tokenResponse, *oauthErr) {
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_request", "refresh_token is missing"}
	}
	h := hashToken(rt)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if sp, ok := s.spent[h]; ok {
		// A rotated-out token came back: either the app or a thief holds a
		// copy, and the server cannot tell which, so the family dies.
		s.revokeFamily(sp.family)
		return nil, badGrant("the refresh token has already been used")
	}
	g, ok := s.refresh[h]
	if !ok || now.After(g.expires) {
		return nil, badGrant("the refresh token is unknown, expired or revoked")
	}
	if g.client.ID != client.ID {
		return nil, badGrant("the refresh token was issued to another client")
	}
	if g.grant.jkt != "" && jkt != g.grant.jkt {
		// RFC 9449 §5: a refresh token bound to a key is used with a
		// proof by that key, or a thief holding it could use it.
		return nil, invalidProof("the refresh token is bound to a DPoP key: refresh with a DPoP proof by that key")
	}
	ng := g.grant
	ng.jkt = jkt
	if sc := r.PostForm.Get("scope"); sc != "" {
		want := splitScope(sc)
		for _, x := range want {
			if !has(g.scopes, x) {
				return nil, &oauthErr{http.StatusBadRequest, "invalid_scope", "scope " + x + " was not granted originally"}
			}
		}
		ng.scopes = want
	}
	delete(s.refresh, h)
	s.spent[h] = spentRefresh{family: g.family, expires: g.expires}
	resp, _, err := s.issue(&ng, g.family)
	if err != nil {
		return nil, &oauthErr{http.StatusInternalServerError, "server_error", err.Error()}
	}
	if resp.RefreshToken != "" {
		delete(s.refresh, hashToken(resp.RefreshToken))
	}
	// A narrower scope narrows the access token only: the rotated refresh
	// token carries the scope of the one it replaces (RFC 6749 6), or a
	// client asking for less once would lose its grant. It keeps the
	// original expiry too: refreshing does not extend a grant forever.
	resp.RefreshToken = randomID()
	s.refresh[hashToken(resp.RefreshToken)] = &refreshGrant{grant: g.grant, family: g.family, expires: g.expires}
	return resp, nil
}

func (s *Server) clientCredentials(r *http.Request, client *Client, jkt string) (*tokenResponse, *oauthErr) {
	if client.AuthMethod != AuthPrivateKeyJWT {
		return nil, &oauthErr{http.StatusBadRequest, "unauthorized_client", "client_credentials needs a confidential client with private_key_jwt"}
	}
	var want []string
	for _, x := range splitScope(r.PostForm.Get("scope")) {
		// Backend services act for no user: only system/ scopes.
		if strings.HasPrefix(x, "system/") {
			want = append(want, x)
		}
	}
	scopes := client.grantable(want)
	if len(scopes) == 0 {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_scope", "no requested system/ scope is allowed for this client"}
	}
	g := &grant{client: client, scopes: scopes, authTime: s.now(), jkt: jkt}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, _, err := s.issue(g, "")
	if err != nil {
		return nil, &oauthErr{http.StatusInternalServerError, "server_error", err.Error()}
	}
	return resp, nil
}

// authenticateClient identifies the calling client: a private_key_jwt
// assertion (RFC 7523) for confidential clients, the bare client_id for
// public ones. audiences are the values accepted as the assertion's aud.
func (s *Server) authenticateClient(r *http.Request, audiences ...string) (*Client, *oauthErr) {
	f := r.PostForm
	unauthorized := func(desc string) *oauthErr {
		return &oauthErr{http.StatusUnauthorized, "invalid_client", desc}
	}
	if at := f.Get("client_assertion_type"); at != "" || f.Get("client_assertion") != "" {
		if at != assertionType {
			return nil, unauthorized("client_assertion_type must be " + assertionType)
		}
		c, err := s.verifyAssertion(r.Context(), f.Get("client_assertion"), audiences)
		if err != nil {
			return nil, unauthorized("client assertion refused: " + err.Error())
		}
		if id := f.Get("client_id"); id != "" && id != c.ID {
			return nil, unauthorized("client_id does not match the assertion")
		}
		return c, nil
	}
	id := f.Get("client_id")
	if user, pass, ok := r.BasicAuth(); ok {
		// Some OAuth libraries send a public client's id as Basic with an
		// empty password; anything with a password is a secret, and this
		// server has no secrets.
		if pass != "" {
			return nil, unauthorized("client secrets are not supported; use private_key_jwt")
		}
		if id != "" && id != user {
			return nil, unauthorized("client_id in the header and the body differ")
		}
		id = user
	}
	c := s.clients[id]
	if c == nil {
		return nil, unauthorized("unknown client")
	}
	if c.AuthMethod != AuthNone {
		return nil, unauthorized("this client must authenticate with private_key_jwt")
	}
	return c, nil
}

// verifyAssertion checks an RFC 7523 client assertion: signed with a key
// from the client's registered JWKS, iss = sub = client_id, aud one of
// audiences, exp close ahead, jti never seen before.
func (s *Server) verifyAssertion(ctx context.Context, assertion string, audiences []string) (*Client, error) {
	if assertion == "" {
		return nil, errors.New("client_assertion is missing")
	}
	msg, err := jws.Parse([]byte(assertion))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, errors.New("not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	alg, _ := hdr.Algorithm()
	if !slices.Contains(assertionAlgs, alg.String()) {
		return nil, fmt.Errorf("algorithm %q not accepted", alg.String())
	}
	kid, _ := hdr.KeyID()
	if kid == "" {
		return nil, errors.New("kid header is required")
	}
	// The issuer is read before the signature is checked, only to find
	// whose keys to check it with.
	unverified, err := jwt.ParseInsecure([]byte(assertion))
	if err != nil {
		return nil, errors.New("payload is not a JWT")
	}
	iss, _ := unverified.Issuer()
	c := s.clients[iss]
	if c == nil || c.AuthMethod != AuthPrivateKeyJWT {
		return nil, errors.New("iss is not a registered private_key_jwt client")
	}
	key, err := s.clientKey(ctx, c, kid)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tok, err := jwt.Parse([]byte(assertion),
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(s.now)),
		jwt.WithAcceptableSkew(s.cfg.ClockSkew),
		jwt.WithIssuer(c.ID),
		jwt.WithSubject(c.ID),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("jti"),
	)
	if err != nil {
		return nil, err
	}
	auds, _ := tok.Audience()
	if !slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(audiences, a) }) {
		return nil, fmt.Errorf("aud must be %s", audiences[0])
	}
	exp, _ := tok.Expiration()
	if exp.Sub(now) > maxAssertionLife+s.cfg.ClockSkew {
		return nil, errors.New("exp is more than five minutes ahead")
	}
	jti, _ := tok.JwtID()
	k := c.ID + " " + jti
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if _, seen := s.jtis[k]; seen {
		return nil, errors.New("jti has been used before (replay)")
	}
	s.jtis[k] = exp
	return c, nil
}

// remoteKeys caches a client's jwks_uri.
type remoteKeys struct {
	set     jwk.Set
	fetched time.Time
}

// jwksRefetchAfter is how long a fetched jwks_uri answers for unknown kids
// before it is fetched again; it keeps a flood of bad kids from turning
// into a flood of fetches.
const jwksRefetchAfter = 10 * time.Second

func (s *Server) clientKey(ctx context.Context, c *Client, kid string) (jwk.Key, error) {
	set := c.keys
	if c.JWKSURI != "" {
		s.mu.Lock()
		rk := s.jwksURIs[c.JWKSURI]
		s.mu.Unlock()
		if rk != nil {
			set = rk.set
		}
		_, found := lookupKey(set, kid)
		if rk == nil || (!found && s.now().Sub(rk.fetched) > jwksRefetchAfter) {
			fetched, err := jwk.Fetch(ctx, c.JWKSURI, jwk.WithHTTPClient(s.cfg.HTTPClient))
			if err != nil {
				return nil, fmt.Errorf("fetching jwks_uri: %w", err)
			}
			if err := checkPublicSet(fetched); err != nil {
				return nil, fmt.Errorf("jwks_uri: %w", err)
			}
			s.mu.Lock()
			s.jwksURIs[c.JWKSURI] = &remoteKeys{set: fetched, fetched: s.now()}
			s.mu.Unlock()
			set = fetched
		}
	}
	k, ok := lookupKey(set, kid)
	if !ok {
		return nil, fmt.Errorf("no registered key with kid %q", kid)
	}
	return k, nil
}

func lookupKey(set jwk.Set, kid string) (jwk.Key, bool) {
	if set == nil {
		return nil, false
	}
	return set.LookupKeyID(kid)
}
