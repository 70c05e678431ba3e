package conformance_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/conformance"
)

// A deployment that loses document behaviours fails the checks named for
// them. A reverse proxy in front of the server breaks one rule per check:
// it puts a source's address back into one attachment URL, lets retrieved
// documents be cached, answers refused document URLs with bytes, shows a
// NORS label and an old test result, and drops the outcome entry that
// reports the failed source (a silent partial result). The usage log is
// left alone, and its check still passes.
func TestBreakingDocumentsFailsTheNamedChecks(t *testing.T) {
	s := startStack(t, stackOptions{front: func(res *http.Response) error {
		switch {
		case strings.HasPrefix(res.Request.URL.Path, "/documents/") && res.StatusCode == http.StatusOK:
			res.Header.Del("Cache-Control")
		case strings.HasPrefix(res.Request.URL.Path, "/documents/"):
			body := []byte("%PDF-1.4 served although refused")
			res.StatusCode, res.Status = http.StatusOK, "200 OK"
			res.Header = http.Header{"Content-Type": {"application/pdf"}, "Content-Length": {strconv.Itoa(len(body))}}
			res.Body.Close()
			res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		case res.Request.URL.Path == "/DocumentReference" && res.StatusCode == http.StatusOK:
			return rewriteBundle(res, func(b map[string]any) {
				var kept []any
				for _, e := range b["entry"].([]any) {
					em := e.(map[string]any)
					if em["search"].(map[string]any)["mode"] != "outcome" {
						kept = append(kept, e)
					}
				}
				b["entry"] = kept
				doc := func(i int) map[string]any { return kept[i].(map[string]any)["resource"].(map[string]any) }
				att := doc(0)["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
				att["url"] = "http://127.0.0.1:1/Binary/" + doc(0)["id"].(string)
				doc(1)["securityLabel"] = []any{map[string]any{"coding": []any{map[string]any{"system": "urn:oid:2.16.578.1.12.4.1.1.9603", "code": "NORS"}}}}
				// The oldest document (an A00, years old) passed off as a
				// test result.
				doc(len(kept) - 1)["type"] = map[string]any{"coding": []any{map[string]any{"system": "urn:oid:2.16.578.1.12.4.1.1.9602", "code": "C01-1"}}}
			})
		}
		return nil
	}})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupDocuments}, Run: "^documents/"})
	for id, want := range map[string][]string{
		"documents/federated-search":         {"not rewritten to the server's proxy", "outside the server's base URL"},
		"documents/retrieve":                 {"no-store"},
		"documents/proxy-tampering":          {"carries the document"},
		"documents/display-periods-and-nors": {"NORS", "group C00 is shown for 1 year(s)"},
		"documents/partial-failure":          {"names the failed source"},
		"documents/audited":                  nil, // nothing about the usage log is broken
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

// rewriteBundle replaces a JSON answer's body with edit's result.
func rewriteBundle(res *http.Response, edit func(map[string]any)) error {
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	edit(b)
	out, err := json.Marshal(b)
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(out))
	res.ContentLength = int64(len(out))
	res.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}
