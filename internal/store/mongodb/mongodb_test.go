package mongodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
	"github.com/kjernejournal/kjernejournal/internal/store/storetest"
)

var ctx = context.Background()

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// testOpTimeout replaces the default operation timeout in tests that are
// not about it: FerretDB's pure-Go SQLite under the race detector takes
// seconds for a bulk write of a hundred documents.
const testOpTimeout = 60 * time.Second

// openDB opens a store on a fresh database that is dropped after the test.
func openDB(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	if opts.URI == "" {
		opts.URI = mongotest.URI(t)
	}
	if opts.Database == "" {
		opts.Database = mongotest.Database(t)
	}
	s, err := Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.db.Drop(context.Background())
		_ = s.Close()
	})
	return s
}

// reopen opens a second store on the same database, as a restarted process
// would.
func reopen(t testing.TB, s *Store, opts Options) *Store {
	t.Helper()
	opts.URI = mongotest.URI(t)
	opts.Database = s.db.Name()
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	s2, err := Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openDB(t, Options{}) })
}

func put(typ, id, patient, note string) store.Write {
	return store.Write{Type: typ, ID: id, Patient: patient, Op: store.OpPut,
		Render: func(v int64, at time.Time) ([]byte, error) {
			return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"note":%q,"meta":{"versionId":"%d"}}`, typ, id, note, v), nil
		}}
}

func mustCommit(t *testing.T, s *Store, ws ...store.Write) []store.Version {
	t.Helper()
	vs, err := s.Commit(ctx, store.Batch{Writes: ws})
	require.NoError(t, err)
	return vs
}

func count(t *testing.T, c *mongo.Collection, filter bson.D) int64 {
	t.Helper()
	n, err := c.CountDocuments(ctx, filter)
	require.NoError(t, err)
	return n
}

// requireClean asserts that no claim, transaction record or stray version is
// left in the database.
func requireClean(t *testing.T, s *Store) {
	t.Helper()
	assert.Zero(t, count(t, s.history, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}), "claims left in history")
	assert.Zero(t, count(t, s.claims, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}), "key claims left marked")
	assert.Zero(t, count(t, s.txns, bson.D{{Key: "state", Value: stateCommitted}}), "committed txn records left")
}

func requireVersion(t *testing.T, s store.Store, typ, id string, want int64) {
	t.Helper()
	v, err := s.Read(ctx, typ, id)
	require.NoError(t, err)
	require.Equal(t, want, v.VersionID, "%s/%s", typ, id)
	h, err := s.History(ctx, typ, id, store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, int(want), "%s/%s history", typ, id)
}

// A process that dies after claiming but before the commit point leaves an
// uncommitted transaction; on restart it must vanish without a trace.
func TestCrashBeforeCommitPointRollsBack(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	mustCommit(t, s, put("Flag", "a", "p1", "a1"))

	s.crashAt = crashAfterClaims
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "a", "p1", "a2"), put("Flag", "b", "p1", "b1")}})
	require.ErrorIs(t, err, errCrashed)
	require.Equal(t, int64(2), count(t, s.history, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}))

	// Readers see the last committed state while the claims are there.
	requireVersion(t, s, "Flag", "a", 1)
	_, err = s.Read(ctx, "Flag", "b")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.VRead(ctx, "Flag", "a", 2)
	require.ErrorIs(t, err, store.ErrNotFound)

	// While the dead writer's lock has not expired, others are told to retry.
	s.crashAt = crashNone
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "a", "p1", "other")}})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, store.ConflictBusy, ce.Reason)
	require.Equal(t, int64(1), ce.Current)

	expireClaims(t, s)
	s2 := reopen(t, s, Options{})
	requireClean(t, s2)
	requireVersion(t, s2, "Flag", "a", 1)
	_, err = s2.Read(ctx, "Flag", "b")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s2.History(ctx, "Flag", "b", store.HistoryQuery{})
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Equal(t, int64(1), count(t, s2.txns, bson.D{{Key: "state", Value: stateAborted}}), "the abort fences the dead writer off")
	mustCommit(t, s2, put("Flag", "a", "p1", "a2"))
	requireVersion(t, s2, "Flag", "a", 2)
}

// A process that dies after the commit point must have its transaction
// completed on restart, all of it.
func TestCrashAfterCommitPointRollsForward(t *testing.T) {
	for _, point := range []crashPoint{crashAfterCommitPoint, crashMidApply} {
		t.Run(fmt.Sprint(point), func(t *testing.T) {
			s := openDB(t, Options{LockTTL: time.Minute})
			mustCommit(t, s, put("Flag", "a", "p1", "a1"))
			s.crashAt = point
			_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "a", "p1", "a2"), put("Flag", "b", "p1", "b1"), put("Flag", "c", "p2", "c1")}})
			require.ErrorIs(t, err, errCrashed)

			expireClaims(t, s)
			ageTxns(t, s)
			s2 := reopen(t, s, Options{})
			requireClean(t, s2)
			requireVersion(t, s2, "Flag", "a", 2)
			requireVersion(t, s2, "Flag", "b", 1)
			requireVersion(t, s2, "Flag", "c", 1)
			v, err := s2.Read(ctx, "Flag", "b")
			require.NoError(t, err)
			assert.JSONEq(t, `{"resourceType":"Flag","id":"b","note":"b1","meta":{"versionId":"1"}}`, string(v.Body))
			cs, err := s2.Compartment(ctx, "p1", "Flag")
			require.NoError(t, err)
			require.Len(t, cs, 2)
		})
	}
}

// Without a restart, a writer that meets an expired claim settles the dead
// transaction itself and goes on.
func TestExpiredLockIsTakenOver(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	mustCommit(t, s, put("Flag", "a", "p1", "a1"))

	s.crashAt = crashAfterClaims
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "a", "p1", "lost")}})
	require.ErrorIs(t, err, errCrashed)
	s.crashAt = crashAfterCommitPoint
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "b", "p1", "kept")}})
	require.ErrorIs(t, err, errCrashed)
	s.crashAt = crashNone
	expireClaims(t, s)

	vs := mustCommit(t, s, put("Flag", "a", "p1", "a2"))
	assert.Equal(t, int64(2), vs[0].VersionID, "the dead writer's version 2 was rolled back")
	vs = mustCommit(t, s, put("Flag", "b", "p1", "b2"))
	assert.Equal(t, int64(2), vs[0].VersionID, "the dead writer's version 1 was rolled forward")
	h, err := s.History(ctx, "Flag", "b", store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, 2)
	assert.Contains(t, string(h[1].Body), `"kept"`)
	requireClean(t, s)
}

// A writer that died after deleting its record but before clearing the claim
// markers left committed versions that look like claims; recovery must keep
// them.
func TestLeftoverMarkersOfCommittedVersionsAreKept(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	mustCommit(t, s, put("Flag", "a", "p1", "a1"), put("Flag", "b", "p1", "b1"))
	mustCommit(t, s, put("Flag", "a", "p1", "a2"))
	_, err := s.history.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: []string{"Flag/a/2", "Flag/b/1"}}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "txn", Value: "gone"}, {Key: "exp", Value: time.Now().Add(time.Minute)}}}})
	require.NoError(t, err)
	// Readers already treat them as committed: they are not above current.
	requireVersion(t, s, "Flag", "a", 2)
	v, err := s.VRead(ctx, "Flag", "a", 2)
	require.NoError(t, err)
	assert.Contains(t, string(v.Body), `"a2"`)

	expireClaims(t, s)
	s2 := reopen(t, s, Options{})
	requireClean(t, s2)
	requireVersion(t, s2, "Flag", "a", 2)
	requireVersion(t, s2, "Flag", "b", 1)
}

// A writer whose commit point was taken by a recoverer (it stalled past its
// lease) must not commit.
func TestAbortedWriterCannotCommit(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterClaims
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "a", "p1", "a1")}})
	require.ErrorIs(t, err, errCrashed)
	var claim doc
	require.NoError(t, s.history.FindOne(ctx, bson.D{}).Decode(&claim))
	committed, err := s.resolve(ctx, claim.Txn)
	require.NoError(t, err)
	require.False(t, committed)

	_, err = s.txns.InsertOne(ctx, txnRecord{ID: claim.Txn, State: stateCommitted})
	require.True(t, mongo.IsDuplicateKeyError(err), "the stalled writer's commit point must fail, got %v", err)
	committed, err = s.resolve(ctx, claim.Txn)
	require.NoError(t, err)
	require.False(t, committed)
}

// Many writers on one resource without preconditions: every commit lands as
// its own version, none is lost.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	s := openDB(t, Options{})
	const workers, each = 4, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, busy int
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "hot", "p1", fmt.Sprintf("%d-%d", w, i))}})
				mu.Lock()
				if err == nil {
					ok++
				} else if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce.Reason == store.ConflictBusy {
					busy++
				} else {
					t.Error(err)
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	t.Logf("%d committed, %d busy", ok, busy)
	require.Positive(t, ok)
	requireVersion(t, s, "Flag", "hot", int64(ok))
	requireClean(t, s)
}

// Bundles over overlapping resources, concurrently: each one lands on all
// of its resources or on none, whatever the interleaving.
func TestOverlappingBundlesAllOrNothing(t *testing.T) {
	s := openDB(t, Options{})
	const workers, each, ring = 4, 8, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcome := map[string]bool{} // bundle note -> committed
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				note := fmt.Sprintf("w%d-%d", w, i)
				a, b := (w+i)%ring, (w+i+1)%ring
				_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
					put("Flag", fmt.Sprint("r", a), "p1", note),
					put("Flag", fmt.Sprint("r", b), "p1", note),
				}})

				var ce *store.ConflictError
				if err != nil && !(errors.As(err, &ce) && ce.Reason == store.ConflictBusy) {
					t.Error(err)
				}
				mu.Lock()
				outcome[note] = err == nil
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	seen := map[string]int{}
	total := 0
	for r := 0; r < ring; r++ {
		h, err := s.History(ctx, "Flag", fmt.Sprint("r", r), store.HistoryQuery{})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		for i, v := range h {
			require.Equal(t, int64(len(h)-i), v.VersionID, "versions are dense")
			var body struct{ Note string }
			require.NoError(t, json.Unmarshal(v.Body, &body))
			seen[body.Note]++
			total++
		}
	}
	committed := 0
	for note, ok := range outcome {
		if ok {
			committed++
			assert.Equal(t, 2, seen[note], "committed bundle %s must be on both resources", note)
		} else {
			assert.Zero(t, seen[note], "refused bundle %s must leave nothing", note)
		}
	}
	t.Logf("%d of %d bundles committed", committed, len(outcome))
	assert.Equal(t, 2*committed, total)
	requireClean(t, s)
}

func TestIndexesCreated(t *testing.T) {
	s := openDB(t, Options{})
	names := func(c *mongo.Collection) []string {
		specs, err := c.Indexes().ListSpecifications(ctx)
		require.NoError(t, err)
		var out []string
		for _, sp := range specs {
			out = append(out, sp.Name)
		}
		return out
	}
	assert.Contains(t, names(s.resources), idxCompartment)
	assert.Contains(t, names(s.history), idxHistory)
	assert.Contains(t, names(s.history), idxClaims)
	assert.Contains(t, names(s.txns), idxTxnState)

	specs, err := s.resources.Indexes().ListSpecifications(ctx)
	require.NoError(t, err)
	for _, sp := range specs {
		if sp.Name == idxCompartment {
			var keys bson.D
			require.NoError(t, bson.Unmarshal(sp.KeysDocument, &keys))
			require.Equal(t, []string{"patient", "type", "id"}, []string{keys[0].Key, keys[1].Key, keys[2].Key})
		}
	}
	// Opening again over existing indexes is fine.
	reopen(t, s, Options{})
}

// The compartment read must be served by the {patient, type, id} index.
// MongoDB's planner says so in the explain output. FerretDB's SQLite backend
// answers explain with its SQLite plan and serves only _id lookups from an
// index, so there the test checks what it can: the query the engine sends
// leads with patient and type, the index's prefix.
func TestCompartmentUsesPatientIndex(t *testing.T) {
	s := openDB(t, Options{})
	for i := 0; i < 20; i++ {
		mustCommit(t, s, put("Flag", fmt.Sprintf("f%02d", i), fmt.Sprintf("p%d", i%4), "x"))
	}
	filter := s.compartmentFilter("p1", "Flag")
	require.Equal(t, "patient", filter[0].Key)
	require.Equal(t, "type", filter[1].Key)

	var ex bson.Raw
	err := s.db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{
		{Key: "find", Value: collResources},
		{Key: "filter", Value: filter},
		{Key: "sort", Value: bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}},
	}}}).Decode(&ex)
	require.NoError(t, err)
	qp, err := ex.LookupErr("queryPlanner")
	require.NoError(t, err, "explain without queryPlanner: %v", ex)
	if _, err := ex.LookupErr("serverInfo", "ferretdbVersion"); err == nil {
		t.Logf("FerretDB plan (its SQLite backend uses no secondary index): %v", qp)
	} else {
		wp, err := ex.LookupErr("queryPlanner", "winningPlan")
		require.NoError(t, err, "explain without winningPlan: %v", ex)
		plan := wp.String()
		assert.Contains(t, plan, "IXSCAN")
		assert.Contains(t, plan, idxCompartment)
		assert.NotContains(t, plan, "COLLSCAN")
	}
	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	require.Len(t, cs, 5)
}

// expireClaims makes every claim look abandoned, as it would be once the lock
// TTL has passed, without the test waiting for it.
func expireClaims(t *testing.T, s *Store) {
	t.Helper()
	for _, c := range []*mongo.Collection{s.history, s.claims} {
		_, err := c.UpdateMany(ctx, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "exp", Value: time.Now().Add(-time.Second)}}}})
		require.NoError(t, err)
	}
}

func ageTxns(t *testing.T, s *Store) {
	t.Helper()
	_, err := s.txns.UpdateMany(ctx, bson.D{},
		bson.D{{Key: "$set", Value: bson.D{{Key: "created", Value: time.Now().Add(-time.Hour)}}}})
	require.NoError(t, err)
}
