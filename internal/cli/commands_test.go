package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs the command line as cmd/kjernejournal does.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// clearKJEnv unsets every KJ_* variable for the test (some defaults and
// required flags come from them).
func clearKJEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "KJ_") {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}
}

// assertUsageError checks the shape of every usage error: nothing on
// stdout, exit status 2, and on stderr one line naming the problem and
// one pointing at the command's --help.
func assertUsageError(t *testing.T, name, want string, code int, stdout, stderr string) {
	t.Helper()
	assert.Equal(t, 2, code, "exit status")
	assert.Empty(t, stdout)
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if assert.Len(t, lines, 2, "stderr: %q", stderr) {
		assert.Contains(t, lines[0], want)
		assert.Equal(t, "Run '"+strings.TrimSpace("kjernejournal "+name)+" --help' for usage.", lines[1])
	}
}

func TestEveryCommandHelpAndUsageErrors(t *testing.T) {
	clearKJEnv(t)
	for _, c := range commands() {
		words := strings.Fields(c.name)
		t.Run(strings.Join(words, "_"), func(t *testing.T) {
			for _, h := range []string{"--help", "-h", "-help"} {
				code, stdout, stderr := runCLI(t, append(words, h)...)
				assert.Equal(t, 0, code, "%s %s: exit status", c.name, h)
				assert.Empty(t, stderr, "%s %s", c.name, h)
				assert.True(t, strings.HasPrefix(stdout, "Usage: kjernejournal "+c.name), "%s %s prints its usage: %q", c.name, h, stdout)
			}
			fs, _ := flagsOf(t.Context(), c)
			_, stdout, _ := runCLI(t, append(words, "--help")...)
			fs.VisitAll(func(f *flag.Flag) {
				assert.Contains(t, stdout, "-"+f.Name, "%s --help lists --%s", c.name, f.Name)
			})

			code, stdout, stderr := runCLI(t, append(words, "--no-such-flag")...)
			assertUsageError(t, c.name, "no-such-flag", code, stdout, stderr)

			code, stdout, stderr = runCLI(t, append(words, "stray-argument")...)
			assertUsageError(t, c.name, "stray-argument", code, stdout, stderr)

			// A bad value: the first flag that refuses "not-a-value".
			var bad string
			fs.VisitAll(func(f *flag.Flag) {
				if bad == "" && f.Value.Set("not-a-value") != nil {
					bad = f.Name
				}
			})
			require.NotEmpty(t, bad, "%s has a flag of a checked type", c.name)
			code, stdout, stderr = runCLI(t, append(words, "--"+bad+"=not-a-value")...)
			assertUsageError(t, c.name, bad, code, stdout, stderr)

			for _, r := range c.required {
				code, stdout, stderr = runCLI(t, words...)
				assertUsageError(t, c.name, "--"+r+" is required", code, stdout, stderr)
			}
		})
	}
}

func TestTopLevelHelpVersionAndUsageErrors(t *testing.T) {
	for _, h := range []string{"--help", "-h", "help"} {
		code, stdout, stderr := runCLI(t, h)
		assert.Equal(t, 0, code, h)
		assert.Empty(t, stderr, h)
		for _, c := range commands() {
			assert.Contains(t, stdout, "  "+c.name+" ", "%s lists %s", h, c.name)
		}
	}
	code, stdout, _ := runCLI(t, "help", "seed")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "Usage: kjernejournal seed"), stdout)

	for _, v := range []string{"version", "--version"} {
		code, stdout, stderr := runCLI(t, v)
		assert.Equal(t, 0, code, v)
		assert.Empty(t, stderr, v)
		assert.True(t, strings.HasPrefix(stdout, "kjernejournal "+Version), "%s: %q", v, stdout)
		assert.Contains(t, stdout, runtime.Version(), v)
	}

	code, stdout, stderr := runCLI(t)
	assertUsageError(t, "", "no command given", code, stdout, stderr)
	code, stdout, stderr = runCLI(t, "frobnicate")
	assertUsageError(t, "", `unknown command "frobnicate"`, code, stdout, stderr)
	code, stdout, stderr = runCLI(t, "version", "extra")
	assertUsageError(t, "", "takes no arguments", code, stdout, stderr)
}

func TestAuditHelpIsNoError(t *testing.T) {
	code, stdout, stderr := runCLI(t, "audit", "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, stderr)
	assert.True(t, strings.HasPrefix(stdout, "Usage: kjernejournal audit verify"), stdout)
	assert.Contains(t, stdout, "-mongo-uri")

	code, stdout, stderr = runCLI(t, "audit")
	assertUsageError(t, "audit", "name a subcommand: verify", code, stdout, stderr)
	code, stdout, stderr = runCLI(t, "audit", "repair")
	assertUsageError(t, "audit", "name a subcommand: verify", code, stdout, stderr)
}

// A bad KJ_* variable is a usage error too, found before the command
// opens anything, and --help works whatever the environment holds.
func TestBadEnvironmentIsUsageError(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KJ_PATIENTS", "many")
	code, stdout, stderr := runCLI(t, "seed", "--data-dir", dir)
	assertUsageError(t, "seed", "KJ_PATIENTS", code, stdout, stderr)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "seed opened no store")

	code, _, stderr = runCLI(t, "seed", "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, stderr)
}

// A command that fails while running (not a usage error) exits 1 with its
// error, and no usage.
func TestRunFailureExitsOne(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	code, _, stderr := runCLI(t, "audit", "verify", "--data-dir", file)
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasPrefix(stderr, "kjernejournal: "), stderr)
	assert.NotContains(t, stderr, "--help")
}

func TestReadmeListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Commands\n")
	require.True(t, ok, "README.md has a section \"## Commands\"")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, name := range append(commandNames(), "version") {
		assert.Contains(t, section, "`kjernejournal "+name, "README.md's Commands section lists %q", name)
	}
	assert.Contains(t, section, "docs/configuration.md")
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

func TestConfigurationReferenceNamesEveryFlag(t *testing.T) {
	clearKJEnv(t)
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err, "regenerate it with: %s", RegenerateDocs)
	for _, c := range commands() {
		_, section, ok := strings.Cut(string(doc), "### `kjernejournal "+c.name+"`\n")
		if !ok {
			t.Errorf("docs/configuration.md has no section for `kjernejournal %s`; regenerate it with: %s", c.name, RegenerateDocs)
			continue
		}
		section, _, _ = strings.Cut(section, "\n### ")
		fs, _ := flagsOf(context.Background(), c)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(section, "| `--"+f.Name+"`") && !strings.Contains(section, "| `--"+f.Name+" ") {
				t.Errorf("docs/configuration.md does not document `kjernejournal %s --%s`; regenerate it with: %s", c.name, f.Name, RegenerateDocs)
			}
		})
	}
	part, ok := generatedPart(doc)
	require.True(t, ok, "docs/configuration.md keeps its markers %q and %q", docsBegin, docsEnd)
	if want := flagReference(context.Background()); part != want {
		t.Errorf("docs/configuration.md differs from what the flags say; regenerate it with: %s", RegenerateDocs)
	}
}
