package interaction

import (
	"hash/fnv"
	"slices"
	"sync"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// keyLocks serialise, within this process, the writes whose rule needs a
// look at the store: a conditional create (an EHR that reports the same
// item twice at once gets one resource) and a Patient's unique person
// number. The store decides both in the commit, across every process on
// its database (store.Write.Unique, Write.Guard and Batch.Precondition);
// the locks only spare this process's requests the store's retries.
type keyLocks [64]sync.Mutex

// lock takes the locks of keys (striped; each stripe once, in order, so
// two callers never wait for each other crosswise) and returns the
// function that releases them.
func (l *keyLocks) lock(keys ...string) func() {
	if len(keys) == 0 {
		return func() {}
	}
	stripes := make([]int, 0, len(keys))
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k))
		stripes = append(stripes, int(h.Sum32()%uint32(len(l))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		l[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(stripes) {
			l[i].Unlock()
		}
	}
}

// condKey is the lock of conditional writes of typ in patient's record.
func condKey(typ, patient string) string { return "cond\x00" + typ + "\x00" + patient }

// uniqueKeys are the locks of a write's unique identifiers.
func uniqueKeys(w store.Write) []string {
	out := make([]string, len(w.Unique))
	for i, u := range w.Unique {
		out[i] = "unique\x00" + w.Type + "\x00" + u
	}
	return out
}
