package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileExactRange(t *testing.T) {
	h := NewHistogram()
	// Values below 2*histSub are stored exactly; shuffled so order cannot
	// matter.
	vals := rand.New(rand.NewPCG(1, 2)).Perm(100)
	for _, v := range vals {
		h.Record(time.Duration(v + 1))
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {1, 1}, {50, 50}, {50.5, 51}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}}
	for _, c := range cases {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 {
		t.Errorf("count/min/max = %d/%v/%v", h.Count(), h.Min(), h.Max())
	}
	if h.Mean() != 50 { // (1+...+100)/100 = 50.5, truncated to whole ns
		t.Errorf("mean = %v, want 50ns", h.Mean())
	}
}

// TestPercentileMatchesSorted compares against nearest-rank on the sorted
// sample: the histogram may overstate by less than 1/histSub, never
// understate.
func TestPercentileMatchesSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all []time.Duration
	h := NewHistogram()
	for range 100000 {
		// Log-uniform from ~1µs to ~1s, like real latencies.
		d := time.Duration(1000*(1<<r.IntN(20))) * time.Duration(1+r.IntN(1000)) / 1000
		all = append(all, d)
		h.Record(d)
	}
	slices.Sort(all)
	for _, p := range []float64{1, 10, 50, 90, 99, 99.9} {
		rank := int(math.Ceil(float64(len(all))*p/100)) - 1
		want := all[rank]
		got := h.Percentile(p)
		if got < want || float64(got-want) > float64(want)/histSub {
			t.Errorf("p%v = %v, sorted nearest-rank %v (allowed up to +%.2f%%)", p, got, want, 100.0/histSub)
		}
	}
	if h.Max() != all[len(all)-1] || h.Min() != all[0] {
		t.Errorf("max/min %v/%v, want %v/%v", h.Max(), h.Min(), all[len(all)-1], all[0])
	}
}

func TestPercentileKnownMilliseconds(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Millisecond}, {90, 900 * time.Millisecond}, {99, 990 * time.Millisecond}, {100, time.Second}} {
		got := h.Percentile(c.p)
		if got < c.want || float64(got-c.want) > float64(c.want)/histSub {
			t.Errorf("p%v = %v, want %v (+<%.2f%%)", c.p, got, c.want, 100.0/histSub)
		}
	}
}

func TestHistogramMergeAndExtremes(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for i := 1; i <= 50; i++ {
		a.Record(time.Duration(i))
	}
	for i := 51; i <= 100; i++ {
		b.Record(time.Duration(i))
	}
	b.Record(2 * time.Hour) // beyond the bucketed range
	a.Merge(b)
	a.Merge(NewHistogram())
	if a.Count() != 101 || a.Min() != 1 || a.Max() != 2*time.Hour {
		t.Fatalf("count/min/max = %d/%v/%v", a.Count(), a.Min(), a.Max())
	}
	if got := a.Percentile(50); got != 51 {
		t.Errorf("p50 = %v, want 51ns", got)
	}
	if got := a.Percentile(100); got != 2*time.Hour {
		t.Errorf("p100 = %v, want 2h", got)
	}
	if got := NewHistogram().Percentile(50); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
}

func TestHistBucketBounds(t *testing.T) {
	// Every value must lie within its bucket, and buckets must be
	// contiguous, or percentiles would be silently wrong.
	for _, v := range []int64{0, 1, 255, 256, 511, 512, 513, 1023, 1024, 1 << 20, 1<<20 + 12345, 1<<40 - 1} {
		i := histIndex(v)
		if histHigh(i) < v || (i > 0 && histHigh(i-1) >= v) {
			t.Errorf("v=%d: bucket %d spans (%d, %d]", v, i, histHigh(i-1), histHigh(i))
		}
	}
	for i := 1; i < histBuckets; i++ {
		if histIndex(histHigh(i-1)+1) != i {
			t.Fatalf("bucket %d does not start right after bucket %d", i, i-1)
		}
	}
}
