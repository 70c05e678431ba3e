package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// LoadOptions says what Load generates and where it reports.
type LoadOptions struct {
	Seed     int64
	Patients int
	// Citizen also stores the demo citizen's record (CitizenRecord), as
	// `serve --demo-patients` does, after the generated patients.
	Citizen bool
	// Progress, if set, is called with the number of patients stored so far.
	Progress func(done int)
	// IDs, if set, receives "Type/id" of every stored resource, one a line.
	IDs io.Writer
	// Preparer turns each validated resource into its write, with the
	// search index and identifiers, exactly as the REST layer does
	// (an *ingest.Preparer). Required.
	Preparer Preparer
}

// Preparer is what Load needs of internal/ingest.Preparer (an interface
// because fhir/search's tests use this package, so it cannot import
// fhir/search or ingest).
type Preparer interface {
	Write(res *fhir.Resource, ifMatch int64, create bool) (store.Write, error)
}

// Load generates patients, validates every resource with the codec (as any
// write through the API is validated) and stores each patient's record in
// one commit. Parsing is spread over the cores; the store groups the
// concurrent commits. Stored versions are upserts, so loading the same seed
// twice adds versions instead of duplicates. It returns the number of
// resources stored.
func Load(ctx context.Context, st store.Resources, codec *fhir.Codec, o LoadOptions) (int, error) {
	if o.Preparer == nil {
		return 0, errors.New("seed: LoadOptions.Preparer is required")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	recs := make(chan Record, 64)
	var done, resources atomic.Int64
	var idMu sync.Mutex
	var wg sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range recs {
				writes, err := storeRecord(ctx, st, codec, o.Preparer, rec)
				if err != nil {
					cancel(err)
					continue
				}
				if o.IDs != nil {
					idMu.Lock()
					for _, w := range writes {
						if _, err := io.WriteString(o.IDs, w.Type+"/"+w.ID+"\n"); err != nil {
							cancel(fmt.Errorf("write ids: %w", err))
						}
					}
					idMu.Unlock()
				}
				resources.Add(int64(len(writes)))
				if d := done.Add(1); o.Progress != nil {
					o.Progress(int(d))
				}
			}
		}()
	}
	for _, rec := range Generate(o.Seed, o.Patients) {
		if ctx.Err() != nil {
			break
		}
		recs <- rec
	}
	if o.Citizen && ctx.Err() == nil {
		recs <- CitizenRecord()
	}
	close(recs)
	wg.Wait()
	return int(resources.Load()), context.Cause(ctx)
}

func storeRecord(ctx context.Context, st store.Resources, codec *fhir.Codec, prep Preparer, rec Record) ([]store.Write, error) {
	bodies := append([][]byte{rec.Patient}, rec.Resources...)
	writes := make([]store.Write, 0, len(bodies))
	for _, b := range bodies {
		res, err := codec.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("generated resource does not validate: %w\n%s", err, b)
		}
		w, err := prep.Write(res, 0, false)
		if err != nil {
			return nil, err
		}
		writes = append(writes, w)
	}
	if _, err := st.Commit(ctx, store.Batch{Writes: writes}); err != nil {
		return nil, fmt.Errorf("store patient %s: %w", writes[0].ID, err)
	}
	return writes, nil
}
