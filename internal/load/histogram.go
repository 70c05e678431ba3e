package load

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear (HDR-style) latency histogram. Recording is a
// few integer operations and never allocates, so each worker owns one and
// records without synchronisation; Merge combines them after the run.
//
// Values below 2*histSub nanoseconds are exact. Larger values fall into
// buckets whose width is at most 1/histSub of their lower bound, so a
// reported percentile overstates the true one by less than 0.4% and never
// understates it.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64 // float: an int64 of nanoseconds overflows after ~292 years of summed latency, a float64 never does
	min    int64
	max    int64
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits
	// Values at or beyond 2^histMaxExp ns (~18 minutes) share the last
	// bucket; Max stays exact. Per-request timeouts keep real latencies far
	// below this, and the bound keeps a histogram at 66 KiB.
	histMaxExp  = 40
	histBuckets = (histMaxExp - histSubBits + 1) * histSub
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histBuckets), min: math.MaxInt64}
}

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u >= 1<<histMaxExp {
		return histBuckets - 1
	}
	shift := bits.Len64(u) - 1 - histSubBits
	if shift < 0 {
		shift = 0
	}
	return shift<<histSubBits + int(u>>uint(shift))
}

// histHigh is the largest value that maps to bucket i.
func histHigh(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	m := int64(i - shift<<histSubBits)
	return (m+1)<<uint(shift) - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds all of o's values into h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value (exact), 0 if empty.
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest recorded value (exact), 0 if empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact arithmetic mean, 0 if empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile returns the nearest-rank p-th percentile (0 <= p <= 100): the
// smallest recorded value such that at least p% of the values are <= it,
// rounded up to its bucket's upper bound and clamped to [Min, Max].
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if p <= 0 {
		return time.Duration(h.min)
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			if rank == h.n || i == histBuckets-1 {
				return time.Duration(h.max)
			}
			return time.Duration(min(max(histHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
