// Command kjernejournal runs and manages the kjernejournal FHIR server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kjernejournal/kjernejournal/conformance"
	"github.com/kjernejournal/kjernejournal/internal/cli"
	"github.com/kjernejournal/kjernejournal/internal/smart"
)

const usage = `kjernejournal: the FHIR R4 server for Norway's summary care record.

Usage:
  kjernejournal <command> [flags]

Commands:
  serve   start the FHIR server
  seed    load synthetic Norwegian patients into the store
  token   print a development access token from the built-in SMART server's key
  audit   audit verify: check the usage log's hash chain and name the first broken link
  conformance  run the black-box conformance suite against a server (--base-url)

Run "kjernejournal <command> --help" for a command's flags. Every flag can
also be set with the KJ_* environment variable named in its help; a flag on
the command line wins over the variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kjernejournal:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return cli.Serve(ctx, args[1:], stdout, stderr)
	case "seed":
		return cli.Seed(ctx, args[1:], stdout, stderr)
	case "audit":
		return cli.Audit(ctx, args[1:], stdout, stderr)
	case "conformance":
		return conformance.Command(ctx, args[1:], stdout, stderr)
	case "token":
		return smart.TokenCommand(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
