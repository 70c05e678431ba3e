// Package storetest is the behavioural test suite every storage engine must
// pass. An engine's tests call Run with a function that opens a fresh, empty
// store; the suite then exercises the whole store.Store contract the way the
// REST layer relies on it: batches of writes, queue items and usage-log
// records, unique identifiers and queues (batch.go), the usage log and
// maintenance (audit.go; RunAudit runs that part alone).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Run runs the suite. open is called once per subtest and must return a
// fresh, empty store; it is responsible for closing it (t.Cleanup), so that
// an engine can decide how to tear down its own resources.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"CreateThenRead", testCreateThenRead},
		{"ReadUnknown", testReadUnknown},
		{"UpdateIncrementsVersion", testUpdateIncrementsVersion},
		{"TypesAndIDsAreIndependent", testTypesAndIDsAreIndependent},
		{"IfMatch", testIfMatch},
		{"CreateOnExisting", testCreateOnExisting},
		{"Delete", testDelete},
		{"DeleteUnknown", testDeleteUnknown},
		{"DeleteAlreadyDeleted", testDeleteAlreadyDeleted},
		{"DeleteIfMatch", testDeleteIfMatch},
		{"RecreateAfterDelete", testRecreateAfterDelete},
		{"VReadUnknown", testVReadUnknown},
		{"History", testHistory},
		{"HistorySinceAndCount", testHistorySinceAndCount},
		{"Compartment", testCompartment},
		{"CompartmentPatientMoves", testCompartmentPatientMoves},
		{"CommitReturnsVersionsInOrder", testCommitReturnsVersionsInOrder},
		{"CommitAllOrNothingStaleIfMatch", testCommitAllOrNothingStaleIfMatch},
		{"CommitAllOrNothingDeleteUnknown", testCommitAllOrNothingDeleteUnknown},
		{"RenderErrorAbortsCommit", testRenderErrorAbortsCommit},
		{"PutWithoutRenderRefused", testPutWithoutRenderRefused},
		{"SameResourceTwiceRefused", testSameResourceTwiceRefused},
		{"RenderGetsVersionAndTime", testRenderGetsVersionAndTime},
		{"ConcurrentDistinctCommits", testConcurrentDistinctCommits},
		{"ConcurrentIfMatchOneWinner", testConcurrentIfMatchOneWinner},
		{"IndexRoundTrip", testIndexRoundTrip},
		{"FindByIdentifier", testFindByIdentifier},
		{"FindByIdentifierFollowsVersions", testFindByIdentifierFollowsVersions},
		{"FindByIdentifierAllOrNothing", testFindByIdentifierAllOrNothing},
	}
	for _, tc := range append(append(append(tests, batchTests...), onceTests...), raceTests...) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			require.NotNil(t, s, "open returned a nil store")
			tc.fn(t, s)
		})
	}
	RunAudit(t, open)
}

// body is the JSON the suite stores. It embeds the version number and time
// the engine handed to Render, so comparing a stored body with body(...) of
// the returned Version proves Render saw exactly that version and time.
func body(typ, id, note string, versionID int64, lastUpdated time.Time) []byte {
	b, err := json.Marshal(map[string]any{
		"resourceType": typ,
		"id":           id,
		"meta": map[string]any{
			"versionId":   fmt.Sprint(versionID),
			"lastUpdated": lastUpdated.UTC().Format(time.RFC3339Nano),
		},
		"note": note,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func render(typ, id, note string) store.RenderFunc {
	return func(versionID int64, lastUpdated time.Time) ([]byte, error) {
		return body(typ, id, note, versionID, lastUpdated), nil
	}
}

func putW(typ, id, patient, note string) store.Write {
	return store.Write{Type: typ, ID: id, Op: store.OpPut, Patient: patient, Render: render(typ, id, note)}
}

func delW(typ, id string) store.Write {
	return store.Write{Type: typ, ID: id, Op: store.OpDelete}
}

func commit1(t *testing.T, s store.Store, w store.Write) store.Version {
	t.Helper()
	vs, err := s.Commit(context.Background(), store.Batch{Writes: []store.Write{w}})
	require.NoError(t, err, "commit %s/%s", w.Type, w.ID)
	require.Len(t, vs, 1)
	return vs[0]
}

func put(t *testing.T, s store.Store, typ, id, patient, note string) store.Version {
	t.Helper()
	return commit1(t, s, putW(typ, id, patient, note))
}

// checkVersion asserts v is the live (not deleted) version written with note.
func checkVersion(t *testing.T, v store.Version, typ, id, patient, note string, versionID int64) {
	t.Helper()
	assert.Equal(t, typ, v.Type, "Type")
	assert.Equal(t, id, v.ID, "ID")
	assert.Equal(t, versionID, v.VersionID, "VersionID of %s/%s", typ, id)
	assert.False(t, v.Deleted, "Deleted")
	assert.Equal(t, patient, v.Patient, "Patient")
	assert.False(t, v.LastUpdated.IsZero(), "LastUpdated is zero")
	assert.Equal(t, string(body(typ, id, note, v.VersionID, v.LastUpdated)), string(v.Body),
		"Body must be Render's output for this version's number and time")
}

func sameVersion(t *testing.T, want, got store.Version) {
	t.Helper()
	assert.Equal(t, want.Type, got.Type, "Type")
	assert.Equal(t, want.ID, got.ID, "ID")
	assert.Equal(t, want.VersionID, got.VersionID, "VersionID")
	assert.Equal(t, want.Deleted, got.Deleted, "Deleted")
	assert.Equal(t, want.Patient, got.Patient, "Patient")
	assert.True(t, want.LastUpdated.Equal(got.LastUpdated), "LastUpdated: want %v, got %v", want.LastUpdated, got.LastUpdated)
	assert.Equal(t, string(want.Body), string(got.Body), "Body")
}

func requireNotFound(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, "%s: expected not found", what)
	require.True(t, errors.Is(err, store.ErrNotFound), "%s: expected ErrNotFound, got %v", what, err)
}

func requireConflict(t *testing.T, err error, reason store.ConflictReason, index int, typ, id string, current int64) {
	t.Helper()
	require.Error(t, err, "expected a conflict")
	require.True(t, errors.Is(err, store.ErrConflict), "errors.Is(err, ErrConflict) for %v", err)
	var ce *store.ConflictError
	require.True(t, errors.As(err, &ce), "expected *store.ConflictError, got %T: %v", err, err)
	assert.Equal(t, reason, ce.Reason, "Reason")
	assert.Equal(t, index, ce.Index, "Index")
	assert.Equal(t, typ, ce.Type, "Type")
	assert.Equal(t, id, ce.ID, "ID")
	assert.Equal(t, current, ce.Current, "Current")
}

func versionIDs(vs []store.Version) []int64 {
	out := make([]int64, len(vs))
	for i, v := range vs {
		out[i] = v.VersionID
	}
	return out
}

func ids(vs []store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Type + "/" + v.ID
	}
	return out
}

var ctx = context.Background()

func testPing(t *testing.T, s store.Store) {
	require.NoError(t, s.Ping(ctx))
}

func testCreateThenRead(t *testing.T, s store.Store) {
	before := time.Now()
	w := putW("Flag", "f1", "p1", "anaesthesia complication")
	w.Create = true
	v := commit1(t, s, w)
	after := time.Now()
	checkVersion(t, v, "Flag", "f1", "p1", "anaesthesia complication", 1)
	// Engines may round the time (e.g. to milliseconds); a second of slack
	// keeps this about "the commit's time", not about clock precision.
	assert.False(t, v.LastUpdated.Before(before.Add(-time.Second)), "LastUpdated %v before commit started %v", v.LastUpdated, before)
	assert.False(t, v.LastUpdated.After(after.Add(time.Second)), "LastUpdated %v after commit ended %v", v.LastUpdated, after)

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	sameVersion(t, v, got)

	got, err = s.VRead(ctx, "Flag", "f1", 1)
	require.NoError(t, err)
	sameVersion(t, v, got)
}

func testReadUnknown(t *testing.T, s store.Store) {
	_, err := s.Read(ctx, "Flag", "nope")
	requireNotFound(t, err, "Read of unknown")
	put(t, s, "Flag", "f1", "p1", "x")
	_, err = s.Read(ctx, "Flag", "f")
	requireNotFound(t, err, "Read of a prefix of an existing id")
	_, err = s.Read(ctx, "AllergyIntolerance", "f1")
	requireNotFound(t, err, "Read of an existing id under another type")
}

func testUpdateIncrementsVersion(t *testing.T, s store.Store) {
	v1 := put(t, s, "AllergyIntolerance", "a1", "p1", "penicillin")
	v2 := put(t, s, "AllergyIntolerance", "a1", "p1", "penicillin, severe")
	v3 := put(t, s, "AllergyIntolerance", "a1", "p1", "penicillin, anaphylaxis")
	checkVersion(t, v1, "AllergyIntolerance", "a1", "p1", "penicillin", 1)
	checkVersion(t, v2, "AllergyIntolerance", "a1", "p1", "penicillin, severe", 2)
	checkVersion(t, v3, "AllergyIntolerance", "a1", "p1", "penicillin, anaphylaxis", 3)
	assert.False(t, v2.LastUpdated.Before(v1.LastUpdated), "v2 older than v1")
	assert.False(t, v3.LastUpdated.Before(v2.LastUpdated), "v3 older than v2")

	got, err := s.Read(ctx, "AllergyIntolerance", "a1")
	require.NoError(t, err)
	sameVersion(t, v3, got)
	for _, want := range []store.Version{v1, v2, v3} {
		got, err := s.VRead(ctx, "AllergyIntolerance", "a1", want.VersionID)
		require.NoError(t, err)
		sameVersion(t, want, got)
	}
}

func testTypesAndIDsAreIndependent(t *testing.T, s store.Store) {
	put(t, s, "Flag", "x", "p1", "flag x")
	put(t, s, "Flag", "x", "p1", "flag x v2")
	put(t, s, "Flag", "x1", "p1", "flag x1")
	put(t, s, "AllergyIntolerance", "x", "p1", "allergy x")

	for _, c := range []struct {
		typ, id, note string
		version       int64
		history       int
	}{
		{"Flag", "x", "flag x v2", 2, 2},
		{"Flag", "x1", "flag x1", 1, 1},
		{"AllergyIntolerance", "x", "allergy x", 1, 1},
	} {
		got, err := s.Read(ctx, c.typ, c.id)
		require.NoError(t, err)
		checkVersion(t, got, c.typ, c.id, "p1", c.note, c.version)
		h, err := s.History(ctx, c.typ, c.id, store.HistoryQuery{})
		require.NoError(t, err)
		assert.Len(t, h, c.history, "history of %s/%s", c.typ, c.id)
		for _, v := range h {
			assert.Equal(t, c.typ+"/"+c.id, v.Type+"/"+v.ID, "history entry of another resource")
		}
	}
}

func testIfMatch(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	v2 := put(t, s, "Flag", "f1", "p1", "v2")

	w := putW("Flag", "f1", "p1", "stale")
	w.IfMatch = 1
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	requireConflict(t, err, store.ConflictVersion, 0, "Flag", "f1", 2)

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	sameVersion(t, v2, got)
	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	assert.Equal(t, []int64{2, 1}, versionIDs(h), "a failed IfMatch must not add a version")

	w = putW("Flag", "f1", "p1", "fresh")
	w.IfMatch = 2
	v3 := commit1(t, s, w)
	checkVersion(t, v3, "Flag", "f1", "p1", "fresh", 3)

	// IfMatch against a resource that does not exist: the current version is 0.
	w = putW("Flag", "ghost", "p1", "x")
	w.IfMatch = 1
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	requireConflict(t, err, store.ConflictVersion, 0, "Flag", "ghost", 0)
	_, err = s.Read(ctx, "Flag", "ghost")
	requireNotFound(t, err, "Read after failed IfMatch on unknown")
}

func testCreateOnExisting(t *testing.T, s store.Store) {
	v1 := put(t, s, "Flag", "f1", "p1", "original")
	w := putW("Flag", "f1", "p1", "clash")
	w.Create = true
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	requireConflict(t, err, store.ConflictExists, 0, "Flag", "f1", 1)
	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	sameVersion(t, v1, got)

	// A deleted resource still "has a version": a server-assigned id must
	// never be reused.
	commit1(t, s, delW("Flag", "f1"))
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	requireConflict(t, err, store.ConflictExists, 0, "Flag", "f1", 2)
	got, err = s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.True(t, got.Deleted)
	assert.Equal(t, int64(2), got.VersionID)
}

func testDelete(t *testing.T, s store.Store) {
	v1 := put(t, s, "Flag", "f1", "p1", "v1")
	v2 := put(t, s, "Flag", "f1", "p1", "v2")
	d := commit1(t, s, delW("Flag", "f1"))
	assert.Equal(t, "Flag", d.Type)
	assert.Equal(t, "f1", d.ID)
	assert.Equal(t, int64(3), d.VersionID)
	assert.True(t, d.Deleted)
	assert.Empty(t, d.Body, "a deleted version has no body")
	assert.False(t, d.LastUpdated.Before(v2.LastUpdated), "delete older than v2")

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err, "Read of a deleted resource returns its deleted version, not an error")
	assert.True(t, got.Deleted)
	assert.Equal(t, int64(3), got.VersionID)
	assert.Empty(t, got.Body)
	assert.True(t, d.LastUpdated.Equal(got.LastUpdated))

	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 2, 1}, versionIDs(h), "history keeps every version, newest first")
	assert.True(t, h[0].Deleted)
	sameVersion(t, v2, h[1])
	sameVersion(t, v1, h[2])

	for _, want := range []store.Version{v1, v2} {
		got, err := s.VRead(ctx, "Flag", "f1", want.VersionID)
		require.NoError(t, err, "VRead of a version before the delete")
		sameVersion(t, want, got)
	}
	got, err = s.VRead(ctx, "Flag", "f1", 3)
	require.NoError(t, err)
	assert.True(t, got.Deleted)

	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	assert.Empty(t, cs, "a deleted resource leaves its compartment")
}

func testDeleteUnknown(t *testing.T, s store.Store) {
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{delW("Flag", "nope")}})
	requireNotFound(t, err, "delete of unknown")
	var nf *store.NotFoundError
	require.True(t, errors.As(err, &nf), "expected *store.NotFoundError, got %T", err)
	assert.Equal(t, 0, nf.Index)
	assert.Equal(t, "Flag", nf.Type)
	assert.Equal(t, "nope", nf.ID)
	_, err = s.History(ctx, "Flag", "nope", store.HistoryQuery{})
	requireNotFound(t, err, "History after delete of unknown")
}

func testDeleteAlreadyDeleted(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	d := commit1(t, s, delW("Flag", "f1"))
	again, err := s.Commit(ctx, store.Batch{Writes: []store.Write{delW("Flag", "f1")}})
	require.NoError(t, err, "deleting a deleted resource is not an error")
	require.Len(t, again, 1)
	assert.True(t, again[0].Deleted)
	assert.Equal(t, d.VersionID, again[0].VersionID, "no new version for a repeated delete")

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), got.VersionID)
	assert.True(t, got.Deleted)
	assert.True(t, d.LastUpdated.Equal(got.LastUpdated), "a repeated delete must not touch lastUpdated")
	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	assert.Equal(t, []int64{2, 1}, versionIDs(h))
}

func testDeleteIfMatch(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	put(t, s, "Flag", "f1", "p1", "v2")
	w := delW("Flag", "f1")
	w.IfMatch = 1
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	requireConflict(t, err, store.ConflictVersion, 0, "Flag", "f1", 2)
	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.False(t, got.Deleted, "a delete with a stale IfMatch must not apply")
	assert.Equal(t, int64(2), got.VersionID)

	w.IfMatch = 2
	d := commit1(t, s, w)
	assert.True(t, d.Deleted)
	assert.Equal(t, int64(3), d.VersionID)
}

func testRecreateAfterDelete(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	commit1(t, s, delW("Flag", "f1"))
	v3 := put(t, s, "Flag", "f1", "p1", "back again")
	checkVersion(t, v3, "Flag", "f1", "p1", "back again", 3)
	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	sameVersion(t, v3, got)
	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	require.Len(t, cs, 1, "a recreated resource is back in its compartment")
	sameVersion(t, v3, cs[0])
}

func testVReadUnknown(t *testing.T, s store.Store) {
	_, err := s.VRead(ctx, "Flag", "nope", 1)
	requireNotFound(t, err, "VRead of unknown resource")
	put(t, s, "Flag", "f1", "p1", "v1")
	put(t, s, "Flag", "f1", "p1", "v2")
	for _, v := range []int64{0, 3, 100, -1} {
		_, err = s.VRead(ctx, "Flag", "f1", v)
		requireNotFound(t, err, fmt.Sprintf("VRead of version %d", v))
	}
}

func testHistory(t *testing.T, s store.Store) {
	_, err := s.History(ctx, "Flag", "nope", store.HistoryQuery{})
	requireNotFound(t, err, "History of unknown")

	var want []store.Version
	for i := 1; i <= 5; i++ {
		want = append(want, put(t, s, "Flag", "f1", "p1", fmt.Sprintf("edit %d", i)))
	}
	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, 5)
	for i, v := range h {
		sameVersion(t, want[4-i], v)
	}
}

func testHistorySinceAndCount(t *testing.T, s store.Store) {
	var vs []store.Version
	for i := 1; i <= 5; i++ {
		vs = append(vs, put(t, s, "Flag", "f1", "p1", fmt.Sprintf("edit %d", i)))
		// Engines may keep only milliseconds; spacing the versions makes
		// Since able to separate them on any engine.
		time.Sleep(3 * time.Millisecond)
	}
	since := vs[2].LastUpdated
	var want []int64
	for i := len(vs) - 1; i >= 0; i-- {
		if !vs[i].LastUpdated.Before(since) {
			want = append(want, vs[i].VersionID)
		}
	}
	require.Less(t, len(want), 5, "test setup: Since should exclude the oldest versions")

	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{Since: since})
	require.NoError(t, err)
	assert.Equal(t, want, versionIDs(h), "Since is inclusive and keeps newest-first order")
	assert.Contains(t, versionIDs(h), int64(3), "a version updated exactly at Since is included")

	h, err = s.History(ctx, "Flag", "f1", store.HistoryQuery{Count: 2})
	require.NoError(t, err)
	assert.Equal(t, []int64{5, 4}, versionIDs(h), "Count keeps the newest")

	h, err = s.History(ctx, "Flag", "f1", store.HistoryQuery{Since: since, Count: 1})
	require.NoError(t, err)
	assert.Equal(t, []int64{5}, versionIDs(h))

	h, err = s.History(ctx, "Flag", "f1", store.HistoryQuery{Count: 100})
	require.NoError(t, err)
	assert.Equal(t, []int64{5, 4, 3, 2, 1}, versionIDs(h))

	h, err = s.History(ctx, "Flag", "f1", store.HistoryQuery{Since: vs[4].LastUpdated.Add(time.Hour)})
	require.NoError(t, err, "an existing resource with nothing after Since is an empty history, not not-found")
	assert.Empty(t, h)
}

func testCompartment(t *testing.T, s store.Store) {
	// Inserted out of order: the compartment must come back sorted by id.
	for _, id := range []string{"c", "a", "b10", "b2"} {
		put(t, s, "Flag", id, "p1", "flag "+id)
	}
	put(t, s, "Flag", "b2", "p1", "flag b2 updated")
	put(t, s, "Flag", "z", "p1", "soon deleted")
	commit1(t, s, delW("Flag", "z"))
	put(t, s, "AllergyIntolerance", "a", "p1", "allergy of p1")
	put(t, s, "Patient", "p1", "p1", "the patient")
	// "p10" shares a prefix with "p1": its resources must not leak in.
	put(t, s, "Flag", "aa", "p10", "flag of p10")
	put(t, s, "Flag", "ab", "p2", "flag of p2")
	put(t, s, "Flag", "ac", "", "flag outside any record")

	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	require.Equal(t, []string{"Flag/a", "Flag/b10", "Flag/b2", "Flag/c"}, ids(cs))
	for _, v := range cs {
		note := "flag " + v.ID
		var ver int64 = 1
		if v.ID == "b2" {
			note, ver = "flag b2 updated", 2
		}
		checkVersion(t, v, "Flag", v.ID, "p1", note, ver)
	}

	cs, err = s.Compartment(ctx, "p1", "AllergyIntolerance")
	require.NoError(t, err)
	require.Equal(t, []string{"AllergyIntolerance/a"}, ids(cs))
	checkVersion(t, cs[0], "AllergyIntolerance", "a", "p1", "allergy of p1", 1)

	cs, err = s.Compartment(ctx, "p1", "Patient")
	require.NoError(t, err)
	require.Equal(t, []string{"Patient/p1"}, ids(cs), "a Patient is in its own compartment")

	cs, err = s.Compartment(ctx, "p10", "Flag")
	require.NoError(t, err)
	assert.Equal(t, []string{"Flag/aa"}, ids(cs))

	cs, err = s.Compartment(ctx, "p2", "Flag")
	require.NoError(t, err)
	assert.Equal(t, []string{"Flag/ab"}, ids(cs))

	cs, err = s.Compartment(ctx, "p1", "MedicationStatement")
	require.NoError(t, err)
	assert.Empty(t, cs)

	cs, err = s.Compartment(ctx, "nobody", "Flag")
	require.NoError(t, err, "an empty compartment is not an error")
	assert.Empty(t, cs)
}

func testCompartmentPatientMoves(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "filed under the wrong patient")
	put(t, s, "Flag", "f2", "p1", "stays")
	moved := put(t, s, "Flag", "f1", "p2", "moved to the right patient")

	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	assert.Equal(t, []string{"Flag/f2"}, ids(cs), "the old patient no longer lists the moved resource")
	cs, err = s.Compartment(ctx, "p2", "Flag")
	require.NoError(t, err)
	require.Equal(t, []string{"Flag/f1"}, ids(cs))
	sameVersion(t, moved, cs[0])

	// The old version still tells which patient it belonged to then.
	old, err := s.VRead(ctx, "Flag", "f1", 1)
	require.NoError(t, err)
	assert.Equal(t, "p1", old.Patient)

	put(t, s, "Flag", "f1", "", "no longer in any record")
	cs, err = s.Compartment(ctx, "p2", "Flag")
	require.NoError(t, err)
	assert.Empty(t, cs)
}

func testCommitReturnsVersionsInOrder(t *testing.T, s store.Store) {
	put(t, s, "Flag", "old", "p1", "old v1")
	put(t, s, "Flag", "gone", "p1", "to be deleted")
	vs, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Patient", "p1", "p1", "patient"),
		putW("Flag", "old", "p1", "old v2"),
		delW("Flag", "gone"),
		putW("AllergyIntolerance", "a1", "p1", "allergy"),
	}})

	require.NoError(t, err)
	require.Len(t, vs, 4)
	checkVersion(t, vs[0], "Patient", "p1", "p1", "patient", 1)
	checkVersion(t, vs[1], "Flag", "old", "p1", "old v2", 2)
	assert.Equal(t, "Flag/gone", vs[2].Type+"/"+vs[2].ID)
	assert.True(t, vs[2].Deleted)
	assert.Equal(t, int64(2), vs[2].VersionID)
	checkVersion(t, vs[3], "AllergyIntolerance", "a1", "p1", "allergy", 1)
	for _, v := range vs {
		got, err := s.Read(ctx, v.Type, v.ID)
		require.NoError(t, err)
		sameVersion(t, v, got)
	}
}

// snapshot captures everything observable about a set of resources and
// patients, so a failed commit can be shown to have left no trace at all.
type snapshot struct {
	reads       map[string]string
	histories   map[string][]int64
	compartment map[string][]string
}

func takeSnapshot(t *testing.T, s store.Store, resources [][2]string, patients, types []string) snapshot {
	t.Helper()
	sn := snapshot{map[string]string{}, map[string][]int64{}, map[string][]string{}}
	for _, r := range resources {
		key := r[0] + "/" + r[1]
		v, err := s.Read(ctx, r[0], r[1])
		if errors.Is(err, store.ErrNotFound) {
			sn.reads[key] = "not found"
		} else {
			require.NoError(t, err)
			sn.reads[key] = fmt.Sprintf("v%d deleted=%v patient=%s %s", v.VersionID, v.Deleted, v.Patient, v.Body)
		}
		h, err := s.History(ctx, r[0], r[1], store.HistoryQuery{})
		if errors.Is(err, store.ErrNotFound) {
			sn.histories[key] = nil
		} else {
			require.NoError(t, err)
			sn.histories[key] = versionIDs(h)
		}
	}
	for _, p := range patients {
		for _, typ := range types {
			cs, err := s.Compartment(ctx, p, typ)
			require.NoError(t, err)
			var out []string
			for _, v := range cs {
				out = append(out, fmt.Sprintf("%s/%s v%d", v.Type, v.ID, v.VersionID))
			}
			sn.compartment[p+" "+typ] = out
		}
	}
	return sn
}

func allOrNothingFixture(t *testing.T, s store.Store) (resources [][2]string, patients, types []string) {
	put(t, s, "Flag", "existing", "p1", "existing v1")
	put(t, s, "Flag", "stale", "p1", "stale v1")
	put(t, s, "Flag", "stale", "p1", "stale v2")
	put(t, s, "AllergyIntolerance", "deleted", "p1", "will be deleted")
	commit1(t, s, delW("AllergyIntolerance", "deleted"))
	resources = [][2]string{
		{"Flag", "existing"}, {"Flag", "stale"}, {"Flag", "new1"}, {"Flag", "new2"},
		{"AllergyIntolerance", "deleted"}, {"AllergyIntolerance", "new3"}, {"Patient", "p3"},
	}
	return resources, []string{"p1", "p2", "p3"}, []string{"Flag", "AllergyIntolerance", "Patient"}
}

func testCommitAllOrNothingStaleIfMatch(t *testing.T, s store.Store) {
	resources, patients, types := allOrNothingFixture(t, s)
	before := takeSnapshot(t, s, resources, patients, types)

	stale := putW("Flag", "stale", "p1", "stale v3")
	stale.IfMatch = 1
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Flag", "new1", "p1", "new1"),
		putW("Flag", "existing", "p2", "existing moved to p2"),
		putW("AllergyIntolerance", "deleted", "p1", "recreated"),
		putW("Patient", "p3", "p3", "new patient"),
		stale,
		putW("Flag", "new2", "p3", "new2"),
	}})

	requireConflict(t, err, store.ConflictVersion, 4, "Flag", "stale", 2)

	after := takeSnapshot(t, s, resources, patients, types)
	assert.Equal(t, before, after, "a commit with one stale IfMatch must leave nothing behind")
}

func testCommitAllOrNothingDeleteUnknown(t *testing.T, s store.Store) {
	resources, patients, types := allOrNothingFixture(t, s)
	before := takeSnapshot(t, s, resources, patients, types)

	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Flag", "new1", "p1", "new1"),
		delW("Flag", "existing"),
		delW("Flag", "nope"),
		putW("Patient", "p3", "p3", "new patient"),
	}})

	requireNotFound(t, err, "commit with a delete of unknown")
	var nf *store.NotFoundError
	require.True(t, errors.As(err, &nf), "expected *store.NotFoundError, got %T", err)
	assert.Equal(t, 2, nf.Index)
	assert.Equal(t, "nope", nf.ID)

	after := takeSnapshot(t, s, resources, patients, types)
	assert.Equal(t, before, after, "a commit with a delete of an unknown resource must leave nothing behind")

	w := putW("Flag", "existing", "p1", "clash")
	w.Create = true
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{putW("Flag", "new1", "p1", "new1"), w}})
	requireConflict(t, err, store.ConflictExists, 1, "Flag", "existing", 1)
	after = takeSnapshot(t, s, resources, patients, types)
	assert.Equal(t, before, after, "a commit with a clashing Create must leave nothing behind")
}

var errRender = errors.New("storetest: render refused")

func testRenderErrorAbortsCommit(t *testing.T, s store.Store) {
	resources, patients, types := allOrNothingFixture(t, s)
	before := takeSnapshot(t, s, resources, patients, types)

	bad := store.Write{Type: "Flag", ID: "new2", Op: store.OpPut, Patient: "p1",
		Render: func(int64, time.Time) ([]byte, error) { return nil, errRender }}
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Flag", "new1", "p1", "new1"),
		putW("Flag", "existing", "p1", "existing v2"),
		delW("Flag", "stale"),
		bad,
		putW("Patient", "p3", "p3", "new patient"),
	}})

	require.Error(t, err)
	assert.True(t, errors.Is(err, errRender), "the Render error must be wrapped, got %v", err)
	assert.False(t, errors.Is(err, store.ErrConflict), "a render error is not a conflict")

	after := takeSnapshot(t, s, resources, patients, types)
	assert.Equal(t, before, after, "a Render error must abort the whole commit")
}

func testPutWithoutRenderRefused(t *testing.T, s store.Store) {
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Flag", "ok", "p1", "fine"),
		{Type: "Flag", ID: "norender", Op: store.OpPut, Patient: "p1"},
	}})

	require.Error(t, err, "OpPut without Render must be refused")
	_, err = s.Read(ctx, "Flag", "ok")
	requireNotFound(t, err, "Read after refused commit")
}

func testSameResourceTwiceRefused(t *testing.T, s store.Store) {
	v1 := put(t, s, "Flag", "f1", "p1", "v1")
	for _, writes := range [][]store.Write{
		{putW("Flag", "f1", "p1", "a"), putW("Flag", "f1", "p1", "b")},
		{putW("Flag", "f1", "p1", "a"), delW("Flag", "f1")},
		{putW("Flag", "new", "p1", "a"), putW("Flag", "other", "p1", "b"), putW("Flag", "new", "p1", "c")},
	} {
		_, err := s.Commit(ctx, store.Batch{Writes: writes})
		require.Error(t, err, "two writes to the same resource in one commit must be refused")
		got, err := s.Read(ctx, "Flag", "f1")
		require.NoError(t, err)
		sameVersion(t, v1, got)
		for _, id := range []string{"new", "other"} {
			_, err = s.Read(ctx, "Flag", id)
			requireNotFound(t, err, "Read after refused commit")
		}
	}
	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	assert.Equal(t, []int64{1}, versionIDs(h))
}

func testRenderGetsVersionAndTime(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	type call struct {
		version int64
		at      time.Time
	}
	var mu sync.Mutex
	var calls []call
	out := []byte(`{"resourceType":"Flag","id":"f1","text":"exact bytes, kept as given"}`)
	w := store.Write{Type: "Flag", ID: "f1", Op: store.OpPut, Patient: "p1",
		Render: func(v int64, at time.Time) ([]byte, error) {
			mu.Lock()
			calls = append(calls, call{v, at})
			mu.Unlock()
			return out, nil
		}}
	v := commit1(t, s, w)
	mu.Lock()
	require.NotEmpty(t, calls, "Render was not called")
	last := calls[len(calls)-1]
	mu.Unlock()
	assert.Equal(t, int64(2), last.version)
	assert.Equal(t, int64(2), v.VersionID)
	assert.True(t, last.at.Equal(v.LastUpdated), "Render got %v, Version has %v", last.at, v.LastUpdated)
	assert.Equal(t, string(out), string(v.Body))

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.Equal(t, string(out), string(got.Body), "Read returns exactly what Render produced")
	assert.True(t, last.at.Equal(got.LastUpdated))
	got, err = s.VRead(ctx, "Flag", "f1", 2)
	require.NoError(t, err)
	assert.Equal(t, string(out), string(got.Body))
}

func testConcurrentDistinctCommits(t *testing.T, s store.Store) {
	const workers, perWorker = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	results := make([][]store.Version, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			patient := fmt.Sprintf("cp%d", w)
			for i := 0; i < perWorker; i++ {
				id := fmt.Sprintf("w%d-%02d", w, i)
				writes := []store.Write{putW("Flag", id, patient, "note "+id)}
				// Every other commit carries two writes so that groups mix
				// single- and multi-write commits.
				if i%2 == 1 {
					writes = append(writes, putW("AllergyIntolerance", id, patient, "allergy "+id))
				}
				vs, err := s.Commit(ctx, store.Batch{Writes: writes})
				if err != nil {
					errs <- fmt.Errorf("worker %d commit %d: %w", w, i, err)
					continue
				}
				results[w] = append(results[w], vs...)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.False(t, t.Failed())

	for w := 0; w < workers; w++ {
		require.Len(t, results[w], perWorker+perWorker/2)
		patient := fmt.Sprintf("cp%d", w)
		var wantFlags []string
		for i := 0; i < perWorker; i++ {
			id := fmt.Sprintf("w%d-%02d", w, i)
			wantFlags = append(wantFlags, "Flag/"+id)
			got, err := s.Read(ctx, "Flag", id)
			require.NoError(t, err, "acknowledged write Flag/%s is not readable", id)
			checkVersion(t, got, "Flag", id, patient, "note "+id, 1)
		}
		cs, err := s.Compartment(ctx, patient, "Flag")
		require.NoError(t, err)
		sort.Strings(wantFlags)
		assert.Equal(t, wantFlags, ids(cs))
		cs, err = s.Compartment(ctx, patient, "AllergyIntolerance")
		require.NoError(t, err)
		assert.Len(t, cs, perWorker/2)
	}
}

func testConcurrentIfMatchOneWinner(t *testing.T, s store.Store) {
	const workers, rounds = 8, 10
	put(t, s, "Flag", "hot", "p1", "start")
	winners := make([]int, rounds) // round -> winning worker
	for r := 0; r < rounds; r++ {
		expect := int64(r + 1)
		var wg sync.WaitGroup
		start := make(chan struct{})
		type outcome struct {
			worker int
			v      store.Version
			err    error
		}
		out := make(chan outcome, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				wr := putW("Flag", "hot", "p1", fmt.Sprintf("round %d worker %d", r, w))
				wr.IfMatch = expect
				<-start
				vs, err := s.Commit(ctx, store.Batch{Writes: []store.Write{wr}})
				o := outcome{worker: w, err: err}
				if err == nil {
					o.v = vs[0]
				}
				out <- o
			}(w)
		}
		close(start)
		wg.Wait()
		close(out)
		won := 0
		for o := range out {
			if o.err == nil {
				won++
				winners[r] = o.worker
				assert.Equal(t, expect+1, o.v.VersionID, "round %d: winner's version", r)
				continue
			}
			var ce *store.ConflictError
			if assert.True(t, errors.As(o.err, &ce), "round %d worker %d: loser must get a ConflictError, got %v", r, o.worker, o.err) {
				assert.Contains(t, []store.ConflictReason{store.ConflictVersion, store.ConflictBusy}, ce.Reason)
			}
		}
		require.Equal(t, 1, won, "round %d: exactly one IfMatch=%d update must win", r, expect)
	}

	got, err := s.Read(ctx, "Flag", "hot")
	require.NoError(t, err)
	assert.Equal(t, int64(rounds+1), got.VersionID)
	h, err := s.History(ctx, "Flag", "hot", store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, rounds+1, "no lost and no extra versions")
	for i, v := range h {
		version := int64(rounds + 1 - i)
		require.Equal(t, version, v.VersionID)
		if version == 1 {
			continue
		}
		r := int(version) - 2
		checkVersion(t, v, "Flag", "hot", "p1", fmt.Sprintf("round %d worker %d", r, winners[r]), version)
	}
}

// indexed is putW with a search index and identifiers.
func indexed(typ, id, patient, note string, index []byte, identifiers ...string) store.Write {
	w := putW(typ, id, patient, note)
	w.Index, w.Identifiers = index, identifiers
	return w
}

func find(t *testing.T, s store.Store, typ, identifier string) []string {
	t.Helper()
	got, err := s.FindByIdentifier(ctx, typ, identifier)
	require.NoError(t, err, "FindByIdentifier %s %s", typ, identifier)
	if got == nil {
		got = []string{}
	}
	return got
}

func testIndexRoundTrip(t *testing.T, s store.Store) {
	// Arbitrary bytes, NULs and high bytes included: the index is opaque.
	ix1 := []byte{1, 0, 2, 0xff, 'a', 0, 0}
	ix2 := []byte("second version's index \x00\xfe")
	v1 := commit1(t, s, indexed("Flag", "f1", "p1", "v1", ix1))
	assert.Equal(t, ix1, v1.Index, "Commit returns the index")
	v2 := commit1(t, s, indexed("Flag", "f1", "p1", "v2", ix2))
	assert.Equal(t, ix2, v2.Index)
	checkVersion(t, v2, "Flag", "f1", "p1", "v2", 2)

	got, err := s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.Equal(t, ix2, got.Index, "Read")
	checkVersion(t, got, "Flag", "f1", "p1", "v2", 2)
	// A superseded version comes with its own index or none (the reader
	// derives it), never with another version's.
	ownOrNone := func(want, got []byte, what string) {
		t.Helper()
		if len(got) > 0 {
			assert.Equal(t, want, got, what)
		}
	}
	got, err = s.VRead(ctx, "Flag", "f1", 1)
	require.NoError(t, err)
	ownOrNone(ix1, got.Index, "VRead of the older version")
	checkVersion(t, got, "Flag", "f1", "p1", "v1", 1)
	got, err = s.VRead(ctx, "Flag", "f1", 2)
	require.NoError(t, err)
	assert.Equal(t, ix2, got.Index, "VRead of the current version")
	h, err := s.History(ctx, "Flag", "f1", store.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, 2)
	assert.Equal(t, ix2, h[0].Index, "History")
	ownOrNone(ix1, h[1].Index, "History")
	cs, err := s.Compartment(ctx, "p1", "Flag")
	require.NoError(t, err)
	require.Len(t, cs, 1)
	assert.Equal(t, ix2, cs[0].Index, "Compartment")

	// Without an index, none comes back.
	plain := put(t, s, "Flag", "f2", "p1", "no index")
	assert.Empty(t, plain.Index)
	got, err = s.Read(ctx, "Flag", "f2")
	require.NoError(t, err)
	assert.Empty(t, got.Index)

	// A deleted version has no index; the older ones keep theirs.
	d := commit1(t, s, delW("Flag", "f1"))
	assert.Empty(t, d.Index)
	got, err = s.Read(ctx, "Flag", "f1")
	require.NoError(t, err)
	assert.True(t, got.Deleted)
	assert.Empty(t, got.Index)
	got, err = s.VRead(ctx, "Flag", "f1", 2)
	require.NoError(t, err)
	ownOrNone(ix2, got.Index, "VRead of the version the delete superseded")
	checkVersion(t, got, "Flag", "f1", "p1", "v2", 2)
}

const fnr = "urn:oid:2.16.578.1.12.4.1.4.1"

func testFindByIdentifier(t *testing.T, s store.Store) {
	commit1(t, s, indexed("Patient", "p1", "p1", "one", nil, fnr+"|01017012345", "urn:other|a"))
	commit1(t, s, indexed("Patient", "p10", "p10", "ten", nil, fnr+"|010170123456"))
	commit1(t, s, indexed("Patient", "p2", "p2", "two", nil, fnr+"|02027012345"))
	// Same identifier on another type: types are apart.
	commit1(t, s, indexed("Flag", "f1", "p1", "flag", nil, fnr+"|01017012345"))
	// Two patients sharing an identifier come back sorted by id,
	// whatever the order they were written in.
	commit1(t, s, indexed("Patient", "pb", "pb", "b", nil, "urn:shared|x"))
	commit1(t, s, indexed("Patient", "pa", "pa", "a", nil, "urn:shared|x", "urn:shared|x"))
	// No system.
	commit1(t, s, indexed("Patient", "p3", "p3", "three", nil, "|local-7"))

	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", fnr+"|01017012345"))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", "urn:other|a"))
	assert.Equal(t, []string{"p10"}, find(t, s, "Patient", fnr+"|010170123456"), "a longer value is another identifier")
	assert.Equal(t, []string{"p2"}, find(t, s, "Patient", fnr+"|02027012345"))
	assert.Equal(t, []string{"f1"}, find(t, s, "Flag", fnr+"|01017012345"))
	assert.Equal(t, []string{"pa", "pb"}, find(t, s, "Patient", "urn:shared|x"))
	assert.Equal(t, []string{"p3"}, find(t, s, "Patient", "|local-7"))
	for _, miss := range []string{
		fnr + "|0101701234", // a prefix of a stored value
		fnr + "|",
		fnr,
		"01017012345",
		"urn:other|A", // exact comparison
		"",
		`{"$gt":""}`,
		`.*`,
	} {
		assert.Empty(t, find(t, s, "Patient", miss), "identifier %q", miss)
	}
	assert.Empty(t, find(t, s, "Encounter", fnr+"|01017012345"))
	assert.Empty(t, find(t, s, "Patient", "urn:nobody|1"))
}

func testFindByIdentifierFollowsVersions(t *testing.T, s store.Store) {
	a, b, c := fnr+"|11111111111", fnr+"|22222222222", "urn:kept|k"
	commit1(t, s, indexed("Patient", "p1", "p1", "v1", nil, a, c))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", a))

	// An update that changes the identifier: the old one finds it no more.
	commit1(t, s, indexed("Patient", "p1", "p1", "v2", nil, b, c))
	assert.Empty(t, find(t, s, "Patient", a), "an identifier the current version lost")
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", b))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", c), "an identifier kept across versions")

	// An update without identifiers drops them all.
	commit1(t, s, indexed("Patient", "p1", "p1", "v3", nil))
	assert.Empty(t, find(t, s, "Patient", b))
	assert.Empty(t, find(t, s, "Patient", c))
	commit1(t, s, indexed("Patient", "p1", "p1", "v4", nil, b))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", b))

	// A deleted resource is found by none.
	commit1(t, s, delW("Patient", "p1"))
	assert.Empty(t, find(t, s, "Patient", b))
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{delW("Patient", "p1")}})
	require.NoError(t, err)
	assert.Empty(t, find(t, s, "Patient", b))

	// Recreated, it is found by what the new version carries.
	commit1(t, s, indexed("Patient", "p1", "p1", "v6", nil, a))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", a))
	assert.Empty(t, find(t, s, "Patient", b))

	// The identifier moves to another resource.
	commit1(t, s, indexed("Patient", "p1", "p1", "v7", nil))
	commit1(t, s, indexed("Patient", "p2", "p2", "v1", nil, a))
	assert.Equal(t, []string{"p2"}, find(t, s, "Patient", a))
}

func testFindByIdentifierAllOrNothing(t *testing.T, s store.Store) {
	old, changed, fresh := fnr+"|33333333333", fnr+"|44444444444", fnr+"|55555555555"
	commit1(t, s, indexed("Patient", "p1", "p1", "v1", nil, old))
	commit1(t, s, indexed("Patient", "gone", "gone", "v1", nil, "urn:gone|1"))
	put(t, s, "Flag", "stale", "p1", "v1")
	put(t, s, "Flag", "stale", "p1", "v2")

	stale := putW("Flag", "stale", "p1", "v3")
	stale.IfMatch = 1
	bad := store.Write{Type: "Flag", ID: "bad", Op: store.OpPut, Patient: "p1",
		Render: func(int64, time.Time) ([]byte, error) { return nil, errRender }}
	for name, last := range map[string]store.Write{"stale IfMatch": stale, "render error": bad, "delete of unknown": delW("Flag", "nope")} {
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
			indexed("Patient", "p1", "p1", "v2", nil, changed),
			indexed("Patient", "p9", "p9", "new", nil, fresh),
			delW("Patient", "gone"),
			indexed("Flag", "f9", "p9", "new", nil, fresh),
			last,
		}})

		require.Error(t, err, name)
		assert.Equal(t, []string{"p1"}, find(t, s, "Patient", old), "%s: the failed commit's update left the old identifier", name)
		assert.Empty(t, find(t, s, "Patient", changed), "%s: no entry for the failed update's identifier", name)
		assert.Empty(t, find(t, s, "Patient", fresh), "%s: no entry for the failed create", name)
		assert.Empty(t, find(t, s, "Flag", fresh), "%s", name)
		assert.Equal(t, []string{"gone"}, find(t, s, "Patient", "urn:gone|1"), "%s: the failed delete removed nothing", name)
	}
}
