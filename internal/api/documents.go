package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
)

// jwks publishes the key the source hospitals verify this server's
// assertions with.
func (s *Server) jwks(c *gin.Context) {
	if s.cfg.DocumentKeys == nil {
		s.fail(c, &interaction.Error{Status: http.StatusNotFound, Issues: []fhir.Issue{{Severity: "error", Code: "not-found", Diagnostics: "no keys are published"}}})
		return
	}
	b, err := json.Marshal(map[string]any{"keys": []any{s.cfg.DocumentKeys}})
	if err != nil {
		s.fail(c, internalError(exchangeOf(c).id))
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}
