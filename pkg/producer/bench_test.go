package producer_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/producer"
)

// BenchmarkBatchEnqueue measures a Pipeline against an embedded server
// with file storage: one op is one job added, the time includes waiting
// for every acknowledgement, and jobs/s is the rate a loader would see.
// The job is about 300 bytes, like the one in pkg/job's benchmarks.
func BenchmarkBatchEnqueue(b *testing.B) {
	for _, window := range []int{1024, producer.DefaultWindow} {
		b.Run("window="+strconv.Itoa(window), func(b *testing.B) {
			srv := natstest.Start(b)
			nc, js := srv.Connect(b)
			srv.ApplyStreams(b, js)
			p, err := producer.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			tmpl := producer.NewJob("acme", "create_invoice", "POST", "/v1/customers/cus_8f3a/invoices")
			tmpl.Request.Headers = map[string]string{"X-Tenant": "t-42", "Accept": "application/json"}
			tmpl.Request.Body = json.RawMessage(`{"amount":1299,"currency":"EUR"}`)
			tmpl.Meta = json.RawMessage(`{"order":981}`)

			b.ReportAllocs()
			b.ResetTimer()
			pl := p.Pipeline(context.Background(), producer.Window(window),
				producer.Defaults(producer.Lane(job.LaneBulk), producer.Batch("nightly-2024-10-01")))
			for range b.N {
				if _, err := pl.Add(tmpl); err != nil {
					b.Fatal(err)
				}
			}
			s := pl.Wait()
			b.StopTimer()
			if s.Stored != b.N {
				b.Fatalf("stored %d of %d: %v", s.Stored, b.N, s.Err())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
