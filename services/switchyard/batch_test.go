package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

// batchAPI serves the query API with declarations over a SQLite store and
// a real NATS server, and returns the store and the API's URL.
func batchAPI(t *testing.T) (*recorder.SQLite, *batch.Registry, string) {
	t.Helper()
	ctx := context.Background()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	reg, err := batch.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	store, err := recorder.OpenSQLite(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a := api.NewServer(recorder.APIConfig{Listen: "127.0.0.1:0"}, store, nil, slog.New(slog.DiscardHandler), api.WithDeclarations(reg))
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return store, reg, a.URL()
}

func recordBatch(t *testing.T, store recorder.Store, b string, s job.Status, from, to int) {
	t.Helper()
	var rs []job.Result
	for i := from; i < to; i++ {
		r := storetest.Result(fmt.Sprintf("%s-%03d", b, i), 1, s)
		r.Batch = b
		rs = append(rs, r)
	}
	if err := store.Record(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func TestBatchStatus(t *testing.T) {
	t.Parallel()
	store, reg, url := batchAPI(t)
	if err := reg.Declare(context.Background(), "nightly", 10); err != nil {
		t.Fatal(err)
	}
	recordBatch(t, store, "nightly", job.StatusSucceeded, 0, 6)
	recordBatch(t, store, "nightly", job.StatusFailed, 6, 7)
	out, _, err := runCLI(t, "batch", "status", "nightly", "--api", url)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"7/10 final", "succeeded 6", "failed 1", "[#####################---------]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "done") {
		t.Errorf("an unfinished batch reads as done:\n%s", out)
	}

	out, _, err = runCLI(t, "batch", "status", "nightly", "--api", url, "--json")
	if err != nil || !strings.Contains(out, `"pending": 3`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
	recordBatch(t, store, "adhoc", job.StatusSucceeded, 0, 2)
	out, _, err = runCLI(t, "batch", "status", "adhoc", "--api", url)
	if err != nil || !strings.Contains(out, "not declared") || !strings.Contains(out, "done") {
		t.Errorf("undeclared batch: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"batch"}, {"batch", "status"}, {"batch", "status", "bad id"}, {"batch", "status", "x", "--every", "1ms"},
		{"batch", "status", "missing", "--api", url},
	} {
		if _, _, err := runCLI(t, args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestBatchStatusWait: --wait returns once the last declared job is
// recorded, and not before.
func TestBatchStatusWait(t *testing.T) {
	t.Parallel()
	store, reg, url := batchAPI(t)
	if err := reg.Declare(context.Background(), "w", 4); err != nil {
		t.Fatal(err)
	}
	recordBatch(t, store, "w", job.StatusSucceeded, 0, 3)
	type res struct {
		out string
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, _, err := runCLI(t, "batch", "status", "w", "--wait", "--every", "100ms", "--api", url)
		done <- res{out, err}
	}()
	// The wait must still be running: its first answer said 3 of 4.
	select {
	case r := <-done:
		t.Fatalf("--wait returned before the batch was final: %v\n%s", r.err, r.out)
	case <-time.After(300 * time.Millisecond):
	}
	recordBatch(t, store, "w", job.StatusSucceeded, 3, 4)
	select {
	case r := <-done:
		if r.err != nil || !strings.Contains(r.out, "4/4 final") || !strings.Contains(r.out, "done") {
			t.Errorf("--wait: %v\n%s", r.err, r.out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--wait did not return after the last job was recorded")
	}
}
