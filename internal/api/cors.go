package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/rs/cors"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// CORS says which browser origins may call the server: SMART apps run in
// a browser on their own origin, and without these headers the browser
// hides every answer from them. Tokens travel in the Authorization (or
// DPoP) header, never in cookies, so credentials mode stays off and the
// usual CSRF worries of CORS do not apply.
type CORS struct {
	// Origins are allowed exactly ("https://app.example.no"); "*" allows
	// every origin.
	Origins []string
	// Loopback allows every http origin on a loopback host, any port: the
	// development setup, where apps are served from a local dev server.
	Loopback bool
}

// Enabled reports whether any origin is allowed.
func (c *CORS) Enabled() bool { return c != nil && (len(c.Origins) > 0 || c.Loopback) }

// allows reports whether a browser on origin may read the answers.
func (c *CORS) allows(origin string) bool {
	if slices.Contains(c.Origins, "*") || slices.Contains(c.Origins, origin) {
		return true
	}
	if !c.Loopback {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == "http" && u.Path == "" && loopback.Host(u.Hostname())
}

// FrameAncestors is the CSP frame-ancestors source list of the allowed
// origins, for pages an EHR may embed.
func (c *CORS) FrameAncestors() string {
	src := []string{"'self'"}
	if c.Enabled() {
		src = append(src, c.Origins...)
		if c.Loopback {
			// Chromium rejects IPv6 literals in CSP sources, so [::1]
			// apps cannot be framed; 127.0.0.1 and localhost can.
			src = append(src, "http://127.0.0.1:*", "http://localhost:*")
		}
	}
	return strings.Join(src, " ")
}

// corsHeaders are what SMART apps send and must be able to read.
var (
	corsAllowed = []string{"Authorization", "DPoP", basisHeader, "If-Match", "If-None-Exist", "If-None-Match",
		"If-Modified-Since", "Prefer", "Content-Type", "Accept", "X-Request-Id", ninHeader, legacyNINHeader, roleHeader,
		legacyRoleHeader, sourceHeader, legacySourceHeader, legacyBasisHeader}
	corsExposed = []string{"ETag", "Location", "Content-Location", "Last-Modified", "WWW-Authenticate",
		"X-Request-Id", "Retry-After"}
)

// corsMiddleware answers preflights (every method a FHIR route or the
// authorisation server takes) and adds the CORS headers to every answer
// for an allowed origin. It runs after the usage log's hold, so a
// preflight is recorded like any other request.
func corsMiddleware(c *CORS) gin.HandlerFunc {
	h := cors.New(cors.Options{
		AllowOriginFunc:  c.allows,
		AllowedMethods:   []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   corsAllowed,
		ExposedHeaders:   corsExposed,
		MaxAge:           600,
		AllowCredentials: false,
	})
	return func(g *gin.Context) {
		h.HandlerFunc(g.Writer, g.Request)
		if g.Request.Method == http.MethodOptions && g.GetHeader("Access-Control-Request-Method") != "" {
			// A preflight is answered (204) above; the route behind it
			// never runs.
			g.Abort()
		}
	}
}
