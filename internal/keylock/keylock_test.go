package keylock

import (
	"sync"
	"testing"
)

// TestSameKeyIsSerialised: holders of a key never overlap, whatever other
// keys they take with it and in whichever order.
func TestSameKeyIsSerialised(t *testing.T) {
	var l Striped
	var inside, overlaps int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{"shared", "other-a", "other-b"}
			if i%2 == 1 {
				keys = []string{"other-b", "shared"}
			}
			for range 200 {
				unlock := l.Lock(keys...)
				mu.Lock()
				inside++
				if inside > 1 {
					overlaps++
				}
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	if overlaps != 0 {
		t.Fatalf("%d times two holders of one key were inside at once", overlaps)
	}
}

func TestNoKeysNoLock(t *testing.T) {
	var l Striped
	l.Lock()()
	unlock := l.Lock("a")
	unlock()
	l.Lock("a")() // released: taking it again does not block
}
