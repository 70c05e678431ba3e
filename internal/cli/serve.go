package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/devclock"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/lease"
	"github.com/kjernejournal/kjernejournal/internal/loopback"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
	"github.com/kjernejournal/kjernejournal/internal/webapp"
)

// Version is set at build time (-ldflags "-X ...cli.Version=...").
var Version = "dev"

// Serve runs the FHIR server until ctx is cancelled, then finishes
// in-flight requests before it returns.
func Serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "Starts the FHIR R4 server.", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	sf := addStoreFlags(fs)
	baseURL := fs.String("base-url", "", "public base URL used in Location and fullUrl (default: from the request's Host)")
	maxBody := fs.Int64("max-body", 1<<20, "largest accepted request body in bytes; larger ones get 413")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error (debug logs every request)")
	demo := fs.Int("demo-patients", 0, "on first start (empty store), seed this many synthetic demo patients")
	demoSeed := fs.Int64("demo-seed", 1, "random seed of the demo patients")
	demoFile := fs.String("demo-patients-file", "", "with --demo-patients: the file listing every demo patient (id, person number, name, what the record holds); default demo-patients.tsv in --data-dir")
	grace := fs.Duration("shutdown-timeout", 15*time.Second, "how long shutdown waits for in-flight requests")
	af := addAuthFlags(fs)
	dcf := addDevClockFlags(fs)
	df := addDocFlags(fs)
	subAllow := fs.String("subscription-allow", "", "hosts (or .domain suffixes) change notifications may be sent to, comma-separated; with --auth-server, http on loopback is allowed too")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile of the whole run to this file (for `go tool pprof`)")
	noAudit := fs.Bool("insecure-no-audit", false, "switch the usage log off (loopback addresses only; to measure its cost)")
	purgeEvery := fs.Duration("purge-interval", time.Hour, "how often to delete the records of patients whose reservation is 30 days old; with --mongo-uri, one of the processes on the database purges per interval")
	notifyLease := fs.Duration("notify-lease", 10*time.Second, "with --mongo-uri: slot of the lease that makes one of the processes on the database deliver change notifications (all of them must use the same value; their clocks must differ by less than min(1s, slot/4)); when the holder dies another takes over within the slot plus 3 × that skew; 0 makes every process deliver (one process per database only)")
	of := addOpsFlags(fs)
	corsOrigins := fs.String("cors-origins", "", "browser origins allowed to call the server (CORS), comma-separated, or * for any; with --auth-server on a loopback address, http origins on loopback are allowed too; none switches CORS off")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if os.Getenv("GOGC") == "" {
		// The server's live heap is small and its garbage is per request,
		// so the collector's work is per cycle, not per byte kept. At 400
		// the server spent 4-15% less CPU per audited patient search than
		// at 200 (process CPU time over four interleaved load runs on two
		// cores), for a heap at most five times the live one; RSS grew by
		// about 50 MiB. GOGC overrides it.
		debug.SetGCPercent(400)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	limits, err := of.limits()
	if err != nil {
		return err
	}

	st, err := sf.open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", sf.describe(), err)
	}
	defer st.Close()
	st = telemetry.Store(st, sf.engine())
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		return err
	}
	var demoList []seed.Summary
	if *demo > 0 {
		n, err := seedIfEmpty(ctx, st, codec, *demoSeed, *demo)
		if err != nil {
			return fmt.Errorf("seed demo patients: %w", err)
		}
		if n > 0 {
			log.Info("seeded demo patients", "patients", n)
		}
		if demoList, err = demoPatients(ctx, st, codec, *demoSeed, *demo); err != nil {
			return fmt.Errorf("demo patients: %w", err)
		}
		if *demoFile == "" {
			*demoFile = filepath.Join(*sf.dataDir, demoFileName)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	// The base URL is known only now when --addr asked for any free port.
	base := strings.TrimRight(*baseURL, "/")
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	sec, err := af.setup(ctx, ln.Addr().String(), base, patientChoices(st), st)
	if err != nil {
		ln.Close()
		return err
	}
	clock, clockCall, err := dcf.setup(ln.Addr().String(), af)
	if err != nil {
		ln.Close()
		return err
	}
	// The record's clock: the development clock when on, else the real
	// time. It stamps accesses and privacy settings and drives the 7-day
	// and 30-day rules; token validation keeps the real time (devclock).
	recordNow := time.Now
	if clock != nil {
		recordNow = clock.Now
	}
	cors := corsConfig(*corsOrigins, *af.builtin && loopback.Addr(ln.Addr().String()))
	if sec.cap != nil {
		sec.cap.CORS = cors.Enabled()
	}
	cfg := api.Config{Store: st, Codec: codec, Logger: log, MaxBodyBytes: *maxBody,
		BaseURL: base, Version: Version, Policy: sec.policy, Security: sec.cap, Audit: !*noAudit, CORS: cors, Now: recordNow,
		Limits: limits}
	fed, signer, regionOf, err := df.setup(base)
	if err != nil {
		ln.Close()
		return err
	}
	if fed != nil {
		defer fed.Close()
		cfg.Documents, cfg.DocumentKeys, cfg.RegionOf = fed, signer.PublicKey(), regionOf
		if sec.policy != nil {
			sec.policy.LabFollowsVisitHistory = *df.labFollowsVisits
		}
	}
	var docNames, labNames []string
	if fed != nil {
		for _, s := range fed.Sources() {
			if s.Kind == documents.KindLab {
				labNames = append(labNames, s.Name)
			} else {
				docNames = append(docNames, s.Name)
			}
		}
		fmt.Fprintf(stdout, "journal documents from %d source hospitals, lab results from %d lab sources; assertion key at %s/jwks\n", len(docNames), len(labNames), base)
	}
	if len(demoList) > 0 {
		if err := writeDemoFile(*demoFile, demoList, docNames, labNames); err != nil {
			ln.Close()
			return fmt.Errorf("--demo-patients-file: %w", err)
		}
		announceDemo(stdout, demoList, *demoFile, docNames, labNames, ln.Addr().String())
	}
	// Background jobs run until the server stops, and are waited for
	// before the store closes (deferred calls run last in, first out).
	jobsCtx, stopJobs := context.WithCancel(ctx)
	var jobs sync.WaitGroup
	defer jobs.Wait()
	defer stopJobs()
	leases, err := jobLeases(st, sf.engine(), *notifyLease, *purgeEvery, log)
	if err != nil {
		ln.Close()
		return err
	}
	notes := notify.NewStoreState(st)
	if leases.shared != nil {
		// Processes share the database: event numbers are claimed there,
		// and failed authentications counted there too, so that a brute
		// force spread over the processes gets one budget in all.
		notes.Numbers = leases.shared
		limits.Shared = leases.shared
	}
	nopt := notify.Options{ServerBase: base, Log: log}
	if leases.notify != nil {
		nopt.Lease = leases.notify
	}
	dispatcher := notify.NewDispatcher(notes, nopt)
	cfg.Notify = &interaction.Notifications{State: notes, Dispatcher: dispatcher, Dev: *af.builtin, Allow: splitList(*subAllow)}
	if *noAudit {
		if !loopback.Addr(ln.Addr().String()) {
			ln.Close()
			return errors.New("--insecure-no-audit is allowed on loopback addresses only")
		}
		log.Warn("the usage log is OFF (--insecure-no-audit); never expose this server")
	}
	if sec.validator != nil {
		cfg.Auth = sec.validator
	} else {
		log.Warn("authentication and access rules are OFF (--insecure-no-auth); never expose this server")
	}
	if sec.builtin != nil {
		// The authorisation server's endpoints pass the same pipeline as
		// the FHIR routes: request id, usage log, recovery, metrics.
		cfg.Mounts = []api.Mount{{Prefix: "/auth/", Handler: sec.builtin, AuthServer: true}, {Prefix: "/.well-known/", Handler: sec.builtin},
			{Prefix: "/ehr", Handler: sec.builtin, Methods: []string{http.MethodPost}, AuthServer: true}}
		fmt.Fprintf(stdout, "built-in SMART authorisation server: %s/.well-known/smart-configuration (development keys; try: kjernejournal token --as gp --patient <id>)\n", base)
	}
	site := webapp.Config{Base: base, AuthServer: sec.builtin != nil, DemoPatient: richDemoPatient,
		DemoPractitioner: "hospital-doctor", FrameAncestors: cors.FrameAncestors()}
	cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: "/", Handler: webapp.Landing(site)},
		api.Mount{Prefix: "/app/", Handler: webapp.App(site)})
	fmt.Fprintf(stdout, "start page: %s/ (the kjernejournal app for clinicians and citizens)\n", base)
	purger := &privacy.Purger{Store: st, Log: log, Now: recordNow, Types: append(slices.Clone(privacy.PurgedTypes), notify.PurgeTypes...)}
	if leases.purge != nil {
		purger.Slots = leases.purge
	}
	if clock != nil {
		log.Warn("the development clock is ON: the usage log's and the reservations' time runs ahead of the real time; never expose this server", "offset", clock.Offset().String(), "movable", clockCall)
	}
	if clockCall {
		cfg.Mounts = append(cfg.Mounts, api.Mount{Prefix: devclock.Path, Handler: devclock.Handler(clock, purger.RunOnce), Methods: []string{http.MethodPost}})
		fmt.Fprintf(stdout, "development clock: %s%s (ahead by %s)\n", base, devclock.Path, clock.Offset())
	}
	srv, err := api.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	// The dispatcher starts once the server exists: api.New gave it the
	// access rules' gate (blocks, reservations) before anything is sent.
	jobs.Go(func() { dispatcher.Run(jobsCtx) })
	var handler http.Handler = srv
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	jobs.Go(func() { purger.Run(jobsCtx, *purgeEvery) })
	stopAdmin, err := of.startAdmin(srv.Admin(), log, stdout)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopAdmin()
	log.Info("listening", "addr", ln.Addr().String(), "store", sf.describe(), "version", Version)
	fmt.Fprintf(stdout, "kjernejournal listening on http://%s (%s)\n", ln.Addr(), sf.describe())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopJobs()
	jobs.Wait()
	log.Info("stopped")
	return nil
}

// corsConfig reads --cors-origins: a list, "*", or "none"; loopback adds
// every loopback http origin (the development setup).
func corsConfig(flag string, loopbackDev bool) *api.CORS {
	if strings.TrimSpace(flag) == "none" {
		return nil
	}
	c := &api.CORS{Origins: splitList(flag), Loopback: loopbackDev}
	if !c.Enabled() {
		return nil
	}
	return c
}

// serveLeases are the leases of the background jobs (nil ones run in
// every process) and the claims of the database the processes share (nil
// for the embedded store).
type serveLeases struct {
	notify, purge *lease.Lease
	shared        store.Once
}

// jobLeases makes the background jobs run in one process of those on a
// MongoDB database. The embedded store's file is held by one process, so
// its jobs need no lease (and a restart does not wait for the slot its
// previous run held).
func jobLeases(st store.Store, engine string, notifySlot, purgeEvery time.Duration, log *slog.Logger) (serveLeases, error) {
	if engine != "mongodb" {
		return serveLeases{}, nil
	}
	once, ok := st.(store.Once)
	if !ok {
		return serveLeases{}, fmt.Errorf("the store %T cannot hold leases (store.Once)", st)
	}
	out := serveLeases{shared: once}
	var err error
	if notifySlot > 0 {
		if out.notify, err = lease.New(once, "notify", lease.Options{TTL: notifySlot, Log: log}); err != nil {
			return serveLeases{}, fmt.Errorf("--notify-lease: %w", err)
		}
	}
	if out.purge, err = lease.New(once, "purge", lease.Options{TTL: purgeEvery, Log: log}); err != nil {
		return serveLeases{}, fmt.Errorf("--purge-interval: %w", err)
	}
	return out, nil
}
