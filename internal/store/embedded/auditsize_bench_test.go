package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// usageRecord is a usage-log record as the audited patient search writes
// it: a hospital doctor with the attest's names, a token from HelseID, a
// search by patient, ids as the server makes them.
func usageRecord(i int) audit.Record {
	return audit.Record{
		ID: fmt.Sprintf("R7MZ2K4W6X8B0N3P5T7V%06d-0-0", i), Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		RequestID: fmt.Sprintf("R7MZ2K4W6X8B0N3P5T7V%06d", i), Interaction: audit.Search, ResourceType: "MedicationStatement",
		Query: "patient=pas-e220a8397b1dcdaf&_count=50", Patients: []string{fmt.Sprintf("pas-%016x", i%10000)},
		Outcome: audit.Outcome{Reason: access.OK, Message: "access permitted", HTTPStatus: 200},
		User:    audit.User{Role: access.Practitioner, HPR: "990018265", PID: "05866623300", Name: "Borghild Thomassen", HPCategory: "LE"},
		Org: audit.Organisation{LegalEntity: "300010008", LegalEntityName: "Oslo universitetssykehus HF",
			PointOfCare: "300020062", PointOfCareName: "Oslo universitetssykehus HF, Ullevål"},
		ClientID: "kj-demo-app", Issuer: "http://127.0.0.1:8080", PurposeOfUse: "TREAT", Basis: access.Samtykke,
		Server: "http://127.0.0.1:8080",
	}
}

// BenchmarkAuditStorage appends usage-log records in group commits of 64,
// as the audited path does under load, in the compact form and in the
// JSON form stores held before it, and reports the bytes the log takes per
// record: in its buckets' pages (records, indexes, tree pages) and in the
// database's high-water mark (which also counts freed pages awaiting
// reuse, and moves in steps), and the CPU per record.
func BenchmarkAuditStorage(b *testing.B) {
	forms := []struct {
		name string
		body func(audit.Record) []byte
	}{
		{"compact", func(r audit.Record) []byte { return audit.Compact(r)[0] }},
		{"json", func(r audit.Record) []byte { return audit.Events(r)[0] }},
	}
	for _, form := range forms {
		b.Run(form.name, func(b *testing.B) {
			path := b.TempDir() + "/kj.db"
			s, err := Open(context.Background(), Options{Path: path, NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			before := dbUsed(b, s)
			n := 0
			measureCPU(b, func() {
				for b.Loop() {
					entries := make([]store.AuditEntry, 64)
					for i := range entries {
						r := usageRecord(n)
						entries[i] = store.AuditEntry{Patient: r.Patients[0], AgentHPR: r.User.HPR, Org: r.Org.LegalEntity,
							Recorded: r.Time, Outcome: r.Outcome.Code(), Body: form.body(r)}
						n++
					}
					if _, err := s.AppendAudit(context.Background(), audit.Link, entries); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(dbUsed(b, s)-before)/float64(n), "db-bytes/record")
			b.ReportMetric(float64(logBytes(b, s))/float64(n), "log-bytes/record")
			s.Close()
		})
	}
}

// logBytes is what the usage log's buckets (records and indexes) take in
// pages, branch and leaf: unlike the high-water mark, it does not move in
// steps of whole free pages awaiting reuse.
func logBytes(b *testing.B, s *Store) int64 {
	var n int64
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAudit, bucketAuditPatient, bucketAuditAgent, bucketAuditOrg} {
			st := tx.Bucket(name).Stats()
			n += int64(st.BranchAlloc + st.LeafAlloc)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return n
}

// dbUsed is the database's high-water mark in bytes.
func dbUsed(b *testing.B, s *Store) int64 {
	var size int64
	if err := s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	return size
}
