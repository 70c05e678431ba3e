package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// Seed loads synthetic patients into the store, or with --server into a
// running server.
func Seed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", "Generates synthetic Norwegian patients (synthetic person numbers, GPs,\nallergies, critical information, medications, hospital visits), validates\nevery resource and stores it. The same seed gives the same patients, so\nrunning it twice updates instead of duplicating. With --server it loads\nthem into a running server instead, as the feeder system, through\ntransaction Bundles (the server validates them).", stderr)
	n := fs.Int("patients", 1000, "number of patients to generate")
	rs := fs.Int64("seed", 1, "random seed")
	idsOut := fs.String("ids-out", "", "also write the Type/id of every stored resource to this file, one a line (for the load program)")
	server := fs.String("server", "", "base URL of a running kjernejournal (e.g. http://127.0.0.1:8080) to load into, instead of opening the store")
	clientID := fs.String("client-id", "kj-feeder", "with --server: the backend-services client that feeds (SMART client_credentials, private_key_jwt)")
	clientKey := fs.String("client-key", "testdata/smart/feeder-dev-key.pem", "with --server: that client's PEM private key")
	perBundle := fs.Int("bundle-patients", 50, "with --server: patients per transaction Bundle")
	sf := addStoreFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("--patients must be at least 1, not %d", *n)
	}
	var ids *bufio.Writer
	if *idsOut != "" {
		f, err := os.Create(*idsOut)
		if err != nil {
			return fmt.Errorf("--ids-out: %w", err)
		}
		defer f.Close()
		ids = bufio.NewWriter(f)
	}
	bar := newProgress(stderr, *n)
	start := time.Now()
	var (
		resources int
		into      string
		note      string
		err       error
	)
	if *server != "" {
		if *perBundle < 1 {
			return fmt.Errorf("--bundle-patients must be at least 1, not %d", *perBundle)
		}
		into = *server
		var r remoteResult
		r, err = seedServer(ctx, remoteOptions{
			base: *server, clientID: *clientID, keyFile: *clientKey,
			seed: *rs, patients: *n, perBundle: *perBundle, ids: ids, progress: bar.set,
		})
		resources = r.resources
		if r.skipped > 0 {
			note += fmt.Sprintf("; left out %d resources of types the token may not write (%s)", r.skipped, strings.Join(r.skippedTypes, ", "))
		}
		if r.secret > 0 {
			note += fmt.Sprintf("; left out %d resources of patients with a secret address (no new information for them)", r.secret)
		}
	} else {
		into = sf.describe()
		resources, err = seedStore(ctx, sf, *rs, *n, ids, bar.set)
	}
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
	fmt.Fprintf(stdout, "seeded %d patients, %d resources in %s (%.0f resources/s) into %s%s\n",
		*n, resources, el.Round(time.Millisecond), float64(resources)/el.Seconds(), into, note)
	return nil
}

// seedStore loads into the store the flags name, validating and preparing
// every resource as the server's write path does (seed.Load).
func seedStore(ctx context.Context, sf storeFlags, rs int64, n int, ids *bufio.Writer, progress func(patients, resources int)) (int, error) {
	st, err := sf.open(ctx)
	if locked := (*embedded.LockedError)(nil); errors.As(err, &locked) {
		return 0, fmt.Errorf("%w: stop it, or load into the running server with `kjernejournal seed --server http://127.0.0.1:8080` (its address)", locked)
	} else if err != nil {
		return 0, fmt.Errorf("open %s: %w", sf.describe(), err)
	}
	defer st.Close()
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		return 0, err
	}
	prep, err := preparer(codec)
	if err != nil {
		return 0, err
	}
	// The load is parse and print of short-lived trees: the default GC
	// target spent about a tenth of the CPU collecting them. A few hundred
	// MB more heap for a one-shot command buys that back.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	opts := seed.LoadOptions{Seed: rs, Patients: n, Progress: progress, Preparer: prep}
	if ids != nil {
		// Only a set writer: a nil *bufio.Writer in the io.Writer field
		// would be a non-nil interface, and Load would write to it.
		opts.IDs = ids
	}
	return seed.Load(ctx, st, codec, opts)
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

// progress reports a long load on stderr: on a terminal one line redrawn
// in place (a bar, patients and resources done, rate, time left); in a log
// or a pipe, where a redrawn line would be noise, a plain line every
// progressEvery.
type progress struct {
	w     io.Writer
	total int
	tty   bool
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	start time.Time
	drawn bool
}

const progressEvery = 5 * time.Second

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now(), every: progressEvery}
	p.last = p.start
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 100*time.Millisecond
		}
	}
	return p
}

func (p *progress) set(patients, resources int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every && !(p.tty && patients >= p.total) {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	rate := float64(resources) / el.Seconds()
	eta := "?"
	if patients > 0 {
		left := time.Duration(float64(el) * float64(p.total-patients) / float64(patients))
		eta = left.Round(time.Second).String()
	}
	status := fmt.Sprintf("%d/%d patients, %d resources, %.0f resources/s, %s left", patients, p.total, resources, rate, eta)
	if !p.tty {
		fmt.Fprintln(p.w, "seed:", status)
		return
	}
	const width = 30
	filled := width * patients / p.total
	// \x1b[K clears what a longer earlier line left on the right.
	fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), status)
	p.drawn = true
}

// done ends the redrawn line, so that what follows starts on its own.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
