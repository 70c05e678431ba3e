// Package api is the HTTP adapter of kjernejournal: it routes requests,
// negotiates the format, authenticates the token, maps each FHIR request
// onto a call of package interaction and its result onto status codes,
// headers and bodies, and holds every answer until its usage-log record
// is durable. What the server does lives in package interaction; who may
// do it in package access.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Config holds what the server needs. Store and Codec are required.
type Config struct {
	Store  store.Store
	Codec  *fhir.Codec
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// BaseURL is the server's public base (e.g. https://kj.example.no/fhir),
	// used in Location and fullUrl. Empty: derived from each request.
	BaseURL string
	// Registry receives the HTTP metrics and those of package telemetry;
	// nil means a private registry. It is served at /metrics of the admin
	// handler (Admin), never on the public one.
	Registry *prometheus.Registry
	// Version is the software version shown in the CapabilityStatement.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Auth verifies access tokens. nil switches authentication and the
	// access rules off: only for tests of FHIR behaviour and loopback
	// development servers.
	Auth Authenticator
	// Policy decides every access (required with Auth).
	Policy *access.Policy
	// Audit switches the usage log on: the store's own, where a write and
	// its record commit together. Every request is then recorded before
	// its answer leaves, and a failure to record gives 503. Off only for
	// tests of FHIR behaviour and --insecure-no-audit on loopback.
	Audit bool
	// Notify, if set, serves Subscriptions and sends change notifications
	// of critical information.
	Notify *interaction.Notifications
	// Documents, if set, serves journal documents from the source
	// hospitals (GET /DocumentReference, GET /documents/{token}).
	Documents *documents.Federation
	// DocumentKeys is the public key (a jwk.Key) published at /jwks for
	// the sources to verify this server's assertions.
	DocumentKeys any
	// RegionOf gives the health region of an organisation number.
	RegionOf func(org string) string
	// Security, if set, is added to the CapabilityStatement's rest.security.
	Security *interaction.Security
	// Search is the search-parameter registry; nil loads the definitions
	// embedded in package profiles for the codec's types.
	Search *search.Registry
	// Mounts are other handlers served under path prefixes (the built-in
	// SMART authorisation server), through the same request pipeline:
	// request id, usage log, recovery, metrics.
	Mounts []Mount
	// CORS, if enabled, lets browser apps on the allowed origins call
	// every route but the operational probes.
	CORS *CORS
	// Limits, if set, rate-limits requests (limits.go); 429 beyond them.
	Limits *Limits
}

// Mount is a handler served at a path: under it, every method, when the
// path ends in "/" (a prefix); else at the path itself, for GET and HEAD
// and the Methods listed.
type Mount struct {
	Prefix  string
	Handler http.Handler
	Methods []string
	// AuthServer marks the authorisation server's endpoints, which the
	// authorisation-server and failed-authentication limits guard.
	AuthServer bool
}

// Authenticator verifies the token of a request; *auth.Validator is one.
type Authenticator interface {
	Validate(ctx context.Context, r *http.Request) (*auth.Principal, error)
}

// Server answers HTTP requests.
type Server struct {
	cfg     Config
	svc     *interaction.Service
	store   store.Store
	log     *slog.Logger
	metrics *metrics
	limits  *limiter
	engine  *gin.Engine
	// gets are the paths gin routes itself (for GET), so that another
	// method on them is a 405, not a FHIR path.
	gets map[string]bool
}

// New builds the HTTP handler.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Codec == nil {
		return nil, errors.New("api: Config.Store and Config.Codec are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Auth != nil && cfg.Policy == nil {
		return nil, errors.New("api: Config.Policy is required when Config.Auth is set")
	}
	if cfg.Search == nil {
		reg, err := search.Load(cfg.Codec.Types())
		if err != nil {
			return nil, err
		}
		cfg.Search = reg
	}
	icfg := interaction.Config{
		Store: cfg.Store, Codec: cfg.Codec, Search: cfg.Search, Audit: cfg.Audit,
		Notify: cfg.Notify, Documents: cfg.Documents, RegionOf: cfg.RegionOf,
		Version: cfg.Version, Security: cfg.Security, Server: cfg.BaseURL, Now: cfg.Now, Log: cfg.Logger,
	}
	if cfg.Auth != nil {
		icfg.Policy = cfg.Policy
	}
	svc, err := interaction.New(icfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, svc: svc, store: cfg.Store, log: cfg.Logger}
	if s.metrics, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	s.limits = newLimiter(cfg.Limits, cfg.Logger)
	s.engine = s.router()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Interactions is the transport-free service behind the HTTP routes.
func (s *Server) Interactions() *interaction.Service { return s.svc }

// router builds the routes. Every request passes begin (request id,
// facts, recovery, metrics, log line); every request but the operational
// probes (/healthz, /readyz) also passes audited, which holds
// the answer until its usage-log record is durable. FHIR requests have no
// gin routes of their own: NoRoute hands every path that is not one of the
// few HTTP endpoints to interaction.ParseCall, the one router REST
// requests and Bundle entries share.
func (s *Server) router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Every FHIR path is a NoRoute to gin, which would look for the path
	// under every other method first to answer 405 itself; the few
	// paths gin routes answer their 405 in fhir (s.gets).
	e.HandleMethodNotAllowed = false
	front := []gin.HandlerFunc{s.begin, s.audited}
	if s.cfg.CORS.Enabled() {
		front = append(front, corsMiddleware(s.cfg.CORS))
	}
	ops := e.Group("", s.begin)
	logged := e.Group("", front...)
	s.gets = map[string]bool{}
	for _, r := range []struct {
		g    *gin.RouterGroup
		path string
		h    gin.HandlerFunc
	}{
		{ops, "/healthz", s.healthz},
		{ops, "/readyz", s.readyz},
		{ops, "/metrics", s.noMetrics},
		{logged, "/jwks", s.jwks},
	} {
		label, h := strings.TrimPrefix(r.path, "/"), r.h
		r.g.GET(r.path, func(c *gin.Context) {
			exchangeOf(c).route = label
			h(c)
		})
		s.gets[r.path] = true
	}
	for _, m := range s.cfg.Mounts {
		h := gin.WrapH(m.Handler)
		route, guarded := "mount", m.AuthServer
		if guarded {
			route = "auth-server"
		}
		serve := func(c *gin.Context) {
			x := exchangeOf(c)
			x.route = route
			if guarded {
				if !s.authServer(c, x) {
					return
				}
				defer s.authServerDone(c)
			}
			h(c)
		}
		if strings.HasSuffix(m.Prefix, "/") && m.Prefix != "/" {
			logged.Any(m.Prefix+"*rest", serve)
			continue
		}
		// Only the methods named: POST / stays the FHIR batch endpoint.
		for _, method := range append([]string{http.MethodGet, http.MethodHead}, m.Methods...) {
			logged.Handle(method, m.Prefix, serve)
		}
	}
	e.NoRoute(append(front, s.fhir)...)
	return e
}

// exchange is the state of one request in the adapter.
type exchange struct {
	id        string
	facts     interaction.Facts
	req       interaction.Request
	c         interaction.Call
	principal *auth.Principal
	call      *interaction.Call
	route     string // metrics label for requests that are no FHIR call
	held      *heldResponse
}

const exchangeKey = "kj.exchange"

// The security headers of every answer (begin).
var (
	noStore   = []string{"no-store"}
	noSniff   = []string{"nosniff"}
	frameDeny = []string{"DENY"}
)

func exchangeOf(c *gin.Context) *exchange {
	x, _ := c.Get(exchangeKey)
	return x.(*exchange)
}

// begin starts every request: the server's own request id (a caller's
// X-Request-Id is kept as a correlation id only), the usage-log facts,
// and, once the request is answered, the metrics and a log line. A panic
// that escaped the usage log's recovery is answered 500 here; an aborted
// stream stays aborted.
func (s *Server) begin(c *gin.Context) {
	start := time.Now()
	id := rand.Text()
	corr := c.GetHeader("X-Request-Id")
	if !validCorrelationID(corr) {
		corr = ""
	}
	x := &exchange{id: id}
	x.facts.Start(id, corr, c.Request.Method, strings.TrimPrefix(c.Request.URL.Path, "/"), c.Request.URL.RawQuery, s.cfg.Now())
	x.facts.BasisHeader = basisFrom(c.Request.Header)
	x.facts.SourceSystem = sourceSystemFrom(c.Request.Header)
	c.Set(exchangeKey, x)
	h := c.Writer.Header()
	h.Set("X-Request-Id", id)
	// Answers may hold health data: no cache keeps them, no browser
	// guesses their type, and no other site frames them. A handler with
	// a reason to (the discovery documents, the app's pages) says
	// otherwise. The values are shared, not allocated per request (Set
	// and Add replace or grow a copy, never the shared array).
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	h["X-Frame-Options"] = frameDeny
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				s.observe(c, x, start)
				panic(p)
			}
			s.log.Error("panic outside the usage log", "request_id", id, "panic", p, "path", c.Request.URL.Path)
			if !c.Writer.Written() {
				s.fail(c, internalError(id))
			}
		}
		s.observe(c, x, start)
	}()
	c.Next()
}

// observe records the metrics and the log line of a request.
func (s *Server) observe(c *gin.Context, x *exchange, start time.Time) {
	kind, typ := x.route, ""
	if x.call != nil {
		kind, typ = string(x.call.Kind), x.call.Type
	}
	if kind == "" {
		kind = "other"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.metrics.observe(kind, typ, status, elapsed)
	reason := s.metrics.refusals(&x.facts)
	// One line per request (the access log). It names the route, never
	// the path or query, which may carry a person number.
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	ctx := c.Request.Context()
	if s.log.Enabled(ctx, level) {
		client := ""
		if x.principal != nil {
			client = x.principal.ClientID
		}
		s.log.LogAttrs(ctx, level, "request", slog.String("request_id", x.id), slog.String("correlation_id", x.facts.CorrelationID),
			slog.String("method", c.Request.Method), slog.String("route", routeOf(x)), slog.String("interaction", kind),
			slog.String("type", typ), slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("reason", reason), slog.String("client_id", client))
	}
}

// routeOf is the route pattern of a request: the FHIR call's shape with
// its ids as placeholders, or the endpoint's name.
func routeOf(x *exchange) string {
	c := x.call
	if c == nil {
		if x.route == "" {
			return "other"
		}
		return x.route
	}
	switch c.Kind {
	case interaction.Read:
		return c.Type + "/{id}"
	case interaction.VRead:
		return c.Type + "/{id}/_history/{vid}"
	case interaction.History:
		if c.ID != "" {
			return c.Type + "/{id}/_history"
		}
	case interaction.Update, interaction.Delete:
		if c.ID != "" {
			return c.Type + "/{id}"
		}
	case interaction.Search:
		if c.Compartment != "" {
			return "Patient/{id}/" + c.Type
		}
	}
	if c.Type == "" {
		return string(c.Kind)
	}
	return c.Type + " " + string(c.Kind)
}

// validCorrelationID accepts a caller's X-Request-Id worth keeping.
func validCorrelationID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == ':') {
			return false
		}
	}
	return true
}

// Ready reports whether the store can serve requests and take a write.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.store.Ping(ctx)
}
