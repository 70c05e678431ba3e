package embedded

import (
	"context"

	"github.com/kjernejournal/kjernejournal/internal/keylock"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// runPrecondition orders the commits that carry a Batch.Precondition by
// their writes' Guards: it takes the locks of b's Guards, runs
// b.Precondition and returns the function that releases the locks once
// the commit is done. One process owns the file (its lock), so a lock
// held from the precondition until the commit is durable is all "the
// later commit checks after the earlier one is applied" needs. The
// precondition runs before the request reaches the committer, outside its
// bbolt transaction: its reads open their own, which inside the writer's
// transaction could deadlock bbolt's remapping.
func runPrecondition(ctx context.Context, guards *keylock.Striped, b *store.Batch) (func(), error) {
	var keys []string
	for _, w := range b.Writes {
		if w.Guard != "" {
			keys = append(keys, w.Type+"\x00"+w.Guard)
		}
	}
	release := guards.Lock(keys...)
	if err := b.Precondition(ctx); err != nil {
		release()
		return nil, err
	}
	return release, nil
}
