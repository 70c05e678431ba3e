package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/interaction"
	"github.com/kjernejournal/kjernejournal/internal/load"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// BenchmarkHTTP drives the real HTTP server on loopback with the load
// generator, on both engines, after seeding synthetic patients: the figures
// for the MongoDB engine (on the embedded FerretDB) come from here; the
// embedded engine is also measured as a separate process by
// scripts/bench-http.sh, which adds peak RSS. Each sub-benchmark is one
// timed run (-benchtime 1x is enough); sizes come from KJ_BENCH_PATIENTS
// (default 10000; FerretDB: KJ_BENCH_MONGO_PATIENTS, default 300, since
// FerretDB's SQLite backend seeds slowly) and KJ_BENCH_DURATION (default 5s).
func BenchmarkHTTP(b *testing.B) {
	dur := envDuration("KJ_BENCH_DURATION", 5*time.Second)
	for _, e := range engines() {
		n := envInt("KJ_BENCH_PATIENTS", 10000)
		if e.name == "mongodb" {
			n = envInt("KJ_BENCH_MONGO_PATIENTS", 300)
		}
		b.Run(e.name, func(b *testing.B) {
			st := e.open(b)
			codec, err := fhir.NewCodec(domain.RecordTypes()...)
			if err != nil {
				b.Fatal(err)
			}
			var ids bytes.Buffer
			start := time.Now()
			k, err := seed.Load(context.Background(), st, codec, seed.LoadOptions{Seed: 7, Patients: n, IDs: &ids, Preparer: preparer(b, codec)})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: seeded %d patients, %d resources in %s", e.name, n, k, time.Since(start).Round(time.Millisecond))
			var paths, patients []string
			for _, l := range strings.Split(strings.TrimSpace(ids.String()), "\n") {
				paths = append(paths, l)
				if p, ok := strings.CutPrefix(l, "Patient/"); ok {
					patients = append(patients, p)
				}
			}
			srv, err := api.New(api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			bodies, err := load.SyntheticBodies("Flag", patients)
			if err != nil {
				b.Fatal(err)
			}
			scenarios := []struct {
				name string
				sc   load.Scenario
			}{
				{"read", load.ReadScenario(paths)},
				{"compartment", load.CompartmentScenario(patients, []string{"AllergyIntolerance", "Flag", "MedicationStatement", "Encounter"})},
				{"search", searchScenario(patients)},
				{"create", load.CreateScenario(bodies, "Flag")},
			}
			for _, s := range scenarios {
				b.Run(s.name, func(b *testing.B) { runScenario(b, hs.URL, dur, s.sc) })
			}
		})
	}
}

// searchScenario is a patient-bound search: a random patient's active
// medications.
func searchScenario(patients []string) load.Scenario {
	return func(r *rand.Rand) load.Request {
		return load.Request{Method: http.MethodGet, Path: "/MedicationStatement?patient=" + patients[r.IntN(len(patients))] + "&status=active"}
	}
}

func runScenario(b *testing.B, base string, dur time.Duration, sc load.Scenario) {
	res, err := load.Run(context.Background(), load.Config{BaseURL: base, Concurrency: 32, Duration: dur, Warmup: time.Second}, sc)
	if err != nil {
		b.Fatal(err)
	}
	if res.TransportErrors+res.StatusErrors > 0 {
		b.Fatalf("%d transport and %d status errors: %v", res.TransportErrors, res.StatusErrors, res.ErrorSamples)
	}
	b.ReportMetric(res.Throughput, "req/s")
	b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSearchScaling shows that a patient-bound search does not slow
// down as the record grows: it seeds KJ_BENCH_SCALE_FROM patients (default
// 10,000) into one embedded store, measures the search scenario, grows the
// store to KJ_BENCH_SCALE_TO patients (default 100,000; seeding takes a few
// minutes) and measures again, searching the patients of the whole store.
func BenchmarkSearchScaling(b *testing.B) {
	dur := envDuration("KJ_BENCH_DURATION", 5*time.Second)
	for _, e := range engines() {
		from := envInt("KJ_BENCH_SCALE_FROM", 10000)
		to := envInt("KJ_BENCH_SCALE_TO", 100000)
		if e.name == "mongodb" && os.Getenv("KJ_TEST_MONGO_URI") == "" {
			// FerretDB's SQLite backend scans: small sizes, and its
			// latency does grow with them (a real MongoDB uses the index).
			from = envInt("KJ_BENCH_MONGO_SCALE_FROM", 50)
			to = envInt("KJ_BENCH_MONGO_SCALE_TO", 200)
		}
		b.Run(e.name, func(b *testing.B) { searchScaling(b, e, from, to, dur) })
	}
}

func searchScaling(b *testing.B, e engine, from, to int, dur time.Duration) {
	st := e.open(b)
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var patients []string
	for i, n := range []int{from, to - from} {
		if n <= 0 {
			break
		}
		var ids bytes.Buffer
		start := time.Now()
		k, err := seed.Load(context.Background(), st, codec, seed.LoadOptions{Seed: int64(100 + i), Patients: n, IDs: &ids, Preparer: preparer(b, codec)})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(ids.String()), "\n") {
			if p, ok := strings.CutPrefix(l, "Patient/"); ok {
				patients = append(patients, p)
			}
		}
		b.Logf("seeded %d more patients (%d resources) in %s; %d in all", n, k, time.Since(start).Round(time.Second), len(patients))
		b.Run(fmt.Sprintf("patients=%d", len(patients)), func(b *testing.B) {
			runScenario(b, hs.URL, dur, searchScenario(patients))
		})
	}
}

// BenchmarkSearchRich measures patient-bound search where every patient
// has a full record: KJ_BENCH_RICH_PATIENTS (default 1,000) seeded
// patients, each given KJ_BENCH_RICH_PER_TYPE (default 10) more
// AllergyIntolerances, Flags, MedicationStatements (half of them active)
// and Encounters, all written through the ingest.Preparer as the server
// writes them (search index and identifiers stored with each version).
// The scenario is searchScenario on the embedded engine: GET
// /MedicationStatement?patient=<id>&status=active, so each search matches
// the stored index of ~10+ MedicationStatements and returns about half.
func BenchmarkSearchRich(b *testing.B) {
	n := envInt("KJ_BENCH_RICH_PATIENTS", 1000)
	per := envInt("KJ_BENCH_RICH_PER_TYPE", 10)
	dur := envDuration("KJ_BENCH_DURATION", 5*time.Second)
	st := engines()[0].open(b)
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		b.Fatal(err)
	}
	prep := preparer(b, codec)
	var ids bytes.Buffer
	start := time.Now()
	k, err := seed.Load(context.Background(), st, codec, seed.LoadOptions{Seed: 21, Patients: n, IDs: &ids, Preparer: prep})
	if err != nil {
		b.Fatal(err)
	}
	var patients []string
	for _, l := range strings.Split(strings.TrimSpace(ids.String()), "\n") {
		if p, ok := strings.CutPrefix(l, "Patient/"); ok {
			patients = append(patients, p)
		}
	}
	// One commit per patient, from a few goroutines so the store groups
	// them as it does concurrent API writes.
	work := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := addRichRecord(st, codec, prep, i, patients[i], per); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range patients {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d patients (%d resources) plus %d resources per type each in %s",
		len(patients), k, per, time.Since(start).Round(time.Millisecond))
	srv, err := api.New(api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	runScenario(b, hs.URL, dur, searchScenario(patients))
}

// addRichRecord stores per resources of each clinical type for patient in
// one commit; every other MedicationStatement is stopped.
func addRichRecord(st store.Store, codec *fhir.Codec, prep *ingest.Preparer, n int, patient string, per int) error {
	var writes []store.Write
	for _, typ := range []string{"AllergyIntolerance", "Flag", "MedicationStatement", "Encounter"} {
		for k := range per {
			body := clinical(typ, patient, "", fmt.Sprintf("%s %d for patient %d", typ, k, n))
			if typ == "MedicationStatement" && k%2 == 1 {
				body = bytes.Replace(body, []byte(`"active"`), []byte(`"stopped"`), 1)
			}
			res, err := codec.Parse(body)
			if err != nil {
				return fmt.Errorf("%s: %w", body, err)
			}
			res.SetID(fmt.Sprintf("rich%d-%s-%d", n, typ, k))
			w, err := prep.Write(res, 0, false)
			if err != nil {
				return err
			}
			writes = append(writes, w)
		}
	}
	_, err := st.Commit(context.Background(), store.Batch{Writes: writes})
	return err
}

// preparer builds writes as the server does.
func preparer(tb testing.TB, codec *fhir.Codec) *ingest.Preparer {
	reg, err := search.Load(domain.RecordTypes())
	if err != nil {
		tb.Fatal(err)
	}
	return &ingest.Preparer{Codec: codec, Search: reg}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkReportWrites measures reporting of critical information (issue
// 8): validated Flags one per request, and in transaction Bundles of 50,
// on the embedded engine; the "resources/s" metric counts resources.
func BenchmarkReportWrites(b *testing.B) {
	dur := envDuration("KJ_BENCH_DURATION", 5*time.Second)
	st := engines()[0].open(b)
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	if err != nil {
		b.Fatal(err)
	}
	var ids bytes.Buffer
	if _, err := seed.Load(context.Background(), st, codec, seed.LoadOptions{Seed: 21, Patients: 200, IDs: &ids, Preparer: preparer(b, codec)}); err != nil {
		b.Fatal(err)
	}
	var patients []string
	for _, l := range strings.Split(strings.TrimSpace(ids.String()), "\n") {
		if p, ok := strings.CutPrefix(l, "Patient/"); ok {
			patients = append(patients, p)
		}
	}
	// As `serve` runs: change notifications on, so every write carries its
	// outbox record and queues its notification.
	state := notify.NewStoreState(st)
	srv, err := api.New(api.Config{Store: st, Codec: codec, Logger: slog.New(slog.DiscardHandler),
		Notify: &interaction.Notifications{State: state, Dispatcher: notify.NewDispatcher(state, notify.Options{})}})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	bodies, err := load.SyntheticBodies("Flag", patients)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, sc load.Scenario, perRequest int) {
		res, err := load.Run(context.Background(), load.Config{BaseURL: hs.URL, Concurrency: 16, Duration: dur, Warmup: time.Second}, sc)
		if err != nil {
			b.Fatal(err)
		}
		if res.TransportErrors+res.StatusErrors > 0 {
			b.Fatalf("%d transport and %d status errors: %v", res.TransportErrors, res.StatusErrors, res.ErrorSamples)
		}
		b.ReportMetric(res.Throughput*float64(perRequest), "resources/s")
		b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("single", func(b *testing.B) { run(b, load.CreateScenario(bodies, "Flag"), 1) })
	const perBundle = 50
	b.Run("transaction-50", func(b *testing.B) {
		run(b, func(r *rand.Rand) load.Request {
			var bundle bytes.Buffer
			bundle.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
			for i := range perBundle {
				if i > 0 {
					bundle.WriteByte(',')
				}
				fmt.Fprintf(&bundle, `{"resource":%s,"request":{"method":"POST","url":"Flag"}}`, bodies(r))
			}
			bundle.WriteString(`]}`)
			return load.Request{Method: http.MethodPost, Path: "/", Body: bundle.Bytes()}
		}, perBundle)
	})
}
