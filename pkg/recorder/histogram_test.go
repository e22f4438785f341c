package recorder

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestLatencyBucketEdges(t *testing.T) {
	for _, tt := range []struct {
		ms   int64
		want int
	}{{-5, 0}, {0, 0}, {1, 1}, {2, 15}, {500, 128}, {800, 138}} {
		if got := LatencyBucket(tt.ms); got != tt.want {
			t.Errorf("LatencyBucket(%d) = %d, want %d", tt.ms, got, tt.want)
		}
	}
}

// TestHistogramPercentileError checks the promised resolution against exact
// percentiles of random latencies.
func TestHistogramPercentileError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var exact []int64
	h := Histogram{}
	for range 20000 {
		ms := 5 + rng.Int64N(3000)
		exact = append(exact, ms)
		h.Add(LatencyBucket(ms), 1)
	}
	slices.Sort(exact)
	for _, p := range []float64{0.5, 0.95, 0.99} {
		want := time.Duration(exact[int(p*float64(len(exact)))-1]) * time.Millisecond
		got := h.Percentile(p)
		if d := float64(got-want) / float64(want); d > 0.026 || d < -0.026 {
			t.Errorf("p%v = %v, exact %v: off by %.1f%%", p*100, got, want, d*100)
		}
	}
	if got := (Histogram{}).Percentile(0.5); got != 0 {
		t.Errorf("empty histogram p50 = %v, want 0", got)
	}
}
