// Package api is the FHIR REST layer: it maps HTTP interactions onto the
// store, using package fhir for everything about the resources themselves.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Config holds what the REST layer needs. Store and Codec are required.
type Config struct {
	Store  store.Store
	Codec  *fhir.Codec
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// BaseURL is the server's public base (e.g. https://kj.example.no/fhir),
	// used in Location and fullUrl. Empty: derived from each request.
	BaseURL string
	// Registerer receives the HTTP metrics; nil means a private registry
	// (served at /metrics either way).
	Registry *prometheus.Registry
	// Version is the software version shown in the CapabilityStatement.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Auth verifies access tokens. nil switches authentication off: only
	// for tests of REST behaviour and loopback development servers.
	Auth Authenticator
	// Policy decides every access (required with Auth).
	Policy *access.Policy
	// Audit is the usage log; nil switches auditing off (tests of REST
	// behaviour only). With it, every request to a data route is recorded
	// before its answer leaves, and a failure to record gives 503.
	Audit store.AuditLog
	// Notify, if set, serves Subscriptions and sends change notifications
	// of critical information.
	Notify *Notifications
	// Documents, if set, serves journal documents from the source
	// hospitals (GET /DocumentReference, GET /documents/{token}).
	Documents *documents.Federation
	// DocumentKeys is the public key (a jwk.Key) published at /jwks for
	// the sources to verify this server's assertions.
	DocumentKeys any
	// RegionOf gives the health region of an organisation number, for the
	// sources that share by region ("" if unknown).
	RegionOf func(org string) string
	// Security, if set, is added to the CapabilityStatement's rest.security
	// (the SMART service and oauth-uris of the authorisation server).
	Security *Security
	// Search is the search-parameter registry; nil loads the definitions
	// embedded in package profiles (search.Load).
	Search *search.Registry
}

// Security describes the authorisation server for the CapabilityStatement.
type Security struct {
	Authorize, Token, Introspect, Revoke, Manage string
}

// Server answers FHIR REST requests.
type Server struct {
	cfg     Config
	store   store.Store
	codec   *fhir.Codec
	log     *slog.Logger
	metrics *metrics
	routes  []route
	reg     *search.Registry
	engine  *gin.Engine
	started time.Time
	states  stateCache
	conds   condLocks
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
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Search == nil {
		reg, err := search.Load()
		if err != nil {
			return nil, err
		}
		cfg.Search = reg
	}
	s := &Server{cfg: cfg, store: cfg.Store, codec: cfg.Codec, log: cfg.Logger, started: cfg.Now(), reg: cfg.Search}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.routes = s.routeTable()
	s.engine = s.router()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Routes lists every method and path the router serves; tests walk it.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, RouteInfo{Method: r.method, Path: r.path, Interaction: r.interaction, Public: r.public})
	}
	return out
}

// RouteInfo describes one route.
type RouteInfo struct {
	Method, Path, Interaction string
	Public                    bool // needs no token and is not audited (metadata, health, metrics)
}

func (s *Server) router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.Use(s.requestContext)
	for _, r := range s.routes {
		if r.public {
			e.Handle(r.method, r.path, r.handle)
		} else {
			e.Handle(r.method, r.path, s.audited, s.authenticate, r.handle)
		}
	}
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
			Diagnostics: fmt.Sprintf("no FHIR endpoint at %s %s", c.Request.Method, c.Request.URL.Path)})
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, http.StatusMethodNotAllowed, fhir.Issue{Severity: "error", Code: "not-supported",
			Diagnostics: fmt.Sprintf("%s is not supported on %s", c.Request.Method, c.Request.URL.Path)})
	})
	return e
}

// ctxKey holds per-request values in the gin context.
const (
	keyInteraction = "kj.interaction"
	keyType        = "kj.type"
	keyRequestID   = "kj.requestID"
)

// requestContext assigns the request id, recovers panics, and records
// metrics and a log line once the handler is done.
func (s *Server) requestContext(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-Id")
	if !validRequestID(id) {
		id = rand.Text()
	}
	c.Set(keyRequestID, id)
	c.Header("X-Request-Id", id)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in handler", "request_id", id, "panic", fmt.Sprint(p), "path", c.Request.URL.Path)
			if !c.Writer.Written() {
				s.fail(c, http.StatusInternalServerError, fhir.Issue{Severity: "fatal", Code: "exception",
					Diagnostics: "internal error; the request id is " + id})
			}
		}
		interaction := c.GetString(keyInteraction)
		if interaction == "" {
			interaction = "other"
		}
		typ := c.GetString(keyType)
		status := c.Writer.Status()
		elapsed := time.Since(start)
		s.metrics.observe(interaction, typ, status, elapsed)
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelError
		} else if status >= 400 || c.Request.Method != http.MethodGet {
			level = slog.LevelInfo
		}
		if s.log.Enabled(c, level) {
			s.log.Log(c, level, "request", "request_id", id, "method", c.Request.Method,
				"path", c.Request.URL.Path, "interaction", interaction, "type", typ,
				"status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
		}
	}()
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}

// Ready reports whether the store answers.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.store.Ping(ctx)
}
