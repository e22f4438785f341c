package recorder

import (
	"math"
	"sort"
	"time"
)

// Latency percentiles over windows of minutes come from per-minute
// histograms that every store keeps beside the rows, because sorting the
// latencies of millions of recent calls on each query would not scale.
// Buckets grow by 5%, so a percentile read off them is within 2.5% of the
// exact value (for latencies of at least a few milliseconds; below that,
// within a millisecond).
const bucketGrowth = 1.05

var logGrowth = math.Log(bucketGrowth)

// LatencyBucket returns the histogram bucket of a latency in milliseconds:
// 0 holds 0 ms (and below), and bucket b ≥ 1 holds [g^(b-1), g^b) ms for
// g = 1.05.
func LatencyBucket(ms int64) int {
	if ms <= 0 {
		return 0
	}
	return int(math.Log(float64(ms))/logGrowth) + 1
}

// bucketValue is the latency a bucket stands for: the geometric middle of
// its bounds.
func bucketValue(b int) time.Duration {
	if b <= 0 {
		return 0
	}
	ms := math.Pow(bucketGrowth, float64(b)-0.5)
	return time.Duration(ms * float64(time.Millisecond))
}

// Histogram counts calls per latency bucket (see LatencyBucket).
type Histogram map[int]int

// Add counts n calls in bucket b.
func (h Histogram) Add(b, n int) { h[b] += n }

// Percentile returns the latency below or at which a share p (0 < p ≤ 1) of
// the counted calls fall, to the resolution of the buckets; 0 when empty.
func (h Histogram) Percentile(p float64) time.Duration {
	total := 0
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	buckets := make([]int, 0, len(h))
	for b := range h {
		buckets = append(buckets, b)
	}
	sort.Ints(buckets)
	rank := int(math.Ceil(p * float64(total)))
	seen := 0
	for _, b := range buckets {
		seen += h[b]
		if seen >= rank {
			return bucketValue(b)
		}
	}
	return bucketValue(buckets[len(buckets)-1])
}
