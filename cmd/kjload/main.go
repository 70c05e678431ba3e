// Command kjload generates HTTP load against a kjernejournal server on the
// loopback interface and reports throughput, latency percentiles, errors
// and, given the server's pid, its peak memory. It is what `make bench`
// runs; see -help.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/load"
	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const (
	exitOK     = 0
	exitFailed = 1 // the run failed or some requests failed
	exitUsage  = 2
)

// headerFlags collects repeated -H "Name: value".
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want \"Name: value\", got %q", s)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

const usageText = `kjload generates load against a kjernejournal FHIR server and reports
requests, errors, throughput (req/s), latency p50/p90/p99/max and bytes
received; with -pid also the server's peak RSS.

Only loopback servers (127.0.0.0/8, ::1, localhost) are accepted: load on
other addresses is not allowed here, and there is no flag to change that.

Usage: kjload [flags]

Scenarios:
  read         GET /{path} for random lines of -ids (e.g. "Patient/123"); expects 200.
  compartment  GET /Patient/{id}/{Type} for random patient ids from -ids and
               types from -types; expects 200 (a searchset Bundle).
  create       POST /{-create-type} with a synthetic FHIR R4 body that references
               a random Patient/{id} from -ids; expects 201. Bodies carry
               meta.tag ` + load.SyntheticTagSystem + `|synthetic.

The run ends after -d, or after -n requests if that comes first; requests in
flight at the deadline are waited for (at most -timeout) and counted.
Latency percentiles cover successful requests only.

Exit status: 0 if every request succeeded, 1 if the run or any request
failed (results are still printed), 2 for bad flags or input.

Flags:
`

type options struct {
	url, scenario, ids, types, createType, name string
	c, n, pid                                   int
	d, warmup, timeout                          time.Duration
	seed                                        uint64
	json, markdown, resetPeak                   bool
	header                                      http.Header
	// hello serves the ceiling instead of generating load; printBodies
	// prints synthetic bodies instead of sending them.
	hello       string
	printBodies int
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kjload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base `URL` of the server; must be loopback")
	fs.StringVar(&o.scenario, "scenario", "read", "what to request: read, compartment or create (see above)")
	fs.IntVar(&o.c, "c", 32, "concurrency: number of workers, each with one request in flight")
	fs.DurationVar(&o.d, "d", 10*time.Second, "duration of the measured phase (always bounds the run)")
	fs.IntVar(&o.n, "n", 0, "stop after this many measured requests (0: only -d bounds the run)")
	fs.DurationVar(&o.warmup, "warmup", 0, "run the scenario this long before measuring; not counted in the results\n(but create still creates resources)")
	fs.StringVar(&o.ids, "ids", "", "`FILE` with one entry per line (blank lines and # comments skipped): resource paths\nsuch as Patient/123 for read, patient ids (123 or Patient/123) for compartment and create")
	fs.StringVar(&o.types, "types", "AllergyIntolerance,Flag,MedicationStatement,Encounter", "comma-separated resource `types` for the compartment scenario")
	fs.StringVar(&o.createType, "create-type", "Flag", "resource `type` the create scenario POSTs: "+strings.Join(load.SyntheticTypes, " or "))
	fs.IntVar(&o.pid, "pid", 0, "server process id; if set, report its peak RSS (VmHWM) and RSS after the run")
	fs.BoolVar(&o.resetPeak, "reset-peak", false, "with -pid: reset the server's peak RSS before the run, so that it reflects\nthis run rather than the server's whole life (writes /proc/PID/clear_refs)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of the one-line summary")
	fs.BoolVar(&o.markdown, "markdown", false, "also print the report as a Markdown table (header and one row)")
	fs.Var(headerFlags(o.header), "H", "extra request header \"Name: value\", e.g. -H 'Authorization: Bearer ...'; repeatable")
	fs.DurationVar(&o.timeout, "timeout", load.DefaultTimeout, "per-request timeout, including reading the body")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed; the same seed gives the same request sequence per worker")
	fs.StringVar(&o.name, "name", "", "label for the report (default: the scenario name)")
	fs.StringVar(&o.hello, "hello", "", "instead of generating load, serve the ceiling the benchmarks compare against on this\nloopback `ADDR`: a bare net/http server answering every request with 60 bytes of JSON")
	fs.IntVar(&o.printBodies, "print-bodies", 0, "instead of generating load, print `N` synthetic -create-type bodies for the patients\nof -ids, one JSON object per line (for load generators that send a fixed body)")
	return fs
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{header: http.Header{}}
	fs := newFlagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.name == "" {
		o.name = o.scenario
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	switch {
	case o.hello != "":
		return serveHello(ctx, o.hello, stderr)
	case o.printBodies > 0:
		return printBodies(o, stdout, stderr)
	}
	sc, err := buildScenario(o)
	if err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	cfg := load.Config{
		BaseURL: o.url, Concurrency: o.c, Duration: o.d, MaxRequests: o.n, Warmup: o.warmup,
		Header: o.header, Timeout: o.timeout, Seed: o.seed,
	}
	// Fail on a bad URL, bound or pid now rather than after a long run.
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	if o.pid != 0 {
		if _, err := load.CurrentRSS(o.pid); err != nil {
			fmt.Fprintln(stderr, "kjload: -pid:", err)
			return exitUsage
		}
		if o.resetPeak {
			if err := load.ResetPeakRSS(o.pid); err != nil {
				fmt.Fprintln(stderr, "kjload: warning:", err, "(peak RSS covers the server's whole life)")
			}
		}
	}

	res, runErr := load.Run(ctx, cfg, sc)
	rep := load.Report{Name: o.name, Config: cfg, Result: res}
	if o.pid != 0 {
		// Read even after an interrupted run: the peak so far is still news.
		var err error
		if rep.PeakRSS, err = load.PeakRSS(o.pid); err != nil {
			fmt.Fprintln(stderr, "kjload: warning:", err)
		}
		if rep.RSS, err = load.CurrentRSS(o.pid); err != nil {
			fmt.Fprintln(stderr, "kjload: warning:", err)
		}
	}
	if runErr != nil && res.Requests == 0 {
		fmt.Fprintln(stderr, "kjload:", runErr)
		return exitFailed
	}
	if o.json {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "kjload:", err)
			return exitFailed
		}
	} else {
		fmt.Fprintln(stdout, rep)
	}
	if o.markdown {
		fmt.Fprintln(stdout, load.MarkdownHeader())
		fmt.Fprintln(stdout, rep.MarkdownRow())
	}
	for _, s := range res.ErrorSamples {
		fmt.Fprintln(stderr, "kjload: error sample:", s)
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "kjload: run interrupted, results are partial:", runErr)
		return exitFailed
	}
	if res.Errors() > 0 || res.Requests == 0 {
		if res.Requests == 0 {
			fmt.Fprintln(stderr, "kjload: no requests completed")
		}
		return exitFailed
	}
	return exitOK
}

func buildScenario(o *options) (load.Scenario, error) {
	if o.ids == "" {
		return nil, fmt.Errorf("-ids FILE is required for the %s scenario", o.scenario)
	}
	lines, err := readIDs(o.ids)
	if err != nil {
		return nil, err
	}
	switch o.scenario {
	case "read":
		return load.ReadScenario(lines), nil
	case "compartment":
		ids, err := patientIDs(lines, o.ids)
		if err != nil {
			return nil, err
		}
		var types []string
		for t := range strings.SplitSeq(o.types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types = append(types, t)
			}
		}
		if len(types) == 0 {
			return nil, errors.New("-types is empty")
		}
		return load.CompartmentScenario(ids, types), nil
	case "create":
		ids, err := patientIDs(lines, o.ids)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(load.SyntheticTypes, o.createType) {
			return nil, fmt.Errorf("-create-type %q: want one of %v", o.createType, load.SyntheticTypes)
		}
		bodies, err := load.SyntheticBodies(o.createType, ids)
		if err != nil {
			return nil, err
		}
		return load.CreateScenario(bodies, o.createType), nil
	default:
		return nil, fmt.Errorf("-scenario %q: want read, compartment or create", o.scenario)
	}
}

// readIDs returns the file's non-blank, non-comment lines, trimmed.
func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no ids", path)
	}
	return out, nil
}

// patientIDs accepts "123" or "Patient/123"; anything else is most likely
// a file meant for the read scenario.
func patientIDs(lines []string, path string) ([]string, error) {
	ids := make([]string, len(lines))
	for i, l := range lines {
		id := load.BarePatientID(l)
		if id == "" || strings.ContainsAny(id, "/?# ") {
			return nil, fmt.Errorf("%s: %q is not a patient id (want 123 or Patient/123)", path, l)
		}
		ids[i] = id
	}
	return ids, nil
}

// serveHello is the ceiling: the least a Go HTTP server on this machine
// does per request, 60 bytes of JSON from net/http, for the benchmarks to
// state what the server reaches as a share of it.
func serveHello(ctx context.Context, addr string, stderr io.Writer) int {
	if !loopback.Addr(addr) {
		fmt.Fprintln(stderr, "kjload: -hello: only loopback addresses are allowed")
		return exitUsage
	}
	body := []byte(`{"hello":"` + strings.Repeat("x", 48) + `"}`) // 60 bytes
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "kjload: -hello:", err)
		return exitFailed
	}
	return exitOK
}

// printBodies prints o.printBodies synthetic bodies, one per line.
func printBodies(o *options, stdout, stderr io.Writer) int {
	lines, err := readIDs(o.ids)
	if err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	ids, err := patientIDs(lines, o.ids)
	if err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	bodies, err := load.SyntheticBodies(o.createType, ids)
	if err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitUsage
	}
	r := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	w := bufio.NewWriter(stdout)
	for range o.printBodies {
		w.Write(bodies(r))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(stderr, "kjload:", err)
		return exitFailed
	}
	return exitOK
}
