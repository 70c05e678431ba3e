package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// realEvent is an AuditEvent as the REST layer builds it.
func realEvent(i int, patient string) []byte {
	return audit.Event(audit.Record{
		ID:           fmt.Sprintf("ev-%d", i),
		Time:         time.Date(2025, 3, 1, 10, 0, i, 0, time.UTC),
		RequestID:    fmt.Sprintf("req-%d", i),
		Interaction:  audit.Read,
		ResourceType: "AllergyIntolerance",
		ResourceID:   fmt.Sprintf("a%d", i),
		Patients:     []string{patient},
		Outcome:      audit.Outcome{Reason: access.OK, HTTPStatus: 200},
		User:         audit.User{HPR: "9144900", Name: "Kari Lege", HPCategory: "LE"},
		Org:          audit.Organisation{LegalEntity: "974589095", LegalEntityName: "Sykehuset"},
		ClientID:     "ehr",
		PurposeOfUse: "TREAT",
		Basis:        access.Samtykke,
	})
}

func realEntry(i int, patient string) store.AuditEntry {
	return store.AuditEntry{Patient: patient, AgentHPR: "9144900", Org: "974589095", Outcome: "0",
		Recorded: time.Date(2025, 3, 1, 10, 0, i, 0, time.UTC), Body: realEvent(i, patient)}
}

func scanBodies(t *testing.T, s *Store) ([]store.AuditRecord, iter.Seq2[int, []byte]) {
	t.Helper()
	var recs []store.AuditRecord
	require.NoError(t, s.ScanAudit(context.Background(), 0, func(r store.AuditRecord) error {
		recs = append(recs, r)
		return nil
	}))
	return recs, func(yield func(int, []byte) bool) {
		for i, r := range recs {
			if !yield(i, r.Body) {
				return
			}
		}
	}
}

func openPath(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: path})
	require.NoError(t, err)
	return s
}

// fillLog appends n real events one request at a time and closes the store.
func fillLog(t *testing.T, path string, n int) []store.AuditRecord {
	t.Helper()
	s := openPath(t, path)
	var recs []store.AuditRecord
	for i := range n {
		r, err := s.AppendAudit(context.Background(), audit.Link, []store.AuditEntry{realEntry(i, fmt.Sprint("p", i%3))})
		require.NoError(t, err)
		recs = append(recs, r...)
	}
	require.NoError(t, s.Close())
	return recs
}

// alterRaw changes the stored bytes of the record at seq directly in the
// bbolt file, as someone with access to the disk could.
func alterRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

func TestAuditSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kj.db")
	recs := fillLog(t, path, 5)

	s := openPath(t, path)
	defer func() { assert.NoError(t, s.Close()) }()
	seq, hash, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), seq)
	assert.Equal(t, recs[4].Hash, hash)
	got, events := scanBodies(t, s)
	require.Len(t, got, 5)
	for i := range recs {
		assert.Equal(t, recs[i], got[i], "record %d as returned by AppendAudit", i+1)
	}
	head, err := audit.VerifyFrom("", events)
	require.NoError(t, err)
	assert.Equal(t, hash, head)

	// The chain goes on after the reopen.
	more, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{realEntry(5, "p9")})
	require.NoError(t, err)
	assert.Equal(t, int64(6), more[0].Seq)
	_, events = scanBodies(t, s)
	head, err = audit.VerifyFrom("", events)
	require.NoError(t, err)
	assert.Equal(t, more[0].Hash, head)
	found, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "p0"})
	require.NoError(t, err)
	assert.Equal(t, []int64{4, 1}, []int64{found[0].Seq, found[1].Seq}, "the indexes survive too")
}

func TestAuditVerifyFindsAlteredRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kj.db")
	recs := fillLog(t, path, 6)

	// Change one byte of the body of record 4: the HPR number the event
	// names for the health personnel ("9144900" -> "9144901").
	alterRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		v := bytes.Clone(b.Get(seqKey(4)))
		i := bytes.LastIndex(v, []byte("9144900"))
		require.Greater(t, i, auditHeaderLen+64, "the HPR number is in the body")
		v[i+6] = '1'
		return b.Put(seqKey(4), v)
	})

	s := openPath(t, path)
	defer func() { assert.NoError(t, s.Close()) }()
	got, events := scanBodies(t, s)
	require.Len(t, got, 6)
	_, err := audit.VerifyFrom("", events)
	var broken *audit.BrokenLinkError
	require.True(t, errors.As(err, &broken), "verify reports a broken link, got %v", err)
	assert.Equal(t, 3, broken.Index, "the fourth record (index 3) is the altered one")
	assert.Equal(t, "ev-3", broken.ID)
	assert.Equal(t, "hash", broken.Problem)
	assert.Equal(t, recs[3].Hash, broken.Found, "the stored hash is the one written")
	assert.NotEqual(t, recs[3].Hash, broken.Expected)
	assert.Contains(t, err.Error(), "AuditEvent/ev-3")
}

func TestAuditVerifyFindsRemovedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kj.db")
	recs := fillLog(t, path, 6)
	alterRaw(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(3)) })

	s := openPath(t, path)
	defer func() { assert.NoError(t, s.Close()) }()
	_, events := scanBodies(t, s)
	_, err := audit.VerifyFrom("", events)
	var broken *audit.BrokenLinkError
	require.True(t, errors.As(err, &broken), "verify reports a broken link, got %v", err)
	assert.Equal(t, 2, broken.Index, "record 4, now third, no longer follows its predecessor")
	assert.Equal(t, "ev-3", broken.ID)
	assert.Equal(t, "previous", broken.Problem)
	assert.Equal(t, recs[1].Hash, broken.Expected)
	assert.Equal(t, recs[2].Hash, broken.Found)
}

// A log cut off at the end is what no chain reveals: the head in meta
// does, and appending refuses to go on from a head it cannot trust.
func TestAuditTruncatedLogFailsClosed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kj.db")
	recs := fillLog(t, path, 4)
	alterRaw(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(4)) })

	s := openPath(t, path)
	defer func() { assert.NoError(t, s.Close()) }()
	_, events := scanBodies(t, s)
	head, err := audit.VerifyFrom("", events)
	require.NoError(t, err, "the remaining chain is intact")
	_, stored, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, recs[3].Hash, stored)
	assert.NotEqual(t, stored, head, "comparing with AuditHead shows the loss")

	_, err = s.AppendAudit(ctx, audit.Link, []store.AuditEntry{realEntry(9, "p1")})
	require.Error(t, err, "no append on a log whose head does not match its last record")
	assert.ErrorIs(t, err, errCorrupt)
	// Resource commits in other groups are not affected.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f1", "p1", "x")}})
	require.NoError(t, err)
}

func TestAuditLinkPanicFailsOnlyThatAppend(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	_, err := s.AppendAudit(ctx, func(string, []byte) ([]byte, string, error) { panic("boom") },
		[]store.AuditEntry{realEntry(1, "p1")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom")
	recs, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{realEntry(2, "p1")})
	require.NoError(t, err)
	assert.Equal(t, int64(1), recs[0].Seq)
}

func TestAuditAndCommitShareGroups(t *testing.T) {
	// Audit appends and resource commits queued together go through the
	// same committer; whatever the grouping, every request gets its own
	// result and the chain stays whole.
	ctx := context.Background()
	s := openTemp(t)
	errs := make(chan error, 64)
	for i := range 32 {
		go func() {
			_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{realEntry(i, "p1")})
			errs <- err
		}()
		go func() {
			_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", fmt.Sprint("f", i), "p1", "x")}})
			errs <- err
		}()
	}
	for range 64 {
		require.NoError(t, <-errs)
	}
	_, events := scanBodies(t, s)
	head, err := audit.VerifyFrom("", events)
	require.NoError(t, err)
	seq, stored, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(32), seq)
	assert.Equal(t, stored, head)
	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	assert.Len(t, cs, 32)
}

func TestAuditInvalidRefused(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := realEntry(1, "p\x001")
	_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{e})
	require.Error(t, err)
	_, err = s.AppendAudit(ctx, nil, []store.AuditEntry{realEntry(1, "p1")})
	require.Error(t, err)
	_, err = s.Purge(ctx, "", []string{"Flag"})
	require.Error(t, err, "purging the resources outside any record is refused")
	seq, _, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Zero(t, seq)
}

func TestScanTypeAcrossChunks(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	const n = 2*scanChunk + 7
	ws := make([]store.Write, 0, n)
	for i := range n {
		ws = append(ws, put("Flag", fmt.Sprintf("f%04d", i), "p1", "x"))
	}
	_, err := s.Commit(ctx, store.Batch{Writes: ws})
	require.NoError(t, err)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{{Type: "Flag", ID: "f0511", Op: store.OpDelete}}})
	require.NoError(t, err)
	seen := map[string]bool{}
	require.NoError(t, s.ScanType(ctx, "Flag", func(v store.Version) error {
		assert.False(t, seen[v.ID], "%s twice", v.ID)
		seen[v.ID] = true
		return nil
	}))
	assert.Len(t, seen, n-1)
	assert.False(t, seen["f0511"])

	// A purge finds resources beyond the first chunk of its scan.
	removed, err := s.Purge(ctx, "p1", []string{"Flag"})
	require.NoError(t, err)
	assert.Equal(t, n, removed, "the deleted one included")
}

// BenchmarkAppendAuditParallel is 1, 32 and 128 concurrent requests each
// appending one real AuditEvent durably, as concurrent API requests would;
// the committer links them in groups that share one fsync. entries/s is
// wall-clock throughput, appends/fsync the average group size.
func BenchmarkAppendAuditParallel(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "kj.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	var next atomic.Int64
	for _, n := range []int{1, 32, 128} {
		b.Run(fmt.Sprintf("%dappenders", n), func(b *testing.B) {
			before := s.Stats()
			start := time.Now()
			measureCPU(b, func() {
				parallelWriters(b, n, func() {
					i := int(next.Add(1))
					if _, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{realEntry(i, fmt.Sprint("p", i%1000))}); err != nil {
						panic(err)
					}
				})
			})
			elapsed := time.Since(start)
			after := s.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
			if g := after.Groups - before.Groups; g > 0 {
				b.ReportMetric(float64(after.Requests-before.Requests)/float64(g), "appends/fsync")
			}
		})
	}
}

// TestAuditRecordFormats: records written with the hash in hex (format 1,
// stores from before) read back as records written with the raw hash
// (format 2, 32 bytes shorter) and as records whose body ends in the hash
// (format 3, written since for the compact form).
func TestAuditRecordFormats(t *testing.T) {
	r := store.AuditRecord{Seq: 7, Hash: strings.Repeat("ab", 32), AuditEntry: store.AuditEntry{
		Patient: "pas-1", AgentHPR: "990018265", Org: "300010008", Outcome: "0",
		Recorded: time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.UTC), Body: []byte{0xA7, 1, 2, 3}}}
	hexForm := encodeAuditAs(&r, auditRecFormatHex, r.Hash)
	rawForm := encodeAudit(&r)
	assert.Equal(t, byte(auditRecFormatRaw), rawForm[0])
	assert.Equal(t, len(hexForm)-32, len(rawForm))
	for name, b := range map[string][]byte{"hex": hexForm, "raw": rawForm} {
		v, err := decodeAudit(b)
		require.NoError(t, err, name)
		assert.Equal(t, r, v.record(7), name)
	}
	// A hash that is not SHA-256 hex (none the chain makes) stays as it is.
	odd := r
	odd.Hash = "not-hex"
	v, err := decodeAudit(encodeAudit(&odd))
	require.NoError(t, err)
	assert.Equal(t, "not-hex", v.record(7).Hash)
	_, err = decodeAudit(append([]byte{9}, rawForm[1:]...))
	assert.ErrorIs(t, err, errCorrupt, "an unknown format is refused")

	// A body that ends in its own hash (the compact form's does) keeps
	// the hash once (format 3), with a header of varints.
	tail := r
	raw := bytes.Repeat([]byte{0xab}, 32)
	tail.Body = append([]byte{0xA7, 3, 1, 2}, raw...)
	tailForm := encodeAudit(&tail)
	assert.Equal(t, byte(auditRecFormatTail), tailForm[0])
	assert.Less(t, len(tailForm), len(encodeAuditAs(&tail, auditRecFormatRaw, string(raw)))-32-8)
	v, err = decodeAudit(tailForm)
	require.NoError(t, err)
	assert.Equal(t, tail, v.record(7))
	for cut := 1; cut < len(tailForm)-len(tail.Body)+32; cut++ {
		_, err := decodeAudit(tailForm[:cut])
		assert.ErrorIs(t, err, errCorrupt, "cut at %d", cut)
	}
}

// TestAuditIndexPostingLists: an index holds a field's records as lists
// of gaps, a key per few hundred records, and a search by that field
// pages backwards through them, across lists and across the one-key-per-
// record entries of stores written before, exactly once each.
func TestAuditIndexPostingLists(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	appendN := func(from, n int) {
		for i := from; i < from+n; i += 50 {
			var entries []store.AuditEntry
			for j := i; j < i+50 && j < from+n; j++ {
				entries = append(entries, realEntry(j, fmt.Sprint("p", j%3)))
			}
			_, err := s.AppendAudit(ctx, audit.Link, entries)
			require.NoError(t, err)
		}
	}
	appendN(0, 100)
	// Rewrite the agent index as stores before the lists wrote it: one
	// key per record, an empty value.
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAuditAgent)
		var keys [][]byte
		require.NoError(t, b.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }))
		for _, k := range keys {
			require.NoError(t, b.Delete(k))
		}
		for seq := int64(1); seq <= 100; seq++ {
			require.NoError(t, b.Put(auditIndexKey("9144900", seq), []byte{}))
		}
		return nil
	}))
	appendN(100, 1900)

	keys := map[string]int{}
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAuditAgent, bucketAuditPatient} {
			keys[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	}))
	assert.Less(t, keys[string(bucketAuditAgent)], 100+10, "1,900 new records of one agent take a handful of keys")
	assert.Less(t, keys[string(bucketAuditPatient)], 3*10, "and of three patients too")

	for _, q := range []store.AuditQuery{{AgentHPR: "9144900", Count: 37}, {Patient: "p1", Count: 23}} {
		var got []int64
		before := int64(0)
		for {
			q.Before = before
			page, err := s.SearchAudit(ctx, q)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, r := range page {
				got = append(got, r.Seq)
				if q.Patient != "" {
					require.Equal(t, "p1", r.Patient)
				}
			}
			before = page[len(page)-1].Seq
		}
		var want []int64
		for seq := int64(2000); seq >= 1; seq-- {
			if q.Patient == "" || (seq-1)%3 == 1 {
				want = append(want, seq)
			}
		}
		assert.Equal(t, want, got, "every record of %+v once, newest first", q)
	}
}
