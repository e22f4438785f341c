package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// TestHostileJobCorpus publishes a corpus of bad jobs to a real worker
// and recorder. Each is refused at publish or dead-lettered with the
// reason named, the provider is never called for any of them, and a good
// job published after them all succeeds.
func TestHostileJobCorpus(t *testing.T) {
	b := setup(t, mockapi.Config{})
	b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})

	env := func(id, extra string) string {
		return `{"v":1,"id":"` + id + `","provider":"acme","task":"t","request":{"method":"POST","path":"/x"` + extra + `}}`
	}
	manyHeaders := map[string]string{}
	for i := range job.MaxHeaders + 1 {
		manyHeaders[fmt.Sprintf("X-H%d", i)] = "1"
	}
	tooManyHeaders, _ := json.Marshal(&job.Job{V: 1, ID: "h-many", Provider: "acme", Task: "t", Request: job.Request{Path: "/x", Headers: manyHeaders}})

	cases := []struct {
		name, subject, id, data string
		wantClass               job.Class
		wantErr                 string
	}{
		{"malformed JSON", "jobs.acme.live.t", "h-malformed", `{"v":1,"id":"h-malformed","request":{`, job.ClassInvalid, "not a v1 job"},
		{"not an object", "jobs.acme.live.t", "h-array", `[1,2,3]`, job.ClassInvalid, "not a v1 job"},
		{"empty message", "jobs.acme.live.t", "h-empty", ``, job.ClassInvalid, "not a v1 job"},
		{"version as a string", "jobs.acme.live.t", "h-vstring", strings.Replace(env("h-vstring", ""), `"v":1`, `"v":"1"`, 1), job.ClassInvalid, "not a v1 job"},
		{"id as a number", "jobs.acme.live.t", "h-idnum", strings.Replace(env("x", ""), `"id":"x"`, `"id":42`, 1), job.ClassInvalid, "not a v1 job"},
		{"request as a string", "jobs.acme.live.t", "h-reqstr", `{"v":1,"id":"h-reqstr","provider":"acme","task":"t","request":"GET http://evil/"}`, job.ClassInvalid, "not a v1 job"},
		{"unknown version", "jobs.acme.live.t", "h-v2", strings.Replace(env("h-v2", ""), `"v":1`, `"v":2`, 1), job.ClassInvalid, "unsupported envelope version 2"},
		{"unknown field", "jobs.acme.live.t", "h-unknown", strings.Replace(env("h-unknown", ""), `"path":"/x"`, `"path":"/x","url":"http://evil/"`, 1), job.ClassInvalid, "not a v1 job"},
		{"duplicate path", "jobs.acme.live.t", "h-dup", env("h-dup", `,"path":"//evil.com/x"`), job.ClassInvalid, `key "request.path" appears more than once`},
		{"case-folded key", "jobs.acme.live.t", "h-case", env("h-case", `,"PATH":"//evil.com/x"`), job.ClassInvalid, `key "request.PATH" is not a field`},
		{"absolute URL", "jobs.acme.live.t", "h-abs", strings.Replace(env("h-abs", ""), `"/x"`, `"http://169.254.169.254/latest/meta-data"`, 1), job.ClassInvalid, "request.path"},
		{"protocol-relative URL", "jobs.acme.live.t", "h-proto", strings.Replace(env("h-proto", ""), `"/x"`, `"//evil.com/x"`, 1), job.ClassInvalid, "would name a host"},
		{"dot-dot", "jobs.acme.live.t", "h-dotdot", strings.Replace(env("h-dotdot", ""), `"/x"`, `"/v1/../../admin"`, 1), job.ClassInvalid, `".." segment`},
		{"encoded dot-dot", "jobs.acme.live.t", "h-dotdot2", strings.Replace(env("h-dotdot2", ""), `"/x"`, `"/v1/%2e%2E/admin"`, 1), job.ClassInvalid, `".." segment`},
		{"backslash", "jobs.acme.live.t", "h-bslash", strings.Replace(env("h-bslash", ""), `"/x"`, `"/\\\\evil.com"`, 1), job.ClassInvalid, "backslash"},
		{"CRLF in a header value", "jobs.acme.live.t", "h-crlf", env("h-crlf", `,"headers":{"X-A":"1\r\nHost: evil.com"}`), job.ClassInvalid, "CR, LF"},
		{"CRLF in a header name", "jobs.acme.live.t", "h-crlfname", env("h-crlfname", `,"headers":{"X-A\r\nX-B":"1"}`), job.ClassInvalid, "not a valid header name"},
		{"Host header", "jobs.acme.live.t", "h-host", env("h-host", `,"headers":{"host":"evil.com"}`), job.ClassInvalid, "may not be set by a job"},
		{"one header twice", "jobs.acme.live.t", "h-hdup", env("h-hdup", `,"headers":{"x-a":"1","X-A":"2"}`), job.ClassInvalid, "names the same header"},
		{"too many headers", "jobs.acme.live.t", "h-many", string(tooManyHeaders), job.ClassInvalid, "at most 64 allowed"},
		{"NUL in the id", "jobs.acme.live.t", "h-nul", strings.Replace(env("x", ""), `"id":"x"`, `"id":"h-nul\u0000"`, 1), job.ClassInvalid, "id: "},
		{"body not JSON", "jobs.acme.live.t", "h-body", env("h-body", `,"body":"x","body_base64":"eA=="`), job.ClassInvalid, "set body or body_base64, not both"},
		{"provider disagrees with subject", "jobs.acme.live.t", "h-prov", strings.Replace(env("h-prov", ""), `"provider":"acme"`, `"provider":"globex"`, 1), job.ClassInvalid, "does not match the subject's provider"},
		{"task disagrees with subject", "jobs.acme.live.t", "h-task", strings.Replace(env("h-task", ""), `"task":"t"`, `"task":"u"`, 1), job.ClassInvalid, "does not match the subject's task"},
		{"Cyrillic a in the envelope's provider", "jobs.acme.live.t", "h-cyr", strings.Replace(env("h-cyr", ""), `"provider":"acme"`, `"provider":"\u0430cme"`, 1), job.ClassInvalid, "must match [a-z0-9_-]"},
		{"fullwidth task token in the subject", "jobs.acme.live.\uff54", "h-fullwidth", env("h-fullwidth", ""), job.ClassInvalid, "subject task"},
		{"Cyrillic a in the subject's provider", "jobs.\u0430cme.live.t", "h-cyrsubj", env("h-cyrsubj", ""), job.ClassInvalid, "subject provider"},
		{"upper case in the subject", "jobs.ACME.live.t", "h-upper", env("h-upper", ""), job.ClassInvalid, "subject provider"},
		{"subject too long", "jobs.acme.live.t.extra", "h-long", env("h-long", ""), job.ClassInvalid, "is not jobs.<provider>.<lane>.<task>"},
	}
	for _, tc := range cases {
		b.publishRaw(t, tc.subject, tc.id, []byte(tc.data))
	}

	// A job bigger than the JOBS stream's max_msg_size (512 KiB) never
	// gets in: the server refuses it at publish.
	huge := env("h-huge", `,"body":{"s":"`+strings.Repeat("A", 600<<10)+`"}`)
	_, err := b.js.PublishMsg(context.Background(), &nats.Msg{Subject: "jobs.acme.live.t", Data: []byte(huge), Header: nats.Header{jetstream.MsgIDHeader: {"h-huge"}}})
	if err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Errorf("a 600 KiB job was not refused at publish: %v", err)
	}

	b.publish(t, newJob("h-good-after", "acme", "charge", "/charge"), job.LaneLive)
	if row := b.waitFinal(t, 10*time.Second, "h-good-after")["h-good-after"]; row.Status != job.StatusSucceeded {
		t.Fatalf("a good job after the corpus: %s", row.Status)
	}

	dead := map[string]job.DeadLetter{}
	waitFor(t, 15*time.Second, func() (bool, string) {
		for _, data := range streamMessages(t, b.js, streams.DLQ) {
			var dl job.DeadLetter
			if json.Unmarshal(data, &dl) == nil {
				dead[dl.JobID] = dl
			}
		}
		var missing []string
		for _, tc := range cases {
			if _, ok := dead[tc.id]; !ok {
				missing = append(missing, tc.id)
			}
		}
		return len(missing) == 0, fmt.Sprintf("no dead letter yet for %v", missing)
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dl := dead[tc.id]
			if dl.Reason != tc.wantClass || !strings.Contains(dl.Error, tc.wantErr) || dl.Subject != tc.subject {
				t.Errorf("dead letter = reason %s, error %q, subject %q; want %s containing %q on %q", dl.Reason, dl.Error, dl.Subject, tc.wantClass, tc.wantErr, tc.subject)
			}
			if len(dl.Job) == 0 && len(dl.JobBase64) == 0 && tc.data != "" {
				t.Error("dead letter lost the original message")
			}
			row := b.waitFinal(t, 10*time.Second, tc.id)[tc.id]
			if row.Status != job.StatusDead || row.ErrorClass != tc.wantClass {
				t.Errorf("recorded %s/%s, want dead/%s", row.Status, row.ErrorClass, tc.wantClass)
			}
		})
	}
	if calls := b.api.Stats().Requests; calls != 1 {
		t.Errorf("provider got %d calls, want only the good job's", calls)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		left := b.jobsLeft(t)
		return left == 0, fmt.Sprintf("%d messages left in JOBS", left)
	})
}
