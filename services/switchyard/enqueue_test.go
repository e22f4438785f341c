package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// enqueueServer starts NATS with the Switchyard streams and returns its URL
// and a JetStream handle to look at JOBS.
func enqueueServer(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	srv.ApplyStreams(t, js)
	return srv.URL(), js
}

// runEnqueueCLI runs `switchyard enqueue args...` with stdin.
func runEnqueueCLI(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runEnqueue(ctx, append([]string{"--log-format", "json"}, args...), stdin, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// jobsInStream returns every job in JOBS with its subject, by id.
func jobsInStream(t *testing.T, js jetstream.JetStream) map[string]storedJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storedJob{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		j, addr, err := job.Parse(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("stored job %d does not parse: %v", seq, err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != j.ID {
			t.Errorf("Nats-Msg-Id %q, job id %q", id, j.ID)
		}
		if _, dup := out[j.ID]; dup {
			t.Errorf("job %s stored twice", j.ID)
		}
		out[j.ID] = storedJob{job: j, lane: addr.Lane}
	}
	return out
}

type storedJob struct {
	job  *job.Job
	lane job.Lane
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ndjsonJob is one envelope line for job n, without an id.
func ndjsonJob(n int) string {
	return fmt.Sprintf(`{"v":1,"provider":"acme","task":"create_invoice","request":{"method":"POST","path":"/v1/customers/c%d/invoices","body":{"amount":%d}},"meta":{"n":%d}}`, n, 100+n, n)
}

var summaryLine = regexp.MustCompile(`(?m)^\s+(enqueued|duplicates|failed)\s+([\d,]+)`)

// counts reads the enqueued, duplicates and failed figures of a summary.
func counts(t *testing.T, out string) [3]string {
	t.Helper()
	var c [3]string
	for _, m := range summaryLine.FindAllStringSubmatch(out, -1) {
		c[map[string]int{"enqueued": 0, "duplicates": 1, "failed": 2}[m[1]]] = m[2]
	}
	return c
}

func TestEnqueueNDJSON(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	var lines []string
	for i := range 300 {
		switch i {
		case 4:
			lines = append(lines, `{"v":1,"provider":"acme","task":"create_invoice","request":{"path":"relative"}}`)
		case 8:
			lines = append(lines, `{"v":1, not json`)
		case 11:
			lines = append(lines, "") // blank lines are skipped
		case 20:
			lines = append(lines, `{"v":1,"id":"order-20","provider":"acme","task":"create_invoice","request":{"path":"/v1/x"}}`)
		default:
			lines = append(lines, ndjsonJob(i))
		}
	}
	path := writeFile(t, "jobs.ndjson", strings.Join(lines, "\n")) // no final newline
	ctx := t.Context()

	out, stderr, err := runEnqueueCLI(t, ctx, nil, "--server", url, "--batch", "load-1", path)
	if err == nil || !strings.Contains(err.Error(), "2 of 299 jobs failed") {
		t.Fatalf("err = %v, want 2 of 299 failed\n%s\n%s", err, out, stderr)
	}
	if got := counts(t, out); got != [3]string{"297", "0", "2"} {
		t.Errorf("summary %v, want 297 enqueued, 0 duplicates, 2 failed:\n%s", got, out)
	}
	for _, want := range []string{`line 5: invalid job: request.path: "relative" must start with /`, "line 9: envelope: not a v1 job"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "deduplicates ids over 2m0s") {
		t.Errorf("stderr does not tell the dedup window:\n%s", stderr)
	}

	stored := jobsInStream(t, js)
	if len(stored) != 297 {
		t.Fatalf("%d jobs stored, want 297", len(stored))
	}
	if j, ok := stored["order-20"]; !ok || j.lane != job.LaneBulk || j.job.Batch != "load-1" {
		t.Errorf("the job with its own id: %+v (found %v)", j, ok)
	}

	// The same file again: every id is the same, nothing is stored twice.
	out, _, err = runEnqueueCLI(t, ctx, nil, "--server", url, "--batch", "load-1", path)
	if err == nil || counts(t, out) != [3]string{"0", "297", "2"} {
		t.Fatalf("re-run: err %v, summary %v, want 0 enqueued, 297 duplicates, 2 failed:\n%s", err, counts(t, out), out)
	}
	if again := jobsInStream(t, js); len(again) != 297 {
		t.Fatalf("after the re-run %d jobs stored, want 297", len(again))
	}
}

// TestEnqueueSkipsOverlongLines: a line too long to be a job fails alone.
func TestEnqueueSkipsOverlongLines(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	long := `{"v":1,"note":"` + strings.Repeat("x", maxLine) + `"}`
	path := writeFile(t, "jobs.ndjson", ndjsonJob(1)+"\n"+long+"\n"+ndjsonJob(3)+"\n")
	out, _, err := runEnqueueCLI(t, t.Context(), nil, "--server", url, path)
	if err == nil || counts(t, out) != [3]string{"2", "0", "1"} || !strings.Contains(out, "line 2: line longer than 8 MiB") {
		t.Fatalf("err %v\n%s", err, out)
	}
	if n := len(jobsInStream(t, js)); n != 2 {
		t.Fatalf("%d jobs stored, want 2", n)
	}
}

// TestEnqueueIDsFollowContent: ids derive from the envelope, not from its
// formatting or from where it sits in the file; --id-prefix makes new ones.
func TestEnqueueIDsFollowContent(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	ctx := t.Context()
	first := writeFile(t, "a.ndjson", ndjsonJob(1)+"\n"+ndjsonJob(2)+"\n")
	// The same two jobs, the other way round, reformatted, fields reordered.
	var reformatted []string
	for _, n := range []int{2, 1} {
		reformatted = append(reformatted, fmt.Sprintf(` { "meta" : {"n":%d}, "task":"create_invoice", "provider":"acme", "v":1, "request":{"body":{"amount":%d}, "path":"/v1/customers/c%d/invoices","method":"POST"}} `, n, 100+n, n))
	}
	second := writeFile(t, "b.ndjson", strings.Join(reformatted, "\r\n")+"\r\n")

	if out, _, err := runEnqueueCLI(t, ctx, nil, "--server", url, first); err != nil || counts(t, out)[0] != "2" {
		t.Fatalf("first: %v\n%s", err, out)
	}
	if out, _, err := runEnqueueCLI(t, ctx, nil, "--server", url, second); err != nil || counts(t, out) != [3]string{"0", "2", "0"} {
		t.Fatalf("reformatted: %v, want 2 duplicates\n%s", err, out)
	}
	if out, _, err := runEnqueueCLI(t, ctx, nil, "--server", url, "--id-prefix", "again-", second); err != nil || counts(t, out)[0] != "2" {
		t.Fatalf("new prefix: %v, want 2 enqueued\n%s", err, out)
	}
	stored := jobsInStream(t, js)
	prefixed := 0
	for id := range stored {
		if strings.HasPrefix(id, "again-") {
			prefixed++
		}
	}
	if len(stored) != 4 || prefixed != 2 {
		t.Fatalf("stored %d jobs, %d with the prefix; want 4 and 2", len(stored), prefixed)
	}
}

func TestEnqueueStdin(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	in := strings.NewReader(ndjsonJob(1) + "\n" + ndjsonJob(2) + "\n" + ndjsonJob(3) + "\n")
	out, _, err := runEnqueueCLI(t, t.Context(), in, "--server", url, "--lane", "live", "-")
	if err != nil || counts(t, out) != [3]string{"3", "0", "0"} {
		t.Fatalf("err %v\n%s", err, out)
	}
	for id, j := range jobsInStream(t, js) {
		if j.lane != job.LaneLive {
			t.Errorf("job %s on lane %s, want live", id, j.lane)
		}
	}
}

const invoiceTemplate = `{
  "request": {
    "method": "POST",
    "path": "/v1/customers/{{customer}}/invoices",
    "headers": {"X-Note": "{{note}}"},
    "body": {"amount": "{{amount:json}}", "memo": "invoice for {{customer}}: {{note}}"}
  },
  "meta": {"row": "{{row}}"}
}`

func TestEnqueueCSVWithTemplate(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	ctx := t.Context()
	tmpl := writeFile(t, "tmpl.json", invoiceTemplate)
	csvData := "\ufeffrow,customer,amount,note\n" +
		"r1,cus_1,1200,\"said \"\"hi\"\", then left\"\n" + // line 2
		"r2,cus_2,abc,bad amount\n" + // line 3: not JSON
		"r3,cus_3,300\n" + // line 4: a field short
		"r4,cus_4,1,\"two\nlines\"\n" + // lines 5-6: a newline in a header value
		"r5,../admin,1,escape\n" + // line 7: a path segment ..
		"r6,cus_6,,empty amount\n" + // line 8
		"r7,cus_7,\"{\"\"v\"\":1}\",object amount\n" // line 9
	path := writeFile(t, "rows.csv", csvData)
	args := []string{"--server", url, "--template", tmpl, "--id-column", "row", "--provider", "acme", "--task", "create_invoice", path}

	out, _, err := runEnqueueCLI(t, ctx, nil, args...)
	if err == nil || counts(t, out) != [3]string{"3", "0", "4"} {
		t.Fatalf("err %v, summary %v; want 3 enqueued, 4 failed\n%s", err, counts(t, out), out)
	}
	for _, want := range []string{
		`line 3: column amount: "abc" is not a JSON value`,
		"line 4: CSV: wrong number of fields",
		"line 5: invalid job: request.headers.X-Note: CR, LF and other control characters are not allowed",
		`line 7: invalid job: request.path: "/v1/customers/../admin/invoices" has a ".." segment`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	stored := jobsInStream(t, js)
	r1, r6, r7 := stored["r1"].job, stored["r6"].job, stored["r7"].job
	if len(stored) != 3 || r1 == nil || r6 == nil || r7 == nil {
		t.Fatalf("stored %v, want r1, r6, r7", stored)
	}
	if r1.Provider != "acme" || r1.Task != "create_invoice" || r1.Request.Path != "/v1/customers/cus_1/invoices" ||
		r1.Request.Headers["X-Note"] != `said "hi", then left` ||
		string(r1.Request.Body) != `{"amount":1200,"memo":"invoice for cus_1: said \"hi\", then left"}` ||
		string(r1.Meta) != `{"row":"r1"}` {
		t.Errorf("r1: %+v body %s meta %s", r1, r1.Request.Body, r1.Meta)
	}
	if string(r6.Request.Body) != `{"amount":null,"memo":"invoice for cus_6: empty amount"}` {
		t.Errorf("r6 body %s", r6.Request.Body)
	}
	if string(r7.Request.Body) != `{"amount":{"v":1},"memo":"invoice for cus_7: object amount"}` {
		t.Errorf("r7 body %s", r7.Request.Body)
	}

	out, _, _ = runEnqueueCLI(t, ctx, nil, args...)
	if counts(t, out) != [3]string{"0", "3", "4"} {
		t.Fatalf("re-run: summary %v, want 3 duplicates\n%s", counts(t, out), out)
	}
}

// TestEnqueueCSVWithoutIDs: rows without an id column get ids from their
// content, so a re-run is deduplicated too.
func TestEnqueueCSVWithoutIDs(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	ctx := t.Context()
	tmpl := writeFile(t, "tmpl.json", `{"provider":"acme","task":"lookup","request":{"path":"/v1/customers/{{id}}"}}`)
	var rows strings.Builder
	rows.WriteString("id\n")
	for i := range 500 {
		fmt.Fprintf(&rows, "cus_%d\n", i)
	}
	in := strings.NewReader(rows.String())
	out, _, err := runEnqueueCLI(t, ctx, in, "--server", url, "--template", tmpl, "-")
	if err != nil || counts(t, out)[0] != "500" {
		t.Fatalf("err %v\n%s", err, out)
	}
	in = strings.NewReader(rows.String())
	out, _, err = runEnqueueCLI(t, ctx, in, "--server", url, "--template", tmpl, "-")
	if err != nil || counts(t, out) != [3]string{"0", "500", "0"} {
		t.Fatalf("re-run: err %v\n%s", err, out)
	}
	if n := len(jobsInStream(t, js)); n != 500 {
		t.Fatalf("%d jobs stored, want 500", n)
	}
}

func TestEnqueueBadInvocations(t *testing.T) {
	t.Parallel()
	url, _ := enqueueServer(t)
	bare := natstest.Start(t) // no streams
	ndjson := writeFile(t, "jobs.ndjson", ndjsonJob(1)+"\n")
	csvFile := writeFile(t, "rows.csv", "a,b\n1,2\n")
	tmplLane := writeFile(t, "lane.json", `{"provider":"acme","task":"t","lane":"bulk","request":{"path":"/"}}`)
	tmplCol := writeFile(t, "col.json", `{"provider":"acme","task":"t","request":{"path":"/{{c}}"}}`)
	tmplID := writeFile(t, "id.json", `{"id":"fixed","provider":"acme","task":"t","request":{"path":"/"}}`)
	tmplRaw := writeFile(t, "raw.json", `{"provider":"acme","task":"t","request":{"path":"/x{{a:json}}"}}`)
	tmplNoTask := writeFile(t, "notask.json", `{"provider":"acme","request":{"path":"/"}}`)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no input", []string{"--server", url}, "give one input FILE"},
		{"two inputs", []string{"--server", url, ndjson, ndjson}, "give one input FILE"},
		{"missing file", []string{"--server", url, "/nonexistent.ndjson"}, "no such file"},
		{"bad format", []string{"--format", "xml", ndjson}, `--format "xml"`},
		{"bad lane", []string{"--lane", "fast", ndjson}, `--lane "fast"`},
		{"bad window", []string{"--window", "0", ndjson}, "--window 0"},
		{"bad batch", []string{"--batch", "a b", ndjson}, `--batch "a b"`},
		{"csv without template", []string{csvFile}, "needs --template"},
		{"ndjson with csv flags", []string{"--provider", "acme", ndjson}, "are for CSV input"},
		{"lane in template", []string{"--server", url, "--template", tmplLane, csvFile}, `unknown field "lane" (the lane is not part of the envelope: use --lane)`},
		{"unknown column", []string{"--server", url, "--template", tmplCol, csvFile}, "{{c}} names no column of the CSV header (a, b)"},
		{"fixed id", []string{"--server", url, "--template", tmplID, csvFile}, `id "fixed" is the same for every row`},
		{"partial raw", []string{"--server", url, "--template", tmplRaw, csvFile}, "{{a:json}} must be a whole string value"},
		{"no task", []string{"--server", url, "--template", tmplNoTask, csvFile}, "no task: add one, or pass --task"},
		{"task twice", []string{"--server", url, "--template", tmplCol, "--provider", "other", csvFile}, "set it in one place"},
		{"no JOBS stream", []string{"--server", bare.URL(), ndjson}, "no JOBS stream"},
		{"unknown flag", []string{"--nope", ndjson}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runEnqueueCLI(t, t.Context(), nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q\n%s", err, tt.wantErr, stderr)
			}
		})
	}
}

func TestEnqueueApplyStreams(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t) // no streams yet
	_, js := srv.Connect(t)
	path := writeFile(t, "jobs.ndjson", ndjsonJob(1)+"\n")
	out, _, err := runEnqueueCLI(t, t.Context(), nil, "--server", srv.URL(), "--apply-streams", path)
	if err != nil || counts(t, out)[0] != "1" {
		t.Fatalf("err %v\n%s", err, out)
	}
	if n := len(jobsInStream(t, js)); n != 1 {
		t.Fatalf("%d jobs stored", n)
	}
}

// TestEnqueueInterrupted: when the context ends mid-input, the command
// stops, reports what it did and fails.
func TestEnqueueInterrupted(t *testing.T) {
	t.Parallel()
	url, _ := enqueueServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, _, err = runEnqueueCLI(t, ctx, pr, "--server", url, "-")
		done <- err
	}()
	// The write returns once the command has read the lines: it is running.
	if _, err := pw.Write([]byte(ndjsonJob(1) + "\n" + ndjsonJob(2) + "\n")); err != nil {
		t.Fatal(err)
	}
	cancel()
	pw.CloseWithError(context.Canceled)
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v, want interrupted\n%s", err, out)
	}
}

func TestCSVTemplateEscapesValues(t *testing.T) {
	t.Parallel()
	o := &enqueueOptions{provider: "acme", task: "t", template: "inline"}
	tmpl, err := compileTemplate([]byte(`{"request":{"path":"/","headers":{"X-A":"<{{a}}>"}},"meta":{"b":"{{b:json}}","c":"{{ a }}"}}`), []string{"a", "b"}, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{`plain`, `"quoted" \back\slash`, "new\nline\ttab\x01ctl", "caf\u00e9 \u2603", "bad \xff utf-8", `{{a}}`, `</script>&`} {
		data, err := tmpl.render(nil, []string{value, `[1,"x"]`})
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Request struct{ Headers map[string]string }
			Meta    struct {
				B json.RawMessage
				C string
			}
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("%q renders invalid JSON: %v\n%s", value, err, data)
		}
		want := strings.ToValidUTF8(value, "\ufffd")
		if env.Request.Headers["X-A"] != "<"+want+">" || env.Meta.C != want || string(env.Meta.B) != `[1,"x"]` {
			t.Errorf("%q rendered as %s", value, data)
		}
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	pr := &progress{total: 500000}
	got := pr.line(progressState{done: 125000, duplicates: 3, failed: 2}, 2*time.Second, false)
	want := "125,000/500,000 jobs  25.0%  62,500 jobs/s  ETA 6s  (duplicates 3, failed 2)"
	if got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	pr.tty = true
	if got := pr.line(progressState{done: 250000}, time.Second, false); !strings.HasPrefix(got, "[████████████░░░░░░░░░░░░] 250,000/500,000") {
		t.Errorf("bar %q", got)
	}
	unknown := &progress{}
	got = unknown.line(progressState{done: 1234, pending: 4096, lastErr: errors.New("nats: server is disconnected")}, time.Second, true)
	if want := "1,234 jobs  1,234 jobs/s  (duplicates 0, failed 0)  retrying 4,096: nats: server is disconnected"; got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestEnqueueDeclare: --declare declares the batch with its distinct jobs
// (a line repeated counts once, a line of another batch not at all), and a
// re-run declares the same size without error.
func TestEnqueueDeclare(t *testing.T) {
	t.Parallel()
	url, js := enqueueServer(t)
	lines := []string{ndjsonJob(1), ndjsonJob(2), ndjsonJob(2), ndjsonJob(3),
		`{"v":1,"provider":"acme","task":"create_invoice","batch":"other","request":{"path":"/v1/x"}}`}
	path := writeFile(t, "jobs.ndjson", strings.Join(lines, "\n")+"\n")
	for run := range 2 {
		out, stderr, err := runEnqueueCLI(t, t.Context(), nil, "--server", url, "--batch", "nightly", "--declare", path)
		if err != nil {
			t.Fatalf("run %d: %v\n%s\n%s", run, err, out, stderr)
		}
		if !strings.Contains(out, "batch nightly declared with 3 jobs") {
			t.Errorf("run %d output:\n%s", run, out)
		}
	}
	reg, err := batch.Open(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := reg.Get(t.Context(), "nightly")
	if err != nil || d.Expected != 3 {
		t.Fatalf("declaration %+v, %v; want 3 expected", d, err)
	}
	if _, _, err := runEnqueueCLI(t, t.Context(), nil, "--server", url, "--declare", path); err == nil || !strings.Contains(err.Error(), "--declare needs --batch") {
		t.Errorf("--declare without --batch: err = %v", err)
	}
}
