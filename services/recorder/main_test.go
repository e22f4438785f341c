package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
)

// started runs the recorder main in the background and returns the URL of
// its query API, read from its log, and the channel run's error comes on.
func started(t *testing.T, ctx context.Context, args ...string) (apiURL string, done <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, append(args, "--log-format", "json"), pw)
		pw.CloseWithError(io.EOF)
		errc <- err
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "query API listening" {
				select {
				case urls <- line.URL:
				default:
				}
			}
		}
		close(urls)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("the recorder ended before its query API listened: %v", <-errc)
		}
		return u, errc
	case <-time.After(30 * time.Second):
		t.Fatal("the query API did not start within 30s")
	}
	return "", nil
}

// TestRecorderServiceRecordsAndStops runs the recorder main against an
// external server, checks a published result reaches the database and the
// query API, and that cancel stops both.
func TestRecorderServiceRecordsAndStops(t *testing.T) {
	srv := natstest.Start(t)
	db := filepath.Join(t.TempDir(), "results.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	apiURL, done := started(t, ctx, "--nats-url", srv.URL(), "--database", db, "--api-listen", "127.0.0.1:0")
	client, err := api.NewClient(apiURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}

	_, js := srv.Connect(t)
	now := time.Now().UTC()
	res := job.Result{V: 1, JobID: "rec-1", Provider: "acme", Task: "ping", Attempt: 1, Status: job.StatusSucceeded,
		HTTPStatus: 200, EnqueuedAt: now, StartedAt: now, FinishedAt: now, WorkerID: "w"}
	data, _ := json.Marshal(res)
	// The recorder consumes once its consumer exists; the API listens
	// before that, so publish until the server accepts.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := js.PublishMsg(ctx, &nats.Msg{Subject: job.ResultSubject("acme", "ping"), Data: data})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish result: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Recording is asynchronous and has no hook to await: ask the API
	// until it knows the job.
	for {
		j, err := client.Job(ctx, "rec-1")
		if err == nil {
			if j.Status != job.StatusSucceeded || j.HTTPStatus != 200 || len(j.Attempts) != 1 {
				t.Fatalf("job = %+v", j)
			}
			break
		}
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != 404 || time.Now().After(deadline) {
			t.Fatalf("job rec-1: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := client.Ready(ctx); err != nil {
		t.Fatalf("readyz: %v", err)
	}

	store, err := recorder.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if row, err := store.Job(ctx, "rec-1"); err != nil || row.Status != job.StatusSucceeded {
		t.Fatalf("row in the database: %+v, %v", row, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("recorder did not stop within 20s of cancel")
	}
	if err := client.Ready(context.Background()); !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("query API after exit: %v, want it gone", err)
	}
}

// TestRecorderServiceAPIPortTaken: a taken API port fails the start and
// says which key to change.
func TestRecorderServiceAPIPortTaken(t *testing.T) {
	srv := natstest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr strings.Builder
	err = run(context.Background(), []string{"--nats-url", srv.URL(), "--database", filepath.Join(t.TempDir(), "r.db"),
		"--api-listen", ln.Addr().String(), "--log-format", "json"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "recorder.api.listen") {
		t.Fatalf("err = %v, want one naming recorder.api.listen", err)
	}
}

// TestRecorderServiceAPIOff: --api-listen - runs the recorder without the
// API.
func TestRecorderServiceAPIOff(t *testing.T) {
	srv := natstest.Start(t)
	// The timeout ends the test should the line never come.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--nats-url", srv.URL(), "--database", filepath.Join(t.TempDir(), "r.db"),
			"--api-listen", "-", "--log-format", "json"}, pw)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var sawOff bool
	for sc.Scan() {
		if strings.Contains(sc.Text(), "query API turned off") {
			sawOff = true
		}
		// The recorder's consumer is the last thing to start.
		if strings.Contains(sc.Text(), `"consumer created"`) {
			cancel()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawOff {
		t.Fatal("the recorder did not log that the API is off")
	}
}

// TestRecorderServiceMetricsAndReadiness: the query API serves the
// recorder's metrics, and /readyz answers 503 while NATS is down and 200
// once the recorder reconnected.
func TestRecorderServiceMetricsAndReadiness(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	apiURL, done := started(t, ctx, "--nats-url", srv.URL(), "--database", filepath.Join(t.TempDir(), "r.db"), "--api-listen", "127.0.0.1:0")
	_, js := srv.Connect(t)
	now := time.Now().UTC()
	for i := range 3 {
		res := job.Result{V: 1, JobID: fmt.Sprintf("m-%d", i), Provider: "acme", Task: "ping", Attempt: 1, Status: job.StatusSucceeded,
			HTTPStatus: 200, EnqueuedAt: now, StartedAt: now, FinishedAt: now, WorkerID: "w"}
		data, _ := json.Marshal(res)
		awaitOK(t, func() error {
			_, err := js.PublishMsg(ctx, &nats.Msg{Subject: job.ResultSubject("acme", "ping"), Data: data})
			return err
		})
	}
	awaitOK(t, func() error {
		body, code := get(t, apiURL+"/metrics")
		for _, want := range []string{"switchyard_recorder_results_total 3", "switchyard_recorder_commits_total{outcome=\"ok\"}",
			"switchyard_recorder_commit_duration_seconds_count", "switchyard_recorder_pending 0", "switchyard_recorder_store_healthy 1"} {
			if code != http.StatusOK || !strings.Contains(body, want) {
				return fmt.Errorf("GET /metrics = %d without %q", code, want)
			}
		}
		return nil
	})
	awaitOK(t, func() error { return wantStatus(t, apiURL+"/readyz", http.StatusOK) })
	srv.Stop()
	awaitOK(t, func() error { return wantStatus(t, apiURL+"/readyz", http.StatusServiceUnavailable) })
	if body, _ := get(t, apiURL+"/readyz"); !strings.Contains(body, "NATS") {
		t.Errorf("readyz while NATS is down: %s; want the reason", body)
	}
	srv.Restart()
	awaitOK(t, func() error { return wantStatus(t, apiURL+"/readyz", http.StatusOK) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

func wantStatus(t *testing.T, url string, want int) error {
	if body, code := get(t, url); code != want {
		return fmt.Errorf("GET %s = %d %s, want %d", url, code, body, want)
	}
	return nil
}

// awaitOK polls f until it returns nil, for up to 20s.
func awaitOK(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
