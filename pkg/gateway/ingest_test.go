package gateway_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/job"
)

// TestPostOneJob: a job without an id is stored once under a generated
// UUIDv7, which the answer returns; sending it again with that id is a
// duplicate and stores nothing.
func TestPostOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	acc := accepted(t, b.postJSON(t, "/v1/jobs", envelope(`"meta": {"order": 981}`)))
	if len(acc.Jobs) != 1 {
		t.Fatalf("jobs = %+v, want one", acc.Jobs)
	}
	r := acc.Jobs[0]
	id, err := uuid.Parse(r.ID)
	if err != nil || id.Version() != 7 || r.Status != gateway.StatusStored || r.StreamSeq == 0 || r.Error != "" {
		t.Fatalf("result %+v, want stored under a UUIDv7", r)
	}
	if n := streamMsgs(t, b.js); n != 1 {
		t.Fatalf("stream holds %d jobs, want 1", n)
	}
	m := stored(t, b.js, r.StreamSeq)
	if m.Subject != "jobs.acme.live.create_invoice" || m.Header.Get(jetstream.MsgIDHeader) != r.ID {
		t.Errorf("message on %s with Nats-Msg-Id %q, want the live lane and the id", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
	}
	j, err := job.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != r.ID || j.V != 1 || string(j.Meta) != `{"order":981}` || string(j.Request.Body) != `{"amount":1200}` {
		t.Errorf("stored job %+v", j)
	}

	again := accepted(t, b.postJSON(t, "/v1/jobs", envelope(`"id": "`+r.ID+`"`, `"meta": {"order": 981}`)))
	if want := (gateway.JobResult{ID: r.ID, Status: gateway.StatusDuplicate, StreamSeq: r.StreamSeq}); again.Jobs[0] != want {
		t.Errorf("sent again: %+v, want %+v", again.Jobs[0], want)
	}
	if n := streamMsgs(t, b.js); n != 1 {
		t.Fatalf("stream holds %d jobs after the duplicate, want 1", n)
	}
}

// TestPostArray: an array is stored in order on the lane asked for, with
// the batch filled in, a duplicate within it reported as such.
func TestPostArray(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	body := "[" + strings.Join([]string{
		envelope(`"id": "inv-1"`),
		envelope(),
		envelope(`"id": "inv-1"`),
		envelope(`"id": "inv-3"`, `"batch": "nightly"`),
	}, ",") + "]"
	acc := accepted(t, b.postJSON(t, "/v1/jobs?lane=bulk&batch=nightly", body))
	got := make([]gateway.Status, len(acc.Jobs))
	for i, r := range acc.Jobs {
		got[i] = r.Status
	}
	want := []gateway.Status{gateway.StatusStored, gateway.StatusStored, gateway.StatusDuplicate, gateway.StatusStored}
	if !slices.Equal(got, want) || acc.Jobs[0].ID != "inv-1" || acc.Jobs[2].ID != "inv-1" || acc.Jobs[3].ID != "inv-3" {
		t.Fatalf("jobs = %+v, want %v", acc.Jobs, want)
	}
	if acc.Jobs[2].StreamSeq != acc.Jobs[0].StreamSeq {
		t.Errorf("the duplicate's stream_seq %d is not the first copy's %d", acc.Jobs[2].StreamSeq, acc.Jobs[0].StreamSeq)
	}
	if n := streamMsgs(t, b.js); n != 3 {
		t.Fatalf("stream holds %d jobs, want 3", n)
	}
	for _, r := range []gateway.JobResult{acc.Jobs[0], acc.Jobs[1], acc.Jobs[3]} {
		m := stored(t, b.js, r.StreamSeq)
		j, err := job.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "jobs.acme.bulk.create_invoice" || j.ID != r.ID || j.Batch != "nightly" {
			t.Errorf("job %s: subject %s, batch %q", r.ID, m.Subject, j.Batch)
		}
	}
}

// TestIdempotencyKey: jobs without ids get ids derived from the key and
// their position, so the same request sent again is all duplicates.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	body := "[" + envelope() + "," + envelope() + "]"
	first := accepted(t, b.postJSON(t, "/v1/jobs", body, "Idempotency-Key", `"upload-42"`))
	second := accepted(t, b.postJSON(t, "/v1/jobs", body, "Idempotency-Key", "upload-42"))
	for i := range 2 {
		want := uuid.NewSHA1(gateway.IdempotencyNamespace, []byte("upload-42/"+string(rune('0'+i)))).String()
		if first.Jobs[i].ID != want || first.Jobs[i].Status != gateway.StatusStored {
			t.Errorf("first: job %d = %+v, want stored as %s", i, first.Jobs[i], want)
		}
		if second.Jobs[i].ID != want || second.Jobs[i].Status != gateway.StatusDuplicate {
			t.Errorf("again: job %d = %+v, want a duplicate of %s", i, second.Jobs[i], want)
		}
	}
	if n := streamMsgs(t, b.js); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2", n)
	}
	p := problem(t, b.postJSON(t, "/v1/jobs", body, "Idempotency-Key", "a", "Idempotency-Key", "b"), http.StatusBadRequest)
	if len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != "Idempotency-Key" {
		t.Errorf("two keys: %+v", p)
	}
}

// TestPostInvalid: every job is validated before any is published; the
// answer is a 400 problem naming each bad field.
func TestPostInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	arr := func(jobs ...string) string { return "[" + strings.Join(jobs, ",") + "]" }
	tests := []struct {
		name       string
		path, body string
		want       []gateway.InvalidParam
		detail     string
	}{
		{
			name:   "bad path at index 3",
			path:   "/v1/jobs",
			body:   arr(envelope(), envelope(), envelope(), `{"provider": "acme", "task": "create_invoice", "request": {"path": "v1/x"}}`, envelope()),
			want:   []gateway.InvalidParam{{Name: "jobs[3].request.path", Reason: `"v1/x" must start with / (it is relative to the provider's base_url)`}},
			detail: `1 of 5 jobs is invalid: jobs[3].request.path: "v1/x" must start with / (it is relative to the provider's base_url); nothing was enqueued`,
		},
		{
			name: "every problem of every job",
			path: "/v1/jobs",
			body: arr(`{"provider": "Acme", "task": "create_invoice", "request": {"path": "/x", "headers": {"Host": "evil"}}}`,
				envelope(`"max_attempts": "five"`), envelope(`"colour": "red"`), `17`),
			want: []gateway.InvalidParam{
				{Name: "jobs[0].provider", Reason: `"Acme" must match [a-z0-9_-]{1,64}`},
				{Name: "jobs[0].request.headers.Host", Reason: "is set by the transport and may not be set by a job"},
				{Name: "jobs[1].max_attempts", Reason: "must be a number, not a JSON string"},
				{Name: "jobs[2]", Reason: `not a v1 job envelope: json: unknown field "colour"`},
				{Name: "jobs[3]", Reason: "must be a JSON object (a job envelope)"},
			},
		},
		{
			name: "a lone job's fields have no prefix",
			path: "/v1/jobs",
			body: `{"provider": "acme", "task": "create invoice", "request": {"path": "/../admin"}}`,
			want: []gateway.InvalidParam{
				{Name: "task", Reason: `"create invoice" must match [a-z0-9_-]{1,64}`},
				{Name: "request.path", Reason: `"/../admin" has a ".." segment`},
			},
			detail: `the job is invalid: task: "create invoice" must match [a-z0-9_-]{1,64}; nothing was enqueued`,
		},
		{
			name: "unsupported version",
			path: "/v1/jobs",
			body: envelope(`"v": 2`),
			want: []gateway.InvalidParam{{Name: "v", Reason: "unsupported envelope version 2 (want 1)"}},
		},
		{
			name: "batch differs from the parameter",
			path: "/v1/jobs?batch=nightly",
			body: arr(envelope(), envelope(`"batch": "daily"`)),
			want: []gateway.InvalidParam{{Name: "jobs[1].batch", Reason: `"daily" differs from the batch parameter "nightly"`}},
		},
		{
			name: "bad lane",
			path: "/v1/jobs?lane=fast",
			body: envelope(),
			want: []gateway.InvalidParam{{Name: "lane", Reason: `"fast" is not a lane (want live or bulk)`}},
		},
		{
			name: "bad batch parameter",
			path: "/v1/jobs?batch=a.b",
			body: envelope(),
			want: []gateway.InvalidParam{{Name: "batch", Reason: `"a.b" must be 1-128 characters of [A-Za-z0-9_-]`}},
		},
		{
			name: "unknown parameter",
			path: "/v1/jobs?lanes=bulk",
			body: envelope(),
			want: []gateway.InvalidParam{{Name: "lanes", Reason: "unknown parameter (POST /v1/jobs takes lane and batch)"}},
		},
		{
			name: "not JSON",
			path: "/v1/jobs",
			body: `[{"provider": `,
			want: []gateway.InvalidParam{{Name: "body"}},
		},
		{
			name: "empty array",
			path: "/v1/jobs",
			body: `[]`,
			want: []gateway.InvalidParam{{Name: "body", Reason: "the array holds no jobs"}},
		},
		{
			name: "empty body",
			path: "/v1/jobs",
			body: ` `,
			want: []gateway.InvalidParam{{Name: "body", Reason: "is empty (want a job envelope or an array of them)"}},
		},
		{
			name: "duplicate key",
			path: "/v1/jobs",
			body: envelope(`"task": "refund"`),
			want: []gateway.InvalidParam{{Name: "envelope", Reason: `key "task" appears more than once`}},
		},
		{
			name: "key in another case",
			path: "/v1/jobs",
			body: envelope(`"Batch": "b1"`),
			want: []gateway.InvalidParam{{Name: "envelope", Reason: `key "Batch" is not a field of the v1 envelope (names are case-sensitive)`}},
		},
		{
			name: "trailing data",
			path: "/v1/jobs",
			body: envelope() + envelope(),
			want: []gateway.InvalidParam{{Name: "envelope", Reason: "trailing data after the JSON object"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := problem(t, b.postJSON(t, tt.path, tt.body), http.StatusBadRequest)
			got := p.InvalidParams
			if len(tt.want) == 1 && tt.want[0].Reason == "" && len(got) == 1 {
				got[0].Reason = "" // the parser's words
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("invalid_params:\n got %+v\nwant %+v", got, tt.want)
			}
			if tt.detail != "" && p.Detail != tt.detail {
				t.Errorf("detail:\n got %s\nwant %s", p.Detail, tt.detail)
			}
		})
	}
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d jobs after invalid requests, want 0", n)
	}
}

// TestPostTooLarge: a body over max_body, and a job over the JOBS
// stream's max_msg_size, are 413 and publish nothing.
func TestPostTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.MaxBody = 2 << 20 }})
	withBody := func(size int) string {
		return `{"provider": "acme", "task": "upload", "request": {"method": "PUT", "path": "/files/1", "body": "` + strings.Repeat("x", size) + `"}}`
	}
	p := problem(t, b.postJSON(t, "/v1/jobs", "["+envelope()+","+withBody(600<<10)+"]"), http.StatusRequestEntityTooLarge)
	if len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != "jobs[1]" || !strings.Contains(p.InvalidParams[0].Reason, "524288") {
		t.Errorf("job over max_msg_size: %+v", p)
	}
	p = problem(t, b.postJSON(t, "/v1/jobs", withBody(3<<20)), http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, "gateway.max_body") {
		t.Errorf("body over max_body: %+v", p)
	}
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d jobs, want 0", n)
	}
}

// TestPostContentType: only JSON and NDJSON are taken.
func TestPostContentType(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	for _, ct := range []string{"", "text/plain", "application/xml", "application/json; charset=latin1", "multipart/form-data; boundary=x"} {
		a := b.do(t, http.MethodPost, "/v1/jobs", ct, strings.NewReader(envelope()))
		problem(t, a, http.StatusUnsupportedMediaType)
		if got := a.header.Get("Accept-Post"); got != "application/json, application/x-ndjson" {
			t.Errorf("%q: Accept-Post = %q", ct, got)
		}
	}
	accepted(t, b.do(t, http.MethodPost, "/v1/jobs", "application/json; charset=UTF-8", strings.NewReader(envelope())))
	if n := streamMsgs(t, b.js); n != 1 {
		t.Fatalf("stream holds %d jobs, want 1", n)
	}
}

// TestRoutes: other methods and paths are problems too.
func TestRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	a := b.do(t, http.MethodGet, "/v1/jobs", "", nil)
	problem(t, a, http.StatusMethodNotAllowed)
	if a.header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/jobs: Allow = %q", a.header.Get("Allow"))
	}
	a = b.do(t, http.MethodPost, "/healthz", "", nil)
	problem(t, a, http.StatusMethodNotAllowed)
	if a.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /healthz: Allow = %q", a.header.Get("Allow"))
	}
	problem(t, b.do(t, http.MethodGet, "/v2/jobs", "", nil), http.StatusNotFound)

	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		a := b.do(t, http.MethodGet, path, "", nil)
		var got struct{ Status string }
		if a.status != http.StatusOK || json.Unmarshal(a.body, &got) != nil || got.Status != want {
			t.Errorf("GET %s: %s", path, a)
		}
	}
}

// TestAuth: with tokens, /v1 needs one of them; probes stay open.
func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.Tokens = []string{"old-token", "new-token"} }})
	a := b.postJSON(t, "/v1/jobs", envelope())
	problem(t, a, http.StatusUnauthorized)
	if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="switchyard"` {
		t.Errorf("no token: WWW-Authenticate = %q", got)
	}
	a = b.postJSON(t, "/v1/jobs", envelope(), "Authorization", "Bearer other-token")
	problem(t, a, http.StatusUnauthorized)
	if got := a.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("wrong token: WWW-Authenticate = %q", got)
	}
	problem(t, b.postJSON(t, "/v1/jobs", envelope(), "Authorization", "Basic bmV3LXRva2Vu"), http.StatusUnauthorized)
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d jobs after refused requests, want 0", n)
	}
	accepted(t, b.postJSON(t, "/v1/jobs", envelope(), "Authorization", "Bearer new-token"))
	accepted(t, b.postJSON(t, "/v1/jobs", envelope(), "Authorization", "bearer old-token"))
	if a := b.do(t, http.MethodGet, "/readyz", "", nil); a.status != http.StatusOK {
		t.Errorf("readyz without a token: %s", a)
	}
}
