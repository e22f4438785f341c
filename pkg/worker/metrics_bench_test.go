package worker

import (
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// BenchmarkCallHooks measures what the metrics add to one call: begin and
// end of a call answered 200 (in-flight gauge up and down, latency
// histogram, calls counter), on all CPUs at once as under load. Without
// the hooks the loop costs nothing: the result is the hooks' cost.
// Compare it with BenchmarkDispatch's ns/op, the whole cost of a job.
func BenchmarkCallHooks(b *testing.B) {
	lm := benchLaneMetrics(b)
	reply := &provider.Reply{HTTPStatus: 200}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lm.begin(1)
			lm.end(reply, nil, 30*time.Millisecond)
		}
	})
}

// BenchmarkCallHooksError is the same for a call with no answer, counted
// by its error's class.
func BenchmarkCallHooksError(b *testing.B) {
	lm := benchLaneMetrics(b)
	err := &provider.Error{Class: job.ClassTimeout}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lm.begin(2)
			lm.end(nil, err, 30*time.Millisecond)
		}
	})
}

func benchLaneMetrics(b *testing.B) *laneMetrics {
	p, err := provider.New("acme", provider.Config{BaseURL: "http://127.0.0.1:1", AllowPrivateNetwork: true})
	if err != nil {
		b.Fatal(err)
	}
	w := &Worker{providers: map[string]*provider.Provider{"acme": p}}
	w.metrics = newMetrics(w)
	return w.metrics.lane(p, job.LaneLive)
}
