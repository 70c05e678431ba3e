package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/kjernejournal/kjernejournal/conformance"
	"github.com/kjernejournal/kjernejournal/internal/envflag"
	"github.com/kjernejournal/kjernejournal/internal/smart"
)

// command is one subcommand of kjernejournal.
type command struct {
	name    string // as typed, "serve" or "audit verify"
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// required are the flags the command cannot run without. The
	// dispatcher checks them so that leaving one out is a one-line usage
	// error like any other, before the command prints anything.
	required []string
}

// commands is every subcommand, in the order the help lists them. The
// README's "Commands" section and docs/configuration.md are checked
// against it.
func commands() []command {
	return []command{
		{name: "serve", summary: "start the FHIR server", run: Serve},
		{name: "seed", summary: "load synthetic Norwegian patients into the store", run: Seed},
		{name: "token", summary: "print a development access token from the built-in SMART server's key", run: smart.TokenCommand, required: []string{"as"}},
		{name: "audit verify", summary: "check the usage log's hash chain and name the first broken link", run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return Audit(ctx, append([]string{"verify"}, args...), stdout, stderr)
		}},
		{name: "conformance", summary: "run the black-box conformance suite against a server (--base-url)", run: conformance.Command, required: []string{"base-url"}},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("kjernejournal: the FHIR R4 server for Norway's summary care record.\n\nUsage:\n  kjernejournal <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-13s %s\n", "version", "print the version of kjernejournal and of Go")
	b.WriteString(`
Run "kjernejournal <command> --help" for a command's flags. Flags can also be
set with the KJ_* environment variable named in their help; a flag on the
command line wins over the variable. Every flag of every command is listed
in docs/configuration.md.
`)
	return b.String()
}

// Main runs the kjernejournal command line and returns the exit status: 0
// for success and for --help, 2 for a usage error (reported in one line
// plus a pointer to --help), 1 for a command that failed.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, "", errors.New("no command given"))
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return Main(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage())
		return 0
	case "version", "-version", "--version":
		if len(args) > 1 {
			return usageError(stderr, "", fmt.Errorf("%s takes no arguments", args[0]))
		}
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "docs":
		return docsCommand(ctx, args[1:], stdout, stderr)
	}
	c, rest, err := lookup(args)
	if err != nil {
		if c != nil && isHelp(rest) {
			// "audit --help": the help of its one subcommand, not an error.
			return help(ctx, *c, stdout)
		}
		if c == nil {
			return usageError(stderr, "", err)
		}
		return usageError(stderr, args[0], err)
	}
	fs, probe := flagsOf(ctx, *c)
	usageFn := fs.Usage
	fs.Usage = func() {}
	switch err := fs.Parse(rest); {
	case errors.Is(err, flag.ErrHelp):
		probe.W = stdout
		usageFn()
		return 0
	case err != nil:
		return usageError(stderr, c.name, err)
	case fs.NArg() > 0:
		return usageError(stderr, c.name, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	for _, name := range c.required {
		if f := fs.Lookup(name); f != nil && f.Value.String() == "" {
			return usageError(stderr, c.name, fmt.Errorf("--%s is required", name))
		}
	}
	switch err := c.run(ctx, rest, stdout, stderr); {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case envflag.IsUsage(err):
		return usageError(stderr, c.name, err)
	default:
		fmt.Fprintln(stderr, "kjernejournal:", err)
		return 1
	}
}

// lookup finds the command args name. For the first word of a command
// of two words without a known second word it returns that command and an
// error, so that "audit --help" can show the help of "audit verify".
func lookup(args []string) (*command, []string, error) {
	var group *command
	var subs []string
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return &c, args[len(words):], nil
		}
		if len(words) > 1 && words[0] == args[0] {
			group = &c
			subs = append(subs, words[1])
		}
	}
	if group != nil {
		return group, args[1:], fmt.Errorf("name a subcommand: %s", strings.Join(subs, ", "))
	}
	return nil, nil, fmt.Errorf("unknown command %q", args[0])
}

func isHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

func help(ctx context.Context, c command, stdout io.Writer) int {
	fs, probe := flagsOf(ctx, c)
	probe.W = stdout
	fs.Usage()
	return 0
}

// flagsOf returns the flag set command c makes, unparsed but for --help,
// with its usage function writing to the returned probe. It runs the
// command with --help and a cancelled context: every command stops at
// its flag parsing then, having done nothing.
func flagsOf(ctx context.Context, c command) (*flag.FlagSet, *envflag.Probe) {
	probe := &envflag.Probe{}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	err := c.run(ctx, []string{"--help"}, io.Discard, probe)
	fs := probe.Set()
	if fs == nil || !errors.Is(err, flag.ErrHelp) {
		// A programming error: the command does not make its flag set
		// with envflag.SetOutput, or does not stop at --help.
		panic(fmt.Sprintf("kjernejournal %s: no flag set seen at --help (err %v)", c.name, err))
	}
	return fs, probe
}

func usageError(stderr io.Writer, name string, err error) int {
	prog := strings.TrimSpace("kjernejournal " + name)
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", prog)
	return 2
}

// versionLine is the version set by the Makefile, and for any other
// build of this module (go build, go run) the commit it was built from.
func versionLine() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return fmt.Sprintf("kjernejournal %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
