package audit

import (
	"testing"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

func benchRecord() Record {
	return with(doctor(), func(r *Record) {
		r.Interaction, r.ResourceType, r.Query = Search, "MedicationStatement", "patient=pas-1&_count=50&status=active"
		r.Basis = access.Samtykke
	})
}

func BenchmarkEvent(b *testing.B) {
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if len(Event(r)) == 0 {
			b.Fatal("empty")
		}
	}
}

func BenchmarkChainNext(b *testing.B) {
	ev := Event(benchRecord())
	c := NewChain("")
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Next(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	c := NewChain("")
	evs := make([][]byte, 1000)
	for i := range evs {
		evs[i], _, _ = c.Next(Event(benchRecord()))
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(seq(evs)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCitizenEvent(b *testing.B) {
	ev, _, _ := NewChain("").Next(Event(benchRecord()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CitizenEvent(ev, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompact is the usage log's work per record on the write path
// in the compact form: encode, compress, link.
func BenchmarkCompact(b *testing.B) {
	r := benchRecord()
	c := NewChain("")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Next(Compact(r)[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender is the read path: decompress, decode, build the
// AuditEvent.
func BenchmarkRender(b *testing.B) {
	stored, _, err := Link("", Compact(benchRecord())[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(stored); err != nil {
			b.Fatal(err)
		}
	}
}
