package interaction

import (
	"github.com/kjernejournal/kjernejournal/internal/keylock"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// keyLocks serialise, within this process, the writes whose rule needs a
// look at the store: a conditional create (an EHR that reports the same
// item twice at once gets one resource) and a Patient's unique person
// number. The store decides both in the commit, across every process on
// its database (store.Write.Unique, Write.Guard and Batch.Precondition);
// the locks only spare this process's requests the store's retries.
type keyLocks = keylock.Striped

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
