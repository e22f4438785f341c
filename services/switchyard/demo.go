package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// demoTasks are the calls the demo makes, alternating between the two
// providers so both stay busy until the end; one job in ten goes on the
// live lane.
var demoTasks = []struct {
	provider, task, method, path string
}{
	{"demo_a", "create_invoice", "POST", "/v1/invoices"},
	{"demo_b", "lookup_customer", "GET", "/v1/customers/lookup"},
	{"demo_a", "send_email", "POST", "/v1/emails"},
	{"demo_b", "get_rates", "GET", "/v1/rates"},
}

// runDemo enqueues o.demo jobs, shows progress until every one has a final
// result recorded, and prints a summary. It fails when some are still
// missing at o.timeout.
func runDemo(ctx context.Context, js jetstream.JetStream, store recorder.Store, api *mockapi.Server, o devOptions, out io.Writer) error {
	batch := "demo-" + time.Now().UTC().Format("20060102T150405")
	start := time.Now()
	if err := enqueueDemo(ctx, js, batch, o.demo); err != nil {
		return err
	}
	enqueued := time.Since(start)
	fmt.Fprintf(out, "demo: enqueued %d jobs in %s (%.0f jobs/s), batch %s\n", o.demo, enqueued.Round(time.Millisecond), float64(o.demo)/enqueued.Seconds(), batch)

	deadline := time.After(o.timeout)
	// Poll often, so the end is seen when it comes; print once a second.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var counts map[job.Status]int
	var printed time.Time
	for {
		var err error
		if counts, err = store.BatchCounts(ctx, batch); err != nil {
			return fmt.Errorf("demo: read progress: %w", err)
		}
		done := finalCount(counts)
		if done >= o.demo {
			break
		}
		if time.Since(printed) >= time.Second {
			printed = time.Now()
			fmt.Fprintf(out, "demo: %6d / %d recorded  %s  %.0f jobs/s\n", done, o.demo, describe(counts), float64(done)/time.Since(start).Seconds())
		}
		select {
		case <-tick.C:
		case <-deadline:
			return fmt.Errorf("demo: %d of %d jobs not recorded after %s: lost", o.demo-done, o.demo, o.timeout)
		case <-ctx.Done():
			// The rest stay in JOBS and run at the next start.
			fmt.Fprintf(out, "demo: interrupted with %d of %d jobs recorded\n", done, o.demo)
			return nil
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "demo: %6d / %d recorded  %s\n", o.demo, o.demo, describe(counts))
	lat, err := store.Latencies(ctx, batch)
	if err != nil {
		return fmt.Errorf("demo: read latencies: %w", err)
	}
	calls := api.Stats()
	fmt.Fprintf(out, `demo: done — %d jobs in %s = %.0f jobs/s end to end
      %s
      end-to-end latency (enqueued → final result): p50 %s, p99 %s, max %s
      demo API: %d calls (%d answered 503), at most %d in flight, %d jobs needed more than one call
`, o.demo, elapsed.Round(time.Millisecond), float64(o.demo)/elapsed.Seconds(), describe(counts),
		percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1),
		calls.Requests, calls.ByStatus[503], calls.PeakInFlight, calls.Duplicates)
	return nil
}

func enqueueDemo(ctx context.Context, js jetstream.JetStream, batch string, n int) error {
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		t := demoTasks[i%len(demoTasks)]
		lane := job.LaneBulk
		if (i/len(demoTasks))%10 == 0 { // every task sends one round in ten live
			lane = job.LaneLive
		}
		id := uuid.Must(uuid.NewV7()).String()
		j := job.Job{V: job.Version, ID: id, Provider: t.provider, Task: t.task, Batch: batch,
			Request: job.Request{Method: t.method, Path: t.path, Headers: map[string]string{"X-Demo": "1"}},
			Meta:    json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if t.method == "POST" {
			j.Request.Body = json.RawMessage(fmt.Sprintf(`{"amount":%d}`, 100+i%900))
		} else {
			j.Request.Query = job.Query{"email": {fmt.Sprintf("user%d@example.com", i)}}
		}
		data, err := json.Marshal(j)
		if err != nil {
			return err
		}
		m := &nats.Msg{Subject: job.Subject(t.provider, lane, t.task), Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
		// Block while the server catches up rather than fail: backpressure.
		f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second))
		if err != nil {
			return fmt.Errorf("demo: enqueue: %w", err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("demo: enqueue: %d publishes unconfirmed after a minute", js.PublishAsyncPending())
	}
	for _, f := range futures {
		select {
		case err := <-f.Err():
			return fmt.Errorf("demo: enqueue %s: %w", f.Msg().Subject, err)
		default:
		}
	}
	return nil
}

func finalCount(counts map[job.Status]int) int {
	n := 0
	for s, c := range counts {
		if s.Final() {
			n += c
		}
	}
	return n
}

func describe(counts map[job.Status]int) string {
	parts := []string{}
	for _, s := range []job.Status{job.StatusSucceeded, job.StatusRetrying, job.StatusFailed, job.StatusDead, job.StatusExpired, job.StatusUnknown} {
		if counts[s] > 0 || s == job.StatusSucceeded {
			parts = append(parts, fmt.Sprintf("%s %d", s, counts[s]))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i].Round(time.Millisecond)
}
