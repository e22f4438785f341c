package job_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// The schemas are the contract for producers in other languages, so these
// tests hold them to what the Go code actually reads and writes.

const schemaDir = "../../streams/"

var schemaIDs = map[string]string{
	"job.schema.json":        "https://switchyard.dev/schemas/job.v1.json",
	"result.schema.json":     "https://switchyard.dev/schemas/result.v1.json",
	"deadletter.schema.json": "https://switchyard.dev/schemas/deadletter.v1.json",
}

// loadSchemaDoc reads a schema file as plain JSON.
func loadSchemaDoc(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaDir + file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a JSON object", file)
	}
	return m
}

// compileSchema compiles file under its $id with formats and content
// encodings asserted, as a strict producer-side validator would.
func compileSchema(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	doc := loadSchemaDoc(t, file)
	id, _ := doc["$id"].(string)
	if want := schemaIDs[file]; id != want {
		t.Fatalf("%s: $id = %q, want %q", file, id, want)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("instance is not JSON: %v\n%s", err, data)
	}
	return sch.Validate(inst)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func ptr[T any](v T) *T { return &v }

func fullJob() job.Job {
	nb := time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)
	return job.Job{
		V:        job.Version,
		ID:       "0193f3c2-7d1e-7c3a-9b2f-5e8d4a6c1b09",
		Provider: "acme",
		Task:     "create_invoice",
		Request: job.Request{
			Method:  "POST",
			Path:    "/v1/invoices/%20ok",
			Query:   job.Query{"expand": {"lines", "customer"}, "limit": {"10"}},
			Headers: map[string]string{"X-Tenant": "42", "Content-Type": "application/json"},
			Body:    json.RawMessage(`{"amount":1200,"lines":[{"sku":"a"}]}`),
		},
		Batch:       "nightly-2026-11-21",
		MaxAttempts: 5,
		NotBefore:   &nb,
		ExpiresAt:   ptr(nb.Add(2 * time.Hour)),
		Meta:        json.RawMessage(`{"order":981}`),
	}
}

func TestSchemaAcceptsGoEnvelopes(t *testing.T) {
	t.Parallel()
	jobSchema := compileSchema(t, "job.schema.json")
	resultSchema := compileSchema(t, "result.schema.json")
	dlqSchema := compileSchema(t, "deadletter.schema.json")
	now := time.Date(2026, 11, 21, 4, 0, 1, 123456789, time.FixedZone("CET", 3600))

	base64Job := fullJob()
	base64Job.Request.Body = nil
	base64Job.Request.BodyBase64 = []byte{0xff, 0x00, 'x'}
	base64Job.Request.Headers = map[string]string{"Content-Type": "application/octet-stream"}

	tests := []struct {
		name   string
		schema *jsonschema.Schema
		value  any
	}{
		{"full job", jobSchema, fullJob()},
		{"minimal job", jobSchema, job.Job{V: 1, ID: "a", Provider: "p", Task: "t", Request: job.Request{Path: "/"}}},
		{"job with body_base64", jobSchema, base64Job},
		{"full result", resultSchema, job.Result{
			V: 1, JobID: "j1", Provider: "acme", Task: "create_invoice", Lane: job.LaneBulk,
			Batch: "b1", Attempt: 2, Status: job.StatusRetrying, HTTPStatus: 503,
			Error: "503 Service Unavailable", ErrorClass: job.ClassHTTP5xx, LatencyMS: 612,
			EnqueuedAt: now, StartedAt: now, FinishedAt: now, RetryAt: ptr(now.Add(time.Second)),
			Response: &job.Response{
				Headers:   map[string][]string{"Retry-After": {"1"}},
				Body:      json.RawMessage(`{"error":"busy"}`),
				Truncated: true,
			},
			Meta:     json.RawMessage(`{"order":981}`),
			WorkerID: "worker-1",
		}},
		{"result with binary body", resultSchema, job.Result{
			V: 1, JobID: "j1", Provider: "acme", Task: "t", Attempt: 1, Status: job.StatusSucceeded,
			HTTPStatus: 200, EnqueuedAt: now, StartedAt: now, FinishedAt: now, WorkerID: "w",
			Response: &job.Response{BodyBase64: []byte{0, 1, 2}},
		}},
		{"zero-valued result", resultSchema, job.Result{V: 1, Provider: "acme", Status: job.StatusExpired}},
		{"dead letter with job", dlqSchema, job.DeadLetter{
			V: 1, JobID: "j1", Provider: "acme", Task: "t", Lane: job.LaneLive, Batch: "b",
			Reason: job.ClassHTTP5xx, Error: "503", HTTPStatus: 503, Attempts: 5,
			Subject: "jobs.acme.live.t", Job: mustMarshal(t, fullJob()), DeadAt: now, WorkerID: "w",
		}},
		{"dead letter with raw bytes", dlqSchema, job.DeadLetter{
			V: 1, JobID: "", Provider: "acme", Task: "t", Reason: job.ClassInvalid,
			Error: "not JSON", Subject: "jobs.acme.live.t", JobBase64: []byte("\x00not json"),
			DeadAt: now, WorkerID: "w",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := mustMarshal(t, tt.value)
			if err := validate(t, tt.schema, data); err != nil {
				t.Errorf("schema rejects a Go-built envelope: %v\n%s", err, data)
			}
			if j, ok := tt.value.(job.Job); ok {
				if _, err := decodeAndValidate(data); err != nil {
					t.Errorf("Go rejects its own envelope %+v: %v", j, err)
				}
			}
		})
	}
}

func decodeAndValidate(data []byte) (*job.Job, error) {
	j, err := job.Decode(data)
	if err != nil {
		return nil, err
	}
	return j, j.Validate()
}

const goodJob = `{"v":1,"id":"job-1","provider":"acme","task":"create_invoice",
	"request":{"method":"POST","path":"/v1/invoices","body":{"amount":1}}}`

// TestSchemaAgreesWithGo feeds the same envelopes to the schema and to
// Decode+Validate: a producer that validates against the schema must not be
// surprised by a worker.
func TestSchemaAgreesWithGo(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t, "job.schema.json")

	// edit replaces old with new in goodJob, failing if old is missing so a
	// changed fixture cannot silently turn a case into a no-op.
	edit := func(old, new string) string {
		if !strings.Contains(goodJob, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(goodJob, old, new, 1)
	}
	withPath := func(p string) string { return edit(`"/v1/invoices"`, mustJSON(t, p)) }
	withHeaders := func(h string) string { return edit(`"method":"POST"`, `"method":"POST","headers":`+h) }

	tests := []struct {
		name    string
		data    string
		wantErr bool
	}{
		{"good", goodJob, false},
		{"query string and array", edit(`"method":"POST"`, `"query":{"expand":["a","b"],"limit":"10"}`), false},
		{"method absent", edit(`"method":"POST",`, ``), false},
		{"encoded space in path", withPath("/v1/invoices/%20ok"), false},
		{"optional fields", edit(`"v":1`, `"v":1,"batch":"b-1","max_attempts":100,"not_before":"2026-11-21T04:00:00Z","expires_at":"2026-11-21T06:00:00+01:00","meta":{}`), false},
		{"ordinary header", withHeaders(`{"X-Tenant":"42","If-Match":"\"abc\""}`), false},

		{"missing id", edit(`"id":"job-1",`, ``), true},
		{"bad id", edit(`"job-1"`, `"job 1"`), true},
		{"bad provider token", edit(`"acme"`, `"Acme"`), true},
		{"task too long", edit(`"create_invoice"`, `"`+strings.Repeat("t", 65)+`"`), true},
		{"unknown field", edit(`"v":1`, `"v":1,"priority":3`), true},
		{"unknown request field", edit(`"method":"POST"`, `"method":"POST","url":"http://evil/"`), true},
		{"v=2", edit(`"v":1`, `"v":2`), true},
		{"v missing", edit(`"v":1,`, ``), true},
		{"both body and body_base64", edit(`"body":{"amount":1}`, `"body":{"amount":1},"body_base64":"eA=="`), true},
		{"bad method", edit(`"POST"`, `"TRACE"`), true},
		{"lowercase method", edit(`"POST"`, `"post"`), true},
		{"missing request", `{"v":1,"id":"job-1","provider":"acme","task":"create_invoice"}`, true},
		{"missing path", edit(`"path":"/v1/invoices",`, ``), true},
		{"absolute url", withPath("http://evil/x"), true},
		{"host-relative path", withPath("//evil.com/x"), true},
		{"encoded host-relative path", withPath("/%2Fevil.com/x"), true},
		{"dot-dot", withPath("/a/../b"), true},
		{"dot", withPath("/a/./b"), true},
		{"encoded dot-dot", withPath("/%2e%2e/admin"), true},
		{"encoded slashes around dot-dot", withPath("/a%2f..%2fb"), true},
		{"encoded backslash", withPath("/a%5cb"), true},
		{"encoded NUL", withPath("/a%00b"), true},
		{"bad escape", withPath("/a%zzb"), true},
		{"backslash", withPath(`/a\b`), true},
		{"query in path", withPath("/x?y=1"), true},
		{"fragment in path", withPath("/x#f"), true},
		{"CRLF in path", withPath("/x\r\nHost: evil"), true},
		{"relative path", withPath("relative"), true},
		{"long path", withPath("/" + strings.Repeat("a", 2048)), true},
		{"query number", edit(`"method":"POST"`, `"query":{"limit":10}`), true},
		{"query control char", edit(`"method":"POST"`, `"query":{"a":"x\ny"}`), true},
		{"query control char in name", edit(`"method":"POST"`, `"query":{"a\ny":[]}`), true},
		{"empty query name", edit(`"method":"POST"`, `"query":{"":"x"}`), true},
		{"CRLF in header value", withHeaders(`{"X-A":"1\r\nX-B: 2"}`), true},
		{"reserved Host", withHeaders(`{"Host":"evil.com"}`), true},
		{"reserved host lowercase", withHeaders(`{"host":"evil.com"}`), true},
		{"reserved Content-Length", withHeaders(`{"Content-Length":"0"}`), true},
		{"reserved TE", withHeaders(`{"TE":"trailers"}`), true},
		{"invalid header name", withHeaders(`{"X Bad":"1"}`), true},
		{"header not string", withHeaders(`{"X-A":1}`), true},
		{"64 headers", withHeaders(manyHeaders(64)), false},
		{"65 headers", withHeaders(manyHeaders(65)), true},
		{"meta not object", edit(`"v":1`, `"v":1,"meta":[1]`), true},
		{"max_attempts too big", edit(`"v":1`, `"v":1,"max_attempts":101`), true},
		{"max_attempts negative", edit(`"v":1`, `"v":1,"max_attempts":-1`), true},
		{"bad batch", edit(`"v":1`, `"v":1,"batch":"a.b"`), true},
		{"bad not_before", edit(`"v":1`, `"v":1,"not_before":"tomorrow"`), true},
		{"bad base64", edit(`"body":{"amount":1}`, `"body_base64":"%%%"`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schemaErr := validate(t, sch, []byte(tt.data))
			_, goErr := decodeAndValidate([]byte(tt.data))
			if gotErr := schemaErr != nil; gotErr != tt.wantErr {
				t.Errorf("schema error = %v, wantErr %v\n%s", schemaErr, tt.wantErr, tt.data)
			}
			if gotErr := goErr != nil; gotErr != tt.wantErr {
				t.Errorf("Decode+Validate error = %v, wantErr %v\n%s", goErr, tt.wantErr, tt.data)
			}
			if goErr != nil && !errors.Is(goErr, job.ErrInvalid) {
				t.Errorf("Decode+Validate error %v does not match ErrInvalid", goErr)
			}
		})
	}
}

// manyHeaders returns a JSON object of n distinct valid headers.
func manyHeaders(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"X-H` + strconv.Itoa(i) + `":"v"`
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func mustJSON(t *testing.T, s string) string {
	t.Helper()
	return string(mustMarshal(t, s))
}

// designExample is the envelope from DESIGN.md, with the elided id filled in.
const designExample = `{
  "v": 1,
  "id": "0193f3c2-7d1e-7c3a-9b2f-5e8d4a6c1b09",
  "provider": "acme",
  "task": "create_invoice",
  "request": {
    "method": "POST",
    "path": "/v1/invoices",
    "query": {"expand": ["lines"]},
    "headers": {"X-Tenant": "42"},
    "body": {"amount": 1200}
  },
  "batch": "nightly-2026-11-21",
  "max_attempts": 5,
  "not_before": "2026-11-21T04:00:00Z",
  "expires_at": "2026-11-21T06:00:00Z",
  "meta": {"order": 981}
}`

func TestSchemaDesignExample(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t, "job.schema.json")
	if err := validate(t, sch, []byte(designExample)); err != nil {
		t.Errorf("schema rejects the DESIGN.md example: %v", err)
	}
	if _, _, err := job.Parse("jobs.acme.live.create_invoice", []byte(designExample)); err != nil {
		t.Errorf("Parse rejects the DESIGN.md example: %v", err)
	}

	// The schema's own examples are what producers copy; they must be valid.
	for i, ex := range loadSchemaDoc(t, "job.schema.json")["examples"].([]any) {
		if err := sch.Validate(ex); err != nil {
			t.Errorf("examples[%d]: %v", i, err)
		}
		if _, err := decodeAndValidate(mustMarshal(t, ex)); err != nil {
			t.Errorf("examples[%d]: Go rejects it: %v", i, err)
		}
	}
}

// TestSchemaPropertiesMatchGo catches a field added to (or renamed in) a Go
// struct without the schema following, which the open result schemas would
// otherwise let through.
func TestSchemaPropertiesMatchGo(t *testing.T) {
	t.Parallel()
	jobDoc := loadSchemaDoc(t, "job.schema.json")
	resultDoc := loadSchemaDoc(t, "result.schema.json")
	tests := []struct {
		name   string
		schema map[string]any
		value  any
	}{
		{"Job", jobDoc, job.Job{}},
		{"Request", propertySchema(t, jobDoc, "request"), job.Request{}},
		{"Result", resultDoc, job.Result{}},
		{"Response", propertySchema(t, resultDoc, "response"), job.Response{}},
		{"DeadLetter", loadSchemaDoc(t, "deadletter.schema.json"), job.DeadLetter{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := jsonNames(reflect.TypeOf(tt.value))
			var got []string
			for name := range tt.schema["properties"].(map[string]any) {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("schema properties %v, Go json names %v", got, want)
			}
		})
	}
}

func propertySchema(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	s, ok := doc["properties"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("no inline schema for property %q", name)
	}
	return s
}

func jsonNames(typ reflect.Type) []string {
	var names []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestSchemaDescriptions holds every property to having a description: the
// schemas are the reference documentation for non-Go producers.
func TestSchemaDescriptions(t *testing.T) {
	t.Parallel()
	for file := range schemaIDs {
		doc := loadSchemaDoc(t, file)
		if d, _ := doc["description"].(string); d == "" {
			t.Errorf("%s: no top-level description", file)
		}
		var walk func(path string, s map[string]any)
		walk = func(path string, s map[string]any) {
			props, _ := s["properties"].(map[string]any)
			for name, p := range props {
				ps, _ := p.(map[string]any)
				if d, _ := ps["description"].(string); d == "" {
					t.Errorf("%s: property %s%s has no description", file, path, name)
				}
				walk(path+name+".", ps)
			}
		}
		walk("", doc)
	}
}
