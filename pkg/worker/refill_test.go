package worker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

// barrier answers no call until size calls are waiting at once, then
// answers them all: a round. A worker that failed to refill its free slots
// from a backlog (a fetch loop stalled with slots free, no pull
// outstanding) would leave a round short, and no call would be answered
// until the round gave up.
type barrier struct {
	size int

	mu      sync.Mutex
	waiting int
	open    chan struct{}
	rounds  int
	calls   int
	gaveUp  int
}

func newBarrier(size int) *barrier { return &barrier{size: size, open: make(chan struct{})} }

func (b *barrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.calls++
	b.waiting++
	open := b.open
	if b.waiting == b.size {
		close(b.open)
		b.open, b.waiting = make(chan struct{}), 0
		b.rounds++
	}
	b.mu.Unlock()
	select {
	case <-open:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	case <-time.After(15 * time.Second):
		b.mu.Lock()
		b.gaveUp++
		b.mu.Unlock()
		http.Error(w, "round never filled", http.StatusGatewayTimeout)
	}
}

func (b *barrier) counts() (rounds, calls, gaveUp int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rounds, b.calls, b.gaveUp
}

// TestABacklogKeepsEverySlotBusy checks that the fetch loops refill every
// free slot from a backlog, round after round, with batches much smaller
// than the slots to refill, with one puller and with several.
func TestABacklogKeepsEverySlotBusy(t *testing.T) {
	for _, pulls := range []int{1, 4} {
		t.Run(fmt.Sprintf("max_pulls=%d", pulls), func(t *testing.T) {
			const (
				concurrency = 40
				bulkSlots   = concurrency - 1 // live_reserve 1
				rounds      = 6
				n           = bulkSlots * rounds
			)
			b := setup(t, mockapi.Config{})
			api := newBarrier(bulkSlots)
			hs := httptest.NewServer(api)
			t.Cleanup(hs.Close)

			ids := make([]string, n)
			for i := range n {
				ids[i] = fmt.Sprintf("refill-%03d", i)
				b.publish(t, newJob(ids[i], "acme", "create_invoice", "/v1/invoices"), job.LaneBulk)
			}
			b.startWorker(t, worker.Config{MaxBatch: 5, MaxPulls: pulls}, map[string]provider.Config{
				"acme": b.provider(hs.URL, func(c *provider.Config) {
					c.Concurrency, c.LiveReserve, c.Timeout = concurrency, 1, 30*time.Second
				}),
			})
			b.waitFinal(t, 60*time.Second, ids...)
			got, calls, gaveUp := api.counts()
			if got != rounds || calls != n || gaveUp != 0 {
				t.Fatalf("%d full rounds of %d calls, %d calls, %d waits gave up; want %d rounds, %d calls, none given up",
					got, bulkSlots, calls, gaveUp, rounds, n)
			}
		})
	}
}
