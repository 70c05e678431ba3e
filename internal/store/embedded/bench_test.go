package embedded

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

func testingProcs() int { return runtime.GOMAXPROCS(0) }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU reports this process's CPU time per op (GC included) next to
// ns/op. On a shared machine wall time mostly measures the neighbours;
// CPU time is what bounds how many reads two cores can serve.
func measureCPU(b *testing.B, run func()) {
	start := processCPU()
	run()
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

// loadStore fills a store at path with benchKeys AllergyIntolerance
// resources, benchKeys/benchPatients per patient, and closes it.
func loadStore(b *testing.B, path string) {
	s, err := Open(context.Background(), Options{Path: path, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const perCommit = 500
	for start := 0; start < benchKeys; start += perCommit {
		ws := make([]store.Write, 0, perCommit)
		for i := start; i < start+perCommit; i++ {
			id := benchID(i)
			ws = append(ws, store.Write{Type: "AllergyIntolerance", ID: id, Patient: benchPatient(i),
				Render: func(v int64, at time.Time) ([]byte, error) { return benchBody(id, v, at), nil }})
		}
		if _, err := s.Commit(context.Background(), store.Batch{Writes: ws}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

func openLoaded(b *testing.B) *Store {
	path := filepath.Join(b.TempDir(), "kj.db")
	loadStore(b, path)
	s, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func randomIDs() []string {
	r := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, 1<<14)
	for i := range ids {
		ids[i] = benchID(r.IntN(benchKeys))
	}
	return ids
}

// BenchmarkRead is one Store.Read of a ~1.5 KB resource among 50,000; the
// -parallel variant shows what all cores together can serve.
func BenchmarkRead(b *testing.B) {
	s := openLoaded(b)
	ids := randomIDs()
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		measureCPU(b, func() {
			i := 0
			for b.Loop() {
				if _, err := s.Read(ctx, "AllergyIntolerance", ids[i&(len(ids)-1)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		var seed atomic.Int64
		measureCPU(b, func() {
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					if _, err := s.Read(ctx, "AllergyIntolerance", ids[i&(len(ids)-1)]); err != nil {
						panic(err)
					}
					i++
				}
			})
		})
	})
}

// BenchmarkCommitParallel is durable single-write commits (a new version of
// an existing resource) from one and from eight writers; the
// eight share fsyncs through the committer.
func BenchmarkCommitParallel(b *testing.B) {
	s := openLoaded(b)
	ctx := context.Background()
	var next atomic.Int64
	// Concurrent ops update different resources, as different clinicians
	// editing different records would.
	update := func() {
		i := int(next.Add(1)) % benchKeys
		id := benchID(i)
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{{Type: "AllergyIntolerance", ID: id, Patient: benchPatient(i),
			Render: func(v int64, at time.Time) ([]byte, error) { return benchBody(id, v, at), nil }}}})

		if err != nil {
			panic(err)
		}
	}
	b.Run("1writer", func(b *testing.B) {
		measureCPU(b, func() {
			for b.Loop() {
				update()
			}
		})
	})
	b.Run("8writers", func(b *testing.B) {
		before := s.Stats()
		measureCPU(b, func() { parallelWriters(b, benchWriters, update) })
		after := s.Stats()
		if g := after.Groups - before.Groups; g > 0 {
			b.ReportMetric(float64(after.Requests-before.Requests)/float64(g), "commits/fsync")
		}
	})
}

// BenchmarkCompartment lists one patient's 20 resources of a type.
func BenchmarkCompartment(b *testing.B) {
	s := openLoaded(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	b.ReportAllocs()
	measureCPU(b, func() {
		for b.Loop() {
			vs, err := s.Compartment(ctx, benchPatient(r.IntN(benchPatients)), "AllergyIntolerance")
			if err != nil {
				b.Fatal(err)
			}
			if len(vs) != benchKeys/benchPatients {
				b.Fatalf("compartment has %d resources", len(vs))
			}
		}
	})
}
