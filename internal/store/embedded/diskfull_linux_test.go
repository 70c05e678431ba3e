package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// TestDiskFull fills a real, small filesystem (a 4 MiB tmpfs) with
// commits until one fails for want of space. Then the failed commit says
// the store is unavailable (not that the request was wrong), Ping says so
// too, and nothing of the failed batch is visible, before or after a
// reopen, while everything acknowledged is. Freeing space makes the store
// ready again without a restart.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a 4 MiB tmpfs on %s to fill (needs root with CAP_SYS_ADMIN): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount the tmpfs on %s: %v", dir, err)
		}
	})
	// Space that can be given back later, as an operator would free it.
	filler := filepath.Join(dir, "filler")
	require.NoError(t, os.WriteFile(filler, make([]byte, 1536<<10), 0o600))

	path := filepath.Join(dir, "kj.db")
	// No free-space reserve: this test is about what a failed commit does.
	opts := Options{Path: path, MinFreeBytes: -1}
	s, err := Open(ctx, opts)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	require.NoError(t, s.Ping(ctx))

	// Random letters: bodies are stored compressed, and 48 KiB of one
	// letter would take a few hundred bytes.
	rnd := rand.New(rand.NewPCG(1, 2))
	letters := make([]byte, 48<<10)
	for i := range letters {
		letters[i] = 'a' + byte(rnd.IntN(26))
	}
	body := string(letters)
	batch := func(i int) store.Batch {
		id := fmt.Sprintf("f%03d", i)
		return store.Batch{
			Writes: []store.Write{{Type: "Flag", ID: id, Op: store.OpPut, Patient: "p1",
				Render: func(int64, time.Time) ([]byte, error) { return fmt.Appendf(nil, `{"id":%q,"note":%q}`, id, body), nil }}},
			Queue: []store.QueueOp{{Queue: "q", ID: id, Patient: "p1", Body: []byte(id)}},
			Audit: []store.AuditEntry{realEntry(i, "p1")},
			Link:  audit.Link,
		}
	}
	acked, failed := 0, error(nil)
	for i := range 200 {
		if _, err := s.Commit(ctx, batch(i)); err != nil {
			failed = err
			break
		}
		acked++
	}
	require.Error(t, failed, "4 MiB should not hold 200 commits of 48 KiB")
	t.Logf("%d commits acknowledged, then: %v", acked, failed)
	assert.ErrorIs(t, failed, store.ErrUnavailable, "a full disk makes the store unavailable")
	assert.True(t, errors.Is(failed, syscall.ENOSPC) || strings.Contains(failed.Error(), syscall.ENOSPC.Error()), "and says why: %v", failed)
	require.Positive(t, acked)

	err = s.Ping(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable)

	check := func(s *Store) {
		t.Helper()
		for i := range acked {
			id := fmt.Sprintf("f%03d", i)
			v, err := s.Read(ctx, "Flag", id)
			require.NoError(t, err, "acknowledged Flag/%s", id)
			assert.Equal(t, int64(1), v.VersionID)
		}
		failedID := fmt.Sprintf("f%03d", acked)
		_, err := s.Read(ctx, "Flag", failedID)
		assert.ErrorIs(t, err, store.ErrNotFound, "the failed commit's write is not visible")
		queued := map[string]bool{}
		require.NoError(t, s.ScanQueue(ctx, "q", func(it store.QueueItem) error {
			queued[it.ID] = true
			return nil
		}))
		assert.Len(t, queued, acked, "one queue item per acknowledged commit")
		assert.False(t, queued[failedID], "the failed commit's queue item is not visible")
		recs, events := scanBodies(t, s)
		assert.Len(t, recs, acked, "one usage-log record per acknowledged commit")
		head, err := audit.VerifyFrom("", events)
		require.NoError(t, err)
		seq, stored, err := s.AuditHead(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(acked), seq, "the chain head did not move for the failed commit")
		assert.Equal(t, stored, head)
	}
	check(s)

	// A restart on the still full disk sees the same.
	require.NoError(t, s.Close())
	s, err = Open(ctx, opts)
	require.NoError(t, err, "the store opens on a full disk")
	check(s)
	// A fresh process knows of no failed commit, and bbolt may reuse
	// pages that earlier commits freed; the next commit that needs new
	// space fails as cleanly as the first.
	var err2 error
	for range 50 {
		if _, err2 = s.Commit(ctx, batch(acked)); err2 != nil {
			break
		}
		acked++
	}
	require.Error(t, err2)
	assert.ErrorIs(t, err2, store.ErrUnavailable)
	err = s.Ping(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable)
	check(s)

	// Space comes back: Ping proves there is room and the store takes
	// writes again, without a restart.
	require.NoError(t, os.Remove(filler))
	require.NoError(t, s.Ping(ctx))
	_, err = s.Commit(ctx, batch(acked))
	require.NoError(t, err)
	acked++
	check(s)
	require.NoError(t, s.Ping(ctx))
}
