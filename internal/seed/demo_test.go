package seed

import "testing"

// The README's "Trying it" names this patient as the one with every part of
// a record and a restriction (internal/cli adds the restriction:
// TestDemoRestriction); the same seed must keep giving her.
func TestRestrictedDemoHasEveryPart(t *testing.T) {
	rec, ok := RestrictedDemo(1, 50)
	if !ok {
		t.Fatal("no demo patient of seed 1 has critical information, medications and visits")
	}
	s := Summarize(rec)
	if s.ID != "pas-1d0b14e4db018fed" {
		t.Errorf("restricted demo patient %s, the README names pas-1d0b14e4db018fed", s.ID)
	}
	if s.Critical == 0 || s.Medications == 0 || s.Visits == 0 {
		t.Errorf("restricted demo patient %+v: want critical information, medications and visits", s)
	}
}
