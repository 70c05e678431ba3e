package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Seed loads synthetic patients into the store.
func Seed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", "Generates synthetic Norwegian patients (synthetic person numbers, GPs,\nallergies, critical information, medications, hospital visits), validates\nevery resource and stores it. The same seed gives the same patients, so\nrunning it twice updates instead of duplicating.", stderr)
	n := fs.Int("patients", 1000, "number of patients to generate")
	rs := fs.Int64("seed", 1, "random seed")
	idsOut := fs.String("ids-out", "", "also write the Type/id of every stored resource to this file, one a line (for the load program)")
	sf := addStoreFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("--patients must be at least 1, not %d", *n)
	}
	st, err := sf.open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", sf.describe(), err)
	}
	defer st.Close()
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		return err
	}
	bar := newProgress(stdout, *n)
	start := time.Now()
	var ids *bufio.Writer
	if *idsOut != "" {
		f, err := os.Create(*idsOut)
		if err != nil {
			return fmt.Errorf("--ids-out: %w", err)
		}
		defer f.Close()
		ids = bufio.NewWriter(f)
	}
	prep, err := preparer(codec)
	if err != nil {
		return err
	}
	opts := seed.LoadOptions{Seed: *rs, Patients: *n, Progress: bar.set, Preparer: prep}
	if ids != nil {
		// Only a set writer: a nil *bufio.Writer in the io.Writer field
		// would be a non-nil interface, and Load would write to it.
		opts.IDs = ids
	}
	resources, err := seed.Load(ctx, st, codec, opts)
	bar.done()
	if err != nil {
		return err
	}
	if ids != nil {
		if err := ids.Flush(); err != nil {
			return fmt.Errorf("--ids-out: %w", err)
		}
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "seeded %d patients, %d resources in %s (%.0f resources/s) into %s\n",
		*n, resources, el.Round(time.Millisecond), float64(resources)/el.Seconds(), sf.describe())
	return nil
}

// seedIfEmpty seeds n patients unless the first of them is already there,
// and the demo citizen (seed.CitizenRecord, the citizen persona's patient)
// unless she is: a store seeded before she existed gets her on the next
// start. It returns the number of generated patients stored.
func seedIfEmpty(ctx context.Context, st store.Store, codec *fhir.Codec, rs int64, n int) (int, error) {
	exists := func(id string) (bool, error) {
		if _, err := st.Read(ctx, "Patient", id); err == nil {
			return true, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		return false, nil
	}
	seeded, err := exists(seed.PatientID(rs, 0))
	if err != nil {
		return 0, err
	}
	citizen, err := exists(seed.CitizenPatientID)
	if err != nil {
		return 0, err
	}
	if seeded && citizen {
		return 0, nil
	}
	prep, err := preparer(codec)
	if err != nil {
		return 0, err
	}
	o := seed.LoadOptions{Seed: rs, Preparer: prep, Citizen: !citizen}
	if !seeded {
		o.Patients = n
	}
	_, err = seed.Load(ctx, st, codec, o)
	return o.Patients, err
}

// preparer builds writes the way the server does (search index and
// identifiers from the embedded search-parameter definitions).
func preparer(codec *fhir.Codec) (*ingest.Preparer, error) {
	reg, err := search.Load(domain.RecordTypes())
	if err != nil {
		return nil, err
	}
	return &ingest.Preparer{Codec: codec, Search: reg}, nil
}

// progress draws a bar on a terminal and stays quiet otherwise.
type progress struct {
	w     io.Writer
	total int
	tty   bool
	mu    sync.Mutex
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) set(done int) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < p.total {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := width * done / p.total
	bar := make([]byte, width)
	for i := range bar {
		if i < filled {
			bar[i] = '='
		} else {
			bar[i] = ' '
		}
	}
	rate := float64(done) / time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "\r[%s] %d/%d patients (%.0f/s)", bar, done, p.total, rate)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
