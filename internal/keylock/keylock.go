// Package keylock serialises, within one process, work on the same keys.
package keylock

import (
	"hash/fnv"
	"slices"
	"sync"
)

// Striped is a fixed set of mutexes that keys hash onto: two holders of
// the same key wait for each other, two of different keys rarely do, and
// it costs no memory per key. The zero value is ready to use.
type Striped [64]sync.Mutex

// Lock takes the locks of keys (each stripe once, in order, so that two
// callers never wait for each other crosswise) and returns the function
// that releases them.
func (l *Striped) Lock(keys ...string) (unlock func()) {
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
