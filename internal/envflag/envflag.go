// Package envflag is package flag with an environment variable for every
// flag: PREFIX_NAME (upper case, dashes as underscores). A flag on the
// command line wins over its variable. Each flag's help names its variable.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Set is a flag.FlagSet whose flags also read PREFIX_NAME variables.
type Set struct {
	*flag.FlagSet
	prefix string
}

// New makes a Set; usage, if not nil, is printed before the flag list.
func New(name, prefix string, usage func(w io.Writer), stderr io.Writer) *Set {
	s := &Set{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), prefix: prefix}
	SetOutput(s.FlagSet, stderr)
	s.Usage = func() {
		if usage != nil {
			usage(stderr)
		}
		fmt.Fprintf(stderr, "\nFlags (environment variable in brackets):\n")
		s.PrintDefaults()
	}
	return s
}

// Env is the variable of a flag.
func (s *Set) Env(flagName string) string {
	return s.prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (s *Set) help(name, help string) string { return help + " [" + s.Env(name) + "]" }

func (s *Set) String(name, def, help string) *string {
	return s.FlagSet.String(name, def, s.help(name, help))
}

func (s *Set) Int(name string, def int, help string) *int {
	return s.FlagSet.Int(name, def, s.help(name, help))
}

func (s *Set) Int64(name string, def int64, help string) *int64 {
	return s.FlagSet.Int64(name, def, s.help(name, help))
}

func (s *Set) Float64(name string, def float64, help string) *float64 {
	return s.FlagSet.Float64(name, def, s.help(name, help))
}

func (s *Set) Bool(name string, def bool, help string) *bool {
	return s.FlagSet.Bool(name, def, s.help(name, help))
}

func (s *Set) Duration(name string, def time.Duration, help string) *time.Duration {
	return s.FlagSet.Duration(name, def, s.help(name, help))
}

// Parse reads the command line, then the environment for the flags the
// command line left unset, and refuses leftover arguments. The command line
// goes first so that --help works whatever the environment holds, and a
// bad variable is no error when the command line overrides it.
func (s *Set) Parse(args []string) error {
	if err := s.FlagSet.Parse(args); err != nil {
		return err
	}
	if s.NArg() > 0 {
		return &UsageError{Err: fmt.Errorf("unexpected arguments: %v", s.Args())}
	}
	set := map[string]bool{}
	s.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	s.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(s.Env(f.Name))
		if !ok || set[f.Name] {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%s: %v", s.Env(f.Name), strconv.Quote(v), err))
		}
	})
	if len(errs) > 0 {
		return &UsageError{Err: fmt.Errorf("invalid environment: %s", strings.Join(errs, "; "))}
	}
	return nil
}

// UsageError is a command invoked wrongly (a flag, a variable, an
// argument), as opposed to one that failed while running: the CLI answers
// it with exit status 2 and a pointer to --help instead of the usage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// SetOutput sets fs's output to stderr, the writer the command was given.
// Every flag set of every subcommand passes through here, so when that
// writer is a Probe the set is handed to it: that is how the dispatcher
// learns a command's flags (to check a command line, print help, write
// the configuration reference) without the command exporting them.
func SetOutput(fs *flag.FlagSet, stderr io.Writer) {
	fs.SetOutput(stderr)
	if p, ok := stderr.(*Probe); ok {
		p.mu.Lock()
		p.sets = append(p.sets, fs)
		p.mu.Unlock()
	}
}

// Probe is a writer handed to a command as its stderr to capture the flag
// sets it makes. What is written to it goes to W (nowhere when nil).
type Probe struct {
	W    io.Writer
	mu   sync.Mutex
	sets []*flag.FlagSet
}

func (p *Probe) Write(b []byte) (int, error) {
	if p.W == nil {
		return len(b), nil
	}
	return p.W.Write(b)
}

// Set is the last flag set the command made, or nil.
func (p *Probe) Set() *flag.FlagSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sets) == 0 {
		return nil
	}
	return p.sets[len(p.sets)-1]
}
