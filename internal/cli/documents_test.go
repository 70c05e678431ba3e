package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestDocumentsWithRealSourceProcesses runs kjernejournal and two kjsource
// processes (two health regions) as separate programs, as `make run` does,
// and reads a patient's documents through kjernejournal.
func TestDocumentsWithRealSourceProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kjsource")
	build := exec.Command("go", "build", "-o", bin, "github.com/kjernejournal/kjernejournal/cmd/kjsource")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "build kjsource")

	kjAddr, ousAddr, nlshAddr := freePort(t), freePort(t), freePort(t)
	base := "http://" + kjAddr
	registry := fmt.Sprintf(`{"sources":[
	  {"name":"ous","display_name":"Oslo universitetssykehus HF","organisation":"300010008","region":"helse-sor-ost",
	   "base_url":"http://%s","shared_types":["A00","C00","D00","E00","I00"],"shares_with":{"regions":["helse-sor-ost","helse-nord"]}},
	  {"name":"nlsh","display_name":"Nordlandssykehuset HF","organisation":"300011268","region":"helse-nord",
	   "base_url":"http://%s","shared_types":["A00","C00","E00","I00"],"shares_with":{"organisations":["300010008"],"regions":["helse-nord"]}}]}`, ousAddr, nlshAddr)
	sourcesFile := filepath.Join(dir, "sources.json")
	require.NoError(t, os.WriteFile(sourcesFile, []byte(registry), 0o600))

	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	kj := startServer(t, filepath.Join(dir, "data"), "--addr", kjAddr, "--auth-server", "--sources", sourcesFile,
		"--demo-patients", "3", "--default-region", "helse-sor-ost",
		"--smart-key-file", filepath.Join(root, smart.DefaultKeyFile),
		"--smart-clients", filepath.Join(root, smart.DefaultClientsFile),
		"--smart-personas", filepath.Join(root, smart.DefaultPersonasFile))
	require.Equal(t, base, kj.base)

	sources := map[string]*exec.Cmd{}
	for name, args := range map[string][]string{
		"ous":  {"--addr", ousAddr, "--name", "Oslo universitetssykehus HF"},
		"nlsh": {"--addr", nlshAddr, "--name", "Nordlandssykehuset HF"},
	} {
		cmd := exec.Command(bin, append(args, "--patients", "3", "--seed", "1", "--kj-issuer", base, "--kj-jwks-url", base+"/jwks")...)
		var logs bytes.Buffer
		cmd.Stderr, cmd.Stdout = &logs, io.Discard
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		sources[name] = cmd
		waitHTTP(t, "http://"+args[1]+"/healthz")
	}

	patient := seed.PatientID(1, 0)
	var tok bytes.Buffer
	require.NoError(t, smart.TokenCommand(context.Background(), []string{"--as", "hospital-doctor", "--patient", patient,
		"--issuer", base, "--key-file", filepath.Join(root, smart.DefaultKeyFile),
		"--personas", filepath.Join(root, smart.DefaultPersonasFile), "--clients", filepath.Join(root, smart.DefaultClientsFile)}, &tok, io.Discard))
	token := strings.TrimSpace(tok.String())
	get := func(path string) (int, string) {
		req, err := http.NewRequest("GET", base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("nhn-access-basis", "UNNTAK")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	status, body := get("/DocumentReference?patient=" + patient)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"id":"ous.`, "documents from the Oslo source")
	assert.Contains(t, body, `"id":"nlsh.`, "and from the Bodø source, merged")
	m := regexp.MustCompile(`"url":"` + regexp.QuoteMeta(base) + `(/documents/[^"]+)"`).FindStringSubmatch(body)
	require.NotNil(t, m, "attachment URLs point to kjernejournal")
	status, doc := get(m[1])
	require.Equal(t, http.StatusOK, status, doc)
	assert.True(t, strings.HasPrefix(doc, "%PDF") || strings.HasPrefix(doc, "<?xml"))

	// one source process dies: the other's documents still come, and the
	// dead one is named in the Bundle
	require.NoError(t, sources["nlsh"].Process.Signal(syscall.SIGKILL))
	sources["nlsh"].Wait()
	status, body = get("/DocumentReference?patient=" + patient)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"id":"ous.`)
	assert.Contains(t, body, "Nordlandssykehuset HF (nlsh)")
	assert.Contains(t, body, `"mode":"outcome"`)
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond) // polling a starting process, not timing a result
	}
	t.Fatalf("%s did not come up", url)
}
