package interaction

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// practitionerRead answers GET /Practitioner/{hpr}: the signed-in
// practitioner's own Practitioner, which is what a SMART app resolves
// the token's fhirUser to. No practitioner register is held here; the
// resource is built from what the verified token says (HelseID's HPR
// number, name and HP category), and the rules let nobody read another's.
func (s *Service) practitionerRead(ctx context.Context, req *Request, c *Call) (*Result, error) {
	missing := absent{kind: unknownResource, typ: "Practitioner", id: c.ID}
	if _, _, err := s.require(ctx, req, ask{in: access.Read, typ: "Practitioner", id: c.ID}, missing); err != nil {
		return nil, err
	}
	p := req.Principal
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	type qualification struct {
		Code struct {
			Coding []coding `json:"coding"`
		} `json:"code"`
	}
	type humanName struct {
		Text   string   `json:"text"`
		Family string   `json:"family,omitempty"`
		Given  []string `json:"given,omitempty"`
	}
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	res := struct {
		ResourceType  string          `json:"resourceType"`
		ID            string          `json:"id"`
		Identifier    []identifier    `json:"identifier"`
		Active        bool            `json:"active"`
		Name          []humanName     `json:"name,omitempty"`
		Qualification []qualification `json:"qualification,omitempty"`
	}{ResourceType: "Practitioner", ID: p.HPR, Active: true, Identifier: []identifier{{domain.SystemHPR, p.HPR}}}
	if name := strings.TrimSpace(p.Name); name != "" {
		n := humanName{Text: name}
		if parts := strings.Fields(name); len(parts) > 1 {
			n.Family, n.Given = parts[len(parts)-1], parts[:len(parts)-1]
		}
		res.Name = []humanName{n}
	}
	if p.HPCategory != "" {
		var q qualification
		q.Code.Coding = []coding{{System: domain.SystemHPCategory, Code: p.HPCategory}}
		res.Qualification = []qualification{q}
	}
	body, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	sh, e := shapeOf(c.Query)
	if e != nil {
		return nil, e
	}
	if body, err = sh.apply(body); err != nil {
		return nil, err
	}
	return &Result{Status: http.StatusOK, Body: body}, nil
}
