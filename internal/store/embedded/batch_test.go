package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Requests refused in the middle of a group take their queue items and
// usage-log entries with them, while their neighbours' stay, linked in
// one unbroken chain.
func TestRefusedBatchesInAGroupLeaveNoQueueItemOrRecord(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "anchor", "p1", "v1")}})
	require.NoError(t, err)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "anchor", "p1", "v2")}})
	require.NoError(t, err)

	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			second := put("Flag", "anchor", "p1", "never")
			second.IfMatch = 1 // stale: anchor is at 2
			if i%2 == 0 {
				second = put("AllergyIntolerance", fmt.Sprintf("ok%d", i), "p2", "fine")
			}
			_, errs[i] = s.Commit(ctx, store.Batch{
				Writes: []store.Write{put("Flag", fmt.Sprintf("r%d", i), "p2", "x"), second},
				Queue:  []store.QueueOp{{Queue: "q", ID: fmt.Sprint(i), Patient: "p2", Body: []byte("x")}},
				Audit:  []store.AuditEntry{realEntry(i, "p2"), realEntry(1000+i, "p2")},
				Link:   audit.Link,
			})
		})
	}
	wg.Wait()
	queued := map[string]bool{}
	require.NoError(t, s.ScanQueue(ctx, "q", func(it store.QueueItem) error {
		queued[it.ID] = true
		return nil
	}))
	for i := range n {
		if i%2 == 0 {
			require.NoError(t, errs[i])
			assert.True(t, queued[fmt.Sprint(i)], "queue item of committed request %d", i)
		} else {
			var ce *store.ConflictError
			require.ErrorAs(t, errs[i], &ce)
			assert.False(t, queued[fmt.Sprint(i)], "queue item of refused request %d", i)
		}
	}
	recs, events := scanBodies(t, s)
	require.Len(t, recs, n, "two records for each of the n/2 committed requests")
	head, err := audit.VerifyFrom("", events)
	require.NoError(t, err)
	seq, stored, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(n), seq)
	assert.Equal(t, stored, head)
	evID := regexp.MustCompile(`"ev-(\d+)"`)
	for i := 0; i < n; i += 2 {
		// realEntry(k) and realEntry(1000+k) of one request are adjacent.
		a, b := evID.FindSubmatch(recs[i].Body), evID.FindSubmatch(recs[i+1].Body)
		require.NotNil(t, a)
		require.NotNil(t, b)
		k, err := strconv.Atoi(string(a[1]))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(1000+k), string(b[1]), "records %d and %d come from one request", i+1, i+2)
		assert.Zero(t, k%2, "record %d is of a committed request", i+1)
	}
}

// Concurrent creates of Patients with the same person number: the
// committer checks each against the ones applied before it in the same
// group, so exactly one is created.
func TestUniqueConcurrentCreatesOneWins(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	const n = 32
	pnr := "urn:oid:2.16.578.1.12.4.1.4.1|01017012345"
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			w := put("Patient", fmt.Sprint("p", i), fmt.Sprint("p", i), "x")
			w.Identifiers, w.Unique = []string{pnr}, []string{pnr}
			<-start
			_, errs[i] = s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
		})
	}
	close(start)
	wg.Wait()
	ids, err := s.FindByIdentifier(ctx, "Patient", pnr)
	require.NoError(t, err)
	require.Len(t, ids, 1, "exactly one Patient carries the number")
	for i, err := range errs {
		if fmt.Sprint("p", i) == ids[0] {
			require.NoError(t, err)
			continue
		}
		var ce *store.ConflictError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, store.ConflictUnique, ce.Reason)
		assert.Equal(t, ids[0], ce.Other)
		_, rerr := s.Read(ctx, "Patient", fmt.Sprint("p", i))
		assert.ErrorIs(t, rerr, store.ErrNotFound)
	}
	t.Logf("%d commits in %d groups", s.Stats().Requests, s.Stats().Groups)
}

// Ping reports the store unavailable when the filesystem has less room
// than MinFreeBytes, whatever the disk: no filesystem has MaxInt64 bytes
// free.
func TestPingMinFreeBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Path: filepath.Join(dir, "kj.db"), MinFreeBytes: math.MaxInt64})
	require.NoError(t, err)
	defer s.Close()
	err = s.Ping(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable)
	assert.Contains(t, err.Error(), "MinFreeBytes")
	// Reads and writes are not refused by the store itself: Ping is what
	// tells a load balancer to stop sending them.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f1", "p1", "x")}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	free, known, err := freeBytes(dir)
	require.NoError(t, err)
	require.True(t, known, "free space is known on this platform")
	s, err = Open(ctx, Options{Path: filepath.Join(dir, "kj.db"), MinFreeBytes: int64(free / 2)})
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx), "half of what is free is there")
	require.NoError(t, s.Close())

	s, err = Open(ctx, Options{Path: filepath.Join(dir, "kj.db"), MinFreeBytes: -1})
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx), "no check")
	require.NoError(t, s.Close())
	err = s.Ping(ctx)
	assert.ErrorIs(t, err, store.ErrUnavailable, "a closed store is unavailable")
	assert.True(t, errors.Is(err, ErrClosed), "and says why: %v", err)
}
