package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// TestDevDemoOnce runs the README's one command, scaled down: an embedded
// server, the demo providers, a worker and a recorder, N jobs, exit when all
// are recorded.
func TestDevDemoOnce(t *testing.T) {
	data := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"dev", "--port", "-1", "--data", data,
		"--demo", "300", "--once", "--timeout", "60s",
		"--demo-latency-min", "1ms", "--demo-latency-max", "20ms", "--demo-error-rate", "0.05",
		"--log-format", "json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("dev: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "300 / 300 recorded") || !strings.Contains(out, "demo: done") {
		t.Fatalf("output lacks progress or summary:\n%s", out)
	}
	batch := regexp.MustCompile(`batch (demo-\S+)`).FindStringSubmatch(out)
	if batch == nil {
		t.Fatalf("output names no batch:\n%s", out)
	}

	store, err := recorder.OpenSQLite(context.Background(), filepath.Join(data, "switchyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	counts, err := store.BatchCounts(context.Background(), batch[1])
	if err != nil {
		t.Fatal(err)
	}
	if counts[job.StatusSucceeded] != 300 {
		t.Fatalf("recorded %v, want 300 succeeded", counts)
	}
	if _, err := os.Stat(filepath.Join(data, "jetstream")); err != nil {
		t.Errorf("JetStream storage not in the data dir: %v", err)
	}
}

func TestDevBadInput(t *testing.T) {
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("worker:\n  max_bach: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"serve"}, `unknown command "serve"`},
		{"once without demo", []string{"dev", "--once"}, "--once needs --demo"},
		{"unknown config key", []string{"dev", "--port", "-1", "--data", t.TempDir(), "--config", badConfig}, "worker.max_bach"},
		{"missing config file", []string{"dev", "--port", "-1", "--data", t.TempDir(), "--config", "/nonexistent.yaml"}, "nonexistent.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestDevDemoOnceFailsWhenJobsAreMissing: --once must not exit 0 while jobs
// are unaccounted for.
func TestDevDemoOnceFailsWhenJobsAreMissing(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"dev", "--port", "-1", "--data", t.TempDir(),
		"--demo", "20", "--once", "--timeout", "300ms", "--demo-latency-min", "5s", "--demo-latency-max", "5s", "--demo-error-rate", "0",
		"--log-format", "json"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "20 of 20 jobs not recorded") || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("err = %v, want one saying 20 of 20 jobs were lost", err)
	}
}
