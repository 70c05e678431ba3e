package conformance_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/conformance"
)

// A deployment that loses lab-result behaviours fails the checks named for
// them. A reverse proxy in front of the server drops the outcome entries
// of lab searches (a silent partial result, and a restriction that no
// longer says so), strips the first result's source tag and passes it off
// as taken three years ago. The usage log is left alone, and its check
// still passes.
func TestBreakingLabResultsFailsTheNamedChecks(t *testing.T) {
	s := startStack(t, stackOptions{front: func(res *http.Response) error {
		p := res.Request.URL.Path
		if (p != "/DiagnosticReport" && p != "/Observation") || res.StatusCode != http.StatusOK {
			return nil
		}
		return rewriteBundle(res, func(b map[string]any) {
			entries, _ := b["entry"].([]any)
			var kept []any
			for _, e := range entries {
				em := e.(map[string]any)
				if em["search"].(map[string]any)["mode"] != "outcome" {
					kept = append(kept, e)
				}
			}
			b["entry"] = kept
			if len(kept) == 0 {
				return
			}
			first := kept[0].(map[string]any)["resource"].(map[string]any)
			delete(first, "meta")
			first["effectiveDateTime"] = time.Now().AddDate(-3, 0, 0).UTC().Format(time.RFC3339)
		})
	}})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupLab}, Run: "^lab/"})
	for id, want := range map[string][]string{
		"lab/federated-search": {"is not tagged with its lab source"},
		"lab/window":           {"more than a year ago"},
		"lab/restriction":      {"no OperationOutcome entry says restricted information exists"},
		"lab/partial-failure":  {"no outcome entry names it"},
		"lab/audited":          nil, // nothing about the usage log is broken
	} {
		r, ok := rep.Result(id)
		require.True(t, ok, "the suite has a check %s", id)
		if want == nil {
			assert.Equal(t, conformance.Pass, r.Status, "%s: %s", id, r.Message)
			continue
		}
		assert.Equal(t, conformance.Fail, r.Status, id)
		for _, w := range want {
			assert.Contains(t, r.Message, w, id)
		}
	}
}
