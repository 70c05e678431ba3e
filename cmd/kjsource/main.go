// Command kjsource is a development source hospital: a FHIR document
// endpoint (DocumentReference search and Binary retrieval, IHE MHD style)
// and, under /lab, a lab result service (DiagnosticReport and Observation
// search, "Pasientens prøvesvar" style) serving synthetic documents and lab
// results for the kjernejournal demo patients, with fault injection. See
// internal/source for the HTTP contract and -help for the flags.
package main

import (
	"github.com/kjernejournal/kjernejournal/internal/envflag"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/source"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const usageText = `kjsource is a development source hospital for kjernejournal's document
sharing: it answers DocumentReference searches by person number and streams
the documents' bytes (synthetic PDF and CDA-like XML), answers lab result
searches (DiagnosticReport, Observation) under <base-url>/lab for the same
patients, verifies the assertion kjernejournal signs for every call, logs
each lookup as one JSON line on stderr, and can inject latency, errors, cut
streams, garbage and oversized search answers and outages.

Usage:
  kjsource [serve] [flags]       run a source
  kjsource generate [-out DIR]   write the sample listings of testdata/sources

Every flag can also be set with the environment variable in brackets; a
flag given on the command line wins.
`

// flagSet gives every flag a KJ_SOURCE_* environment variable, in the style
// of internal/cli.
// newFlagSet gives every flag a KJ_SOURCE_* environment variable.
func newFlagSet(name string, stderr io.Writer) *envflag.Set {
	return envflag.New(name, "KJ_SOURCE", func(w io.Writer) { fmt.Fprint(w, usageText) }, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "generate":
			return generate(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		case "help", "-h", "-help", "--help":
			fs := newFlagSet("serve", stderr)
			addServeFlags(fs)
			fs.Usage()
			return exitOK
		}
	}
	return serve(ctx, args, stdout, stderr)
}

type serveFlags struct {
	addr, baseURL, name, org, region, baseDate *string
	patients, docsPerPatient                   *int
	seed, largeMB, disconnect, hugeSearch      *int64
	issuer, jwksURL                            *string
	latency                                    *time.Duration
	errorRate                                  *float64
	down, chunked, garbage                     *bool
}

func addServeFlags(fs *envflag.Set) *serveFlags {
	return &serveFlags{
		addr:           fs.String("addr", "127.0.0.1:8091", "address to listen on"),
		baseURL:        fs.String("base-url", "", "public base URL of this source: the prefix of attachment URLs and an accepted assertion audience (default http://<addr>)"),
		name:           fs.String("name", "Oslo universitetssykehus HF", "hospital name; one of the seed's hospitals gets its organisation number and region by default"),
		org:            fs.String("org", "", "organisation number of the hospital, also accepted as assertion audience (default: the seed hospital's of that name)"),
		region:         fs.String("region", "", `health region, e.g. "Helse Sør-Øst" or "Helse Nord" (default: the seed hospital's)`),
		patients:       fs.Int("patients", 50, "hold documents for the first N synthetic patients of --seed and (N > 0) the demo citizen: the same ones kjernejournal serve --demo-patients N --demo-seed S creates"),
		seed:           fs.Int64("seed", 1, "seed of the synthetic patients (kjernejournal's --demo-seed)"),
		docsPerPatient: fs.Int("docs-per-patient", 12, "documents per patient: the first 5 recent (one per group A00 C00 D00 E00 I00), the next 5 six to ten years old, the 11th recent and NORS, the rest random"),
		baseDate:       fs.String("base-date", "", "date (YYYY-MM-DD) document dates are counted back from (default today, so recent documents stay inside the display periods)"),
		largeMB:        fs.Int64("large-doc-mb", 0, "also serve one document of this many MiB (1 MiB = 1048576 bytes) for the first patient, generated while it streams"),
		issuer:         fs.String("kj-issuer", "http://127.0.0.1:8080", "kjernejournal's base URL: the iss the assertions must carry"),
		jwksURL:        fs.String("kj-jwks-url", "", "JWKS URL with kjernejournal's assertion keys (default <kj-issuer>/jwks)"),
		latency:        fs.Duration("latency", 0, "fault: delay added before answering every request, e.g. 2s"),
		errorRate:      fs.Float64("error-rate", 0, "fault: fraction 0..1 of requests answered 500"),
		disconnect:     fs.Int64("disconnect-after-bytes", 0, "fault: close the connection after this many bytes of a document body (0: never)"),
		down:           fs.Bool("down", false, "fault: answer every request 503"),
		chunked:        fs.Bool("chunked", false, "fault: send documents without Content-Length (chunked), so a broken transfer shows only as a missing last chunk"),
		garbage:        fs.Bool("garbage", false, "fault: answer document and lab searches 200 application/fhir+json with a body that is not FHIR JSON (an HTML error page)"),
		hugeSearch:     fs.Int64("huge-search-bytes", 0, "fault: pad document and lab search answers to at least this many bytes, still a valid Bundle, so a client's size limit trips (0: never)"),
	}
}

// config turns the flags into a source configuration.
func (f *serveFlags) config(now time.Time, log io.Writer) (source.Config, error) {
	org := source.Organisation{Number: *f.org, Name: *f.name, Region: *f.region}
	if known, ok := source.HospitalByName(*f.name); ok {
		if org.Number == "" {
			org.Number = known.Number
		}
		if org.Region == "" {
			org.Region = known.Region
		}
	}
	switch {
	case org.Name == "":
		return source.Config{}, errors.New("--name must not be empty")
	case !validOrgNumber(org.Number):
		return source.Config{}, fmt.Errorf("--org %q must be a 9-digit organisation number (needed for hospitals not in the seed)", org.Number)
	case *f.patients < 0 || *f.docsPerPatient < 0 || *f.largeMB < 0:
		return source.Config{}, errors.New("--patients, --docs-per-patient and --large-doc-mb must not be negative")
	case *f.hugeSearch < 0 || *f.hugeSearch > source.MaxHugeSearchBytes:
		return source.Config{}, fmt.Errorf("--huge-search-bytes must lie in 0..%d", int64(source.MaxHugeSearchBytes))
	}
	base := now.UTC().Truncate(24 * time.Hour)
	if *f.baseDate != "" {
		t, err := time.Parse(time.DateOnly, *f.baseDate)
		if err != nil {
			return source.Config{}, fmt.Errorf("--base-date %q: want YYYY-MM-DD", *f.baseDate)
		}
		base = t
	}
	patients, err := source.SeedPatients(*f.seed, *f.patients)
	if err != nil {
		return source.Config{}, err
	}
	docs := source.GenerateAt(base, *f.seed, patients, org, *f.docsPerPatient)
	if *f.largeMB > 0 {
		if len(patients) == 0 {
			return source.Config{}, errors.New("--large-doc-mb needs at least one patient")
		}
		d, err := source.LargeDocument(base, org, patients[0], *f.largeMB<<20)
		if err != nil {
			return source.Config{}, err
		}
		docs = append(docs, d)
	}
	baseURL := *f.baseURL
	if baseURL == "" {
		host, port, err := net.SplitHostPort(*f.addr)
		if err != nil {
			return source.Config{}, fmt.Errorf("--addr %q: %v", *f.addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		baseURL = "http://" + net.JoinHostPort(host, port)
	}
	jwks := *f.jwksURL
	if jwks == "" {
		jwks = strings.TrimSuffix(*f.issuer, "/") + "/jwks"
	}
	return source.Config{
		Org:        org,
		BaseURL:    baseURL,
		Issuer:     *f.issuer,
		JWKSURL:    jwks,
		Documents:  docs,
		LabResults: source.GenerateLab(base, *f.seed, patients, org),
		Log:        log,
		Faults: source.Faults{
			Latency:              *f.latency,
			ErrorRate:            *f.errorRate,
			DisconnectAfterBytes: *f.disconnect,
			Down:                 *f.down,
			Chunked:              *f.chunked,
			Garbage:              *f.garbage,
			HugeSearchBytes:      *f.hugeSearch,
		},
	}, nil
}

func validOrgNumber(s string) bool {
	if len(s) != 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	f := addServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitUsage
	}
	cfg, err := f.config(time.Now(), stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitUsage
	}
	src, err := source.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitUsage
	}
	defer src.Close()

	ln, err := net.Listen("tcp", *f.addr)
	if err != nil {
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitFailed
	}
	srv := &http.Server{
		Handler:           src,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: a large document may take long to stream, and
		// the client's cancellation ends it anyway.
		IdleTimeout: 2 * time.Minute,
	}
	fmt.Fprintf(stdout, "kjsource: %s (org %s, %s) serving %d documents for %d patients at %s (seed %d)\n",
		cfg.Org.Name, cfg.Org.Number, cfg.Org.Region, len(cfg.Documents), *f.patients, cfg.BaseURL, *f.seed)
	fmt.Fprintf(stdout, "kjsource: %d lab reports for the same patients at %s/lab\n", len(cfg.LabResults), cfg.BaseURL)
	fmt.Fprintf(stdout, "kjsource: assertions from %s, keys at %s\n", cfg.Issuer, cfg.JWKSURL)
	if *f.largeMB > 0 {
		d := cfg.Documents[len(cfg.Documents)-1]
		fmt.Fprintf(stdout, "kjsource: large document %s (%d bytes) for patient %s\n", d.ID, d.Size, d.PatientID)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitFailed
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close()
	}
	return exitOK
}

func generate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("generate", stderr)
	out := fs.String("out", "testdata/sources", "directory to write the sample listings (one JSON file per region) into")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitUsage
	}
	files, err := source.WriteSamples(*out)
	if err != nil {
		fmt.Fprintln(stderr, "kjsource:", err)
		return exitFailed
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return exitOK
}
