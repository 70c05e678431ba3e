package fhirpath_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/kjernejournal/kjernejournal/fhir/fhirpath"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

func decodeJSON(tb testing.TB, b []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	return m
}

// seedResources returns the synthetic records' resources, decoded.
func seedResources(tb testing.TB, n int) []map[string]any {
	var out []map[string]any
	add := func(b []byte) { out = append(out, decodeJSON(tb, b)) }
	add(seed.CitizenRecord().Patient)
	for _, r := range seed.CitizenRecord().Resources {
		add(r)
	}
	for _, rec := range seed.Generate(1, n) {
		add(rec.Patient)
		for _, r := range rec.Resources {
			add(r)
		}
	}
	return out
}

// TestSeedMeetsInvariants: the synthetic records every test store is
// filled with break no R4 invariant of error severity.
func TestSeedMeetsInvariants(t *testing.T) {
	byType := map[string]int{}
	for _, m := range seedResources(t, 300) {
		rt := m["resourceType"].(string)
		byType[rt]++
		for _, v := range fhirpath.Invariants(rt, m) {
			if v.Severity == "error" {
				t.Errorf("%s/%v: %s at %s: %s", rt, m["id"], v.Key, v.Path, v.Human)
			}
		}
	}
	t.Logf("resources checked by type: %v", byType)
}

// BenchmarkInvariants measures the invariant pass alone on a typical seed
// resource of each served type (the decode is the caller's, once).
func BenchmarkInvariants(b *testing.B) {
	type sample struct {
		m    map[string]any
		size int
	}
	best := map[string]sample{}
	for _, rec := range seed.Generate(7, 200) {
		for _, raw := range append([][]byte{rec.Patient}, rec.Resources...) {
			m := decodeJSON(b, raw)
			rt := m["resourceType"].(string)
			// The resource closest to 1 KB stands for its type.
			if s, ok := best[rt]; !ok || abs(len(raw)-1024) < abs(s.size-1024) {
				best[rt] = sample{m, len(raw)}
			}
		}
	}
	var types []string
	for t := range best {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, rt := range types {
		s := best[rt]
		b.Run(fmt.Sprintf("%s-%dB", rt, s.size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fhirpath.Invariants(rt, s.m)
			}
		})
	}
	// What the write path pays in all: the body decoded (once, with
	// DecodeJSON) and checked.
	for _, rt := range types {
		raw, err := json.Marshal(best[rt].m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("decode+check/%s-%dB", rt, len(raw)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := fhirpath.DecodeJSON(raw)
				if err != nil {
					b.Fatal(err)
				}
				fhirpath.Invariants(rt, m)
			}
		})
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// BenchmarkDecode compares DecodeJSON with encoding/json (UseNumber) on a
// seed AllergyIntolerance of about 1 KB.
func BenchmarkDecode(b *testing.B) {
	var raw []byte
	for _, rec := range seed.Generate(7, 50) {
		for _, r := range rec.Resources {
			if bytes.Contains(r, []byte(`"AllergyIntolerance"`)) && abs(len(r)-1024) < abs(len(raw)-1024) {
				raw = r
			}
		}
	}
	b.Run(fmt.Sprintf("DecodeJSON-%dB", len(raw)), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fhirpath.DecodeJSON(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("encoding-json-%dB", len(raw)), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeJSON(b, raw)
		}
	})
}
