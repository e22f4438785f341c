package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

func TestJob(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	got, err := b.client.Job(context.Background(), fixture.detail)
	if err != nil {
		t.Fatal(err)
	}
	rs := detailResults()
	first, second := rs[0], rs[1]
	want := api.Job{
		JobID: fixture.detail, Provider: "acme", Task: "create_invoice", Lane: job.LaneBulk, Batch: "nightly",
		Status: job.StatusSucceeded, Attempt: 2, LastAttempt: 2, HTTPStatus: 201, LatencyMS: 250,
		EnqueuedAt: second.EnqueuedAt, StartedAt: second.StartedAt, FinishedAt: second.FinishedAt,
		UpdatedAt: got.UpdatedAt, WorkerID: "worker-2",
		Meta:     json.RawMessage(`{"order":981}`),
		Response: second.Response,
		Attempts: []api.Attempt{
			{Attempt: 1, Status: job.StatusRetrying, HTTPStatus: 503, Error: "service unavailable", ErrorClass: job.ClassHTTP5xx,
				LatencyMS: 250, StartedAt: first.StartedAt, FinishedAt: first.FinishedAt, WorkerID: "worker-1"},
			{Attempt: 2, Status: job.StatusSucceeded, HTTPStatus: 201,
				LatencyMS: 250, StartedAt: second.StartedAt, FinishedAt: second.FinishedAt, WorkerID: "worker-2"},
		},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("job:\n got %+v\nwant %+v", *got, want)
	}
	if got.UpdatedAt.IsZero() || got.UpdatedAt != b.updated[fixture.detail] {
		t.Errorf("updated_at = %v, want the store's %v", got.UpdatedAt, b.updated[fixture.detail])
	}

	// The wire shape: snake_case, RFC 3339 with nanoseconds, unknown
	// times left out.
	_, _, body := b.get(t, "/v1/jobs/"+fixture.detail, "")
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"job_id", "last_attempt", "http_status", "latency_ms", "enqueued_at", "updated_at", "worker_id", "response", "attempts"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("answer lacks %q: %s", key, body)
		}
	}
	if raw["enqueued_at"] != "2026-11-21T04:00:00.123456789Z" {
		t.Errorf("enqueued_at = %v, want RFC 3339 with nanoseconds", raw["enqueued_at"])
	}
}

func TestJobNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	status, h, body := b.get(t, "/v1/jobs/nope", "")
	p := problem(t, status, h, body, 404)
	if !strings.Contains(p.Detail, `"nope"`) || p.Instance != "/v1/jobs/nope" {
		t.Errorf("problem = %+v", p)
	}
	_, err := b.client.Job(context.Background(), "nope")
	var perr *api.Problem
	if !errors.As(err, &perr) || perr.Status != 404 {
		t.Fatalf("client error = %v, want a 404 *Problem", err)
	}
}

// TestJobsPagination pages through every job with small pages, both by
// hand and with EachPage, and sees each exactly once, in the feed's order.
func TestJobsPagination(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	ctx := context.Background()
	// 250 more jobs in several transactions, so pages cross both rows that
	// share an updated_at and rows that differ in it.
	for chunk := range 5 {
		var rs []job.Result
		for i := range 50 {
			rs = append(rs, result(fmt.Sprintf("p%03d", chunk*50+i), "acme", "create_invoice", "paged", 1, job.StatusSucceeded))
		}
		if err := b.store.Record(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	const total = 10 + 3 + 4 + 1 + 250

	for _, limit := range []int{1, 7, 100, 1000} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			t.Parallel()
			seen := map[string]bool{}
			var order []api.Job
			pages := 0
			err := b.client.EachPage(ctx, api.ListQuery{Limit: limit}, func(l *api.JobList) error {
				pages++
				if len(l.Jobs) > limit {
					return fmt.Errorf("page of %d rows, limit %d", len(l.Jobs), limit)
				}
				if l.NextCursor != "" && len(l.Jobs) != limit {
					return fmt.Errorf("short page of %d (limit %d) with a next cursor", len(l.Jobs), limit)
				}
				for _, j := range l.Jobs {
					if seen[j.JobID] {
						return fmt.Errorf("job %s twice", j.JobID)
					}
					seen[j.JobID] = true
					if j.Response != nil || j.Meta != nil || j.Attempts != nil {
						return fmt.Errorf("listed job %s carries detail fields", j.JobID)
					}
				}
				order = append(order, l.Jobs...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != total {
				t.Fatalf("saw %d jobs, want %d", len(seen), total)
			}
			if wantPages := (total + limit - 1) / limit; pages < wantPages || pages > wantPages+1 {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
			sorted := slices.IsSortedFunc(order, func(a, b api.Job) int {
				if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
					return c
				}
				return strings.Compare(a.JobID, b.JobID)
			})
			if !sorted {
				t.Error("rows not in (updated_at, job_id) order")
			}
		})
	}

	t.Run("default limit", func(t *testing.T) {
		t.Parallel()
		l, err := b.client.Jobs(ctx, api.ListQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Jobs) != recorder.DefaultPageSize || l.NextCursor == "" {
			t.Fatalf("%d rows, next %q; want %d and a cursor", len(l.Jobs), l.NextCursor, recorder.DefaultPageSize)
		}
	})
}

func TestJobsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	all := slices.Concat(fixture.succeeded, fixture.retrying, fixture.failed, []string{fixture.detail})
	acme := slices.Concat(fixture.succeeded, fixture.retrying, []string{fixture.detail})
	// The rows of the last two Record calls, the failed ones and the
	// detail job, were updated at or after the failed ones'.
	since := b.updated[fixture.failed[0]]
	if !since.After(b.updated[fixture.retrying[0]]) {
		t.Fatalf("the store's clock did not move between two transactions: %v, %v", b.updated[fixture.retrying[0]], since)
	}
	cases := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"none", url.Values{}, all},
		{"provider", url.Values{"provider": {"acme"}}, acme},
		{"provider without jobs", url.Values{"provider": {"nobody"}}, nil},
		{"task", url.Values{"task": {"refund"}}, fixture.retrying},
		{"status", url.Values{"status": {"failed"}}, fixture.failed},
		{"status succeeded", url.Values{"status": {"succeeded"}}, slices.Concat(fixture.succeeded, []string{fixture.detail})},
		{"batch", url.Values{"batch": {"adhoc"}}, fixture.failed},
		{"since", url.Values{"since": {since.Format(time.RFC3339Nano)}}, slices.Concat(fixture.failed, []string{fixture.detail})},
		{"since in another zone", url.Values{"since": {since.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)}}, slices.Concat(fixture.failed, []string{fixture.detail})},
		{"since after everything", url.Values{"since": {b.updated[fixture.detail].Add(time.Nanosecond).Format(time.RFC3339Nano)}}, nil},
		{"together", url.Values{"provider": {"acme"}, "task": {"create_invoice"}, "status": {"succeeded"}, "batch": {"nightly"}}, slices.Concat(fixture.succeeded, []string{fixture.detail})},
		{"together, none match", url.Values{"provider": {"bolt"}, "batch": {"nightly"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := b.get(t, "/v1/jobs?"+tc.query.Encode(), "")
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var l api.JobList
			if err := json.Unmarshal(body, &l); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range l.Jobs {
				got = append(got, j.JobID)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("jobs = %v, want %v", got, want)
			}
			if l.NextCursor != "" {
				t.Errorf("next_cursor %q on a listing that fits one page", l.NextCursor)
			}
			if !strings.Contains(string(body), `"jobs":[`) {
				t.Errorf("jobs must be an array even when empty: %s", body)
			}
		})
	}
}

func TestBadParameters(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{empty: true})
	cases := []struct {
		name, path, param string
	}{
		{"limit zero", "/v1/jobs?limit=0", "limit"},
		{"limit too big", "/v1/jobs?limit=1001", "limit"},
		{"limit not a number", "/v1/jobs?limit=ten", "limit"},
		{"status unknown", "/v1/jobs?status=done", "status"},
		{"since not RFC 3339", "/v1/jobs?since=yesterday", "since"},
		{"since without zone", "/v1/jobs?since=2026-11-21T04:00:00", "since"},
		{"cursor not base64", "/v1/jobs?cursor=%21%21%21", "cursor"},
		{"cursor too short", "/v1/jobs?cursor=AAAA", "cursor"},
		{"cursor with padding", "/v1/jobs?cursor=AAAAAAAAAAB4eA%3D%3D", "cursor"},
		{"provider not a token", "/v1/jobs?provider=Acme", "provider"},
		{"task not a token", "/v1/jobs?task=a.b", "task"},
		{"batch not a batch id", "/v1/jobs?batch=a%2Fb", "batch"},
		{"unknown parameter", "/v1/jobs?stauts=failed", "stauts"},
		{"repeated parameter", "/v1/jobs?provider=a&provider=b", "provider"},
		{"window seconds", "/v1/stats?window=30s", "window"},
		{"window zero", "/v1/stats?window=0", "window"},
		{"window negative", "/v1/stats?window=-5m", "window"},
		{"window part minutes", "/v1/stats?window=1m30s", "window"},
		{"window too long", "/v1/stats?window=169h", "window"},
		{"window not a duration", "/v1/stats?window=week", "window"},
		{"stats unknown parameter", "/v1/stats?windows=1m", "windows"},
		{"batch id", "/v1/batches/a.b", "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := b.get(t, tc.path, "")
			p := problem(t, status, h, body, 400)
			if len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != tc.param || p.InvalidParams[0].Reason == "" {
				t.Errorf("invalid_params = %+v, want %q", p.InvalidParams, tc.param)
			}
			if !strings.HasPrefix(p.Detail, tc.param+": ") {
				t.Errorf("detail %q does not name %q", p.Detail, tc.param)
			}
		})
	}
}

// TestCursorIsOpaqueButChecked: a cursor made by hand from a valid
// position works like the server's own; one holding no position is a 400.
func TestCursorIsOpaqueButChecked(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	l, err := b.client.Jobs(context.Background(), api.ListQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if l.NextCursor == "" || strings.ContainsAny(l.NextCursor, "+/=") {
		t.Fatalf("next_cursor %q: want unpadded base64url", l.NextCursor)
	}
	next, err := b.client.Jobs(context.Background(), api.ListQuery{Limit: 5, Cursor: l.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if next.Jobs[0].JobID == l.Jobs[4].JobID {
		t.Fatal("the next page repeats the last row")
	}
	// 8 bytes of a negative time, then an id.
	_, err = b.client.Jobs(context.Background(), api.ListQuery{Cursor: "_____________3g"})
	var p *api.Problem
	if !errors.As(err, &p) || p.Status != 400 || p.InvalidParams[0].Name != "cursor" {
		t.Fatalf("err = %v, want a 400 naming cursor", err)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	ctx := context.Background()
	cases := []struct {
		id   string
		want api.Batch
	}{
		{"nightly", api.Batch{Batch: "nightly", Total: 14, Counts: map[job.Status]int{job.StatusSucceeded: 11, job.StatusRetrying: 3}, Final: false}},
		{"adhoc", api.Batch{Batch: "adhoc", Total: 4, Counts: map[job.Status]int{job.StatusFailed: 4}, Final: true}},
	}
	for _, tc := range cases {
		got, err := b.client.Batch(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("batch %s = %+v, want %+v", tc.id, *got, tc.want)
		}
	}
	status, h, body := b.get(t, "/v1/batches/unknown", "")
	problem(t, status, h, body, 404)
}

func TestStats(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	got, err := b.client.Stats(context.Background(), time.Minute, 5*time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Now.Equal(fixtureNow) {
		t.Errorf("now = %v, want %v", got.Now, fixtureNow)
	}
	// Every call took 250ms; percentiles are exact to 2.5%.
	lat := func(w api.WindowStats) api.WindowStats {
		for _, p := range []*float64{&w.P50MS, &w.P95MS, &w.P99MS} {
			if w.Calls > 0 && (*p < 250*0.975 || *p > 250*1.025) {
				t.Errorf("window %s: percentile %v ms, want 250 ± 2.5%%", w.Window, *p)
			}
			*p = 0
		}
		return w
	}
	want := []api.ProviderStats{
		{Provider: "acme", Jobs: map[job.Status]int{job.StatusSucceeded: 11, job.StatusRetrying: 3}, Windows: []api.WindowStats{
			// Only the detail job's second attempt finished in the last minute.
			{Window: "1m", Calls: 1},
			// 10 + 3 + the detail job's two attempts; 3 + 1 retrying.
			{Window: "5m", Calls: 15, Errors: 4, ErrorRate: 4.0 / 15},
			{Window: "1h", Calls: 15, Errors: 4, ErrorRate: 4.0 / 15},
		}},
		{Provider: "bolt", Jobs: map[job.Status]int{job.StatusFailed: 4}, Windows: []api.WindowStats{
			{Window: "1m"},
			{Window: "5m", Calls: 4, Errors: 4, ErrorRate: 1},
			{Window: "1h", Calls: 4, Errors: 4, ErrorRate: 1},
		}},
	}
	for _, p := range got.Providers {
		for i := range p.Windows {
			p.Windows[i] = lat(p.Windows[i])
		}
	}
	if !reflect.DeepEqual(got.Providers, want) {
		t.Errorf("providers:\n got %+v\nwant %+v", got.Providers, want)
	}

	// Without windows: 1m, 5m, 15m.
	def, err := b.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var windows []string
	for _, w := range def.Providers[0].Windows {
		windows = append(windows, w.Window)
	}
	if !slices.Equal(windows, []string{"1m", "5m", "15m"}) {
		t.Errorf("default windows = %v", windows)
	}
}

func TestStatsEmptyStore(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{empty: true})
	_, _, body := b.get(t, "/v1/stats", "")
	if !strings.Contains(string(body), `"providers":[]`) {
		t.Errorf("providers must be an empty array: %s", body)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	b := setup(t, setupOptions{token: token})
	cases := []struct {
		name, path, header string
		wantStatus         int
		wantChallenge      string
	}{
		{"no token", "/v1/jobs", "", 401, `Bearer realm="switchyard"`},
		{"wrong token", "/v1/jobs", "Bearer nope", 401, `Bearer realm="switchyard", error="invalid_token"`},
		{"token as prefix", "/v1/jobs", "Bearer " + token + "x", 401, `Bearer realm="switchyard", error="invalid_token"`},
		{"basic scheme", "/v1/jobs", "Basic " + token, 401, `Bearer realm="switchyard"`},
		{"right token", "/v1/jobs", "Bearer " + token, 200, ""},
		{"scheme in any case", "/v1/stats", "bearer " + token, 200, ""},
		{"unknown /v1 path without token", "/v1/nothing", "", 401, `Bearer realm="switchyard"`},
		{"job with token", "/v1/jobs/" + fixture.detail, "Bearer " + token, 200, ""},
		{"healthz stays open", "/healthz", "", 200, ""},
		{"readyz stays open", "/readyz", "", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := b.get(t, tc.path, tc.header)
			if status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", status, tc.wantStatus, body)
			}
			if got := h.Get("WWW-Authenticate"); got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wantChallenge)
			}
			if tc.wantStatus == 401 {
				problem(t, status, h, body, 401)
			}
		})
	}

	t.Run("client", func(t *testing.T) {
		t.Parallel()
		if _, err := b.client.Job(context.Background(), fixture.detail); err != nil {
			t.Fatalf("client with the token: %v", err)
		}
		anon, err := api.NewClient(b.srv.URL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = anon.Jobs(context.Background(), api.ListQuery{})
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != 401 {
			t.Fatalf("err = %v, want a 401 problem", err)
		}
	})
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOptions{empty: true, ready: func() error { return nil }})
		status, _, body := b.get(t, "/readyz", "")
		if status != 200 || !strings.Contains(string(body), `"ready"`) {
			t.Fatalf("readyz = %d %s", status, body)
		}
		if err := b.client.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ready func says no", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOptions{empty: true, ready: func() error { return errors.New("store writes are failing") }})
		status, h, body := b.get(t, "/readyz", "")
		p := problem(t, status, h, body, 503)
		if p.Detail != "not ready: store writes are failing" {
			t.Errorf("detail = %q", p.Detail)
		}
		// Alive all the same.
		if status, _, _ := b.get(t, "/healthz", ""); status != 200 {
			t.Errorf("healthz = %d, want 200", status)
		}
	})
	t.Run("store closed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOptions{empty: true})
		b.store.Close()
		status, h, body := b.get(t, "/readyz", "")
		p := problem(t, status, h, body, 503)
		if !strings.Contains(p.Detail, "results store") {
			t.Errorf("detail = %q", p.Detail)
		}
		if err := b.client.Ready(context.Background()); err == nil {
			t.Error("client Ready = nil on a closed store")
		}
	})
}

// TestStoreFailure: a failing store is a 500 whose detail does not leak
// the cause, which goes to the log.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	b.store.Close()
	for _, path := range []string{"/v1/jobs/" + fixture.detail, "/v1/jobs", "/v1/batches/nightly", "/v1/stats"} {
		status, h, body := b.get(t, path, "")
		p := problem(t, status, h, body, 500)
		if strings.Contains(strings.ToLower(p.Detail), "sql") || strings.Contains(p.Detail, "closed") {
			t.Errorf("%s: detail leaks the cause: %q", path, p.Detail)
		}
	}
	logs := b.logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "store failed") {
		t.Errorf("store failures not logged as errors:\n%s", logs)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{empty: true})
	status, h, body := b.get(t, "/v2/jobs", "")
	problem(t, status, h, body, 404)

	resp, err := b.srv.Client().Post(b.srv.URL+"/v1/jobs", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("POST /v1/jobs = %d, Allow %q, %s; want a 405 problem", resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
	}
	resp, err = b.srv.Client().Post(b.srv.URL+"/v1/nothing", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("POST /v1/nothing = %d, want 404", resp.StatusCode)
	}
}

// TestBatchDeclared: with declarations, a batch reports its expected size
// and pending jobs, is final only when every declared job is, and is known
// before any of its jobs is recorded.
func TestBatchDeclared(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	reg, err := batch.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t)
	// 10 recorded jobs, 8 final, of a batch declared with 12.
	var rs []job.Result
	for i := range 10 {
		s := job.StatusSucceeded
		if i >= 8 {
			s = job.StatusRetrying
		}
		rs = append(rs, result(fmt.Sprintf("d%02d", i), "acme", "t", "declared", 1, s))
	}
	if err := store.Record(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for id, n := range map[string]int{"declared": 12, "empty": 5} {
		if err := reg.Declare(ctx, id, n); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(api.NewHandler(store, api.Options{Declarations: func(ctx context.Context, id string) (*batch.Declaration, error) {
		d, _, err := reg.Get(ctx, id)
		return d, err
	}}))
	t.Cleanup(ts.Close)
	c, err := api.NewClient(ts.URL, "", ts.Client())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Batch(ctx, "declared")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Declared || got.Expected != 12 || got.Pending != 4 || got.Total != 10 || got.Final || got.DeclaredAt == nil || got.CompletedAt != nil {
		t.Errorf("declared batch = %+v", got)
	}
	got, err = c.Batch(ctx, "empty")
	if err != nil {
		t.Fatalf("a declared batch with no jobs yet: %v", err)
	}
	if !got.Declared || got.Expected != 5 || got.Pending != 5 || got.Total != 0 || got.Final {
		t.Errorf("empty declared batch = %+v", got)
	}
	var p *api.Problem
	if _, err := c.Batch(ctx, "neither"); !errors.As(err, &p) || p.Status != 404 {
		t.Errorf("unknown batch: err = %v, want 404", err)
	}
}
