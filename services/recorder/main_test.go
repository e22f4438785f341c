package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// TestRecorderServiceRecordsAndStops runs the recorder main against an
// external server and checks a published result reaches the database.
func TestRecorderServiceRecordsAndStops(t *testing.T) {
	srv := natstest.Start(t)
	db := filepath.Join(t.TempDir(), "results.db")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats-url", srv.URL(), "--database", db, "--log-format", "json"})
	}()

	_, js := srv.Connect(t)
	now := time.Now().UTC()
	res := job.Result{V: 1, JobID: "rec-1", Provider: "acme", Task: "ping", Attempt: 1, Status: job.StatusSucceeded,
		HTTPStatus: 200, EnqueuedAt: now, StartedAt: now, FinishedAt: now, WorkerID: "w"}
	data, _ := json.Marshal(res)
	// The streams exist once the recorder has applied them; publish until
	// the server accepts.
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

	store, err := recorder.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for {
		row, err := store.Job(ctx, "rec-1")
		if err == nil {
			if row.Status != job.StatusSucceeded || row.HTTPStatus != 200 {
				t.Fatalf("row = %+v", row)
			}
			break
		}
		if !errors.Is(err, recorder.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("job rec-1: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
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
}
