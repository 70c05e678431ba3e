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
	// Progress, if set, is called with the number of patients and of
	// resources stored so far, from the workers (it must be safe for
	// concurrent use).
	Progress func(patients, resources int)
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
	WritePrinted(res *fhir.Resource, printed []byte, ifMatch int64, create bool) (store.Write, error)
}

// Load generates patients, validates every resource with the codec (as any
// write through the API is validated) and stores patients' records, a
// patient's always in the same commit as the rest of it. Parsing is spread over the cores; the store groups the
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
	for range 3 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var writes []store.Write
			patients := 0
			flush := func() {
				if patients == 0 {
					return
				}
				if err := storeWrites(ctx, st, writes); err != nil {
					cancel(err)
				} else {
					if o.IDs != nil {
						idMu.Lock()
						for _, w := range writes {
							if _, err := io.WriteString(o.IDs, w.Type+"/"+w.ID+"\n"); err != nil {
								cancel(fmt.Errorf("write ids: %w", err))
							}
						}
						idMu.Unlock()
					}
					r := resources.Add(int64(len(writes)))
					if d := done.Add(int64(patients)); o.Progress != nil {
						o.Progress(int(d), int(r))
					}
				}
				writes, patients = writes[:0], 0
			}
			for rec := range recs {
				if ctx.Err() != nil {
					continue
				}
				w, err := prepareRecord(codec, o.Preparer, rec, writes)
				if err != nil {
					cancel(err)
					continue
				}
				writes = w
				if patients++; patients == patientsPerCommit {
					flush()
				}
			}
			flush()
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

// patientsPerCommit is how many patients' records one worker commits
// together: one commit per patient left the disk's flushes, not the
// parsing, setting the pace (half the CPU idle); a hundred or so per
// commit, with three workers per core so that one parses while another
// waits for its commit, keeps every core parsing (measured on 2 cores:
// 128 and 3 per core about 5% faster than 32 and 2 per core).
const patientsPerCommit = 128

// prepareRecord validates and prepares one patient's resources, appending
// their writes to writes.
func prepareRecord(codec *fhir.Codec, prep Preparer, rec Record, writes []store.Write) ([]store.Write, error) {
	for i := -1; i < len(rec.Resources); i++ {
		b := rec.Patient
		if i >= 0 {
			b = rec.Resources[i]
		}
		res, err := codec.Parse(b)
		if err != nil {
			return writes, fmt.Errorf("generated resource does not validate: %w\n%s", err, b)
		}
		w, err := prep.WritePrinted(res, b, 0, false)
		if err != nil {
			return writes, err
		}
		writes = append(writes, w)
	}
	return writes, nil
}

func storeWrites(ctx context.Context, st store.Resources, writes []store.Write) error {
	if _, err := st.Commit(ctx, store.Batch{Writes: writes}); err != nil {
		return fmt.Errorf("store the records of patients %s to %s: %w", writes[0].ID, writes[len(writes)-1].Patient, err)
	}
	return nil
}
