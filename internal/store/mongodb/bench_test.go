package mongodb

import (
	"fmt"
	"testing"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The figures are only reported: against the embedded FerretDB they measure
// FerretDB's SQLite backend as much as this engine. Point
// KJ_TEST_MONGO_URI at a MongoDB for figures that mean something.

func BenchmarkRead(b *testing.B) {
	s := openDB(b, Options{})
	const n = 100
	for i := 0; i < n; i++ {
		if _, err := s.Commit(ctx, []store.Write{put("Flag", fmt.Sprintf("f%03d", i), "p1", "x")}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Read", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Read(ctx, "Flag", fmt.Sprintf("f%03d", i%n)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VRead", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.VRead(ctx, "Flag", fmt.Sprintf("f%03d", i%n), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Compartment", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Compartment(ctx, "p1", "Flag"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCommit(b *testing.B) {
	s := openDB(b, Options{})
	b.Run("Create", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Commit(ctx, []store.Write{put("Flag", fmt.Sprintf("c%d", i), "p1", "x")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Update", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Commit(ctx, []store.Write{put("Flag", "u", "p1", "x")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Bundle5", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ws := make([]store.Write, 5)
			for j := range ws {
				ws[j] = put("Flag", fmt.Sprintf("b%d-%d", i%20, j), "p2", "x")
			}
			if _, err := s.Commit(ctx, ws); err != nil {
				b.Fatal(err)
			}
		}
	})
}
