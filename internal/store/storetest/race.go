package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// raceTests race commits whose rule needs a look at the store: Unique
// identifiers and guarded commits with a Precondition. Run includes them
// on one store; an engine shared by several processes runs RaceUnique and
// RaceGuarded with several stores on one database.
var raceTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"RaceUnique", func(t *testing.T, s store.Store) { RaceUnique(t, 8, s) }},
	{"RaceGuarded", func(t *testing.T, s store.Store) { RaceGuarded(t, 8, s) }},
	{"GuardedPreconditionSeesEarlierCommit", testGuardedPreconditionSeesEarlierCommit},
}

// race runs n goroutines per store at once and returns their errors.
func race(n int, stores []store.Store, fn func(s store.Store, i int) error) []error {
	errs := make([]error, n*len(stores))
	var start, done sync.WaitGroup
	start.Add(1)
	for k, s := range stores {
		for j := range n {
			i := k*n + j
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				errs[i] = fn(s, i)
			}()
		}
	}
	start.Done()
	done.Wait()
	return errs
}

// RaceUnique creates n Patients per store with one person number at the
// same moment: exactly one is stored, every other commit is refused with
// ConflictUnique naming it.
func RaceUnique(t *testing.T, n int, stores ...store.Store) {
	pnr := fnr + "|24056012345"
	errs := race(n, stores, func(s store.Store, i int) error {
		id := fmt.Sprintf("racer%d", i)
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{unique("Patient", id, id, "racing", pnr)}})
		return err
	})
	winner := ""
	for i, err := range errs {
		if err == nil {
			require.Empty(t, winner, "a second Patient with the same person number was stored: racer%d after %s", i, winner)
			winner = fmt.Sprintf("racer%d", i)
		}
	}
	require.NotEmpty(t, winner, "no racer won: %v", errs)
	for i, err := range errs {
		if err == nil {
			continue
		}
		var ce *store.ConflictError
		require.ErrorAs(t, err, &ce, "racer%d", i)
		assert.Equal(t, store.ConflictUnique, ce.Reason, "racer%d: %v", i, err)
		assert.Equal(t, winner, ce.Other, "racer%d names the winner", i)
	}
	for _, s := range stores {
		assert.Equal(t, []string{winner}, find(t, s, "Patient", pnr))
	}
}

// errMatched is what the racers' precondition answers when the resource
// it looks for exists; Commit must return it as is.
var errMatched = errors.New("storetest: a matching Flag exists")

// flagMatch is a conditional create's check: does patient's record hold
// a Flag whose body says note?
func flagMatch(s store.Store, patient, note string) func(context.Context) error {
	return func(ctx context.Context) error {
		vs, err := s.Compartment(ctx, patient, "Flag")
		if err != nil {
			return err
		}
		for _, v := range vs {
			if strings.Contains(string(v.Body), note) {
				return errMatched
			}
		}
		return nil
	}
}

// RaceGuarded makes n conditional creates per store of the same Flag at
// the same moment, each guarded by the patient's "Flag" key and checking
// in its Precondition that no such Flag exists yet: exactly one is
// stored, every other commit returns the precondition's error.
func RaceGuarded(t *testing.T, n int, stores ...store.Store) {
	const note = "reported twice at once"
	errs := race(n, stores, func(s store.Store, i int) error {
		w := putW("Flag", fmt.Sprintf("cond%d", i), "p1", note)
		w.Guard = "p1"
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}, Precondition: flagMatch(s, "p1", note)})
		return err
	})
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			continue
		}
		assert.Same(t, errMatched, err, "cond%d: the precondition's error as is", i)
	}
	assert.Equal(t, 1, won, "commits that created the Flag")
	for _, s := range stores {
		vs, err := s.Compartment(ctx, "p1", "Flag")
		require.NoError(t, err)
		assert.Equal(t, 1, len(vs), "Flags in the record")
	}
}

// The precondition runs inside the commit: a refused one leaves nothing,
// a guarded commit after a stored match is refused, another guard or
// patient is apart.
func testGuardedPreconditionSeesEarlierCommit(t *testing.T, s store.Store) {
	guarded := func(id, patient, note string) error {
		w := putW("Flag", id, patient, note)
		w.Guard = patient
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}, Precondition: flagMatch(s, patient, note)})
		return err
	}
	require.NoError(t, guarded("f1", "p1", "first"))
	assert.Same(t, errMatched, guarded("f2", "p1", "first"))
	_, err := s.Read(ctx, "Flag", "f2")
	requireNotFound(t, err, "the refused create")
	require.NoError(t, guarded("f3", "p2", "first"), "another patient's record")
	require.NoError(t, guarded("f4", "p1", "second"), "another match")
}
