package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// batchTests exercise what one Commit makes durable together: resource
// versions, queue items and usage-log records (store.Batch), Unique
// identifiers and the queues. Run includes them.
var batchTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"BatchCommitsAllParts", testBatchCommitsAllParts},
	{"BatchRefusedLeavesNoTrace", testBatchRefusedLeavesNoTrace},
	{"BatchAuditSharesChainWithAppends", testBatchAuditSharesChainWithAppends},
	{"BatchAuditOnly", testBatchAuditOnly},
	{"UniqueAgainstStored", testUniqueAgainstStored},
	{"UniqueWithinBatch", testUniqueWithinBatch},
	{"UniqueFollowsUpdatesAndDeletes", testUniqueFollowsUpdatesAndDeletes},
	{"UniqueMustBeAnIdentifier", testUniqueMustBeAnIdentifier},
	{"QueuePutReplaceRemove", testQueuePutReplaceRemove},
	{"QueueBatchAllOrNothing", testQueueBatchAllOrNothing},
	{"QueueSameItemTwiceRefused", testQueueSameItemTwiceRefused},
	{"PurgeRemovesQueueItems", testPurgeRemovesQueueItems},
}

// scanQueue returns a queue's items by id.
func scanQueue(t *testing.T, s store.Store, queue string) map[string]store.QueueItem {
	t.Helper()
	out := map[string]store.QueueItem{}
	require.NoError(t, s.ScanQueue(ctx, queue, func(it store.QueueItem) error {
		_, dup := out[it.ID]
		assert.False(t, dup, "ScanQueue gives %s/%s twice", it.Queue, it.ID)
		out[it.ID] = it
		return nil
	}), "ScanQueue %s", queue)
	return out
}

// queueState renders a queue for comparison: "id patient body" per item,
// sorted.
func queueState(t *testing.T, s store.Store, queue string) []string {
	t.Helper()
	out := []string{}
	for id, it := range scanQueue(t, s, queue) {
		assert.Equal(t, queue, it.Queue)
		out = append(out, fmt.Sprintf("%s %s %s", id, it.Patient, it.Body))
	}
	slices.Sort(out)
	return out
}

func qput(queue, id, patient, body string) store.QueueOp {
	return store.QueueOp{Queue: queue, ID: id, Patient: patient, Body: []byte(body)}
}

func qdel(queue, id string) store.QueueOp {
	return store.QueueOp{Queue: queue, ID: id, Remove: true}
}

func testBatchCommitsAllParts(t *testing.T, s store.Store) {
	first := appendAudit(t, s, auditEntry("before", "p1", "hpr1", "org1", "0", auditT0))
	vs, err := s.Commit(ctx, store.Batch{
		Writes: []store.Write{putW("Flag", "f1", "p1", "flag"), putW("AllergyIntolerance", "a1", "p1", "allergy")},
		Queue:  []store.QueueOp{qput("notify-outbox", "o1", "p1", `{"events":1}`), qput("other", "x", "", "no patient")},
		Audit: []store.AuditEntry{
			auditEntry("w1", "p1", "hpr1", "org1", "0", auditT0.Add(time.Second)),
			auditEntry("w22", "p1", "hpr1", "org1", "0", auditT0.Add(time.Second)),
		},
		Link: audit.Link,
	})
	require.NoError(t, err)
	require.Len(t, vs, 2, "one version per write, audit and queue add none")
	checkVersion(t, vs[0], "Flag", "f1", "p1", "flag", 1)
	checkVersion(t, vs[1], "AllergyIntolerance", "a1", "p1", "allergy", 1)
	for _, v := range vs {
		got, err := s.Read(ctx, v.Type, v.ID)
		require.NoError(t, err)
		sameVersion(t, v, got)
	}
	assert.Equal(t, []string{`o1 p1 {"events":1}`}, queueState(t, s, "notify-outbox"))
	assert.Equal(t, []string{"x  no patient"}, queueState(t, s, "other"))

	// The entries are in the chain right after the one before, in order,
	// and the whole chain verifies.
	all := scanAll(t, s, 0)
	require.Len(t, all, 3)
	requireHead(t, s, 3, all[2].Hash)
	assert.Equal(t, []string{"before", "w1", "w22"}, []string{eventID(t, all[0].Body), eventID(t, all[1].Body), eventID(t, all[2].Body)})
	_, wantHash, err := audit.Link(first[0].Hash, auditBody("w1"))
	require.NoError(t, err)
	assert.Equal(t, wantHash, all[1].Hash, "linked after the head as it was")
	got, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "p1", AgentHPR: "hpr1"})
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 2, 1}, seqs(got), "the batch's records are indexed like appended ones")
	assert.True(t, got[0].Recorded.Equal(auditT0.Add(time.Second)))
}

// A batch refused for any reason leaves nothing: no version, no identifier,
// no queue item, no usage-log record, the chain head where it was.
func testBatchRefusedLeavesNoTrace(t *testing.T, s store.Store) {
	resources, patients, types := allOrNothingFixture(t, s)
	commit1(t, s, indexed("Patient", "carrier", "carrier", "has the number", nil, fnr+"|12345678901"))
	_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qput("q", "kept", "p1", "v1"), qput("q", "replaced", "p1", "v1")}})
	require.NoError(t, err)
	head := appendAudit(t, s, auditEntry("head", "p1", "", "", "0", auditT0))
	before := takeSnapshot(t, s, resources, patients, types)
	beforeQueue := queueState(t, s, "q")

	stale := putW("Flag", "stale", "p1", "stale v3")
	stale.IfMatch = 1
	create := putW("AllergyIntolerance", "deleted", "p1", "clash")
	create.Create = true
	clash := indexed("Patient", "p3", "p3", "new patient", nil, fnr+"|12345678901")
	clash.Unique = []string{fnr + "|12345678901"}
	bad := store.Write{Type: "Flag", ID: "new2", Op: store.OpPut, Patient: "p1",
		Render: func(int64, time.Time) ([]byte, error) { return nil, errRender }}
	errLink := errors.New("link refused")
	failLink := func(string, []byte) ([]byte, string, error) { return nil, "", errLink }

	cases := []struct {
		name  string
		last  *store.Write
		link  store.LinkFunc
		check func(t *testing.T, err error)
	}{
		{"stale IfMatch", &stale, audit.Link, func(t *testing.T, err error) {
			requireConflict(t, err, store.ConflictVersion, 2, "Flag", "stale", 2)
		}},
		{"Create on existing", &create, audit.Link, func(t *testing.T, err error) {
			requireConflict(t, err, store.ConflictExists, 2, "AllergyIntolerance", "deleted", 2)
		}},
		{"delete of unknown", &store.Write{Type: "Flag", ID: "nope", Op: store.OpDelete}, audit.Link, func(t *testing.T, err error) {
			requireNotFound(t, err, "delete of unknown")
		}},
		{"unique identifier taken", &clash, audit.Link, func(t *testing.T, err error) {
			requireConflict(t, err, store.ConflictUnique, 2, "Patient", "p3", 0)
		}},
		{"render error", &bad, audit.Link, func(t *testing.T, err error) {
			require.ErrorIs(t, err, errRender)
		}},
		{"link error", nil, failLink, func(t *testing.T, err error) {
			require.ErrorIs(t, err, errLink)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writes := []store.Write{putW("Flag", "new1", "p1", "new1"), putW("Flag", "existing", "p2", "moved")}
			if c.last != nil {
				writes = append(writes, *c.last)
			}
			_, err := s.Commit(ctx, store.Batch{
				Writes: writes,
				Queue:  []store.QueueOp{qput("q", "new", "p1", "x"), qput("q", "replaced", "p2", "v2"), qdel("q", "kept")},
				Audit:  []store.AuditEntry{auditEntry("refused1", "p1", "hpr1", "org1", "0", auditT0), auditEntry("refused2", "p2", "hpr1", "org1", "0", auditT0)},
				Link:   c.link,
			})
			require.Error(t, err)
			c.check(t, err)
			assert.Equal(t, before, takeSnapshot(t, s, resources, patients, types), "resources untouched")
			assert.Equal(t, beforeQueue, queueState(t, s, "q"), "queue untouched")
			requireHead(t, s, 1, head[0].Hash)
			got, err := s.SearchAudit(ctx, store.AuditQuery{AgentHPR: "hpr1"})
			require.NoError(t, err)
			assert.Empty(t, got, "no usage-log record of the refused batch")
			assert.Equal(t, []string{"carrier"}, find(t, s, "Patient", fnr+"|12345678901"))
		})
	}
	// The chain goes on from the same head.
	next := appendAudit(t, s, auditEntry("next", "p1", "", "", "0", auditT0))
	assert.Equal(t, int64(2), next[0].Seq)
	requireHead(t, s, 2, next[0].Hash)
}

// Batches with usage-log entries and plain appends, concurrently: one
// chain, every batch's entries consecutive and only with its own write.
func testBatchAuditSharesChainWithAppends(t *testing.T, s store.Store) {
	const workers, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				entries := []store.AuditEntry{
					auditEntry(id+"-a", fmt.Sprint("p", w), "hpr", "org", "0", auditT0),
					auditEntry(id+"-b", fmt.Sprint("p", w), "hpr", "org", "0", auditT0),
				}
				var err error
				if (w+i)%2 == 0 {
					_, err = s.Commit(ctx, store.Batch{
						Writes: []store.Write{putW("Flag", id, fmt.Sprint("p", w), id)},
						Queue:  []store.QueueOp{qput("q", id, fmt.Sprint("p", w), id)},
						Audit:  entries, Link: audit.Link,
					})
				} else {
					_, err = s.AppendAudit(ctx, audit.Link, entries)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all := scanAll(t, s, 0)
	require.Len(t, all, 2*workers*each)
	requireHead(t, s, int64(len(all)), all[len(all)-1].Hash)
	for i := 0; i < len(all); i += 2 {
		a, b := eventID(t, all[i].Body), eventID(t, all[i+1].Body)
		require.True(t, strings.HasSuffix(a, "-a") && b == strings.TrimSuffix(a, "-a")+"-b",
			"records %d and %d are %s and %s: one request's entries are consecutive", i+1, i+2, a, b)
	}
	items := scanQueue(t, s, "q")
	for w := range workers {
		for i := range each {
			id := fmt.Sprintf("w%d-%d", w, i)
			_, err := s.Read(ctx, "Flag", id)
			_, queued := items[id]
			if (w+i)%2 == 0 {
				assert.NoError(t, err, "Flag/%s", id)
				assert.True(t, queued, "queue item %s", id)
			} else {
				requireNotFound(t, err, "Flag/"+id)
				assert.False(t, queued, "queue item %s", id)
			}
		}
	}
}

// A batch of usage-log entries alone is an append.
func testBatchAuditOnly(t *testing.T, s store.Store) {
	vs, err := s.Commit(ctx, store.Batch{Audit: []store.AuditEntry{auditEntry("only", "p1", "hpr1", "org1", "4", auditT0)}, Link: audit.Link})
	require.NoError(t, err)
	assert.Empty(t, vs)
	all := scanAll(t, s, 0)
	require.Len(t, all, 1)
	assert.Equal(t, "4", all[0].Outcome)
	requireHead(t, s, 1, all[0].Hash)

	_, err = s.Commit(ctx, store.Batch{Audit: []store.AuditEntry{auditEntry("nolink", "p1", "", "", "0", auditT0)}})
	require.Error(t, err, "usage-log entries need a link function")
	requireHead(t, s, 1, all[0].Hash)

	vs, err = s.Commit(ctx, store.Batch{})
	require.NoError(t, err, "an empty batch is no error")
	assert.Empty(t, vs)
}

// unique is indexed() with every identifier also Unique.
func unique(typ, id, patient, note string, identifiers ...string) store.Write {
	w := indexed(typ, id, patient, note, nil, identifiers...)
	w.Unique = identifiers
	return w
}

func requireUniqueClash(t *testing.T, err error, index int, typ, id string, current int64, identifier, other string) {
	t.Helper()
	requireConflict(t, err, store.ConflictUnique, index, typ, id, current)
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, identifier, ce.Identifier, "Identifier")
	assert.Equal(t, other, ce.Other, "Other")
}

func testUniqueAgainstStored(t *testing.T, s store.Store) {
	pnr := fnr + "|01017012345"
	commit1(t, s, unique("Patient", "p1", "p1", "Kari", pnr))

	// Another Patient with the same person number is refused, naming the
	// carrier; nothing of its batch is applied.
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		putW("Flag", "f9", "p2", "would come with it"),
		unique("Patient", "p2", "p2", "Ola", pnr),
	}})
	requireUniqueClash(t, err, 1, "Patient", "p2", 0, pnr, "p1")
	_, err = s.Read(ctx, "Patient", "p2")
	requireNotFound(t, err, "the refused Patient")
	_, err = s.Read(ctx, "Flag", "f9")
	requireNotFound(t, err, "the refused batch's other write")
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", pnr))

	// A carrier that did not ask for uniqueness counts too: Unique is
	// about what the other resources carry.
	commit1(t, s, indexed("Patient", "p3", "p3", "carries it plainly", nil, fnr+"|02027012345"))
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{unique("Patient", "p4", "p4", "x", fnr+"|02027012345")}})
	requireUniqueClash(t, err, 0, "Patient", "p4", 0, fnr+"|02027012345", "p3")

	// Types are apart, and a write without Unique may share the value.
	commit1(t, s, unique("Practitioner", "pr1", "", "same value, other type", pnr))
	commit1(t, s, indexed("Patient", "p5", "p5", "no Unique asked", nil, pnr))
	assert.Equal(t, []string{"p1", "p5"}, find(t, s, "Patient", pnr))
	// An update of p1 keeping its number now clashes with p5.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{unique("Patient", "p1", "p1", "Kari v2", pnr)}})
	requireUniqueClash(t, err, 0, "Patient", "p1", 1, pnr, "p5")
}

func testUniqueWithinBatch(t *testing.T, s store.Store) {
	pnr := fnr + "|03037012345"
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		unique("Patient", "a", "a", "first", pnr),
		unique("Patient", "b", "b", "second", pnr),
	}})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, store.ConflictUnique, ce.Reason)
	assert.Equal(t, pnr, ce.Identifier)
	assert.Empty(t, ce.Other, "the other carrier is a write of the same batch")
	for _, id := range []string{"a", "b"} {
		_, err := s.Read(ctx, "Patient", id)
		requireNotFound(t, err, "Patient/"+id)
	}
	assert.Empty(t, find(t, s, "Patient", pnr))

	// One write with Unique and one without carrying the same value: the
	// carrier counts although it did not ask.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{
		indexed("Patient", "c", "c", "plain", nil, pnr),
		unique("Patient", "d", "d", "unique", pnr),
	}})
	requireUniqueClash(t, err, 1, "Patient", "d", 0, pnr, "")

	// The number moves from one Patient to another in one batch: after
	// the batch only the second carries it, which is allowed.
	commit1(t, s, unique("Patient", "old", "old", "v1", pnr))
	vs, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		unique("Patient", "new", "new", "takes it", pnr),
		indexed("Patient", "old", "old", "gives it up", nil),
	}})
	require.NoError(t, err)
	require.Len(t, vs, 2)
	assert.Equal(t, []string{"new"}, find(t, s, "Patient", pnr))

	// So does a batch that deletes the carrier.
	vs, err = s.Commit(ctx, store.Batch{Writes: []store.Write{
		delW("Patient", "new"),
		unique("Patient", "newer", "newer", "takes it from a deleted one", pnr),
	}})
	require.NoError(t, err)
	assert.True(t, vs[0].Deleted)
	assert.Equal(t, []string{"newer"}, find(t, s, "Patient", pnr))
}

func testUniqueFollowsUpdatesAndDeletes(t *testing.T, s store.Store) {
	a, b := fnr+"|04047012345", fnr+"|05057012345"
	commit1(t, s, unique("Patient", "p1", "p1", "v1", a))
	// An update keeping its own number is fine.
	v := commit1(t, s, unique("Patient", "p1", "p1", "v2", a))
	assert.Equal(t, int64(2), v.VersionID)
	// An update changing it frees the old one.
	commit1(t, s, unique("Patient", "p1", "p1", "v3", b))
	commit1(t, s, unique("Patient", "p2", "p2", "takes the freed number", a))
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{unique("Patient", "p3", "p3", "x", b)}})
	requireUniqueClash(t, err, 0, "Patient", "p3", 0, b, "p1")
	// A delete frees it.
	commit1(t, s, delW("Patient", "p1"))
	commit1(t, s, unique("Patient", "p3", "p3", "after the delete", b))
	assert.Equal(t, []string{"p3"}, find(t, s, "Patient", b))
	// Recreating the deleted one with its old number clashes now.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{unique("Patient", "p1", "p1", "back", b)}})
	requireUniqueClash(t, err, 0, "Patient", "p1", 4, b, "p3")
	got, err := s.Read(ctx, "Patient", "p1")
	require.NoError(t, err)
	assert.True(t, got.Deleted, "the refused recreate left the resource deleted")
}

func testUniqueMustBeAnIdentifier(t *testing.T, s store.Store) {
	w := indexed("Patient", "p1", "p1", "x", nil, fnr+"|1")
	w.Unique = []string{fnr + "|2"}
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	require.Error(t, err, "a Unique identifier the write does not carry is refused")
	assert.False(t, errors.Is(err, store.ErrConflict), "it is a caller's mistake, not a conflict: %v", err)
	_, err = s.Read(ctx, "Patient", "p1")
	requireNotFound(t, err, "Patient/p1")
}

func testQueuePutReplaceRemove(t *testing.T, s store.Store) {
	assert.Empty(t, queueState(t, s, "jobs"), "empty queue")
	_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qput("jobs", "j1", "p1", "first")}})
	require.NoError(t, err)
	_, err = s.Commit(ctx, store.Batch{Queue: []store.QueueOp{
		qput("jobs", "j2", "p2", "second"),
		qput("jobs", "j3", "", "about nobody"),
		qput("jobs2", "j1", "p1", "same id, other queue"),
		qput("job", "j9", "p1", "a queue whose name prefixes another"),
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{"j1 p1 first", "j2 p2 second", "j3  about nobody"}, queueState(t, s, "jobs"))
	assert.Equal(t, []string{"j1 p1 same id, other queue"}, queueState(t, s, "jobs2"))
	assert.Equal(t, []string{"j9 p1 a queue whose name prefixes another"}, queueState(t, s, "job"))

	// A put replaces the item, patient included; a removal deletes it;
	// removing what is not there is no error.
	_, err = s.Commit(ctx, store.Batch{Queue: []store.QueueOp{
		qput("jobs", "j1", "p3", "replaced"),
		qdel("jobs", "j2"),
		qdel("jobs", "never-there"),
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{"j1 p3 replaced", "j3  about nobody"}, queueState(t, s, "jobs"))
	_, err = s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qdel("jobs", "j2")}})
	require.NoError(t, err, "removing twice is no error")

	// Items are no resources: they have no versions and no compartment.
	cs, err := s.Compartment(ctx, "p3", "")
	require.NoError(t, err)
	assert.Empty(t, cs)

	// Many items, more than a scan reads at once.
	for c := range 8 {
		var ops []store.QueueOp
		for i := range 150 {
			ops = append(ops, qput("many", fmt.Sprintf("i%d-%03d", c, i), "p1", fmt.Sprint(i)))
		}
		_, err = s.Commit(ctx, store.Batch{Queue: ops})
		require.NoError(t, err)
	}
	assert.Len(t, scanQueue(t, s, "many"), 1200)

	errStop := errors.New("stop")
	n := 0
	err = s.ScanQueue(ctx, "many", func(store.QueueItem) error {
		n++
		return errStop
	})
	assert.ErrorIs(t, err, errStop, "fn's error ends the scan and is returned")
	assert.Equal(t, 1, n)
}

func testQueueBatchAllOrNothing(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "v1")
	_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qput("q", "a", "p1", "a1")}})
	require.NoError(t, err)
	stale := putW("Flag", "f1", "p1", "v2")
	stale.IfMatch = 7
	_, err = s.Commit(ctx, store.Batch{
		Writes: []store.Write{stale},
		Queue:  []store.QueueOp{qput("q", "a", "p1", "a2"), qput("q", "b", "p1", "b1")},
	})
	requireConflict(t, err, store.ConflictVersion, 0, "Flag", "f1", 1)
	assert.Equal(t, []string{"a p1 a1"}, queueState(t, s, "q"), "a conflicting write means no queue change")

	_, err = s.Commit(ctx, store.Batch{
		Writes: []store.Write{putW("Flag", "f1", "p1", "v2")},
		Queue:  []store.QueueOp{qput("q", "a", "p1", "a2"), qput("q", "b", "p1", "b1")},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a p1 a2", "b p1 b1"}, queueState(t, s, "q"))
}

func testQueueSameItemTwiceRefused(t *testing.T, s store.Store) {
	for _, ops := range [][]store.QueueOp{
		{qput("q", "a", "p1", "1"), qput("q", "a", "p1", "2")},
		{qput("q", "a", "p1", "1"), qdel("q", "a")},
	} {
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{putW("Flag", "f1", "p1", "x")}, Queue: ops})
		require.Error(t, err, "two ops on one item in one batch")
		assert.Empty(t, queueState(t, s, "q"))
		_, err = s.Read(ctx, "Flag", "f1")
		requireNotFound(t, err, "Flag/f1 of the refused batch")
	}
	for _, op := range []store.QueueOp{qput("", "a", "", "no queue"), qput("q", "", "", "no id"), qput("a/b", "x", "", "slash"), qput("q", "a/b", "", "slash")} {
		_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{op}})
		assert.Error(t, err, "invalid queue op %+v", op)
	}
}

func testPurgeRemovesQueueItems(t *testing.T, s store.Store) {
	put(t, s, "Flag", "f1", "p1", "p1's flag")
	put(t, s, "Flag", "f2", "p2", "p2's flag")
	_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{
		qput("outbox", "o1", "p1", "p1 one"),
		qput("outbox", "o2", "p1", "p1 two"),
		qput("outbox", "o3", "p2", "p2"),
		qput("outbox", "o4", "", "nobody"),
		qput("status", "s1", "p1", "p1 status"),
		qput("status", "s2", "p11", "a patient whose id starts like p1's"),
	}})
	require.NoError(t, err)
	// An item that moved from p2 to p1 goes with p1; one that moved away
	// from p1 stays.
	_, err = s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qput("outbox", "o3", "p1", "moved to p1"), qput("status", "s1", "p2", "moved to p2")}})
	require.NoError(t, err)

	n, err := s.Purge(ctx, "p1", []string{"Flag"})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the count is of resources; queue items go besides")
	assert.Equal(t, []string{"o4  nobody"}, queueState(t, s, "outbox"))
	assert.Equal(t, []string{"s1 p2 moved to p2", "s2 p11 a patient whose id starts like p1's"}, queueState(t, s, "status"))
	_, err = s.Read(ctx, "Flag", "f2")
	require.NoError(t, err)

	// The index follows: purging p2 now removes what moved to it and
	// nothing else, and new items of p1 are purged again.
	_, err = s.Commit(ctx, store.Batch{Queue: []store.QueueOp{qput("outbox", "o5", "p1", "after the purge")}})
	require.NoError(t, err)
	_, err = s.Purge(ctx, "p2", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"s2 p11 a patient whose id starts like p1's"}, queueState(t, s, "status"))
	assert.Equal(t, []string{"o4  nobody", "o5 p1 after the purge"}, queueState(t, s, "outbox"))
	_, err = s.Purge(ctx, "p1", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"o4  nobody"}, queueState(t, s, "outbox"))
}
