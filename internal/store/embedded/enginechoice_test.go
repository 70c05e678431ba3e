package embedded

// Benchmarks behind the choice of bbolt over Pebble for the embedded
// engine, on our workload: point reads of ~1.5 KB resources by key, and
// durable writes of current version + history entry + compartment entry,
// by one writer and by eight writers using each engine's group commit.
// Results and reasoning are in ENGINE.md. Run with
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/store/embedded/

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

const (
	benchKeys     = 50_000
	benchPatients = 2_500 // 20 resources per patient
	benchWriters  = 8
)

// benchID spreads ids the way server-assigned UUIDs do, so neither engine
// gets the easy case of keys inserted in order.
func benchID(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i)*0x9E3779B97F4A7C15)
	return fmt.Sprintf("%x-%d", b[:4], i)
}

func benchPatient(i int) string { return fmt.Sprintf("pat%05d", i%benchPatients) }

// benchBody is a ~1.5 KB resource of realistic, only mildly compressible
// JSON (compression would flatter Pebble with made-up repetitive data).
func benchBody(id string, version int64, at time.Time) []byte {
	r := rand.New(rand.NewPCG(uint64(len(id)), uint64(version)))
	pad := make([]byte, 900)
	const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ æøå 0123456789"
	for i := range pad {
		pad[i] = alphabet[r.IntN(len(alphabet))]
	}
	return fmt.Appendf(nil, `{"resourceType":"AllergyIntolerance","id":%q,"meta":{"versionId":"%d","lastUpdated":%q,`+
		`"profile":["http://hl7.no/fhir/StructureDefinition/no-basis-AllergyIntolerance"]},`+
		`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},`+
		`"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},`+
		`"category":["medication"],"criticality":"high","code":{"coding":[{"system":"http://snomed.info/sct","code":"%d"}]},`+
		`"patient":{"reference":"Patient/%s"},"recorder":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"%d"}},`+
		`"note":[{"text":%q}]}`, id, version, at.Format(time.RFC3339Nano), r.IntN(1e9), id, r.IntN(1e7), pad)
}

// Raw-engine keys, the same layout the embedded store uses.
func rawCur(id string) []byte { return curKey("AllergyIntolerance", id) }
func rawHist(id string, v int64) []byte {
	return histKey(histPrefix("AllergyIntolerance", id), v)
}
func rawComp(patient, id string) []byte { return compKey(patient, "AllergyIntolerance", id) }

func rawRecord(i int, v int64, at time.Time) []byte {
	id := benchID(i)
	return encodeRecord(header{version: v, lastUpdated: at.UnixNano(), patient: benchPatient(i)}, benchBody(id, v, at))
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func openPebble(b *testing.B, dir string) *pebble.DB {
	// A block cache large enough for the data set, as bbolt gets the whole
	// OS page cache through its mmap: compare engines, not cache sizes.
	cache := pebble.NewCache(256 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func loadBolt(b *testing.B, path string) *bolt.DB {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	at := time.Now()
	for start := 0; start < benchKeys; start += 1000 {
		err := db.Update(func(tx *bolt.Tx) error {
			cur, _ := tx.CreateBucketIfNotExists(bucketCur)
			hist, _ := tx.CreateBucketIfNotExists(bucketHist)
			comp, _ := tx.CreateBucketIfNotExists(bucketComp)
			for i := start; i < start+1000; i++ {
				rec := rawRecord(i, 1, at)
				id := benchID(i)
				if err := cur.Put(rawCur(id), rec); err != nil {
					return err
				}
				if err := hist.Put(rawHist(id, 1), rec); err != nil {
					return err
				}
				if err := comp.Put(rawComp(benchPatient(i), id), []byte{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	db.NoSync = false
	return db
}

func loadPebble(b *testing.B, dir string) *pebble.DB {
	db := openPebble(b, dir)
	at := time.Now()
	for start := 0; start < benchKeys; start += 1000 {
		batch := db.NewBatch()
		for i := start; i < start+1000; i++ {
			rec := rawRecord(i, 1, at)
			id := benchID(i)
			_ = batch.Set(rawCur(id), rec, nil)
			_ = batch.Set(rawHist(id, 1), rec, nil)
			_ = batch.Set(rawComp(benchPatient(i), id), nil, nil)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	// Reads should hit sstables in a settled LSM, as they would after the
	// server has run for a while, not a memtable that happens to hold all.
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	return db
}

// readKeys is a fixed random sequence of keys to read, built before the
// timer so that key formatting is not measured.
func readKeys() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, 1<<14)
	for i := range keys {
		keys[i] = rawCur(benchID(r.IntN(benchKeys)))
	}
	return keys
}

func BenchmarkEngineRead(b *testing.B) {
	keys := readKeys()
	bench := func(b *testing.B, get func([]byte) int) {
		// Warm both engines' caches the same way: a server has been
		// serving for a while before anyone measures it.
		for _, k := range keys {
			get(k)
		}
		b.Run("serial", func(b *testing.B) {
			b.ReportAllocs()
			measureCPU(b, func() {
				i := 0
				for b.Loop() {
					get(keys[i&(len(keys)-1)])
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
						get(keys[i&(len(keys)-1)])
						i++
					}
				})
			})
		})
	}
	b.Run("bbolt", func(b *testing.B) {
		db := loadBolt(b, filepath.Join(b.TempDir(), "bolt.db"))
		bench(b, func(k []byte) int {
			var n int
			err := db.View(func(tx *bolt.Tx) error {
				v := tx.Bucket(bucketCur).Get(k)
				if v == nil {
					return fmt.Errorf("missing %s", k)
				}
				n = len(append([]byte(nil), v...))
				return nil
			})
			if err != nil {
				panic(err)
			}
			return n
		})
	})
	b.Run("pebble", func(b *testing.B) {
		db := loadPebble(b, filepath.Join(b.TempDir(), "pebble"))
		bench(b, func(k []byte) int {
			v, closer, err := db.Get(k)
			if err != nil {
				panic(fmt.Sprintf("%s: %v", k, err))
			}
			n := len(append([]byte(nil), v...))
			_ = closer.Close()
			return n
		})
	})
}

// BenchmarkEngineWrite measures one durable (fsynced) write of a new
// resource: current record + history record + compartment entry, into a
// store that already holds 50,000 resources.
//
// bbolt goes through the embedded Store's committer, which is how it
// groups concurrent writers. Pebble writes one batch per op with
// pebble.Sync, whose WAL groups concurrent syncs. Pebble has no
// read-write transactions, so a real Pebble engine would also need its own
// per-resource locking around the precondition read; the Get below only
// pays for the read, not for that locking, which flatters Pebble slightly.
func BenchmarkEngineWrite(b *testing.B) {
	var next atomic.Int64
	next.Store(benchKeys)
	bench := func(b *testing.B, write func()) {
		b.Run("1writer", func(b *testing.B) {
			measureCPU(b, func() {
				for b.Loop() {
					write()
				}
			})
		})
		// 64 writers stands for a busy server where every request also
		// writes its audit event: group size, not fsync latency, decides.
		for _, n := range []int{benchWriters, 64} {
			b.Run(fmt.Sprintf("%dwriters", n), func(b *testing.B) {
				measureCPU(b, func() { parallelWriters(b, n, write) })
			})
		}
	}
	b.Run("bbolt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "kj.db")
		loadStore(b, path)
		s, err := Open(context.Background(), Options{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		bench(b, func() {
			i := int(next.Add(1))
			id := benchID(i)
			_, err := s.Commit(context.Background(), store.Batch{Writes: []store.Write{{
				Type: "AllergyIntolerance", ID: id, Patient: benchPatient(i), Create: true,
				Render: func(v int64, at time.Time) ([]byte, error) { return benchBody(id, v, at), nil },
			}}})

			if err != nil {
				panic(err)
			}
		})
	})
	b.Run("pebble", func(b *testing.B) {
		db := loadPebble(b, filepath.Join(b.TempDir(), "pebble"))
		bench(b, func() {
			i := int(next.Add(1))
			id := benchID(i)
			key := rawCur(id)
			if _, closer, err := db.Get(key); err == nil {
				_ = closer.Close()
				panic("exists: " + id)
			} else if err != pebble.ErrNotFound {
				panic(err)
			}
			rec := rawRecord(i, 1, time.Now())
			batch := db.NewBatch()
			_ = batch.Set(key, rec, nil)
			_ = batch.Set(rawHist(id, 1), rec, nil)
			_ = batch.Set(rawComp(benchPatient(i), id), nil, nil)
			if err := batch.Commit(pebble.Sync); err != nil {
				panic(err)
			}
		})
	})
}

// parallelWriters runs write from n goroutines whatever GOMAXPROCS is;
// RunParallel's own count scales with cores.
func parallelWriters(b *testing.B, n int, write func()) {
	procs := testingProcs()
	b.SetParallelism((n + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			write()
		}
	})
}
