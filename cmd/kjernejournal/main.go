// Command kjernejournal runs and manages the kjernejournal FHIR server.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kjernejournal/kjernejournal/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
