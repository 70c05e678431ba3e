package api

import (
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/ratelimit"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// Limits are the rate limits of the server, each a budget of N per
// period (ratelimit.Spec; the zero Spec is no limit). The counts are this
// process's own.
type Limits struct {
	// AuthServer is the budget of requests per remote address to the
	// authorisation server's endpoints (the mounts marked AuthServer).
	AuthServer ratelimit.Spec
	// FailedAuth is the budget of failed authentications, per client and
	// per remote address: tokens refused on the FHIR API, wrong codes,
	// client assertions or refresh tokens at the token endpoint. Once an
	// address has spent it, its requests are refused until it refills;
	// once a client has, its failing attempts are (a valid token of the
	// client still passes, so that no one locks a client out by forging
	// tokens in its name).
	FailedAuth ratelimit.Spec
	// Client is the budget of authenticated requests per client id.
	Client ratelimit.Spec
	// TrustedProxies are the load balancers whose X-Forwarded-For names
	// the client's address (ratelimit.Proxies.Key).
	TrustedProxies ratelimit.Proxies
}

// The limits by their metrics label.
const (
	limitAuthServer = iota
	limitFailedAuth
	limitClient
	limitCount
)

var limitNames = [limitCount]string{"auth-server", "failed-auth", "client"}

// limiter holds the buckets of Limits; a nil bucket set is no limit.
type limiter struct {
	authServer, failAddr, failClient, client *ratelimit.Keyed
	refused                                  [limitCount]prometheus.Counter
	proxies                                  ratelimit.Proxies
}

func newLimiter(l *Limits) *limiter {
	lim := &limiter{}
	for i, name := range limitNames {
		lim.refused[i] = telemetry.RateLimited.WithLabelValues(name)
	}
	// Shown at zero before the first refusal, so that an alert on them
	// has a series to watch.
	telemetry.Refusals.WithLabelValues(string(access.RateLimited))
	telemetry.Refusals.WithLabelValues(string(access.NotAuthenticated))
	if l != nil {
		lim.authServer = ratelimit.NewKeyed(l.AuthServer, nil)
		lim.failAddr = ratelimit.NewKeyed(l.FailedAuth, nil)
		lim.failClient = ratelimit.NewKeyed(l.FailedAuth, nil)
		lim.client = ratelimit.NewKeyed(l.Client, nil)
		lim.proxies = l.TrustedProxies
	}
	return lim
}

// rateLimited answers 429 with Retry-After and records the refusal for
// the usage log, under the patient the request named.
func (s *Server) rateLimited(c *gin.Context, x *exchange, limit int, wait time.Duration, en, nb string) {
	s.limits.refused[limit].Inc()
	d := access.Throttled(en)
	x.facts.Note(x.facts.NamedPatient, x.facts.Type, d)
	c.Writer.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
	s.fail(c, &interaction.Error{Status: http.StatusTooManyRequests, Issues: []fhir.Issue{{Severity: "error", Code: "throttled",
		Diagnostics: en + "; retry after " + ratelimit.RetryAfter(wait) + " s",
		Details:     fhir.Coding{System: domain.SystemAccessReason, Code: string(access.RateLimited), Display: nb}}}})
}

// authServer guards a mount of the authorisation server: a budget of
// requests per address, and of failed authentications per address and
// client (client_id of the query or form). An answer 400 or 401 from the
// authorisation server is a failed authentication: a wrong code, client
// assertion or refresh token, or an unknown client.
func (s *Server) authServer(c *gin.Context, x *exchange) bool {
	lim := s.limits
	addr := lim.proxies.Key(c.Request)
	client := authClient(c.Request)
	if blocked, wait := lim.failAddr.Exhausted(addr); blocked {
		s.rateLimited(c, x, limitFailedAuth, wait, "too many failed authentications from this address",
			"for mange mislykkede pålogginger fra denne adressen")
		return false
	}
	if client != "" {
		if blocked, wait := lim.failClient.Exhausted(client); blocked {
			s.rateLimited(c, x, limitFailedAuth, wait, "too many failed authentications for client "+client,
				"for mange mislykkede pålogginger for klienten")
			return false
		}
	}
	if ok, wait := lim.authServer.Allow(addr); !ok {
		s.rateLimited(c, x, limitAuthServer, wait, "too many requests to the authorisation server from this address",
			"for mange forespørsler til autorisasjonstjeneren fra denne adressen")
		return false
	}
	return true
}

// authServerDone counts a failed authentication at the authorisation
// server (authServer).
func (s *Server) authServerDone(c *gin.Context) {
	if st := c.Writer.Status(); st != http.StatusBadRequest && st != http.StatusUnauthorized {
		return
	}
	s.limits.failAddr.Allow(s.limits.proxies.Key(c.Request))
	if client := authClient(c.Request); client != "" {
		s.limits.failClient.Allow(client)
	}
}

// authClient is the client_id a request to the authorisation server
// names, in its query or its form body. The form is parsed here for the
// check before the handler; the handler finds it parsed (a body that is
// not a form is left to the handler to refuse).
func authClient(r *http.Request) string {
	if r.Method == http.MethodPost && r.PostForm == nil {
		if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && ct == ctForm {
			if r.ParseForm() != nil {
				return ""
			}
		}
	}
	if r.PostForm != nil {
		if v := r.PostForm.Get("client_id"); v != "" {
			return v
		}
	}
	return r.URL.Query().Get("client_id")
}
