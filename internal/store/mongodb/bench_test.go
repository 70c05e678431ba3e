package mongodb

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The figures are only reported: against the embedded FerretDB they measure
// FerretDB's SQLite backend as much as this engine. Point
// KJ_TEST_MONGO_URI at a MongoDB for figures that mean something.

func BenchmarkRead(b *testing.B) {
	s := openDB(b, Options{})
	const n = 100
	for i := 0; i < n; i++ {
		if _, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", fmt.Sprintf("f%03d", i), "p1", "x")}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Read", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Read(ctx, "Flag", fmt.Sprintf("f%03d", i%n)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VRead", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.VRead(ctx, "Flag", fmt.Sprintf("f%03d", i%n), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Compartment", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Compartment(ctx, "p1", "Flag"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCommit(b *testing.B) {
	s := openDB(b, Options{})
	b.Run("Create", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", fmt.Sprintf("c%d", i), "p1", "x")}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Update", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "u", "p1", "x")}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Bundle5", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ws := make([]store.Write, 5)
			for j := range ws {
				ws[j] = put("Flag", fmt.Sprintf("b%d-%d", i%20, j), "p2", "x")
			}
			if _, err := s.Commit(ctx, store.Batch{Writes: ws}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendAuditParallel appends one AuditEvent per call from many
// goroutines, as concurrent requests do; group commit lets them share the
// batch insert. records/batch says how well it groups. Figures only.
func BenchmarkAppendAuditParallel(b *testing.B) {
	s := openDB(b, Options{})
	body := []byte(`{"resourceType":"AuditEvent","id":"x","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110112"},"action":"R","recorded":"2025-03-01T10:00:00Z","outcome":"0","agent":[{"who":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"9144889"}},"requestor":true}],"entity":[{"what":{"reference":"Patient/p1"}}]}`)
	b.SetParallelism(8) // 8 x GOMAXPROCS appenders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{{
				Patient: "p1", AgentHPR: "9144889", Org: "974589095", Recorded: time.Now(), Outcome: "0", Body: body,
			}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	seq, _, err := s.AuditHead(ctx)
	if err != nil {
		b.Fatal(err)
	}
	batches, err := s.auditBatches.CountDocuments(ctx, bson.D{})
	if err != nil {
		b.Fatal(err)
	}
	if batches > 0 {
		b.ReportMetric(float64(seq)/float64(batches), "records/batch")
	}
}
