package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeTryingIt is the newcomer's first hour as a test: it clones the
// repository into a temporary directory, takes the ```sh blocks of the
// README's "Trying it" section and runs them as written: the first block
// (make run) in the background, the others in one shell, one after the
// other. The only changes are the addresses, made through the variables the
// README itself names: ADDR, SOURCE_PORTS and ADMIN_ADDR appended to make
// run, and the value of its KJ_ADDR line, all free loopback ports. Every
// search must answer with a searchset Bundle holding resources of the
// searched type, except a search the README marks "restricted", which
// must hold none.
//
// A clone holds what is committed. KJ_README_TEST_WORKTREE=1 copies the
// working tree's files (tracked and untracked, not ignored) instead, to
// try uncommitted changes.
func TestReadmeTryingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole server (-short)")
	}
	for _, tool := range []string{"git", "make", "curl", "bash", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to follow the README: %v", tool, err)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	dir := filepath.Join(t.TempDir(), "kjernejournal")
	if os.Getenv("KJ_README_TEST_WORKTREE") == "1" {
		copyWorktree(t, repo, dir)
	} else if out, err := exec.Command("git", "clone", "--quiet", repo, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(t, string(readme))
	if len(blocks) < 2 || len(blocks[0]) != 1 || blocks[0][0] != "make run" {
		t.Fatalf("README \"Trying it\": want a first ```sh block of exactly `make run` and more blocks after it, got %q", blocks)
	}
	ports := freePorts(t, 4)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := cleanEnv()
	run := exec.Command("bash", "-c", fmt.Sprintf("make run ADDR=%s SOURCE_PORTS=%d,%d ADMIN_ADDR=127.0.0.1:%d",
		addr, ports[1], ports[2], ports[3]))
	run.Dir, run.Env = dir, env
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var runErr strings.Builder
	run.Stderr = &limitedWriter{b: &runErr, n: 64 << 10}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// make run stays in the foreground: its process group is make,
		// the shell, both source hospitals and the server.
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGTERM)
		_ = run.Wait()
		// make ends before the server has closed its store; the
		// temporary directory goes only when the whole group has ended.
		for end := time.Now().Add(30 * time.Second); syscall.Kill(-run.Process.Pid, 0) == nil; {
			if time.Now().After(end) {
				_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	listening := make(chan string, 1)
	var printed strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "kjernejournal listening on") {
				listening <- printed.String()
			}
		}
		close(listening)
	}()
	var banner string
	select {
	case s, ok := <-listening:
		if !ok {
			t.Fatalf("make run ended before the server listened:\n%s", runErr.String())
		}
		banner = s
	case <-ctx.Done():
		t.Fatalf("make run: the server did not listen in time:\n%s", runErr.String())
	}
	for _, want := range []string{"pas-citizen-demo", "pas-1d0b14e4db018fed", "demo-patients.tsv", "token --addr " + addr} {
		if !strings.Contains(banner, want) {
			t.Errorf("make run's output does not name %q:\n%s", want, banner)
		}
	}
	list, err := os.ReadFile(filepath.Join(dir, "data", demoFileName))
	if err != nil {
		t.Fatalf("make run wrote no list of demo patients: %v", err)
	}
	if n := strings.Count(string(list), "\tpas-") + strings.Count(string(list), "\npas-"); n < 51 {
		t.Errorf("data/%s lists %d patients, want the 50 generated and the demo citizen:\n%s", demoFileName, n, list)
	}
	// The source hospitals start next to the server; their documents are
	// asked for only once both accept connections.
	for _, p := range ports[1:3] {
		waitListening(ctx, t, fmt.Sprintf("127.0.0.1:%d", p))
	}

	var cmds []string
	for _, b := range blocks[1:] {
		cmds = append(cmds, b...)
	}
	script, replaced := "", false
	for i, c := range cmds {
		if strings.HasPrefix(c, "export KJ_ADDR=127.0.0.1:8080") {
			c, replaced = strings.Replace(c, "127.0.0.1:8080", addr, 1), true
		}
		script += fmt.Sprintf("%s\nprintf '\\n@@step %d %%s\\n' \"$?\"\n", c, i)
	}
	if !replaced {
		t.Fatalf("README \"Trying it\": no line `export KJ_ADDR=127.0.0.1:8080` to point at the server's port")
	}
	sh := exec.CommandContext(ctx, "bash", "-c", script)
	sh.Dir, sh.Env = dir, env
	var shErr strings.Builder
	sh.Stderr = &limitedWriter{b: &shErr, n: 64 << 10}
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("the README's commands: %v\n%s\n%s", err, out, shErr.String())
	}
	outputs := splitSteps(t, string(out), len(cmds))
	searches := 0
	search := regexp.MustCompile(`/([A-Z][A-Za-z]+)(\?[^"]*)?"`)
	for i, c := range cmds {
		o := outputs[i]
		switch {
		case strings.Contains(c, "/metadata"):
			if !strings.Contains(o, "CapabilityStatement") {
				t.Errorf("%s\nprinted no CapabilityStatement:\n%s", c, o)
			}
		case strings.HasPrefix(c, "curl") && strings.Contains(c, "Authorization: Bearer"):
			m := search.FindStringSubmatch(c)
			if m == nil {
				t.Errorf("%s\nis not a search the test understands", c)
				continue
			}
			searches++
			n := bundleCount(t, c, o, m[1])
			restricted := strings.Contains(c, "# restricted")
			if restricted && n != 0 {
				t.Errorf("%s\nreturned %d %s, want none (restricted)", c, n, m[1])
			}
			if !restricted && n == 0 {
				t.Errorf("%s\nreturned no %s:\n%.2000s\n%s", c, m[1], o, shErr.String())
			}
		}
	}
	if searches < 5 {
		t.Errorf("the README's commands made %d searches with a token, want at least 5", searches)
	}
}

// shBlocks returns the commands of the ```sh blocks of the "Trying it"
// section, a block per element: comments dropped, continued lines joined.
func shBlocks(t *testing.T, readme string) [][]string {
	t.Helper()
	start := strings.Index(readme, "\n## Trying it\n")
	if start < 0 {
		t.Fatal("README.md has no \"## Trying it\" section")
	}
	sec := readme[start+1:]
	if end := strings.Index(sec[3:], "\n## "); end >= 0 {
		sec = sec[:end+3]
	}
	var blocks [][]string
	for {
		i := strings.Index(sec, "```sh\n")
		if i < 0 {
			return blocks
		}
		sec = sec[i+len("```sh\n"):]
		j := strings.Index(sec, "```")
		if j < 0 {
			t.Fatal("README \"Trying it\": a ```sh block is not closed")
		}
		var cmds []string
		pending := ""
		for _, line := range strings.Split(sec[:j], "\n") {
			if strings.HasSuffix(line, "\\") {
				pending += strings.TrimSuffix(line, "\\") + " "
				continue
			}
			line = strings.TrimSpace(pending + line)
			pending = ""
			if line != "" && !strings.HasPrefix(line, "#") {
				cmds = append(cmds, line)
			}
		}
		blocks = append(blocks, cmds)
		sec = sec[j+3:]
	}
}

// splitSteps cuts the shell's output at the markers the script printed
// after each command, and fails for a command that failed.
func splitSteps(t *testing.T, out string, n int) []string {
	t.Helper()
	marker := regexp.MustCompile(`\n@@step (\d+) (\d+)\n`)
	outputs := make([]string, 0, n)
	rest := out
	for i := range n {
		m := marker.FindStringSubmatchIndex(rest)
		if m == nil {
			t.Fatalf("the README's commands: no output after command %d:\n%s", i, out)
		}
		if code := rest[m[4]:m[5]]; code != "0" {
			t.Errorf("command %d exited with %s:\n%s", i, code, rest[:m[0]])
		}
		outputs = append(outputs, rest[:m[0]])
		rest = rest[m[1]:]
	}
	return outputs
}

// bundleCount reads a searchset Bundle and counts the entries of typ.
func bundleCount(t *testing.T, cmd, body, typ string) int {
	t.Helper()
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Errorf("%s\ndid not return a searchset Bundle (%v):\n%.2000s", cmd, err, body)
		return 0
	}
	n := 0
	for _, e := range b.Entry {
		if e.Resource.ResourceType == typ {
			n++
		}
	}
	return n
}

// cleanEnv is the test's environment without the KJ_* variables a
// developer may have set and without the outer make's, so that the
// README's commands see what a newcomer's shell has.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "KJ_") || name == "MAKEFLAGS" || name == "MFLAGS" || name == "MAKELEVEL" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func waitListening(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing listens on %s: %v", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// copyWorktree copies the files git would commit (tracked and untracked,
// not ignored) and makes the copy a repository, as make run's version
// stamp (git describe) expects one.
func copyWorktree(t *testing.T, repo, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(repo, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(f, in)
		in.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("git", "init", "--quiet", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
}

// limitedWriter keeps the first n bytes of what a process writes.
type limitedWriter struct {
	b *strings.Builder
	n int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.n - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
