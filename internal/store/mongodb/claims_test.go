package mongodb

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/storetest"
)

const testFNR = "urn:oid:2.16.578.1.12.4.1.4.1|"

// patient is a Patient write whose person number is Unique.
func patient(id, pnr string) store.Write {
	w := put("Patient", id, id, id)
	w.Identifiers = []string{testFNR + pnr}
	w.Unique = w.Identifiers
	return w
}

// Two processes on one database (two Stores), many requests each,
// creating Patients with the same person number at the same moment: one
// Patient is stored, every other request is told the number is taken.
func TestUniqueRaceAcrossProcesses(t *testing.T) {
	s1 := openDB(t, Options{})
	s2 := reopen(t, s1, Options{})
	storetest.RaceUnique(t, 6, s1, s2)
	requireClean(t, s1)
}

// The same for conditional creates: a guarded commit whose precondition
// looks for the match.
func TestGuardedRaceAcrossProcesses(t *testing.T) {
	s1 := openDB(t, Options{})
	s2 := reopen(t, s1, Options{})
	storetest.RaceGuarded(t, 6, s1, s2)
	requireClean(t, s1)
}

// A writer that has read the identifier's generation and found the number
// free, and is overtaken before it claims, loses to the committed claim
// and then sees the other Patient: the identifier read alone cannot see a
// writer that commits after it, the claim can.
func TestCommittedClaimMakesLateWriterLose(t *testing.T) {
	s1 := openDB(t, Options{})
	s2 := reopen(t, s1, Options{})
	var checks atomic.Int32
	overtaken := make(chan struct{})
	go func() {
		defer close(overtaken)
		// Process 2 commits while process 1 is between its reads and its
		// claim (held in its precondition, which runs there).
		for checks.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		mustCommit(t, s2, patient("early", "01010112345"))
	}()
	_, err := s1.Commit(ctx, store.Batch{
		Writes: []store.Write{patient("late", "01010112345")},
		Precondition: func(context.Context) error {
			if checks.Add(1) == 1 {
				<-overtaken
			}
			return nil
		},
	})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, store.ConflictUnique, ce.Reason, "%v", err)
	assert.Equal(t, "early", ce.Other)
	// Its first attempt found the number free; its retry's identifier
	// read, after the generation read, found the early Patient and
	// refused before the precondition ran again.
	assert.Equal(t, int32(1), checks.Load())
	ids, err := s1.FindByIdentifier(ctx, "Patient", testFNR+"01010112345")
	require.NoError(t, err)
	assert.Equal(t, []string{"early"}, ids)

	// The committed claim stays, unmarked.
	var kc keyClaim
	require.NoError(t, s1.claims.FindOne(ctx, bson.D{{Key: "key", Value: "unique/Patient/" + testFNR + "01010112345"}}).Decode(&kc))
	assert.Equal(t, int64(1), kc.Gen)
	assert.Equal(t, "Patient/early", kc.Res)
	assert.Empty(t, kc.Txn)
	requireClean(t, s1)

	// An update keeping the number takes no new claim; freeing the number
	// and taking it elsewhere does.
	mustCommit(t, s2, patient("early", "01010112345"))
	assert.Equal(t, int64(1), count(t, s1.claims, bson.D{}))
	mustCommit(t, s2, put("Patient", "early", "early", "number removed"))
	mustCommit(t, s1, patient("late", "01010112345"))
	assert.Equal(t, int64(2), count(t, s1.claims, bson.D{}))
}

// A writer that died after claiming a person number, before its commit
// point, holds the number only until its lease expires: then the next
// writer's recovery frees it.
func TestDeadClaimDoesNotBlockTheIdentifier(t *testing.T) {
	s := openDB(t, Options{LockTTL: time.Minute})
	s.crashAt = crashAfterClaims
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{patient("dead", "02020212345")}})
	require.ErrorIs(t, err, errCrashed)
	s.crashAt = crashNone
	assert.Equal(t, int64(1), count(t, s.claims, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}))

	// While the lease lasts, another process is told to retry.
	s2 := reopen(t, s, Options{})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s2.Commit(short, store.Batch{Writes: []store.Write{patient("alive", "02020212345")}})
	cancel()
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, store.ConflictBusy, ce.Reason)

	expireClaims(t, s)
	mustCommit(t, s2, patient("alive", "02020212345"))
	requireClean(t, s2)
	_, err = s2.Read(ctx, "Patient", "dead")
	require.ErrorIs(t, err, store.ErrNotFound)
	ids, err := s2.FindByIdentifier(ctx, "Patient", testFNR+"02020212345")
	require.NoError(t, err)
	assert.Equal(t, []string{"alive"}, ids)
	var kc keyClaim
	require.NoError(t, s2.claims.FindOne(ctx, bson.D{}).Decode(&kc))
	assert.Equal(t, "Patient/alive", kc.Res, "the dead writer's claim was rolled back and the generation taken again")
	assert.Equal(t, int64(1), kc.Gen)
}

// A writer that died after its commit point is rolled forward with its
// claim; one that died after clearing the history markers and deleting
// its record, but not the claim's markers, keeps its claim; either way
// the number stays taken.
func TestClaimsOfCommittedWritesAreKept(t *testing.T) {
	for _, point := range []crashPoint{crashAfterCommitPoint, crashMidApply} {
		t.Run(fmt.Sprint(point), func(t *testing.T) {
			s := openDB(t, Options{LockTTL: time.Minute})
			s.crashAt = point
			_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{patient("first", "03030312345"), put("Flag", "f", "first", "f")}})
			require.ErrorIs(t, err, errCrashed)
			s.crashAt = crashNone
			expireClaims(t, s)
			ageTxns(t, s)
			s2 := reopen(t, s, Options{})
			requireClean(t, s2)
			requireVersion(t, s2, "Patient", "first", 1)
			_, err = s2.Commit(ctx, store.Batch{Writes: []store.Write{patient("second", "03030312345")}})
			var ce *store.ConflictError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, store.ConflictUnique, ce.Reason)
		})
	}
	t.Run("markers left", func(t *testing.T) {
		s := openDB(t, Options{LockTTL: time.Minute})
		mustCommit(t, s, patient("first", "04040412345"))
		_, err := s.claims.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "txn", Value: "gone"}, {Key: "exp", Value: time.Now().Add(-time.Second)}}}})
		require.NoError(t, err)
		s2 := reopen(t, s, Options{})
		requireClean(t, s2)
		assert.Equal(t, int64(1), count(t, s2.claims, bson.D{}), "the committed claim is kept")
		_, err = s2.Commit(ctx, store.Batch{Writes: []store.Write{patient("second", "04040412345")}})
		var ce *store.ConflictError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, store.ConflictUnique, ce.Reason)
	})
}

// Making a resource current names the patient it moves from, and a
// resource that moves to another patient is moved (the filter of the
// upsert carries the shard key).
func TestMoveAcrossPatientsWithShardKeyFilter(t *testing.T) {
	s := openDB(t, Options{})
	mustCommit(t, s, put("Flag", "m", "p1", "m1"))
	mustCommit(t, s, put("Flag", "m", "p2", "m2"))
	v, err := s.Read(ctx, "Flag", "m")
	require.NoError(t, err)
	assert.Equal(t, "p2", v.Patient)
	assert.Equal(t, int64(2), v.VersionID)
	// Queue items likewise.
	for _, p := range []string{"p1", "p2"} {
		_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{{Queue: "q", ID: "i", Patient: p, Body: []byte(p)}}})
		require.NoError(t, err)
	}
	var got []store.QueueItem
	require.NoError(t, s.ScanQueue(ctx, "q", func(it store.QueueItem) error { got = append(got, it); return nil }))
	require.Len(t, got, 1)
	assert.Equal(t, "p2", got[0].Patient)
}
