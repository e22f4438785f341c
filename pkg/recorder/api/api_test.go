package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

// base is where the fixture's clock starts: storetest.Result's attempt n
// starts at base + n minutes.
var base = time.Date(2026, 11, 21, 4, 0, 0, 123456789, time.UTC)

// fixtureNow is the clock of the stats: in the minute of the second
// attempts, so a 1m window holds them and a 5m window holds every call.
var fixtureNow = base.Add(2*time.Minute + 30*time.Second)

// fixture is what setup records, in this order, one Record call per group.
var fixture = struct {
	succeeded, retrying, failed []string
	detail                      string
}{
	succeeded: ids("a", 10), // acme / create_invoice / nightly, attempt 1
	retrying:  ids("r", 3),  // acme / refund / nightly, attempt 1
	failed:    ids("b", 4),  // bolt / create_invoice / adhoc, attempt 1
	detail:    "j-detail",   // acme / create_invoice / nightly: 1 retrying, 2 succeeded
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + string(rune('0'+i/10)) + string(rune('0'+i%10))
	}
	return out
}

func result(id, provider, task, batch string, attempt int, status job.Status) job.Result {
	r := storetest.Result(id, attempt, status)
	r.Provider, r.Task, r.Batch = provider, task, batch
	return r
}

// detailResults are the two attempts of the fixture's detail job; the
// second carries a response and meta.
func detailResults() []job.Result {
	first := result(fixture.detail, "acme", "create_invoice", "nightly", 1, job.StatusRetrying)
	second := result(fixture.detail, "acme", "create_invoice", "nightly", 2, job.StatusSucceeded)
	second.Response = &job.Response{
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    json.RawMessage(`{"id":"inv_1"}`),
	}
	second.Meta = json.RawMessage(`{"order":981}`)
	first.Meta = second.Meta
	return []job.Result{first, second}
}

// bundle is what a test works with.
type bundle struct {
	store  *recorder.SQLite
	srv    *httptest.Server
	client *api.Client
	logs   *syncBuffer
	// updated maps each fixture group's first id to its rows' UpdatedAt.
	updated map[string]time.Time
}

type setupOptions struct {
	token string
	ready func() error
	empty bool
}

// setup opens a SQLite store in a temp dir, records the fixture through
// Store.Record and serves the API over it.
func setup(t *testing.T, o setupOptions) *bundle {
	t.Helper()
	ctx := context.Background()
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := &bundle{store: store, logs: &syncBuffer{}, updated: map[string]time.Time{}}
	if !o.empty {
		record := func(rs []job.Result) {
			t.Helper()
			if err := store.Record(ctx, rs); err != nil {
				t.Fatalf("Record: %v", err)
			}
			row, err := store.Job(ctx, rs[0].JobID)
			if err != nil {
				t.Fatal(err)
			}
			b.updated[rs[0].JobID] = row.UpdatedAt
		}
		var rs []job.Result
		for _, id := range fixture.succeeded {
			rs = append(rs, result(id, "acme", "create_invoice", "nightly", 1, job.StatusSucceeded))
		}
		record(rs)
		rs = nil
		for _, id := range fixture.retrying {
			rs = append(rs, result(id, "acme", "refund", "nightly", 1, job.StatusRetrying))
		}
		record(rs)
		rs = nil
		for _, id := range fixture.failed {
			rs = append(rs, result(id, "bolt", "create_invoice", "adhoc", 1, job.StatusFailed))
		}
		record(rs)
		record(detailResults())
	}
	logger := slog.New(slog.NewJSONHandler(b.logs, nil))
	h := api.NewHandler(store, api.Options{Token: o.token, Ready: o.ready, Logger: logger, Now: func() time.Time { return fixtureNow }})
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	if b.client, err = api.NewClient(b.srv.URL, o.token, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// get does a GET with an optional Authorization header and returns the
// status, the headers and the body.
func (b *bundle) get(t *testing.T, path, authorization string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// problem decodes a problem answer, checking its content type and status.
func problem(t *testing.T, status int, h http.Header, body []byte, wantStatus int) api.Problem {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", status, wantStatus, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem %s: %v", body, err)
	}
	if p.Status != wantStatus || p.Title != http.StatusText(wantStatus) || p.Type != "about:blank" {
		t.Fatalf("problem = %+v, want status %d with its title", p, wantStatus)
	}
	return p
}

// syncBuffer is a bytes.Buffer that the server's goroutines can log into
// while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
