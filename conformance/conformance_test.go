package conformance_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/conformance"
)

func runSuite(t *testing.T, base string, cfg conformance.Config) *conformance.Report {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	var progress bytes.Buffer
	cfg.BaseURL = base
	cfg.FeederKeyFile = filepath.Join(root, "testdata/smart/feeder-dev-key.pem")
	cfg.SchemaFile = filepath.Join(root, "testdata/fhir/fhir.schema.json")
	cfg.ResourceServerKeyFile = filepath.Join(root, "testdata/smart/resource-server-dev-key.pem")
	cfg.IssuerKeyFile = filepath.Join(root, "testdata/smart/dev-signing-key.pem")
	cfg.Progress = &progress
	if cfg.FailingSource == "" {
		cfg.FailingSource = failingSource // every stack registers it
	}
	if cfg.FailingLabSource == "" {
		cfg.FailingLabSource = failingLabSource
	}
	if cfg.Run == "" {
		// KJ_CONFORMANCE_RUN narrows a run while working on some checks.
		cfg.Run = os.Getenv("KJ_CONFORMANCE_RUN")
	}
	rep, err := conformance.Run(context.Background(), cfg)
	require.NoError(t, err)
	t.Log("\n" + progress.String())
	require.NotEmpty(t, rep.Results)
	return rep
}

func requireAllPass(t *testing.T, rep *conformance.Report) {
	t.Helper()
	for _, r := range rep.Results {
		assert.NotEqual(t, conformance.Fail, r.Status, "%s: %s", r.Check.ID, r.Message)
		assert.NotEqual(t, conformance.Skip, r.Status, "%s skipped against our own server: %s", r.Check.ID, r.Message)
	}
}

// The whole suite passes against the embedded engine, with nothing skipped.
func TestSuitePassesOnEmbeddedEngine(t *testing.T) {
	s := startStack(t, stackOptions{})
	rep := runSuite(t, s.base, conformance.Config{})
	requireAllPass(t, rep)
	dir := t.TempDir()
	require.NoError(t, rep.WriteFiles(dir))
	assert.FileExists(t, filepath.Join(dir, "report.md"))
	assert.FileExists(t, filepath.Join(dir, "junit.xml"))
}

// The same suite, unchanged, against the server on the MongoDB engine.
func TestSuitePassesOnMongoDBEngine(t *testing.T) {
	s := startStack(t, stackOptions{mongo: true, demo: 3})
	requireAllPass(t, runSuite(t, s.base, conformance.Config{}))
}

// A deployment that loses one behaviour fails the check named for it: here
// a reverse proxy in front of the server drops ETag.
func TestDroppingETagFailsTheNamedCheck(t *testing.T) {
	s := startStack(t, stackOptions{front: func(res *http.Response) error {
		res.Header.Del("ETag")
		return nil
	}})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupREST}})
	r, ok := rep.Result("rest/etag-read")
	require.True(t, ok, "the suite has a check rest/etag-read")
	assert.Equal(t, conformance.Fail, r.Status)
	assert.Contains(t, r.Message, "ETag")
	// and the proxy itself is not what fails the rest
	r, ok = rep.Result("rest/metadata")
	require.True(t, ok)
	assert.Equal(t, conformance.Pass, r.Status, r.Message)
}
