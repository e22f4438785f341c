package producer_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/producer"
)

// exampleNATS starts an embedded NATS server with the Switchyard streams
// and connects to it, as a service's own setup would. The returned func
// shuts everything down.
func exampleNATS() (*nats.Conn, func()) {
	dir, err := os.MkdirTemp("", "producer-example")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := natsx.RunEmbedded(natsx.EmbeddedConfig{Host: "127.0.0.1", Port: -1, StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsx.ApplyStreams(ctx, js, 1, slog.New(slog.DiscardHandler)); err != nil {
		log.Fatal(err)
	}
	return nc, func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
	}
}

// Enqueue one job and wait until it is stored. The job id is the order
// number, so enqueueing the same order again within the dedup window does
// nothing.
func ExampleProducer_Enqueue() {
	nc, stop := exampleNATS()
	defer stop()
	ctx := context.Background()

	p, err := producer.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	invoice := producer.NewJob("acme", "create_invoice", "POST", "/v1/invoices")
	res, err := p.Enqueue(ctx, invoice,
		producer.ID("order-981"),
		producer.Body(map[string]any{"amount": 1200, "currency": "EUR"}),
		producer.Meta(map[string]any{"order": 981}),
		producer.MaxAttempts(5),
		producer.ExpiresIn(2*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, res.Subject, "stored at", res.Sequence, "duplicate:", res.Duplicate)

	res, err = p.Enqueue(ctx, invoice, producer.ID("order-981"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, "again: duplicate:", res.Duplicate)
	// Output:
	// order-981 jobs.acme.live.create_invoice stored at 1 duplicate: false
	// order-981 again: duplicate: true
}

// An invalid job is refused before anything is sent, with the field named.
func ExampleProducer_Enqueue_invalid() {
	nc, stop := exampleNATS()
	defer stop()

	p, err := producer.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	_, err = p.Enqueue(context.Background(), producer.NewJob("acme", "create_invoice", "POST", "https://evil.example/x"))
	fmt.Println(err)
	// Output:
	// invalid job: request.path: "https://evil.example/x" must start with / (it is relative to the provider's base_url)
}

// Enqueue ten thousand jobs on the bulk lane, with at most 1,000 awaiting
// their acknowledgement at a time, and count the outcomes.
func ExampleProducer_Pipeline() {
	nc, stop := exampleNATS()
	defer stop()
	ctx := context.Background()

	p, err := producer.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	pl := p.Pipeline(ctx, producer.Window(1000),
		producer.Defaults(producer.Lane(job.LaneBulk), producer.Batch("nightly-2026-11-21")))
	for i := range 10000 {
		j := producer.NewJob("acme", "send_email", "POST", "/v1/emails")
		if _, err := pl.Add(j, producer.ID(fmt.Sprintf("email-%d", i)), producer.Body(map[string]int{"user": i})); err != nil {
			log.Fatal(err) // invalid, or ctx ended: this job has no Result
		}
	}
	s := pl.Wait()
	fmt.Printf("stored %d, duplicates %d, failed %d\n", s.Stored, s.Duplicates, s.Failed)
	if err := s.Err(); err != nil {
		log.Fatal(err)
	}
	// Output: stored 10000, duplicates 0, failed 0
}

// Handle each outcome as it comes, instead of collecting them all: what a
// loader of millions of jobs does.
func ExampleOnResult() {
	nc, stop := exampleNATS()
	defer stop()
	ctx := context.Background()

	p, err := producer.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	failed := map[string]error{}
	pl := p.Pipeline(ctx, producer.OnResult(func(r producer.Result) {
		if r.Err != nil {
			failed[r.ID] = r.Err // calls are serialized
		}
	}))
	for _, user := range []int{1, 2, 3, 2} { // user 2 twice: the same content, the same id
		j := producer.NewJob("acme", "send_email", "POST", "/v1/emails")
		if _, err := pl.Add(j, producer.IDFromContent("email-"), producer.Body(map[string]int{"user": user})); err != nil {
			log.Fatal(err)
		}
	}
	s := pl.Wait()
	fmt.Printf("stored %d, duplicates %d, failed %d\n", s.Stored, s.Duplicates, len(failed))
	// Output: stored 3, duplicates 1, failed 0
}

func ExampleNewJob() {
	j := producer.NewJob("acme", "create_invoice", "POST", "/v1/invoices")
	fmt.Println(j.Provider, j.Task, j.Request.Method, j.Request.Path, j.ID == "")
	// Output: acme create_invoice POST /v1/invoices true
}

// Delay a job: the NATS server holds it as a message schedule named after
// the job and publishes it on jobs.acme.bulk.send_reminder in 24 hours,
// when a worker calls it.
func ExampleDelay() {
	nc, stop := exampleNATS()
	defer stop()

	p, err := producer.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	reminder := producer.NewJob("acme", "send_reminder", "POST", "/v1/reminders")
	res, err := p.Enqueue(context.Background(), reminder,
		producer.ID("reminder-981"), producer.Lane(job.LaneBulk), producer.Batch("reminders-2026-11-21"),
		producer.Delay(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, "held on", res.Subject)
	// Output:
	// reminder-981 held on sched.job.acme.bulk.send_reminder.reminders-2026-11-21.reminder-981
}
