package api_test

import (
	"os"
	"testing"

	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// TestMain stops the embedded FerretDB the MongoDB runs use and removes its
// files when the tests are done.
func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }
