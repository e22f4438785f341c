package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeScenario(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScenarioDefaults(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario(writeScenario(t, "tiny.yaml", "jobs: 300\n"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"name", sc.Name, "tiny"},
		{"provider", sc.Provider, "loadtest"},
		{"task", sc.Task, "call"},
		{"lane", sc.Lane, "bulk"},
		{"payload_bytes", sc.PayloadBytes, 100},
		{"in_flight", sc.InFlight, 1000},
		{"workers", sc.Workers, 1},
		{"live_trickle.task", sc.LiveTrickle.Task, "call"},
		{"enqueue.window", sc.Enqueue.Window, 4096},
		{"enqueue.rate", sc.Enqueue.Rate, 0.0},
		{"ceiling.in_flight", sc.Ceiling.InFlight, 1000},
		{"ceiling.requests", sc.Ceiling.Requests, 300},
		{"timeout", sc.Timeout.D(), 10 * time.Minute},
		{"profile", sc.Profile.D(), time.Duration(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

func TestScenarioDerivedDefaults(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario(writeScenario(t, "big.yaml", "jobs: 500000\nin_flight: 3000\nworkers: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Ceiling.InFlight != 6000 {
		t.Errorf("ceiling.in_flight = %d, want in_flight × workers = 6000", sc.Ceiling.InFlight)
	}
	if sc.Ceiling.Requests != 200000 {
		t.Errorf("ceiling.requests = %d, want min(jobs, 200000) = 200000", sc.Ceiling.Requests)
	}
}

func TestJobsOverrideMovesDerivedDefaults(t *testing.T) {
	t.Parallel()
	sc, err := loadScenario(writeScenario(t, "s.yaml", "jobs: 500000\n"), 300)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Jobs != 300 || sc.Ceiling.Requests != 300 {
		t.Errorf("jobs %d, ceiling.requests %d; want 300 and 300", sc.Jobs, sc.Ceiling.Requests)
	}
}

func TestShippedScenariosLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bulk-500k", "ci-0ms", "ci-latency", "live-under-limit", "overhead", "recorder-postgres-random", "recorder-postgres", "recorder-sqlite-random", "recorder-sqlite", "steady-plus-bulk"}
	var names []string
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		names = append(names, sc.Name)
		if sc.Name+".yaml" != filepath.Base(f) {
			t.Errorf("%s: name %q does not match the file name", f, sc.Name)
		}
		if sc.Description == "" {
			t.Errorf("%s: no description", f)
		}
		if strings.HasPrefix(sc.Name, "ci-") && sc.Profile != 0 {
			t.Errorf("%s: CI scenarios must not profile (the worker may lack --pprof)", f)
		}
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("scenarios %v, want %v", names, want)
	}
}

func TestShippedScenarioValues(t *testing.T) {
	t.Parallel()
	load := func(name string) *Scenario {
		sc, err := LoadScenario("../../scenarios/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	bulk := load("bulk-500k")
	if bulk.Jobs != 500000 || bulk.InFlight != 10000 || bulk.Workers != 1 ||
		bulk.Mock.LatencyMin.D() != 500*time.Millisecond || bulk.Mock.LatencyMax.D() != 800*time.Millisecond {
		t.Errorf("bulk-500k: %+v", bulk)
	}
	if s := load("steady-plus-bulk"); s.LiveTrickle.Rate != 2 || s.Jobs != 500000 {
		t.Errorf("steady-plus-bulk: trickle %v jobs %d", s.LiveTrickle.Rate, s.Jobs)
	}
	if s := load("overhead"); s.Jobs != 200000 || s.Mock.LatencyMax != 0 || s.InFlight != 2000 {
		t.Errorf("overhead: %+v", s)
	}
	if s := load("ci-latency"); s.Jobs != 20000 || s.InFlight != 10000 {
		t.Errorf("ci-latency: %+v", s)
	}
	for name, db := range map[string]string{"recorder-sqlite": databaseSQLite, "recorder-postgres": databasePostgres} {
		if s := load(name); s.Kind != kindRecorder || s.Database != db || s.Jobs != 500000 || !s.Ceiling.Skip {
			t.Errorf("%s: %+v", name, s)
		}
	}
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		wantErr    []string
	}{
		{"jobs missing", "provider: x\n", []string{"jobs: 0 must be at least 1"}},
		{"unknown key", "jobs: 1\nin_fligth: 10\n", []string{"unknown key in_fligth"}},
		{"unknown nested key", "jobs: 1\nmock: {latency: 5ms}\n", []string{"unknown key mock.latency"}},
		{"duration without unit", "jobs: 1\nmock: {latency_min: 500}\n", []string{"mock.latency_min", "needs a unit"}},
		{"bad duration", "jobs: 1\ntimeout: soon\n", []string{"timeout", `"soon" is not a duration`}},
		{"fraction for a count", "jobs: 1.5\n", []string{"jobs", "not a whole number"}},
		{"latency range", "jobs: 1\nmock: {latency_min: 800ms, latency_max: 500ms}\n", []string{"mock.latency_max: 500ms is below mock.latency_min (800ms)"}},
		{"error rate", "jobs: 1\nmock: {error_rate: 2}\n", []string{"mock.error_rate: 2 must be between 0 and 1"}},
		{"lane", "jobs: 1\nlane: fast\n", []string{`lane: "fast" must be bulk or live`}},
		{"provider token", "jobs: 1\nprovider: Acme.Corp\n", []string{"provider:", "[a-z0-9_-]"}},
		{"live reserve", "jobs: 1\nin_flight: 10\nlive_reserve: 10\n", []string{"live_reserve: 10 must be between 0 and in_flight-1 (9)"}},
		{"trickle on live lane", "jobs: 1\nlane: live\nlive_trickle: {rate: 2}\n", []string{"live_trickle.rate: needs lane bulk"}},
		{"window", "jobs: 1\nenqueue: {window: -1}\n", []string{"enqueue.window"}},
		{"tail without latency", "jobs: 1\nmock: {tail_rate: 0.01}\n", []string{"mock.tail_latency: is required"}},
		{"several at once", "jobs: 0\nworkers: 100\n", []string{"jobs:", "workers: 100 must be between 1 and 64"}},
		{"kind", "jobs: 1\nkind: worker\n", []string{`kind: "worker" must be pipeline or recorder`}},
		{"database", "jobs: 1\nkind: recorder\ndatabase: mysql\n", []string{`database: "mysql" must be sqlite or postgres`}},
		{"postgres pipeline", "jobs: 1\ndatabase: postgres\n", []string{"database: postgres needs kind recorder"}},
		{"ids", "jobs: 1\nkind: recorder\nids: v4\n", []string{`ids: "v4" must be uuid7 or random`}},
		{"ids in a pipeline", "jobs: 1\nids: random\n", []string{"ids:", "with kind recorder"}},
		{"not yaml", "jobs: [1\n", []string{"s.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadScenario(writeScenario(t, "s.yaml", tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestMissingScenarioFile(t *testing.T) {
	t.Parallel()
	_, err := LoadScenario(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %v should name the file", err)
	}
}

func TestMockArgs(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario(writeScenario(t, "s.yaml", `
jobs: 1
mock:
  latency_min: 500ms
  latency_max: 800ms
  error_rate: 0.01
  tail_rate: 0.001
  tail_latency: 5s
  rate_limit: 1000
  burst: 50
  limit_mode: reject
  extra_args: ["--seed", "7"]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(sc.Mock.args(), " ")
	want := "--latency-min 500ms --latency-max 800ms --tail-rate 0.001 --tail-latency 5s --error-rate 0.01 --rate-limit 1000 --burst 50 --limit-mode reject --seed 7"
	if got != want {
		t.Errorf("args\n got %s\nwant %s", got, want)
	}
	if sc.duplicateCallsMeaningful() {
		t.Error("duplicate calls are expected with errors and a rate limit")
	}
	plain, _ := LoadScenario(writeScenario(t, "p.yaml", "jobs: 1\nmock: {latency_min: 1ms}\n"))
	if got := strings.Join(plain.Mock.args(), " "); got != "--latency-min 1ms --latency-max 1ms" {
		t.Errorf("args = %s", got)
	}
	if !plain.duplicateCallsMeaningful() {
		t.Error("without errors or limits every job is called once")
	}
}
