package api

import (
	"context"
	"log/slog"
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
// process's own, except the failed authentications' when Shared is set.
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
	// Shared, when set, is the database of several server processes: the
	// FailedAuth budget is then also counted there (ratelimit.Shared), so
	// that a brute force spread over the processes gets one budget, not
	// one per process. Each process's own buckets stay as well; whichever
	// says no first refuses. The other budgets stay per process: they
	// bound load, which each process bears alone.
	Shared ratelimit.Claimer
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
	// The failure counts shared with the other processes on the
	// database; nil with one process.
	sharedAddr, sharedClient *ratelimit.Shared
	refused                  [limitCount]prometheus.Counter
	proxies                  ratelimit.Proxies
}

func newLimiter(l *Limits, log *slog.Logger) *limiter {
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
		// The shared windows go by the real clock, never the development
		// clock: every process on the database must agree on them.
		lim.sharedAddr = ratelimit.NewShared("addr", l.FailedAuth, l.Shared, nil, log)
		lim.sharedClient = ratelimit.NewShared("client", l.FailedAuth, l.Shared, nil, log)
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
	if blocked, wait := lim.addrSpent(addr); blocked {
		s.rateLimited(c, x, limitFailedAuth, wait, "too many failed authentications from this address",
			"for mange mislykkede pålogginger fra denne adressen")
		return false
	}
	if client != "" {
		if blocked, wait := lim.clientSpent(client); blocked {
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
	// The answer is decided: this failure only spends the budgets, and the
	// next request of a spent address or client is refused before it.
	s.limits.failed(c.Request.Context(), s.limits.proxies.Key(c.Request), authClient(c.Request))
}

// addrSpent reports whether addr has spent its failure budget, in this
// process's bucket or, as far as this process has seen, in the shared
// count; neither costs a database call.
func (l *limiter) addrSpent(addr string) (bool, time.Duration) {
	if blocked, wait := l.failAddr.Exhausted(addr); blocked {
		return true, wait
	}
	return l.sharedAddr.Spent(addr)
}

// clientSpent is addrSpent of a client id.
func (l *limiter) clientSpent(client string) (bool, time.Duration) {
	if blocked, wait := l.failClient.Exhausted(client); blocked {
		return true, wait
	}
	return l.sharedClient.Spent(client)
}

// failed spends a failed authentication of addr and of client (none if
// empty) and reports whether both were within their budgets; when not,
// how long until they are. This process's buckets go first: a failure
// they refuse costs no database call. The shared counts are claimed
// under ctx, the request's.
func (l *limiter) failed(ctx context.Context, addr, client string) (bool, time.Duration) {
	okAddr, waitAddr := l.failAddr.Allow(addr)
	okClient, waitClient := true, time.Duration(0)
	if client != "" {
		okClient, waitClient = l.failClient.Allow(client)
	}
	if !okAddr || !okClient {
		return false, max(waitAddr, waitClient)
	}
	okAddr, waitAddr = l.sharedAddr.Fail(ctx, addr)
	if client != "" {
		okClient, waitClient = l.sharedClient.Fail(ctx, client)
	}
	return okAddr && okClient, max(waitAddr, waitClient)
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
