// Package envflag is package flag with an environment variable for every
// flag: PREFIX_NAME (upper case, dashes as underscores). A flag on the
// command line wins over its variable. Each flag's help names its variable.
package envflag

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
	s.SetOutput(stderr)
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

// Parse applies the environment first, then the command line, and refuses
// leftover arguments.
func (s *Set) Parse(args []string) error {
	var errs []string
	s.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(s.Env(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%s: %v", s.Env(f.Name), strconv.Quote(v), err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid environment: %s", strings.Join(errs, "; "))
	}
	if err := s.FlagSet.Parse(args); err != nil {
		return err
	}
	if s.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", s.Args())
	}
	return nil
}
