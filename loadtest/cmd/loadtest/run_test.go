package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunSmoke runs the whole runner on a tiny scenario: it builds the real
// binaries, starts nats-server, the mock API, the recorder and a worker,
// and checks the report.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the whole stack")
	}
	t.Parallel()
	scenario := writeScenario(t, "smoke.yaml", `
name: smoke
description: A tiny run through the whole stack.
jobs: 300
in_flight: 50
live_trickle: {rate: 20}
mock:
  latency_min: 0s
  latency_max: 5ms
ceiling:
  in_flight: 50
  requests: 300
timeout: 1m
`)
	reports := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := run(ctx, []string{"--scenario", scenario, "--bin", t.TempDir(), "--reports", reports}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}

	dirs, _ := filepath.Glob(filepath.Join(reports, "smoke-*"))
	if len(dirs) != 1 {
		t.Fatalf("report directories %v", dirs)
	}
	dir := dirs[0]
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	pl := r.Pipeline
	if pl == nil {
		t.Fatal("no pipeline in report.json")
	}
	if pl.Jobs != 300 || pl.Recorded != 300 || pl.Lost != 0 || pl.Statuses["succeeded"] != 300+pl.LiveJobs {
		t.Errorf("jobs %d recorded %d lost %d statuses %v", pl.Jobs, pl.Recorded, pl.Lost, pl.Statuses)
	}
	if pl.LiveJobs < 1 || pl.LiveRecorded != pl.LiveJobs {
		t.Errorf("live trickle: %d published, %d recorded", pl.LiveJobs, pl.LiveRecorded)
	}
	if pl.ExtraResults != 0 || pl.ResultsMessages != int64(300+pl.LiveJobs) || !pl.DuplicateCallsChecked || pl.Mock == nil || pl.Mock.Duplicates != 0 {
		t.Errorf("duplicates: results %d extra %d mock %+v", pl.ResultsMessages, pl.ExtraResults, pl.Mock)
	}
	if pl.Mock.Requests != int64(300+pl.LiveJobs) {
		t.Errorf("mock saw %d calls, want %d", pl.Mock.Requests, 300+pl.LiveJobs)
	}
	if pl.EndToEndRate <= 0 || pl.EnqueueRate <= 0 || len(pl.Latency) != 2 || pl.Latency[1].Lane != "live" {
		t.Errorf("rates %v %v latency %+v", pl.EndToEndRate, pl.EnqueueRate, pl.Latency)
	}
	if c := r.Ceiling; c == nil || c.ByStatus["200"] != 300 || c.SteadyRate <= 0 || r.Ratio <= 0 {
		t.Errorf("ceiling %+v ratio %v", r.Ceiling, r.Ratio)
	}
	names := map[string]ProcReport{}
	for _, p := range r.Processes {
		names[p.Name] = p
	}
	for _, n := range []string{"nats-server", "mockapi", "recorder", "worker-1", "runner (this process)"} {
		if p, ok := names[n]; !ok || p.PeakRSS <= 0 || p.TotalCPUSeconds <= 0 {
			t.Errorf("process %s: %+v", n, p)
		}
	}
	if len(r.Failures) != 0 {
		t.Errorf("failures %v", r.Failures)
	}

	md := stdout.String()
	for _, want := range []string{"# Load test smoke — PASS", "| recorded | 300 of 300 + ", "| lost | 0 |", "| duplicate results | 0 (", "| worker-1 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if string(onDisk) != md {
		t.Error("stdout is not report.md")
	}
	f, err := os.Open(filepath.Join(dir, "chart.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("chart.png: %v", err)
	}
	for _, log := range []string{"nats-server.log", "mockapi.log", "recorder.log", "worker-1.log", "switchyard.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, "logs", log)); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		mode    string
		wantErr string
	}{
		{"managed", []string{"--scenario", "s.yaml"}, "managed", ""},
		{"connect", []string{"--scenario", "s.yaml", "--nats", "nats://x", "--mock", "http://m", "--db", "r.db"}, "connect", ""},
		{"ceiling only", []string{"--scenario", "s.yaml", "--ceiling-only"}, "ceiling-only", ""},
		{"ceiling only on a running mock", []string{"--scenario", "s.yaml", "--ceiling-only", "--mock", "http://m"}, "ceiling-only", ""},
		{"no scenario", nil, "", "--scenario is required"},
		{"half a connect", []string{"--scenario", "s.yaml", "--nats", "nats://x"}, "", "needs all of --nats, --mock and --db"},
		{"mock alone", []string{"--scenario", "s.yaml", "--mock", "http://m"}, "", "--mock without --nats and --db"},
		{"ceiling with nats", []string{"--scenario", "s.yaml", "--ceiling-only", "--nats", "nats://x"}, "", "--ceiling-only uses only the mock API"},
		{"stray argument", []string{"--scenario", "s.yaml", "extra"}, "", "unexpected arguments"},
	}
	for _, tc := range tests {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && o.mode() != tc.mode:
			t.Errorf("%s: mode %s, want %s", tc.name, o.mode(), tc.mode)
		}
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	got := commandLine([]string{"--scenario", "loadtest/scenarios/a b.yaml", "--jobs", "10"})
	if want := `go run ./loadtest/cmd/loadtest --scenario "loadtest/scenarios/a b.yaml" --jobs 10`; got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

// TestRunRecorderSmoke runs a tiny scenario of kind recorder: real
// nats-server and recorder processes, the results counted in the store.
func TestRunRecorderSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts nats-server and the recorder")
	}
	t.Parallel()
	scenario := writeScenario(t, "rec.yaml", `
name: rec
description: A tiny backlog of results for the recorder alone.
kind: recorder
jobs: 3000
timeout: 1m
`)
	reports := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := run(ctx, []string{"--scenario", scenario, "--bin", t.TempDir(), "--reports", reports}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	dirs, _ := filepath.Glob(filepath.Join(reports, "rec-*"))
	if len(dirs) != 1 {
		t.Fatalf("report directories %v", dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	rr := r.Recorder
	if rr == nil || r.Pipeline != nil || r.Ceiling != nil {
		t.Fatalf("report: recorder %+v pipeline %v ceiling %v", rr, r.Pipeline, r.Ceiling)
	}
	if rr.Results != 3000 || rr.Recorded != 3000 || rr.Lost != 0 || rr.Rate <= 0 || rr.PublishRate <= 0 || rr.RecorderMicros <= 0 {
		t.Errorf("recorder run %+v", rr)
	}
	if !strings.Contains(stdout.String(), "results/s") {
		t.Errorf("report.md lacks the rate:\n%s", stdout.String())
	}
}

// TestRunRecorderPostgresNeedsURL checks the error before anything starts.
func TestRunRecorderPostgresNeedsURL(t *testing.T) {
	t.Setenv("TEST_POSTGRES_URL", "")
	scenario := writeScenario(t, "pg.yaml", "name: pg\ndescription: d\nkind: recorder\ndatabase: postgres\njobs: 10\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--scenario", scenario, "--bin", t.TempDir(), "--reports", t.TempDir(), "--no-build"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--postgres") {
		t.Fatalf("err = %v, want one naming --postgres", err)
	}
}
