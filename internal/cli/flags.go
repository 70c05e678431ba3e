// Package cli implements the kjernejournal subcommands: flags, environment
// variables and the wiring of store, FHIR layer and HTTP server.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// flagSet wraps flag.FlagSet so every flag has a KJ_* environment variable.
type flagSet struct {
	*flag.FlagSet
	env map[string]string // flag name -> variable
}

func newFlagSet(name, summary string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kjernejournal %s [flags]\n\n%s\n\nFlags (environment variable in brackets):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func envName(flagName string) string {
	return "KJ_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (fs *flagSet) String(name, def, help string) *string {
	return fs.FlagSet.String(name, def, help+" ["+envName(name)+"]")
}

func (fs *flagSet) Int(name string, def int, help string) *int {
	return fs.FlagSet.Int(name, def, help+" ["+envName(name)+"]")
}

func (fs *flagSet) Int64(name string, def int64, help string) *int64 {
	return fs.FlagSet.Int64(name, def, help+" ["+envName(name)+"]")
}

func (fs *flagSet) Bool(name string, def bool, help string) *bool {
	return fs.FlagSet.Bool(name, def, help+" ["+envName(name)+"]")
}

func (fs *flagSet) Duration(name string, def time.Duration, help string) *time.Duration {
	return fs.FlagSet.Duration(name, def, help+" ["+envName(name)+"]")
}

// parse applies the environment first, then the command line, so a flag
// given explicitly wins.
func (fs *flagSet) parse(args []string) error {
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%s: %v", envName(f.Name), strconv.Quote(v), err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid environment: %s", strings.Join(errs, "; "))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}
