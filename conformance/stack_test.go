package conformance_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// binDir holds kjernejournal and kjsource, built once for the package's
// tests: the suite is black-box, so it runs against real server processes.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kj-conformance-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, pkg := range []string{"kjernejournal", "kjsource"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, pkg), "github.com/kjernejournal/kjernejournal/cmd/"+pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := mongotest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// failingSource is the source the stack registers but never starts: it
// shares with the hospital-doctor persona's organisation only (so the
// other personas' document searches are not affected) and is down, for
// documents/partial-failure (conformance.Config.FailingSource).
const failingSource = "bergen"

// failingLabSource is failingSource's lab (lab/partial-failure), on the
// same dead port.
const failingLabSource = "bergen-lab"

// stack is a running kjernejournal with its authorisation server and two
// source hospitals, and a third registered source that is down.
type stack struct {
	base   string // what the suite talks to (the proxy, when there is one)
	server string // the server itself
}

type stackOptions struct {
	mongo bool
	// front, when set, puts a reverse proxy in front of the server that
	// may alter answers: the server's public base URL is then the proxy's.
	front func(*http.Response) error
	demo  int
	// noDevClock starts the server without --dev-clock, as a production
	// server is.
	noDevClock bool
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func startStack(t *testing.T, o stackOptions) stack {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dir := t.TempDir()
	// downAddr is the failing source's: a port nothing listens on, so
	// every call to it is refused at once (documents/partial-failure).
	kjAddr, ousAddr, nlshAddr, downAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	public := "http://" + kjAddr
	var proxy *http.Server
	if o.front != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		public = "http://" + ln.Addr().String()
		target, _ := url.Parse("http://" + kjAddr)
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ModifyResponse = o.front
		proxy = &http.Server{Handler: rp}
		go proxy.Serve(ln)
		t.Cleanup(func() { proxy.Close() })
	}
	registry := fmt.Sprintf(`{"sources":[
	  {"name":"ous","display_name":"Oslo universitetssykehus HF","organisation":"300010008","region":"helse-sor-ost",
	   "base_url":"http://%s","shared_types":["A00","C00","D00","E00","I00"],"shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
	  {"name":"nlsh","display_name":"Nordlandssykehuset HF","organisation":"300011268","region":"helse-nord",
	   "base_url":"http://%s","shared_types":["A00","C01-1","C01-2","E00","I00"],"shares_with":{"organisations":["300010008"],"regions":["helse-nord"]}},
	  {"name":%q,"display_name":"Helse Bergen HF","organisation":"300010849","region":"helse-vest",
	   "base_url":"http://%s","shared_types":["A00","C00","D00","E00","I00"],"shares_with":{"organisations":["300010008"]}},
	  {"name":"ous-lab","kind":"lab","display_name":"Avdeling for medisinsk biokjemi, Oslo universitetssykehus HF","organisation":"300010008","region":"helse-sor-ost",
	   "base_url":"http://%s/lab","shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
	  {"name":"nlsh-lab","kind":"lab","display_name":"Laboratoriemedisin, Nordlandssykehuset HF","organisation":"300011268","region":"helse-nord",
	   "base_url":"http://%s/lab","shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
	  {"name":%q,"kind":"lab","display_name":"Laboratoriet, Helse Bergen HF","organisation":"300010849","region":"helse-vest",
	   "base_url":"http://%s/lab","shares_with":{"organisations":["300010008"]}}]}`, ousAddr, nlshAddr, failingSource, downAddr, ousAddr, nlshAddr, failingLabSource, downAddr)
	sourcesFile := filepath.Join(dir, "sources.json")
	require.NoError(t, os.WriteFile(sourcesFile, []byte(registry), 0o600))
	if o.demo == 0 {
		o.demo = 5
	}
	// --dev-clock: the clock group moves the record's clock forward.
	args := []string{"serve", "--addr", kjAddr, "--auth-server", "--dev-clock", "--sources", sourcesFile,
		"--demo-patients", fmt.Sprint(o.demo), "--default-region", "helse-sor-ost", "--log-level", "warn",
		// The SMART attack checks fail authentications by the hundred within
		// seconds, from one address and a few clients: more than a
		// deployment's budget allows (internal/api and internal/cli test the
		// limits).
		"--rate-failed-auth", "off", "--rate-auth-server", "off",
		"--smart-key-file", filepath.Join(root, "testdata/smart/dev-signing-key.pem"),
		"--smart-clients", filepath.Join(root, "testdata/smart/clients.json"),
		"--smart-personas", filepath.Join(root, "testdata/smart/personas.json")}
	if o.noDevClock {
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--dev-clock" })
	}
	if o.front != nil {
		args = append(args, "--base-url", public)
	}
	if o.mongo {
		args = append(args, "--mongo-uri", mongotest.URI(t), "--mongo-database", mongotest.Database(t))
	} else {
		args = append(args, "--data-dir", filepath.Join(dir, "data"))
	}
	cmd := exec.Command(filepath.Join(binDir, "kjernejournal"), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	sc := bufio.NewScanner(out)
	up := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on ") {
			up = true
			break
		}
	}
	go func() {
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(exited)
	}()
	require.True(t, up, "kjernejournal did not start")

	for _, s := range [][]string{{ousAddr, "Oslo universitetssykehus HF"}, {nlshAddr, "Nordlandssykehuset HF"}} {
		src := exec.Command(filepath.Join(binDir, "kjsource"), "--addr", s[0], "--name", s[1],
			"--patients", fmt.Sprint(o.demo), "--seed", "1", "--kj-issuer", public, "--kj-jwks-url", public+"/jwks")
		src.Stdout, src.Stderr = io.Discard, io.Discard
		require.NoError(t, src.Start())
		t.Cleanup(func() { src.Process.Kill(); src.Wait() })
		waitHTTP(t, "http://"+s[0]+"/healthz")
	}
	return stack{base: public, server: "http://" + kjAddr}
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	for range 400 {
		res, err := http.Get(u)
		if err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond) // polling a starting process, not timing a result
	}
	t.Fatalf("%s did not come up", u)
}
