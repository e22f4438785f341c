package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// FuzzParse feeds a worker's view of a message — subject and bytes — to
// Parse. It must never panic; every error must be a validation error; and
// whatever Parse accepts agrees with its subject, re-encodes, and parses
// back to the same job, so that the DLQ, the recorder and a replay see
// what the worker saw. Seeds are below and in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	good := `{"v":1,"id":"0193f3c2-7b1e","provider":"acme","task":"create_invoice","request":{"method":"POST","path":"/v1/invoices","query":{"expand":["lines"],"limit":"10"},"headers":{"X-Tenant":"42"},"body":{"amount":1200}},"batch":"nightly","max_attempts":5,"not_before":"2026-11-21T04:00:00Z","expires_at":"2026-11-21T06:00:00+02:00","meta":{"order":981}}`
	for _, seed := range []struct{ subject, data string }{
		{"jobs.acme.live.create_invoice", good},
		{"jobs.acme.bulk.create_invoice", good},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x","body_base64":"AAEC"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x"},"meta":{}}`},
		{"jobs.acme.live.t", `{"v":2,"id":"j","provider":"acme","task":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","id":"k","provider":"acme","task":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":1,"ID":"j","provider":"acme","task":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x","Path":"//evil"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","ta\u017fk":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","t\u0061sk":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"http://169.254.169.254/"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/a/%2e%2e/b"}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x","headers":{"X-A":"1\r\nHost: evil"}}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x","headers":{"x-a":"1","X-A":"2"}}}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"globex","task":"t","request":{"path":"/x"}}`},
		{"jobs.acme.live.t", `{"v":"1","id":1,"provider":["acme"],"task":null,"request":"GET /"}`},
		{"jobs.acme.live.t", `{"v":1,"id":"j","provider":"acme","task":"t","request":{"path":"/x"}} {}`},
		{"jobs.acme.live.t", `[]`},
		{"jobs.acme.live.t", `null`},
		{"jobs.acme.live.t", ``},
		{"jobs.acme.live.t", "\xef\xbb\xbf{}"},
		{"jobs.аcme.live.t", good}, // Cyrillic а
		{"jobs.acme.live.t\x00", good},
		{"jobs.acme..t", good},
		{"jobs.acme.live.t.extra", good},
		{"jobs.*.live.>", good},
	} {
		f.Add(seed.subject, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		_ = CheckKeys(data) // exported: it must not panic on any input
		j, addr, err := Parse(subject, data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v is not a validation error", err)
			}
			return
		}
		if j.Provider != addr.Provider || j.Task != addr.Task || addr.Subject() != subject {
			t.Fatalf("accepted job %s/%s disagrees with subject %q (%+v)", j.Provider, j.Task, subject, addr)
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("Parse accepted a job Validate refuses: %v", err)
		}
		// The standard library reads the same job: a gateway, a
		// dashboard or a replay tool that uses it sees what the worker saw.
		var std Job
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("Parse accepted what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(normalize(t, j), normalize(t, &std)) {
			t.Fatalf("encoding/json reads another job:\n%+v\n%+v", j, &std)
		}
		again := roundTrip(t, subject, j)
		if !reflect.DeepEqual(normalize(t, j), normalize(t, again)) {
			t.Fatalf("job changed on a round trip:\n%+v\n%+v", j, again)
		}
		// A fixed point after one round trip: the bytes stay the same.
		first, _ := json.Marshal(again)
		second, _ := json.Marshal(roundTrip(t, subject, again))
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable:\n%s\n%s", first, second)
		}
	})
}

func roundTrip(t *testing.T, subject string, j *Job) *Job {
	t.Helper()
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatalf("cannot encode an accepted job: %v", err)
	}
	again, _, err := Parse(subject, data)
	if err != nil {
		t.Fatalf("an accepted job, re-encoded, is refused: %v\n%s", err, data)
	}
	return again
}

// normalize returns j's comparable form: times as instants, JSON values
// compacted (encoding drops insignificant whitespace).
func normalize(t *testing.T, j *Job) Job {
	t.Helper()
	n := *j
	compact := func(raw json.RawMessage) json.RawMessage {
		if len(raw) == 0 {
			return nil
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatalf("accepted JSON %q does not compact: %v", raw, err)
		}
		return b.Bytes()
	}
	n.Meta, n.Request.Body = compact(n.Meta), compact(n.Request.Body)
	if len(n.Request.BodyBase64) == 0 {
		n.Request.BodyBase64 = nil
	}
	if len(n.Request.Query) == 0 {
		n.Request.Query = nil
	}
	if len(n.Request.Headers) == 0 {
		n.Request.Headers = nil
	}
	n.NotBefore, n.ExpiresAt = utc(n.NotBefore), utc(n.ExpiresAt)
	return n
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// BenchmarkCheckKeys is the cost the exact-keys scan adds to Decode.
func BenchmarkCheckKeys(b *testing.B) {
	data := []byte(`{"v":1,"id":"01J9Z3K7Q8X2M4N6P0R2T4V6W8","provider":"acme","task":"create_invoice",` +
		`"batch":"nightly-2024-10-01","request":{"method":"POST","path":"/v1/customers/cus_8f3a/invoices",` +
		`"headers":{"X-Tenant":"t-42","Accept":"application/json"},` +
		`"body":{"amount":1299,"currency":"EUR"}},"meta":{"order":981}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := CheckKeys(data); err != nil {
			b.Fatal(err)
		}
	}
}
