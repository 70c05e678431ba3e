// Command kjferretdb runs FerretDB (the MongoDB protocol over SQLite,
// embedded: the version the MongoDB engine's tests run on) on a loopback
// port until it is stopped, so that several kjernejournal processes can
// share one MongoDB-protocol database on a machine with no MongoDB: for
// `make bench` (scripts/bench-cluster.sh) and for trying a multi-process
// setup by hand. It is not a database to keep data in; run a real MongoDB
// replica set for that.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:27017", "loopback address to listen on")
	dir := flag.String("dir", "", "directory of the SQLite files (required; created when missing)")
	noSync := flag.Bool("no-sync", false, "do not wait for the disk on commit (SQLite synchronous=OFF), as the tests run it")
	verbose := flag.Bool("v", false, "log FerretDB's warnings and errors to stderr")
	flag.Parse()
	if err := run(*addr, *dir, *noSync, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "kjferretdb:", err)
		os.Exit(1)
	}
}

func run(addr, dir string, noSync, verbose bool) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	// An unauthenticated database server belongs on loopback only.
	if !loopback.Addr(addr) {
		return fmt.Errorf("-addr %s: loopback addresses only", addr)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create -dir %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	sqlite := "file:" + filepath.ToSlash(abs) + "/"
	if noSync {
		sqlite += "?_pragma=synchronous(OFF)"
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqlite,
	})
	if err != nil {
		return fmt.Errorf("start FerretDB on %s: %w", addr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	// MongoDBURI waits until the listener is bound.
	fmt.Println(f.MongoDBURI())
	<-done
	return nil
}
