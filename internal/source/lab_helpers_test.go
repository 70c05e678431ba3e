package source

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The lab side of env: requests as kjernejournal sends them.

func (e *env) labAud() string { return e.ts.URL + labPath }

func (e *env) labURL(kind, rawQuery string) string {
	return e.ts.URL + labPath + "/" + kind + "?" + rawQuery
}

// labToken signs valid lab claims for pnr, changed by mod.
func (e *env) labToken(t *testing.T, pnr string, mod func(map[string]any)) string {
	t.Helper()
	c := claims(e.labAud(), pnr, "")
	if mod != nil {
		mod(c)
	}
	return e.kj.sign(t, c, signOpts{})
}

// labHeaders are the national headers for pnr with the claims' basis.
func labHeaders(pnr string) http.Header {
	h := http.Header{}
	h.Set(HeaderPatientNIN, pnr)
	h.Set(HeaderAccessBasis, "UNNTAK")
	return h
}

// labDo sends a GET with the headers and the bearer token (none if "").
func (e *env) labDo(t *testing.T, u, token string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// labSearchURL runs a valid lab search of the URL and decodes the Bundle.
func (e *env) labSearchURL(t *testing.T, u, pnr string) labBundle {
	t.Helper()
	resp := e.labDo(t, u, e.labToken(t, pnr, nil), labHeaders(pnr))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/fhir+json; charset=utf-8", resp.Header.Get("Content-Type"))
	var b labBundle
	require.NoError(t, json.Unmarshal(body, &b))
	require.Equal(t, "Bundle", b.ResourceType)
	require.Equal(t, "searchset", b.Type)
	return b
}

func (e *env) labSearch(t *testing.T, kind, pnr string, q url.Values) labBundle {
	t.Helper()
	return e.labSearchURL(t, e.labURL(kind, q.Encode()), pnr)
}

type labBundle struct {
	bundle
	Link []struct{ Relation, URL string } `json:"link"`
}

func (b labBundle) next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// ids lists the ids of the entries of the search mode.
func (b labBundle) ids(t *testing.T, mode string) []string {
	t.Helper()
	var out []string
	for _, en := range b.Entry {
		if en.Search.Mode != mode {
			continue
		}
		var r struct{ ID string }
		require.NoError(t, json.Unmarshal(en.Resource, &r))
		out = append(out, r.ID)
	}
	return out
}

type jCoding struct{ System, Code, Display string }

type jConcept struct {
	Coding []jCoding
	Text   string
}

type jQuantity struct {
	Value              float64
	Unit, System, Code string
}

type jDiagnosticReport struct {
	ResourceType      string
	ID                string
	Status            string
	Category          []jConcept
	Code              jConcept
	Subject           map[string]any
	EffectiveDateTime time.Time
	Issued            time.Time
	Performer         []struct {
		Identifier struct{ System, Value string }
		Display    string
	}
	Result     []struct{ Reference string }
	Conclusion string
}

type jObservation struct {
	ResourceType      string
	ID                string
	Status            string
	Category          []jConcept
	Code              jConcept
	Subject           map[string]any
	EffectiveDateTime time.Time
	Issued            time.Time
	Performer         []struct {
		Identifier struct{ System, Value string }
		Display    string
	}
	ValueQuantity  *jQuantity
	ValueString    string
	Interpretation []jConcept
	ReferenceRange []struct{ Low, High *jQuantity }
}

// labsOf is what the source holds for pnr, in answer order.
func (e *env) labsOf(pnr string) []LabReport {
	var out []LabReport
	for _, r := range e.labs {
		if r.PersonNumber == pnr {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b LabReport) int {
		if c := b.Effective.Compare(a.Effective); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// obsOf lists pnr's results with their reports, in answer order.
type repResult struct {
	rep LabReport
	res LabResult
}

func (e *env) obsOf(pnr string) []repResult {
	var out []repResult
	for _, r := range e.labs {
		if r.PersonNumber != pnr {
			continue
		}
		for _, res := range r.Results {
			out = append(out, repResult{r, res})
		}
	}
	slices.SortFunc(out, func(a, b repResult) int {
		if c := b.rep.Effective.Compare(a.rep.Effective); c != 0 {
			return c
		}
		return strings.Compare(a.res.ID, b.res.ID)
	})
	return out
}
