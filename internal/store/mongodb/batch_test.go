package mongodb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// crashBatch is a Bundle as the server commits it: three writes, the
// notification outbox item and a queue item removal, and the usage-log
// records of the request.
func crashBatch() store.Batch {
	return store.Batch{
		Writes: []store.Write{put("Flag", "a", "p1", "a2"), put("Flag", "b", "p1", "b1"), put("Flag", "c", "p2", "c1")},
		Queue: []store.QueueOp{
			{Queue: "notify-outbox", ID: "o1", Patient: "p1", Body: []byte(`{"events":["Flag/a","Flag/b"]}`)},
			{Queue: "notify-outbox", ID: "old", Remove: true},
		},
		Audit: []store.AuditEntry{entry("bundle-1", "p1"), entry("bundle-2", "p2")},
		Link:  audit.Link,
	}
}

// queueIDs lists a queue's item ids, sorted.
func queueIDs(t *testing.T, s *Store, queue string) []string {
	t.Helper()
	var out []string
	require.NoError(t, s.ScanQueue(ctx, queue, func(it store.QueueItem) error {
		out = append(out, it.ID)
		return nil
	}))
	slices.Sort(out)
	return out
}

// bundleRecords counts the usage-log records of crashBatch in the chain,
// which must verify.
func bundleRecords(t *testing.T, s *Store) int {
	t.Helper()
	all := scan(t, s, 0)
	n := 0
	for _, r := range all {
		if strings.Contains(string(r.Body), `"bundle-`) {
			n++
		}
	}
	requireChain(t, s, len(all))
	return n
}

// A process that dies anywhere after the commit point has its whole batch
// applied by the next one, the usage-log records exactly once, however
// often recovery runs; one that dies before it leaves nothing at all.
func TestCrashedBatchEndsWholeOrAbsent(t *testing.T) {
	for _, c := range []struct {
		point     crashPoint
		committed bool
	}{
		{crashAfterClaims, false},
		{crashAfterCommitPoint, true},
		{crashAfterAudit, true},
		{crashMidApply, true},
	} {
		t.Run(fmt.Sprint(c.point), func(t *testing.T) {
			s := openDB(t, Options{LockTTL: time.Minute})
			mustCommit(t, s, put("Flag", "a", "p1", "a1"))
			_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{
				{Queue: "notify-outbox", ID: "old", Patient: "p1", Body: []byte("queued earlier")},
				{Queue: "notify-outbox", ID: "kept", Patient: "p2", Body: []byte("not in the batch")},
			}})
			require.NoError(t, err)
			before, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("before", "p1")})
			require.NoError(t, err)

			s.crashAt = c.point
			_, err = s.Commit(ctx, crashBatch())
			require.ErrorIs(t, err, errCrashed)

			// Another process, started after the lock TTL (the server
			// passes the link function it commits with).
			expireClaims(t, s)
			ageTxns(t, s)
			s2 := reopen(t, s, Options{Link: audit.Link})
			requireClean(t, s2)
			assert.Zero(t, count(t, s2.txns, bson.D{{Key: "state", Value: stateCommitted}}), "no transaction left to finish")
			if !c.committed {
				requireVersion(t, s2, "Flag", "a", 1)
				for _, id := range []string{"b", "c"} {
					_, err := s2.Read(ctx, "Flag", id)
					require.ErrorIs(t, err, store.ErrNotFound)
				}
				assert.Equal(t, []string{"kept", "old"}, queueIDs(t, s2, "notify-outbox"), "queue as before")
				assert.Zero(t, bundleRecords(t, s2), "no usage-log record of an uncommitted batch")
				seq, _, err := s2.AuditHead(ctx)
				require.NoError(t, err)
				assert.Equal(t, before[0].Seq, seq)
				return
			}
			requireVersion(t, s2, "Flag", "a", 2)
			requireVersion(t, s2, "Flag", "b", 1)
			requireVersion(t, s2, "Flag", "c", 1)
			assert.Equal(t, []string{"kept", "o1"}, queueIDs(t, s2, "notify-outbox"), "the batch's queue ops are applied")
			assert.Equal(t, 2, bundleRecords(t, s2), "the batch's usage-log records, once")
			got, err := s2.SearchAudit(ctx, store.AuditQuery{Patient: "p2"})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Contains(t, string(got[0].Body), `"bundle-2"`)

			// Recovery again, from the crashed process's store and from a
			// third one, finds nothing more to do.
			require.NoError(t, s.Recover(ctx))
			s3 := reopen(t, s, Options{Link: audit.Link})
			require.NoError(t, s3.Recover(ctx))
			assert.Equal(t, 2, bundleRecords(t, s3), "still once")
			assert.Equal(t, []string{"kept", "o1"}, queueIDs(t, s3, "notify-outbox"))
		})
	}
}

// The audit check holds when the usage-log entries were appended and the
// writer died right after, and two processes then finish the transaction
// at the same time.
func TestRollForwardTwiceAtOnceAppendsOnce(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterCommitPoint
	_, err := s.Commit(ctx, crashBatch())
	require.ErrorIs(t, err, errCrashed)
	ageTxns(t, s)
	expireClaims(t, s)
	a := reopen(t, s, Options{Link: audit.Link, SkipRecovery: true})
	b := reopen(t, s, Options{Link: audit.Link, SkipRecovery: true})
	errs := make(chan error, 2)
	for _, st := range []*Store{a, b} {
		go func() { errs <- st.Recover(ctx) }()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	// One of them may find the other appending in the same moment and
	// leave the transaction for a later round: that is allowed, a second
	// copy is not.
	for _, err := range failed {
		t.Logf("recovery left work for later: %v", err)
	}
	require.NoError(t, a.Recover(ctx))
	assert.Equal(t, 2, bundleRecords(t, a))
	requireClean(t, a)
	requireVersion(t, a, "Flag", "b", 1)
}

// A batch without resource writes has no claims: its committed record
// alone is found and finished.
func TestCrashedQueueAndAuditBatchIsFinished(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterCommitPoint
	_, err := s.Commit(ctx, store.Batch{
		Queue: []store.QueueOp{{Queue: "q", ID: "1", Patient: "p1", Body: []byte("one")}, {Queue: "q", ID: "2", Patient: "p1", Body: []byte("two")}},
		Audit: []store.AuditEntry{entry("bundle-q", "p1")},
		Link:  audit.Link,
	})
	require.ErrorIs(t, err, errCrashed)
	assert.Empty(t, queueIDs(t, s, "q"), "not applied before the crash")
	ageTxns(t, s)
	s2 := reopen(t, s, Options{Link: audit.Link})
	assert.Equal(t, []string{"1", "2"}, queueIDs(t, s2, "q"))
	assert.Equal(t, 1, bundleRecords(t, s2))
	requireClean(t, s2)
}

// Recovery of another process's transaction with usage-log entries needs
// the link function; without it the transaction stays pending (its
// writes invisible, nothing half applied) and Open says why. The process
// that committed a transaction finishes it with its own link function.
func TestRecoveryNeedsTheLinkFunction(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterCommitPoint
	_, err := s.Commit(ctx, crashBatch())
	require.ErrorIs(t, err, errCrashed)
	ageTxns(t, s)
	expireClaims(t, s)

	_, err = Open(ctx, Options{URI: mongotest.URI(t), Database: s.db.Name(), OpTimeout: testOpTimeout})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Options.Link")
	assert.Equal(t, int64(1), count(t, s.txns, bson.D{{Key: "state", Value: stateCommitted}}), "still pending")
	assert.Zero(t, bundleRecords(t, s))
	_, err = s.Read(ctx, "Flag", "b")
	require.ErrorIs(t, err, store.ErrNotFound, "no write is visible before its usage-log record")
	assert.Empty(t, queueIDs(t, s, "notify-outbox"))

	// The crashed store itself still knows the link function of its own
	// transaction (a process whose apply failed, not one that died).
	s.crashAt = crashNone
	require.NoError(t, s.Recover(ctx))
	assert.Equal(t, 2, bundleRecords(t, s))
	requireVersion(t, s, "Flag", "b", 1)
	requireClean(t, s)
}

// A refused batch leaves no transaction record, claim or link behind.
func TestRefusedBatchLeavesNoRecord(t *testing.T) {
	s := openDB(t, Options{})
	mustCommit(t, s, put("Flag", "a", "p1", "a1"))
	b := crashBatch()
	b.Writes[0].IfMatch = 9
	_, err := s.Commit(ctx, b)
	require.ErrorIs(t, err, store.ErrConflict)
	assert.Zero(t, count(t, s.txns, bson.D{}))
	assert.Zero(t, count(t, s.history, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}))
	n := 0
	s.links.Range(func(any, any) bool { n++; return true })
	assert.Zero(t, n)
}

// With the database gone, calls fail within a few seconds with an error
// that says the store is unavailable, rather than hanging the request.
func TestServerStoppedIsUnavailable(t *testing.T) {
	uri, stop := mongotest.Start(t)
	s, err := Open(ctx, Options{URI: uri, Database: mongotest.Database(t), Link: audit.Link})
	require.NoError(t, err)
	defer s.Close()
	mustCommit(t, s, put("Flag", "f1", "p1", "x"))
	_, err = s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx))

	stop()

	start := time.Now()
	_, err = s.Read(ctx, "Flag", "f1")
	took := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable, "Read: %v", err)
	assert.Less(t, took, 5*time.Second, "Read returned after %s", took)
	t.Logf("Read: %v after %s", err, took)

	start = time.Now()
	err = s.Ping(ctx)
	took = time.Since(start)
	assert.ErrorIs(t, err, store.ErrUnavailable, "Ping: %v", err)
	assert.Less(t, took, 5*time.Second, "Ping returned after %s", took)

	// Writes and scans say the same, so the server answers 503, not 500.
	calls := map[string]func() error{
		"Commit": func() error {
			_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f2", "p1", "y")}})
			return err
		},
		"Commit with queue and audit": func() error {
			_, err := s.Commit(ctx, crashBatch())
			return err
		},
		"Commit of one queue item": func() error {
			_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{{Queue: "q", ID: "1", Body: []byte("x")}}})
			return err
		},
		"AppendAudit": func() error {
			_, err := s.AppendAudit(ctx, audit.Link, []store.AuditEntry{entry("e", "p1")})
			return err
		},
		"ScanQueue": func() error { return s.ScanQueue(ctx, "q", func(store.QueueItem) error { return nil }) },
		"ScanAudit": func() error { return s.ScanAudit(ctx, 0, func(store.AuditRecord) error { return nil }) },
		"Compartment": func() error {
			_, err := s.Compartment(ctx, "p1", "Flag")
			return err
		},
		"Purge": func() error {
			_, err := s.Purge(ctx, "p1", []string{"Flag"})
			return err
		},
	}
	type outcome struct {
		name string
		took time.Duration
		err  error
	}
	results := make(chan outcome, len(calls))
	for name, call := range calls {
		go func() {
			start := time.Now()
			err := call()
			results <- outcome{name, time.Since(start), err}
		}()
	}
	for range calls {
		o := <-results
		t.Logf("%s: after %s: %v", o.name, o.took, o.err)
		require.Error(t, o.err, o.name)
		assert.True(t, errors.Is(o.err, store.ErrUnavailable), "%s: %v", o.name, o.err)
	}
}

// Purge meets a committed transaction its writer did not finish, holding
// queue ops for the purged patient and another one and usage-log entries:
// recovery then applies the other patient's op and the entries, and
// brings back nothing of the purged patient.
func TestPurgeLeftoverBatch(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterCommitPoint
	_, err := s.Commit(ctx, store.Batch{
		Writes: []store.Write{put("Flag", "f1", "p1", "purged"), put("Flag", "f2", "p2", "kept")},
		Queue: []store.QueueOp{
			{Queue: "notify-delivery", ID: "d1", Patient: "p1", Body: []byte("about p1")},
			{Queue: "notify-delivery", ID: "d2", Patient: "p2", Body: []byte("about p2")},
		},
		Audit: []store.AuditEntry{entry("bundle-purge", "p1")},
		Link:  audit.Link,
	})
	require.ErrorIs(t, err, errCrashed)
	s.crashAt = crashNone

	n, err := s.Purge(ctx, "p1", []string{"Flag"})
	require.NoError(t, err)
	assert.Zero(t, n, "f1 was never applied; its claim goes")

	expireClaims(t, s)
	ageTxns(t, s)
	s2 := reopen(t, s, Options{Link: audit.Link})
	requireClean(t, s2)
	assert.Equal(t, []string{"d2"}, queueIDs(t, s2, "notify-delivery"), "the purged patient's queue op is not applied")
	_, err = s2.Read(ctx, "Flag", "f1")
	require.ErrorIs(t, err, store.ErrNotFound)
	requireVersion(t, s2, "Flag", "f2", 1)
	assert.Equal(t, 1, bundleRecords(t, s2), "the usage log outlives the record")
}
