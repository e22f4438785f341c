package job_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// The envelope every worker reads: a POST with a path, two headers, a small
// JSON body and meta, about 300 bytes, as a producer would publish it.
const (
	benchSubject = "jobs.acme.bulk.create_invoice"
	benchID      = "01J9Z3K7Q8X2M4N6P0R2T4V6W8"
	benchJob     = `{"v":1,"id":"01J9Z3K7Q8X2M4N6P0R2T4V6W8","provider":"acme","task":"create_invoice",` +
		`"batch":"nightly-2024-10-01","request":{"method":"POST","path":"/v1/customers/cus_8f3a/invoices",` +
		`"headers":{"X-Tenant":"t-42","Accept":"application/json"},` +
		`"body":{"amount":1299,"currency":"EUR"}},"meta":{"order":981}}`
)

// benchDecoded returns benchJob decoded, failing b if that does not work.
func benchDecoded(b *testing.B) *job.Job {
	b.Helper()
	j, err := job.Decode([]byte(benchJob))
	if err != nil {
		b.Fatal(err)
	}
	if j.ID != benchID {
		b.Fatalf("decoded id %q, want %q", j.ID, benchID)
	}
	return j
}

// benchResult is the result a worker publishes for benchJob: a 201 with a
// small JSON body, the job's meta echoed.
func benchResult() *job.Result {
	started := time.Date(2024, 10, 1, 2, 0, 0, 123456789, time.UTC)
	return &job.Result{
		V: job.Version, JobID: benchID, Provider: "acme", Task: "create_invoice", Lane: job.LaneBulk,
		Batch: "nightly-2024-10-01", Attempt: 1, Status: job.StatusSucceeded, HTTPStatus: 201, LatencyMS: 412,
		EnqueuedAt: started.Add(-3 * time.Second), StartedAt: started, FinishedAt: started.Add(412 * time.Millisecond),
		Response: &job.Response{
			Headers: map[string][]string{"Content-Type": {"application/json"}, "Request-Id": {"req_7Hq2Lw9"}},
			Body:    json.RawMessage(`{"id":"in_1Q2w3E4r","status":"open","amount_due":1299,"currency":"eur"}`),
		},
		Meta:     json.RawMessage(`{"order":981}`),
		WorkerID: "worker-7f9c2d1a",
	}
}

// BenchmarkParse measures what a worker does with every message: subject,
// strict decode and validation.
func BenchmarkParse(b *testing.B) {
	data := []byte(benchJob)
	j, addr, err := job.Parse(benchSubject, data)
	if err != nil {
		b.Fatal(err)
	}
	if j.ID != benchID || addr.Lane != job.LaneBulk {
		b.Fatalf("parsed id %q lane %q, want %q %q", j.ID, addr.Lane, benchID, job.LaneBulk)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := job.Parse(benchSubject, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := []byte(benchJob)
	benchDecoded(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := job.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	j := benchDecoded(b)
	if err := j.Validate(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := j.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalResult(b *testing.B) {
	r := benchResult()
	data, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	var back job.Result
	if err := json.Unmarshal(data, &back); err != nil || back.JobID != benchID || back.Response == nil {
		b.Fatalf("result does not round-trip (err %v): %s", err, data)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalJob(b *testing.B) {
	j := benchDecoded(b)
	data, err := json.Marshal(j)
	if err != nil {
		b.Fatal(err)
	}
	if back, err := job.Decode(data); err != nil || back.ID != benchID {
		b.Fatalf("job does not round-trip (err %v): %s", err, data)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := json.Marshal(j); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultEncode compares what a worker does with every result:
// Marshal (before) against AppendJSON into a buffer of SizeHint bytes.
func BenchmarkResultEncode(b *testing.B) {
	r := benchResult()
	want, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		if got, err := r.AppendJSON(nil); err != nil || string(got) != string(want) {
			b.Fatalf("AppendJSON (err %v) = %s, want %s", err, got, want)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			if _, err := r.AppendJSON(make([]byte, 0, r.SizeHint())); err != nil {
				b.Fatal(err)
			}
		}
	})
}
