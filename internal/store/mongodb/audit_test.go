package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The shared suite (storetest.Run, TestStore) covers the usage log and
// Purge on this engine; these tests cover what only this engine has: the
// batch document as commit point, several processes on one chain, recovery,
// tampering seen from the collection, and Purge meeting leftover
// transactions.

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func entry(id, patient string) store.AuditEntry {
	return store.AuditEntry{
		Patient: patient, AgentHPR: "hpr1", Org: "org1", Recorded: t0, Outcome: "0",
		Body: fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"outcome":"0"}`, id),
	}
}

func scan(t *testing.T, s *Store, from int64) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	require.NoError(t, s.ScanAudit(ctx, from, func(r store.AuditRecord) error {
		out = append(out, r)
		return nil
	}))
	return out
}

func chainOf(recs []store.AuditRecord) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		for i, r := range recs {
			if !yield(i, r.Body) {
				return
			}
		}
	}
}

// requireChain checks that audit holds records 1..n, in one unbroken chain
// ending at AuditHead, and that no batch is left unmaterialised.
func requireChain(t *testing.T, s *Store, n int) []store.AuditRecord {
	t.Helper()
	all := scan(t, s, 0)
	require.Len(t, all, n)
	for i, r := range all {
		require.Equal(t, int64(i+1), r.Seq)
	}
	head, err := audit.VerifyFrom("", chainOf(all))
	require.NoError(t, err)
	seq, hash, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(n), seq)
	assert.Equal(t, head, hash)
	return all
}

// requireSettled checks that no batch document still carries its records.
// (After a live append the committer drops them only after answering, so
// this holds deterministically only right after Open's recovery.)
func requireSettled(t *testing.T, s *Store) {
	t.Helper()
	assert.Zero(t, count(t, s.auditBatches, bson.D{{Key: "records", Value: bson.D{{Key: "$exists", Value: true}}}}), "batches left unmaterialised")
}

// Two processes (two Stores, each with its own committer) append to one
// database at once: the unique _id of the batch documents serialises them
// into one chain, the loser of each race relinking after the winner.
func TestAuditTwoProcessesOneChain(t *testing.T) {
	a := openDB(t, Options{})
	b := reopen(t, a, Options{})
	const workers, appends = 6, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var returned []store.AuditRecord
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range appends {
				n := 1 + (w+i)%3
				var es []store.AuditEntry
				for k := range n {
					es = append(es, entry(fmt.Sprintf("w%d-%d-%d", w, i, k), fmt.Sprint("p", w)))
				}
				recs, err := s.AppendAudit(ctx, audit.Link, es)
				if !assert.NoError(t, err) {
					return
				}
				for k := 1; k < len(recs); k++ {
					assert.Equal(t, recs[k-1].Seq+1, recs[k].Seq, "one append is contiguous")
				}
				mu.Lock()
				returned = append(returned, recs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	all := requireChain(t, a, len(returned))
	for _, r := range returned {
		assert.Equal(t, string(r.Body), string(all[r.Seq-1].Body), "returned record %d is the stored one", r.Seq)
	}
	for _, s := range []*Store{a, b} {
		seq, _, err := s.AuditHead(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(len(returned)), seq, "both processes see one head")
	}
	t.Logf("%d records in %d batches", len(returned), count(t, a.auditBatches, bson.D{}))
}

// Deterministically, the lost race: process A's committer knows head 1,
// process B appends record 2 behind its back, A's next group meets the
// duplicate _id, reads the head again and relinks after B's record.
func TestAuditStaleHeadRelinks(t *testing.T) {
	a := openDB(t, Options{})
	b := reopen(t, a, Options{})
	r1, err := a.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("a1", "p1")})
	require.NoError(t, err)
	r2, err := b.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("b2", "p1")})
	require.NoError(t, err)
	require.Equal(t, int64(2), r2[0].Seq)
	assert.Equal(t, r1[0].Hash, prevOf(t, b, 2))
	r3, err := a.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("a3", "p1"), entry("a4", "p2")})
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 4}, seqsOf(r3))
	assert.Equal(t, r2[0].Hash, prevOf(t, a, 3), "relinked after the other process's record")
	requireChain(t, a, 4)
}

func prevOf(t *testing.T, s *Store, seq int64) string {
	t.Helper()
	var d auditDoc
	require.NoError(t, s.auditColl.FindOne(ctx, bson.D{{Key: "_id", Value: seq}}).Decode(&d))
	return d.Prev
}

// A process that dies after its commit point (the batch document) but before
// the records reach audit: the appends were committed, so a restart (or the
// next head read of any committer) puts them in audit, and the chain goes on
// after them. Also the case where only some records made it.
func TestAuditCrashAfterCommitPointIsCompleted(t *testing.T) {
	s := openDB(t, Options{})
	first, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e1", "p1")})
	require.NoError(t, err)

	s.crashAuditAfterBatch = true
	_, err = s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e2", "p1"), entry("e3", "p2"), entry("e4", "p1")})
	require.ErrorIs(t, err, errCrashed)
	assert.Len(t, scan(t, s, 0), 1, "nothing in audit yet")
	seq, _, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(4), seq, "but the batch is committed")

	// Half of it reached audit before the "crash".
	var b auditBatch
	require.NoError(t, s.auditBatches.FindOne(ctx, bson.D{{Key: "_id", Value: int64(2)}}).Decode(&b))
	require.Len(t, b.Records, 3)
	_, err = s.auditColl.InsertOne(ctx, b.Records[1])
	require.NoError(t, err)

	s2 := reopen(t, s, Options{})
	requireSettled(t, s2)
	all := requireChain(t, s2, 4)
	assert.Equal(t, first[0].Hash, all[0].Hash)
	got, err := s2.SearchAudit(ctx, store.AuditQuery{Patient: "p1"})
	require.NoError(t, err)
	assert.Equal(t, []int64{4, 2, 1}, seqsOf(got))

	// The restarted process appends after the completed batch.
	next, err := s2.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e5", "p1")})
	require.NoError(t, err)
	assert.Equal(t, int64(5), next[0].Seq)
	requireChain(t, s2, 5)
}

// A committer that finds a pending batch when it reads the head completes
// it without a restart: here a second process opened without recovery,
// whose first append reads the head.
func TestAuditPendingBatchSettledByNextAppender(t *testing.T) {
	s := openDB(t, Options{})
	s.crashAuditAfterBatch = true
	_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e1", "p1")})
	require.ErrorIs(t, err, errCrashed)
	// A second process that never saw a head appends: it settles first.
	s2 := reopen(t, s, Options{SkipRecovery: true})
	recs, err := s2.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e2", "p1")})
	require.NoError(t, err)
	assert.Equal(t, int64(2), recs[0].Seq)
	requireChain(t, s2, 2)
}

// A record altered directly in the collection breaks the chain there, and
// audit.VerifyFrom over ScanAudit names it.
func TestAuditTamperedRecordIsDetected(t *testing.T) {
	s := openDB(t, Options{})
	for i := range 5 {
		_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry(fmt.Sprint("e", i), "p1")})
		require.NoError(t, err)
	}
	recs := requireChain(t, s, 5)
	// Rewrite record 3 as someone with database access might: same
	// event, the outcome changed from success to refused, link kept.
	forged := bytes.Replace(recs[2].Body, []byte(`"outcome":"0"`), []byte(`"outcome":"4"`), 1)
	require.NotEqual(t, string(recs[2].Body), string(forged))
	res, err := s.auditColl.UpdateOne(ctx, bson.D{{Key: "_id", Value: int64(3)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: forged}}}})
	require.NoError(t, err)
	require.Equal(t, int64(1), res.ModifiedCount)

	_, err = audit.VerifyFrom("", chainOf(scan(t, s, 0)))
	var broken *audit.BrokenLinkError
	require.ErrorAs(t, err, &broken)
	assert.Equal(t, 2, broken.Index, "the third record (Seq 3)")
	assert.Equal(t, "e2", broken.ID)
	assert.Equal(t, "hash", broken.Problem)

	// Removing a record instead breaks the link of the one after it.
	_, err = s.auditColl.UpdateOne(ctx, bson.D{{Key: "_id", Value: int64(3)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: recs[2].Body}}}})
	require.NoError(t, err)
	_, err = s.auditColl.DeleteOne(ctx, bson.D{{Key: "_id", Value: int64(2)}})
	require.NoError(t, err)
	_, err = audit.VerifyFrom("", chainOf(scan(t, s, 0)))
	require.ErrorAs(t, err, &broken)
	assert.Equal(t, "previous", broken.Problem)
	assert.Equal(t, "e2", broken.ID)

	// Cutting records off the end leaves a chain that verifies, but
	// AuditHead, kept in the batch documents, is beyond its end.
	r := recs[1]
	_, err = s.auditColl.InsertOne(ctx, auditDoc{Seq: r.Seq, Patient: r.Patient, Agent: r.AgentHPR, Org: r.Org,
		Recorded: r.Recorded, Outcome: r.Outcome, Hash: r.Hash, Prev: recs[0].Hash, Body: r.Body})
	require.NoError(t, err, "record 2 put back")
	_, err = s.auditColl.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: int64(4)}}}})
	require.NoError(t, err)
	rest := scan(t, s, 0)
	head, err := audit.VerifyFrom("", chainOf(rest))
	require.NoError(t, err)
	seq, hash, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), seq)
	assert.NotEqual(t, hash, head, "truncation shows against the head")
}

// Filter values are strings compared for equality, never operators.
func TestAuditSearchValuesAreNotOperators(t *testing.T) {
	s := openDB(t, Options{})
	for i, p := range []string{"p1", "p2", `{"$ne":""}`} {
		_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry(fmt.Sprint("e", i), p)})
		require.NoError(t, err)
	}
	for _, v := range []string{`{"$ne":""}`, "$ne", ".*", `{"$gt":""}`, `p1" || "1"=="1`} {
		for _, q := range []store.AuditQuery{{Patient: v}, {AgentHPR: v}, {Org: v}, {Outcome: v}} {
			got, err := s.SearchAudit(ctx, q)
			require.NoError(t, err)
			want := 0
			if q.Patient == `{"$ne":""}` {
				want = 1
			}
			assert.Len(t, got, want, "%+v", q)
		}
	}
	f := auditFilter(store.AuditQuery{Patient: `{"$ne":""}`, From: t0, Before: 3})
	assert.Equal(t, bson.E{Key: "patient", Value: `{"$ne":""}`}, f[0])
	_, isString := f[0].Value.(string)
	assert.True(t, isString)
}

// Appends queued at Close fail; the store refuses them afterwards.
func TestAuditAfterClose(t *testing.T) {
	s := openDB(t, Options{})
	_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e1", "p1")})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e2", "p1")})
	require.ErrorIs(t, err, errClosed)
	require.NoError(t, s.Close(), "Close twice is fine")
}

// A caller whose context is already done is not appended.
func TestAuditCancelledCaller(t *testing.T) {
	s := openDB(t, Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.AppendAudit(cctx, audit.Link, []store.AuditEntry{entry("e1", "p1")})
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	requireChain(t, s, 0)
}

// Purge of a patient whose resource is in a transaction left half done by a
// dead writer, together with another patient's resource: the transaction
// record loses the purged write, so recovery finishes the other patient's
// write and brings nothing of the purged one back.
func TestPurgeLeftoverTransaction(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	mustCommit(t, s, put("Observation", "o1", "p1", "v1"), put("Observation", "o2", "p2", "v1"))
	s.crashAt = crashAfterCommitPoint
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Observation", "o1", "p1", "v2"), put("Observation", "o2", "p2", "v2"), put("Flag", "f1", "p1", "new")}})
	require.ErrorIs(t, err, errCrashed)
	s.crashAt = crashNone

	n, err := s.Purge(ctx, "p1", []string{"Observation", "Flag"})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "o1; the create of f1 never became a resource, but its claim goes too")
	for _, c := range [][2]string{{"Observation", "o1"}, {"Flag", "f1"}} {
		_, err = s.Read(ctx, c[0], c[1])
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.History(ctx, c[0], c[1], store.HistoryQuery{})
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	assert.Zero(t, count(t, s.history, bson.D{{Key: "patient", Value: "p1"}}), "no version of p1 is left")

	expireClaims(t, s)
	ageTxns(t, s)
	s2 := reopen(t, s, Options{})
	requireClean(t, s2)
	requireVersion(t, s2, "Observation", "o2", 2)
	_, err = s2.Read(ctx, "Observation", "o1")
	require.ErrorIs(t, err, store.ErrNotFound, "recovery brings nothing purged back")
	cs, err := s2.Compartment(ctx, "p1", "")
	require.NoError(t, err)
	assert.Empty(t, cs)
}

func TestAuditIndexesCreated(t *testing.T) {
	s := openDB(t, Options{})
	specs, err := s.auditColl.Indexes().ListSpecifications(ctx)
	require.NoError(t, err)
	keys := map[string][]string{}
	for _, sp := range specs {
		var d bson.D
		require.NoError(t, bson.Unmarshal(sp.KeysDocument, &d))
		for _, e := range d {
			keys[sp.Name] = append(keys[sp.Name], fmt.Sprint(e.Key, ":", e.Value))
		}
	}
	assert.Equal(t, []string{"patient:1", "_id:-1"}, keys[idxAuditPat])
	assert.Equal(t, []string{"agent:1", "_id:-1"}, keys[idxAuditAgent])
	assert.Equal(t, []string{"org:1", "_id:-1"}, keys[idxAuditOrg])
	assert.Equal(t, []string{"recorded:1"}, keys[idxAuditTime])
}

func seqsOf(recs []store.AuditRecord) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}
