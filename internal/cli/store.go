package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
)

// storeFlags selects and configures the storage engine.
type storeFlags struct {
	dataDir  *string
	mongoURI *string
	mongoDB  *string
	mongoTO  *time.Duration
}

func addStoreFlags(fs *flagSet) storeFlags {
	return storeFlags{
		dataDir:  fs.String("data-dir", "data", "directory of the embedded store (used unless --mongo-uri is set)"),
		mongoURI: fs.String("mongo-uri", "", "MongoDB connection string; selects the MongoDB engine instead of the embedded one"),
		mongoDB:  fs.String("mongo-database", "kjernejournal", "MongoDB database name"),
		mongoTO:  fs.Duration("mongo-timeout", mongodb.DefaultOpTimeout, "deadline of every MongoDB operation; a database that does not answer within it gives 503"),
	}
}

func (f storeFlags) describe() string {
	if *f.mongoURI != "" {
		return "mongodb database " + *f.mongoDB
	}
	return "embedded store in " + *f.dataDir
}

// engine names the engine, for the metrics.
func (f storeFlags) engine() string {
	if *f.mongoURI != "" {
		return "mongodb"
	}
	return "embedded"
}

func (f storeFlags) open(ctx context.Context) (store.Store, error) {
	if *f.mongoURI != "" {
		return mongodb.Open(ctx, mongodb.Options{URI: *f.mongoURI, Database: *f.mongoDB, OpTimeout: *f.mongoTO, Link: audit.Link})
	}
	if err := os.MkdirAll(*f.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	st, err := embedded.Open(ctx, embedded.Options{Path: filepath.Join(*f.dataDir, "kjernejournal.db")})
	if locked := (*embedded.LockedError)(nil); errors.As(err, &locked) {
		return nil, fmt.Errorf("%w: stop that process first, or use another --data-dir", err)
	} else if err != nil {
		return nil, err
	}
	return st, nil
}
