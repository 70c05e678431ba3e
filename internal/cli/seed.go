package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
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
	codec, err := fhir.NewCodec()
	if err != nil {
		return err
	}
	bar := newProgress(stdout, *n)
	start := time.Now()
	var ids *idWriter
	if *idsOut != "" {
		f, err := os.Create(*idsOut)
		if err != nil {
			return fmt.Errorf("--ids-out: %w", err)
		}
		defer f.Close()
		ids = &idWriter{w: bufio.NewWriter(f)}
	}
	resources, err := load(ctx, st, codec, *rs, *n, bar.set, ids)
	bar.done()
	if err != nil {
		return err
	}
	if ids != nil {
		if err := ids.w.Flush(); err != nil {
			return fmt.Errorf("--ids-out: %w", err)
		}
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "seeded %d patients, %d resources in %s (%.0f resources/s) into %s\n",
		*n, resources, el.Round(time.Millisecond), float64(resources)/el.Seconds(), sf.describe())
	return nil
}

// seedIfEmpty seeds n patients unless the first of them is already there.
func seedIfEmpty(ctx context.Context, st store.Store, codec *fhir.Codec, rs int64, n int) (int, error) {
	for _, rec := range seed.Generate(rs, 1) {
		res, err := codec.Parse(rec.Patient)
		if err != nil {
			return 0, err
		}
		if _, err := st.Read(ctx, "Patient", res.ID); err == nil {
			return 0, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	_, err := load(ctx, st, codec, rs, n, nil, nil)
	return n, err
}

// load validates and stores the generated patients, one commit per patient,
// with parsing spread over the cores (the store groups the commits).
func load(ctx context.Context, st store.Store, codec *fhir.Codec, rs int64, n int, progress func(int), ids *idWriter) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	recs := make(chan seed.Record, 64)
	var done, resources atomic.Int64
	var wg sync.WaitGroup
	workers := 2 * runtime.GOMAXPROCS(0)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range recs {
				k, err := storeRecord(ctx, st, codec, rec, ids)
				if err != nil {
					cancel(err)
					continue
				}
				resources.Add(int64(k))
				d := done.Add(1)
				if progress != nil {
					progress(int(d))
				}
			}
		}()
	}
	for _, rec := range seed.Generate(rs, n) {
		if ctx.Err() != nil {
			break
		}
		recs <- rec
	}
	close(recs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return int(resources.Load()), err
	}
	return int(resources.Load()), nil
}

// idWriter collects Type/id lines from the loading goroutines.
type idWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (w *idWriter) add(writes []store.Write) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wr := range writes {
		w.w.WriteString(wr.Type + "/" + wr.ID + "\n")
	}
}

func storeRecord(ctx context.Context, st store.Store, codec *fhir.Codec, rec seed.Record, ids *idWriter) (int, error) {
	bodies := append([][]byte{rec.Patient}, rec.Resources...)
	writes := make([]store.Write, 0, len(bodies))
	for _, b := range bodies {
		res, err := codec.Parse(b)
		if err != nil {
			return 0, fmt.Errorf("generated resource does not validate: %w\n%s", err, b)
		}
		stored, err := codec.Marshal(res)
		if err != nil {
			return 0, err
		}
		writes = append(writes, store.Write{Type: res.Type, ID: res.ID, Op: store.OpPut, Patient: res.Patient,
			Render: func(v int64, t time.Time) ([]byte, error) { return fhir.WithMeta(stored, v, t) }})
	}
	if _, err := st.Commit(ctx, writes); err != nil {
		return 0, err
	}
	ids.add(writes)
	return len(writes), nil
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
