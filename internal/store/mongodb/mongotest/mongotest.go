// Package mongotest gives tests a MongoDB-protocol server: the one named by
// KJ_TEST_MONGO_URI, or else an embedded FerretDB backed by SQLite, so that
// the MongoDB engine is tested against a real server on a machine with
// nothing installed. Import it from _test files only: it links all of
// FerretDB and SQLite into the binary. KJ_TEST_FERRETDB_LOG=1 shows
// FerretDB's warnings and errors, which are otherwise discarded.
package mongotest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvURI names the environment variable that points the tests at an
// existing server (a real MongoDB, a sharded cluster) instead of FerretDB.
const EnvURI = "KJ_TEST_MONGO_URI"

var (
	once      sync.Once
	sharedURI string
	startErr  error
	dbSeq     atomic.Int64

	stop func() // stops the shared server
)

// URI returns the URI of the test server, starting the embedded FerretDB
// the first time it is needed. One server serves the whole test binary;
// tests isolate themselves with Database. It lives until the process exits,
// which is what lets every test of the binary share it.
func URI(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURI); u != "" {
		return u
	}
	once.Do(func() { sharedURI, startErr = start() })
	if startErr != nil {
		t.Fatalf("mongotest: starting embedded FerretDB: %v", startErr)
	}
	return sharedURI
}

// Database returns a database name no other test of this run uses, derived
// from the test name so leftovers in a shared server are recognisable.
func Database(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("kjt_%d_%d_%s", os.Getpid()%100000, dbSeq.Add(1), strings.Trim(name, "_"))
}

func start() (string, error) {
	uri, stopFn, err := startFerretDB()
	if err != nil {
		return "", err
	}
	stop = stopFn
	return uri, nil
}

// Start starts a FerretDB instance of the test's own, on its own port and
// files, and returns its URI and a function that stops it: the listener
// closes, open connections are cut (FerretDB gives them up to 3 s) and
// the function returns once it has. Tests use it to see what the engine
// does when its database goes away; KJ_TEST_MONGO_URI does not apply (a
// shared server cannot be stopped). Stopping twice is harmless; the
// instance is stopped and its files removed when the test ends.
func Start(t testing.TB) (uri string, stop func()) {
	t.Helper()
	uri, stopFn, err := startFerretDB()
	if err != nil {
		t.Fatalf("mongotest: starting a dedicated FerretDB: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(stopFn) }
	t.Cleanup(stop)
	return uri, stop
}

// startFerretDB starts an embedded FerretDB on a free loopback port with
// its SQLite files in a new temporary directory; stop shuts it down, waits
// for it and removes the files.
func startFerretDB() (uri string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "kj-ferretdb-")
	if err != nil {
		return "", nil, err
	}
	// FerretDB logs every connection and many commands at info level; only
	// its errors help when a test fails.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("KJ_TEST_FERRETDB_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   logger,
		Handler:  "sqlite",
		// No fsync: the files are thrown away, and waiting for the disk
		// would dominate the test run.
		SQLiteURL: "file:" + filepath.ToSlash(dir) + "/?_pragma=synchronous(OFF)",
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = f.Run(runCtx)
	}()
	stop = func() {
		cancel()
		<-stopped
		os.RemoveAll(dir)
	}
	// MongoDBURI waits for the listener to be bound.
	return f.MongoDBURI(), stop, nil
}

// Main runs the tests of a package and then shuts the embedded FerretDB down
// and removes its files. Use it from TestMain; without it the server simply
// dies with the test binary and leaves its temporary directory behind.
func Main(m *testing.M) int {
	code := m.Run()
	if stop != nil {
		stop()
	}
	return code
}
