package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCommas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		got, want string
	}{
		{commas(0), "0"},
		{commas(999), "999"},
		{commas(1000), "1,000"},
		{commas(int64(500000)), "500,000"},
		{commas(1234567.4), "1,234,567"},
		{commas(1234567.5), "1,234,568"},
		{commas(-12345), "-12,345"},
		{commas(-0.4), "0"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if got := ms(3.25); got != "3.2 ms" && got != "3.3 ms" {
		t.Errorf("ms(3.25) = %q", got)
	}
	if got := ms(1234.4); got != "1,234 ms" {
		t.Errorf("ms(1234.4) = %q", got)
	}
	if got := bytesIEC(1536 << 20); got != "1.50 GiB" {
		t.Errorf("bytesIEC = %q", got)
	}
	if got := bytesIEC(300 << 20); got != "300 MiB" {
		t.Errorf("bytesIEC = %q", got)
	}
}

// knownReport is a report with round numbers whose rendering is checked
// line by line.
func knownReport() *Report {
	sc := &Scenario{Name: "bulk-500k", Description: "Half a million jobs.", Jobs: 500000}
	return &Report{
		Command: "go run ./loadtest/cmd/loadtest --scenario loadtest/scenarios/bulk-500k.yaml",
		Mode:    "managed", RunID: "lt-1", Dir: "loadtest/reports/bulk-500k-1",
		Started: time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 21, 4, 1, 0, 0, time.UTC),
		Machine:      Machine{CPU: "AMD EPYC", Cores: 2, MemoryBytes: 24 << 30, Kernel: "Linux 6.1", GoVersion: "go1.26.8", GitCommit: "abc123", GitDirty: true},
		ScenarioFile: "loadtest/scenarios/bulk-500k.yaml", Scenario: sc, ScenarioText: "jobs: 500000\n",
		Pipeline: &Pipeline{
			Lane: "bulk", Jobs: 500000, LiveJobs: 80, Recorded: 500000, LiveRecorded: 80,
			EnqueueSeconds: 4, EnqueueRate: 125000, EndToEndSeconds: 40, EndToEndRate: 12500, DrainSeconds: 36, WindowSeconds: 40,
			Latency: []LaneLatency{
				{Lane: "bulk", Jobs: 500000, QueueWait: Percentiles{P50: 15000, P99: 33000, Max: 35000}, EndToEnd: Percentiles{P50: 15650, P99: 33800, Max: 35900}},
				{Lane: "live", Jobs: 80, QueueWait: Percentiles{P50: 1.5, P99: 12, Max: 14}, EndToEnd: Percentiles{P50: 660, P99: 810, Max: 812}},
			},
			Statuses: map[string]int{"succeeded": 500078, "dead": 2}, RetriedJobs: 3, Attempts: 500083,
			ResultsMessages: 500083, ExtraResults: 0,
			Mock:                  &MockStats{Requests: 500083, ByStatus: map[string]int64{"200": 500078, "503": 5}, PeakInFlight: 9999, MaxPerSecond: 15500},
			DuplicateCallsChecked: true,
		},
		Ceiling: &Ceiling{InFlight: 10000, Requests: 200000, ByStatus: map[string]int64{"200": 200000},
			Seconds: 13.5, Rate: 14814.8, SteadySeconds: 12.5, SteadyResponses: 195000, SteadyRate: 15600,
			Mock: &MockStats{PeakInFlight: 10000, MaxPerSecond: 16000}, MockCPUSeconds: 13.5, RunnerCPUSeconds: 6.75},
		Ratio: 12500.0 / 15600,
		Processes: []ProcReport{
			{Name: "worker-1", CPUSeconds: 40, AvgCores: 1, TotalCPUSeconds: 41, PeakRSS: 800 << 20},
			{Name: "nats-server", CPUSeconds: 20, AvgCores: 0.5, TotalCPUSeconds: 22, PeakRSS: 2 << 30},
		},
		Failures: []string{},
	}
}

func TestMarkdownOnKnownReport(t *testing.T) {
	t.Parallel()
	md := knownReport().Markdown()
	for _, want := range []string{
		"# Load test bulk-500k — PASS\n",
		"Half a million jobs.\n",
		"```sh\ngo run ./loadtest/cmd/loadtest --scenario loadtest/scenarios/bulk-500k.yaml\n```",
		"| CPU | AMD EPYC |\n| cores | 2 |\n| memory | 24.00 GiB |\n",
		"| commit | abc123 (dirty) |",
		"```yaml\njobs: 500000\n```",
		"| jobs | 500,000 on the bulk lane, plus 80 live-lane trickle jobs |",
		"| enqueue | 125,000 jobs/s (first publish → last PubAck, 4.00 s) |",
		"| end to end | **12,500 jobs/s** (first publish → last job recorded, 40.00 s) |",
		"| time to drain | 36.00 s (last PubAck → last job recorded) |",
		"| ceiling | 15,600 req/s (steady; see below) |",
		"| end to end / ceiling | **80%** |",
		"| mock API | peak 9,999 calls in flight, max 15,500 calls in one second |",
		"| bulk | 500,000 | 15,000 ms | 33,000 ms | 35,000 ms | 15,650 ms | 33,800 ms | 35,900 ms |",
		"| live | 80 | 1.5 ms | 12 ms | 14 ms | 660 ms | 810 ms | 812 ms |",
		"| recorded | 500,000 of 500,000 + 80 of 80 live |\n| lost | 0 |",
		"| duplicate results | 0 (500,083 results in RESULTS for 500,083 attempts) |",
		"| duplicate calls | 0 (idempotency keys the mock saw more than once) |",
		"| statuses | succeeded 500,078, dead 2 |",
		"| retried jobs | 3 (500,083 attempts in all) |",
		"| mock API calls | 500,083 (200: 500,078, 503: 5), 0 canceled, 0 throttled |",
		"| steady rate | **15,600 req/s** (195,000 responses in 12.50 s: from the end of the first round, every connection open, until the last request was sent) |",
		"| overall rate | 14,815 req/s (start → last response, 13.50 s, ramp-up and drain included) |",
		"| CPU during the loop | mock API 1.00 cores, runner (the client) 0.50 cores |",
		"CPU in the measured window (first publish → last job recorded, 40.0 s)",
		"| worker-1 | 40.00 | 1.00 | 41.00 | 800 MiB |",
		"| nats-server | 20.00 | 0.50 | 22.00 | 2.00 GiB |",
		"| **all** | 60.00 | 1.50 | | |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report.md:\n%s", md)
	}
}

func TestMarkdownShowsFailures(t *testing.T) {
	t.Parallel()
	r := knownReport()
	r.Pipeline.Recorded, r.Pipeline.Lost, r.Pipeline.TimedOut = 499998, 2, true
	r.Pipeline.MissingSample = []string{"lt-1-7", "lt-1-9"}
	r.Pipeline.DuplicateCallsChecked = false
	r.Pipeline.CallsPerJob = 1.25
	r.Failures = []string{"2 job(s) lost: no final result recorded", "timed out after 15m0s"}
	md := r.Markdown()
	for _, want := range []string{
		"# Load test bulk-500k — FAIL\n",
		"- **2 job(s) lost: no final result recorded**\n- **timed out after 15m0s**\n",
		"| lost | 2 (timed out), e.g. lt-1-7, lt-1-9 |",
		"| duplicate calls | not checked: retries are expected here; 1.250 calls per job",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

func TestWriteReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	md, err := writeReport(dir, knownReport())
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || string(onDisk) != md {
		t.Errorf("report.md on disk differs from the one returned (%v)", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Pipeline struct {
			EndToEndRate float64 `json:"end_to_end_rate"`
			Latency      []struct {
				Lane      string `json:"lane"`
				QueueWait struct {
					P99 float64 `json:"p99_ms"`
				} `json:"queue_wait"`
			} `json:"latency"`
		} `json:"pipeline"`
		Scenario struct {
			Timeout string `json:"timeout"`
		} `json:"scenario"`
		Ratio float64 `json:"ratio"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Pipeline.EndToEndRate != 12500 || back.Pipeline.Latency[1].QueueWait.P99 != 12 || back.Ratio < 0.80 || back.Ratio > 0.81 {
		t.Errorf("report.json round trip: %+v", back)
	}
	if back.Scenario.Timeout != "0s" {
		t.Errorf("durations are written as strings; timeout = %q", back.Scenario.Timeout)
	}
}

func TestChartIsADecodablePNG(t *testing.T) {
	t.Parallel()
	var samples []Sample
	for i := range 40 {
		samples = append(samples, Sample{T: float64(i), Rate: float64(i * 300), MockInFlight: int64(min(i*1000, 10000))})
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := writeChart(path, "bulk-500k", samples); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() != chartHeight {
		t.Errorf("chart is %dx%d, want %dx%d", b.Dx(), b.Dy(), chartWidth, chartHeight)
	}
}

func TestChartOfAFewOrFlatSamples(t *testing.T) {
	t.Parallel()
	for _, samples := range [][]Sample{
		nil,
		{{T: 0}},
		{{T: 0, MockInFlight: -1}, {T: 1, MockInFlight: -1}},
		// Throughput with nothing in flight: the two axes' scales differ
		// the most (this once sent go-chart into a near-endless loop).
		{{T: 0}, {T: 1, Rate: 100}},
		{{T: 0}, {T: 0.3, Rate: 50000, MockInFlight: 3}},
	} {
		done := make(chan error, 1)
		var buf bytes.Buffer
		go func() { done <- renderChart(&buf, "", samples) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v: %v", samples, err)
				continue
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%v: chart not drawn after 30s", samples)
		}
		if _, err := png.Decode(&buf); err != nil {
			t.Errorf("%v: %v", samples, err)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		top      float64
		maxTicks int
		want     []float64
	}{
		{0, 10, []float64{0, 1}},
		{7.5, 10, []float64{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{39.1, 20, []float64{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40}},
		{11700, 10, []float64{0, 2000, 4000, 6000, 8000, 10000, 12000}},
		{9999, 10, []float64{0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000}},
		{130, 10, []float64{0, 20, 40, 60, 80, 100, 120, 140}},
	}
	for _, tc := range tests {
		ticks, rng := niceTicks(tc.top, tc.maxTicks)
		var got []float64
		for _, tk := range ticks {
			got = append(got, tk.Value)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("niceTicks(%v, %d) = %v, want %v", tc.top, tc.maxTicks, got, tc.want)
		}
		if rng.Max != tc.want[len(tc.want)-1] {
			t.Errorf("niceTicks(%v): range max %v", tc.top, rng.Max)
		}
	}
}
