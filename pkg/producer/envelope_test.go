package producer

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// BenchmarkPrepare measures the producer's own work per job before the
// publish: options, validation (pkg/job), encoding and a content id.
func BenchmarkPrepare(b *testing.B) {
	p := &Producer{cfg: defaultConfig(), nc: &nats.Conn{}}
	j := NewJob("acme", "create_invoice", "POST", "/v1/customers/cus_8f3a/invoices")
	j.Batch = "nightly-2024-10-01"
	j.Request.Headers = map[string]string{"X-Tenant": "t-42", "Accept": "application/json"}
	j.Request.Body = json.RawMessage(`{"amount":1299,"currency":"EUR"}`)
	j.Meta = json.RawMessage(`{"order":981}`)
	defaults := []JobOption{Lane(job.LaneBulk), IDFromContent("")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.prepare(j, defaults, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestContentUUIDIsUUIDv5(t *testing.T) {
	t.Parallel()
	for _, data := range []string{"", "x", `{"v":1,"id":"00000000-0000-0000-0000-000000000000"}`} {
		if got, want := contentUUID([]byte(data)), uuid.NewSHA1(ContentNamespace, []byte(data)); got != want {
			t.Errorf("contentUUID(%q) = %s, want %s", data, got, want)
		}
	}
}
