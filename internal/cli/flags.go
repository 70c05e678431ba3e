// Package cli implements the kjernejournal subcommands: flags, environment
// variables and the wiring of store, FHIR layer and HTTP server.
package cli

import (
	"fmt"
	"io"

	"github.com/kjernejournal/kjernejournal/internal/envflag"
)

// flagSet is an envflag.Set with KJ_* variables and the command's summary.
type flagSet struct{ *envflag.Set }

func newFlagSet(name, summary string, stderr io.Writer) *flagSet {
	return &flagSet{envflag.New(name, "KJ", func(w io.Writer) {
		fmt.Fprintf(w, "Usage: kjernejournal %s [flags]\n\n%s\n", name, summary)
	}, stderr)}
}

func (fs *flagSet) parse(args []string) error { return fs.Parse(args) }
