package embedded

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// guardLocks order the commits that carry a Batch.Precondition by their
// writes' Guards. One process owns the file (its lock), so a lock held
// from the precondition until the commit is durable is all "the later
// commit checks after the earlier one is applied" needs. The precondition
// runs before the request reaches the committer, outside its bbolt
// transaction: its reads open their own, which inside the writer's
// transaction could deadlock bbolt's remapping.
type guardLocks [64]sync.Mutex

// runPrecondition takes the locks of b's Guards, runs b.Precondition and
// returns the function that releases the locks once the commit is done.
func (l *guardLocks) runPrecondition(ctx context.Context, b *store.Batch) (func(), error) {
	var stripes []int
	for _, w := range b.Writes {
		if w.Guard == "" {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(w.Type + "\x00" + w.Guard))
		stripes = append(stripes, int(h.Sum32()%uint32(len(l))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		l[i].Lock()
	}
	release := func() {
		for _, i := range slices.Backward(stripes) {
			l[i].Unlock()
		}
	}
	if err := b.Precondition(ctx); err != nil {
		release()
		return nil, err
	}
	return release, nil
}
