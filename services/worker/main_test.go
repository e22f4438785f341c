package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// TestWorkerServiceRunsJobsAndDrains runs the worker main against an
// external server: it creates the streams, runs a job published after it
// started, and when its context ends (SIGTERM) with that call in flight, it
// finishes the call, stores its result and returns cleanly.
func TestWorkerServiceRunsJobsAndDrains(t *testing.T) {
	srv := natstest.Start(t)
	mock := mockapi.New(mockapi.Config{LatencyMin: 500 * time.Millisecond})
	api := httptest.NewServer(mock)
	t.Cleanup(api.Close)
	cfgFile := filepath.Join(t.TempDir(), "worker.yaml")
	yaml := fmt.Sprintf("log:\n  format: json\nproviders:\n  acme:\n    base_url: %s\n    allow_private_network: true\n    concurrency: 10\n", api.URL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfgFile, "--nats-url", srv.URL(), "--id", "w-test", "--http-listen", "127.0.0.1:0"})
	}()

	_, js := srv.Connect(t)
	// The worker has started once its consumer exists.
	bg := context.Background()
	waitFor(t, func() bool {
		_, err := js.Consumer(bg, streams.Jobs, job.WorkConsumer("acme", job.LaneLive))
		return err == nil
	})
	j := job.Job{V: 1, ID: "svc-1", Provider: "acme", Task: "ping", Request: job.Request{Path: "/ping"}}
	data, _ := json.Marshal(j)
	if _, err := js.PublishMsg(bg, &nats.Msg{Subject: job.Subject("acme", job.LaneLive, "ping"), Data: data}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return mock.Stats().InFlight == 1 })
	cancel()

	var res job.Result
	waitFor(t, func() bool {
		s, err := js.Stream(bg, streams.Results)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(bg, job.ResultSubject("acme", "ping"))
		return err == nil && json.Unmarshal(m.Data, &res) == nil
	})
	if res.JobID != "svc-1" || res.Status != job.StatusSucceeded || res.WorkerID != "w-test" {
		t.Fatalf("result = %+v", res)
	}
	if st := mock.Stats(); st.Canceled != 0 {
		t.Fatalf("%d calls cancelled by the stop, want the call in flight finished", st.Canceled)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s of cancel")
	}
}

func TestWorkerServiceBadConfig(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"no providers", "log:\n  format: json\n", "no providers"},
		{"unknown key", "providers:\n  acme:\n    base_url: http://127.0.0.1:1\n    concurrancy: 5\n", "providers.acme.concurrancy"},
		{"hostile base url", "providers:\n  acme:\n    base_url: file:///etc/passwd\n", "base_url"},
		{"auth secret missing", "providers:\n  acme:\n    base_url: http://127.0.0.1:1\n    auth: {header: Authorization, env: SWITCHYARD_TEST_SURELY_UNSET}\n", "SWITCHYARD_TEST_SURELY_UNSET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			// An unreachable NATS: config errors must come first.
			err := run(context.Background(), []string{"--config", f, "--nats-url", "nats://127.0.0.1:1"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkerServiceFiresConfiguredSchedules: a schedule in the config is
// stored at start and its firings are called.
func TestWorkerServiceFiresConfiguredSchedules(t *testing.T) {
	srv := natstest.Start(t)
	mock := mockapi.New(mockapi.Config{})
	api := httptest.NewServer(mock)
	t.Cleanup(api.Close)
	cfgFile := filepath.Join(t.TempDir(), "worker.yaml")
	yaml := fmt.Sprintf(`log:
  format: json
providers:
  acme:
    base_url: %s
    allow_private_network: true
schedules:
  beat:
    every: 1s
    job:
      provider: acme
      task: ping
      request: {path: "/ping/{{date}}"}
`, api.URL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", cfgFile, "--nats-url", srv.URL()}) }()
	waitFor(t, func() bool { return mock.Stats().Requests >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v", err)
	}
}
