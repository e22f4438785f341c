package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/job"
)

// TestNDJSON: good lines go in while bad ones are reported by line number,
// in one summary.
func TestNDJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.MaxBody = 4 << 10 }})
	lines := []string{
		envelope(`"id": "n-1"`),
		`{"provider": "acme", "task": "create_invoice", "request": {"path": "https://evil.example/"}}`,
		"",
		"nonsense",
		envelope() + "\r",
		envelope(`"id": "n-1"`),
		envelope(`"meta": {"note": "` + strings.Repeat("x", 5<<10) + `"}`),
		envelope(`"id": "n-8"`), // no line feed after the last line
	}
	rep := report(t, b.postNDJSON(t, "/v1/jobs?lane=bulk&batch=b1", strings.Join(lines, "\n")))
	if rep.Lines != 8 || rep.Stored != 3 || rep.Duplicates != 1 || rep.Failed != 3 || rep.ErrorsTruncated || rep.ResumeLine != 0 {
		t.Errorf("report %+v, want 8 lines: 3 stored, 1 duplicate, 3 failed", rep)
	}
	var got []string
	for _, e := range rep.Errors {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Status))
	}
	if want := []string{"2 invalid", "4 invalid", "7 too_large"}; !slices.Equal(got, want) {
		t.Fatalf("errors %+v, want %v", rep.Errors, want)
	}
	if e := rep.Errors[0]; e.ID == "" || len(e.InvalidParams) != 1 || e.InvalidParams[0].Name != "request.path" ||
		!strings.HasPrefix(e.Error, "request.path: ") {
		t.Errorf("line 2: %+v, want its generated id and request.path named", e)
	}
	if e := rep.Errors[1]; e.ID != "" || e.InvalidParams[0].Name != "envelope" {
		t.Errorf("line 4: %+v", e)
	}
	if n := streamMsgs(t, b.js); n != 3 {
		t.Fatalf("stream holds %d jobs, want 3", n)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		m := stored(t, b.js, seq)
		j, err := job.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "jobs.acme.bulk.create_invoice" || j.Batch != "b1" {
			t.Errorf("job %s on %s, batch %q", j.ID, m.Subject, j.Batch)
		}
	}

	// application/ndjson is taken too; a blank stream is zero lines of
	// nothing.
	a := b.do(t, http.MethodPost, "/v1/jobs", "application/ndjson", strings.NewReader("\n\n"))
	if rep := report(t, a); rep.Lines != 2 || rep.Stored+rep.Failed != 0 {
		t.Errorf("blank stream: %+v", rep)
	}
}

// TestNDJSONTooLong: a stream over max_stream_bytes is refused at once when
// its length is known; otherwise its lines before the limit are handled,
// and it is answered 413 with the line to resume from.
func TestNDJSONTooLong(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{cfg: func(c *gateway.Config) { c.MaxBody, c.MaxStreamBytes = 1<<10, 2<<10 }})
	var body strings.Builder
	for i := range 40 {
		fmt.Fprintln(&body, envelope(fmt.Sprintf(`"id": "l-%d"`, i+1)))
	}
	// Of a known length: refused before anything is read.
	p := problem(t, b.postNDJSON(t, "/v1/jobs", body.String()), http.StatusRequestEntityTooLarge)
	if p.StreamReport != nil || !strings.Contains(p.Detail, "nothing was enqueued") {
		t.Errorf("problem %+v", p)
	}
	if n := streamMsgs(t, b.js); n != 0 {
		t.Fatalf("stream holds %d jobs, want 0", n)
	}
	// Chunked: handled up to the limit.
	a := b.do(t, http.MethodPost, "/v1/jobs", "application/x-ndjson", io.MultiReader(strings.NewReader(body.String())))
	p = problem(t, a, http.StatusRequestEntityTooLarge)
	rep := p.StreamReport
	if rep == nil || rep.Lines == 0 || rep.Lines >= 40 || rep.Stored != rep.Lines || rep.ResumeLine != rep.Lines+1 ||
		!strings.Contains(p.Detail, "gateway.max_stream_bytes") {
		t.Fatalf("problem %+v, report %+v", p, rep)
	}
	if n := streamMsgs(t, b.js); n != uint64(rep.Stored) {
		t.Fatalf("stream holds %d jobs, the report says %d", n, rep.Stored)
	}
}
