package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// TestMain lets a test start this very binary as a real server process
// (the child runs Serve with the arguments in KJ_TEST_SERVE_ARGS), so the
// crash test can SIGKILL a real process.
func TestMain(m *testing.M) {
	if args := os.Getenv("KJ_TEST_SERVE_ARGS"); args != "" {
		ctx, stop := signalContext()
		defer stop()
		if err := Serve(ctx, strings.Fields(args), os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := mongotest.Main(m)
	removeBuiltBinary()
	os.Exit(code)
}

type child struct {
	cmd  *exec.Cmd
	base string
	// admin is the admin listener's base URL (--admin-addr), if any.
	admin string
	done  chan struct{} // closed when the process has exited
	err   error         // its exit status, valid after done
}

// startServer starts a server process on dataDir and waits until it listens.
func startServer(t *testing.T, dataDir string, extra ...string) *child {
	t.Helper()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn"}
	if !slices.Contains(extra, "--auth-server") {
		args = append(args, "--insecure-no-auth")
	}
	args = append(args, extra...)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KJ_TEST_SERVE_ARGS="+strings.Join(args, " "))
	return startChild(t, cmd)
}

// startChild starts a kjernejournal serve process, reads its stdout until
// it reports its address (and its admin listener's, if any), and kills it
// when the test ends.
func startChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "admin listener on "); ok {
			c.admin = strings.Fields(rest)[0]
		}
		if _, rest, ok := strings.Cut(line, "listening on "); ok {
			c.base = strings.Fields(rest)[0]
			break
		}
	}
	// Wait only after the pipe is drained (os/exec's rule for StdoutPipe).
	go func() {
		io.Copy(io.Discard, out)
		c.err = cmd.Wait()
		close(c.done)
	}()
	require.NotEmpty(t, c.base, "the server did not report its address")
	return c
}

func flagBody(patient, text string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Flag","status":"active",
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type","code":"implantat"}]}],
	  "code":{"text":%q},"period":{"start":"2024-01-10T08:00:00Z"},"subject":{"reference":"Patient/%s"}}`, text, patient))
}

func post(t *testing.T, url string, body []byte) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(url, "application/fhir+json", bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&m))
	return res.StatusCode, m
}

func demoPatient(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metadata")
	require.NoError(t, err)
	res.Body.Close()
	// the demo set is deterministic: its first patient is known
	id := seed.PatientID(1, 0)
	res, err = http.Get(base + "/Patient/" + id)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "demo patient Patient/%s", id)
	return id
}

func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "--demo-patients", "1")
	patient := demoPatient(t, srv.base)

	type ack struct{ id, text string }
	var acked []ack
	for i := 0; i < 40; i++ {
		text := fmt.Sprintf("acknowledged %d", i)
		status, m := post(t, srv.base+"/Flag", flagBody(patient, text))
		require.Equal(t, http.StatusCreated, status, "%v", m)
		acked = append(acked, ack{m["id"].(string), text})
	}
	// kill right after the last acknowledgement
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
	<-srv.done

	srv2 := startServer(t, dir)
	for _, a := range acked {
		res, err := http.Get(srv2.base + "/Flag/" + a.id)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "Flag/%s lost after SIGKILL: %s", a.id, b)
		assert.Contains(t, string(b), a.text)
	}
}

func TestGracefulShutdownFinishesAndKeepsData(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "--demo-patients", "1")
	patient := demoPatient(t, srv.base)
	status, m := post(t, srv.base+"/Flag", flagBody(patient, "before shutdown"))
	require.Equal(t, http.StatusCreated, status)
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-srv.done:
		require.NoError(t, srv.err, "the server should exit cleanly on SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
	srv2 := startServer(t, dir)
	res, err := http.Get(srv2.base + "/Flag/" + m["id"].(string))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
}

func TestHelpExplainsFlagsAndVariables(t *testing.T) {
	var out bytes.Buffer
	err := Serve(context.Background(), []string{"--help"}, &out, &out)
	require.Error(t, err)
	for _, want := range []string{"--addr", "KJ_ADDR", "KJ_MONGO_URI", "KJ_DATA_DIR", "KJ_MAX_BODY"} {
		assert.Contains(t, strings.ReplaceAll(out.String(), "-addr", "--addr"), strings.TrimPrefix(want, "-"))
	}
	out.Reset()
	require.Error(t, Seed(context.Background(), []string{"--help"}, &out, &out))
	assert.Contains(t, out.String(), "KJ_PATIENTS")
}

func TestEnvironmentConfiguresAndFlagsWin(t *testing.T) {
	t.Setenv("KJ_PATIENTS", "7")
	var out bytes.Buffer
	fs := newFlagSet("seed", "", &out)
	n := fs.Int("patients", 1, "")
	require.NoError(t, fs.parse(nil))
	assert.Equal(t, 7, *n)
	fs = newFlagSet("seed", "", &out)
	n = fs.Int("patients", 1, "")
	require.NoError(t, fs.parse([]string{"--patients", "9"}))
	assert.Equal(t, 9, *n)
	t.Setenv("KJ_PATIENTS", "many")
	fs = newFlagSet("seed", "", &out)
	fs.Int("patients", 1, "")
	assert.ErrorContains(t, fs.parse(nil), "KJ_PATIENTS")
}

func TestSeedStoresValidPatients(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "ids.txt")
	var out bytes.Buffer
	require.NoError(t, Seed(context.Background(), []string{"--patients", "20", "--data-dir", dir, "--ids-out", ids}, &out, &out))
	assert.Contains(t, out.String(), "seeded 20 patients")
	b, err := os.ReadFile(ids)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	patients := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "Patient/") {
			patients++
		}
	}
	assert.Equal(t, 20, patients)
	assert.Greater(t, len(lines), 40, "patients come with clinical resources")

	// without --ids-out, as the README shows it
	out.Reset()
	require.NoError(t, Seed(context.Background(), []string{"--patients", "3", "--data-dir", t.TempDir()}, &out, &out))
	assert.Contains(t, out.String(), "seeded 3 patients")
}

// TestShutdownStopsBackgroundJobsFirst: on shutdown the background jobs
// (the notification dispatcher and the reservation purge, here running
// back to back) are stopped and waited for before the store closes, so
// none of them meets a closed store and nothing fails on the way out.
func TestShutdownStopsBackgroundJobsFirst(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &lineWaiter{lines: make(chan string, 16)}
	go func() {
		done <- Serve(ctx, []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--insecure-no-auth",
			"--demo-patients", "5", "--purge-interval", "1ms", "--log-level", "info"}, out, &logs)
	}()
	for line := range out.lines {
		if strings.Contains(line, "listening on") {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // let the purge run many times
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		assert.NotContains(t, line, `"level":"ERROR"`, "an error on the way out")
	}
	assert.Contains(t, logs.String(), `"msg":"stopped"`)
}

// lineWaiter is an io.Writer that hands over each line written to it.
type lineWaiter struct {
	mu    sync.Mutex
	buf   []byte
	lines chan string
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default:
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
