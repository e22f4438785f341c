package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is everything one run measured; report.json is this struct and
// report.md is rendered from it.
type Report struct {
	Command      string    `json:"command"`
	Mode         string    `json:"mode"` // managed, connect or ceiling-only
	RunID        string    `json:"run_id"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Dir          string    `json:"dir"`
	Machine      Machine   `json:"machine"`
	ScenarioFile string    `json:"scenario_file"`
	Scenario     *Scenario `json:"scenario"`
	// ScenarioText is the scenario file as written.
	ScenarioText string `json:"-"`
	// Overrides lists command-line flags that changed the scenario.
	Overrides []string `json:"overrides,omitempty"`

	Pipeline *Pipeline `json:"pipeline,omitempty"`
	// Recorder is set instead of Pipeline by a scenario of kind recorder.
	Recorder *RecorderRun `json:"recorder,omitempty"`
	Ceiling  *Ceiling     `json:"ceiling,omitempty"`
	// Ratio is the pipeline's end-to-end rate over the ceiling's steady
	// rate.
	Ratio float64 `json:"ratio,omitempty"`

	Processes []ProcReport `json:"processes"`
	Samples   []Sample     `json:"samples"`
	// Failures are correctness failures (and timeouts); any makes the run
	// exit non-zero. Throughput never does.
	Failures []string `json:"failures"`
}

// Pipeline is the measured run through Switchyard.
type Pipeline struct {
	Lane string `json:"lane"`
	// Jobs are the scenario's jobs; LiveJobs those the trickle published.
	Jobs         int  `json:"jobs"`
	LiveJobs     int  `json:"live_jobs"`
	Recorded     int  `json:"recorded"`
	LiveRecorded int  `json:"live_recorded"`
	Lost         int  `json:"lost"`
	TimedOut     bool `json:"timed_out,omitempty"`
	// MissingSample names some of the lost jobs.
	MissingSample []string `json:"missing_sample,omitempty"`

	FirstPublish time.Time `json:"first_publish"`
	LastAck      time.Time `json:"last_ack"`
	LastRecorded time.Time `json:"last_recorded"`
	// EnqueueRate is Jobs over first publish → last PubAck.
	EnqueueSeconds float64 `json:"enqueue_seconds"`
	EnqueueRate    float64 `json:"enqueue_rate"`
	// EndToEndRate is Jobs over first publish → last of them recorded
	// (max updated_at of the main lane).
	EndToEndSeconds float64 `json:"end_to_end_seconds"`
	EndToEndRate    float64 `json:"end_to_end_rate"`
	// DrainSeconds is last PubAck → last recorded.
	DrainSeconds float64 `json:"drain_seconds"`
	// WindowSeconds is the span over which process CPU is measured: from
	// just before the first publish until the runner saw the last main-lane
	// job recorded.
	WindowSeconds float64 `json:"window_seconds"`

	PublishFailures     int64 `json:"publish_failures"`
	PublishDuplicates   int64 `json:"publish_duplicates"`
	LivePublishFailures int   `json:"live_publish_failures,omitempty"`

	Latency  []LaneLatency  `json:"latency"`
	Statuses map[string]int `json:"statuses"`
	// RetriedJobs had more than one attempt; Attempts sums all attempts.
	RetriedJobs int   `json:"retried_jobs"`
	Attempts    int64 `json:"attempts"`
	// ResultsMessages is how many results the run added to RESULTS on its
	// subjects; ExtraResults = ResultsMessages - Attempts, above zero when
	// an attempt's result was published twice.
	ResultsMessages int64 `json:"results_messages"`
	ExtraResults    int64 `json:"extra_results"`

	// Mock is the mock API's counters for the pipeline phase.
	Mock *MockStats `json:"mock,omitempty"`
	// DuplicateCallsChecked says whether Mock.Duplicates must be zero (no
	// retries expected); otherwise CallsPerJob shows the retries.
	DuplicateCallsChecked bool    `json:"duplicate_calls_checked"`
	CallsPerJob           float64 `json:"calls_per_job"`
	// ConsumerPending and ConsumerAckPending are the main lane's work
	// consumer's state at the end; both should be 0.
	ConsumerPending    int64 `json:"consumer_pending"`
	ConsumerAckPending int64 `json:"consumer_ack_pending"`
}

// ProcReport is one process's resource use.
type ProcReport struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPUSeconds is user+system CPU during the measured window; AvgCores is
	// CPUSeconds over the window's wall time.
	CPUSeconds float64 `json:"cpu_seconds"`
	AvgCores   float64 `json:"avg_cores"`
	// TotalCPUSeconds is the CPU the process used from its start until it
	// was stopped (or the run ended).
	TotalCPUSeconds float64 `json:"total_cpu_seconds"`
	// PeakRSS is VmHWM in bytes.
	PeakRSS int64 `json:"peak_rss_bytes"`
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown renders the report for people: the command, the machine, the
// scenario, then one table per question.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	name := "ceiling only"
	if r.Scenario != nil {
		name = r.Scenario.Name
	}
	verdict := "PASS"
	if len(r.Failures) > 0 {
		verdict = "FAIL"
	}
	p("# Load test %s — %s\n\n", name, verdict)
	if r.Scenario != nil && r.Scenario.Description != "" {
		p("%s\n\n", strings.TrimSpace(r.Scenario.Description))
	}
	for _, f := range r.Failures {
		p("- **%s**\n", f)
	}
	if len(r.Failures) > 0 {
		p("\n")
	}
	p("```sh\n%s\n```\n\n", r.Command)
	p("Run `%s`, %s mode, started %s, finished %s; files in `%s`.\n\n", r.RunID, r.Mode,
		r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), r.Finished.UTC().Format("15:04:05 UTC"), r.Dir)

	m := r.Machine
	dirty := ""
	if m.GitDirty {
		dirty = " (dirty)"
	}
	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPU | %s |\n| cores | %d |\n| memory | %s |\n| kernel | %s |\n| Go | %s |\n| commit | %s%s |\n\n",
		m.CPU, m.Cores, bytesIEC(m.MemoryBytes), m.Kernel, m.GoVersion, m.GitCommit, dirty)

	p("## Scenario\n\n`%s`", r.ScenarioFile)
	if len(r.Overrides) > 0 {
		p(", with %s", strings.Join(r.Overrides, " "))
	}
	p("\n\n```yaml\n%s\n```\n\n", strings.TrimRight(r.ScenarioText, "\n"))

	if pl := r.Pipeline; pl != nil {
		r.pipelineMarkdown(&b, pl)
	}
	if rr := r.Recorder; rr != nil {
		p("## Recorder\n\n| | |\n|---|---|\n")
		p("| store | %s |\n", rr.Database)
		p("| results | %s published at %s/s (%.2f s, no recorder running) |\n", commas(rr.Results), commas(rr.PublishRate), rr.PublishSeconds)
		p("| drained | **%s results/s** (%s recorded in %.2f s, from the recorder's start until nothing was pending or unacked) |\n",
			commas(rr.Rate), commas(rr.Recorded), rr.DrainSeconds)
		p("| lost | %s |\n", commas(rr.Lost))
		p("| CPU | recorder %.1f µs per result; whole machine %.2f cores busy during the drain |\n\n", rr.RecorderMicros, rr.MachineCores)
	}
	if c := r.Ceiling; c != nil {
		p("## Ceiling (plain Go, no NATS)\n\n| | |\n|---|---|\n")
		p("| loop | %s goroutines sharing one http.Client, %s requests |\n", commas(c.InFlight), commas(c.Requests))
		p("| steady rate | **%s req/s** (%s responses in %.2f s: from the end of the first round, every connection open, until the last request was sent) |\n",
			commas(c.SteadyRate), commas(c.SteadyResponses), c.SteadySeconds)
		p("| overall rate | %s req/s (start → last response, %.2f s, ramp-up and drain included) |\n", commas(c.Rate), c.Seconds)
		p("| answers | %s; %s without an answer |\n", statusList(c.ByStatus), commas(c.Errors))
		if c.Mock != nil {
			p("| mock | peak in flight %s, max %s calls in one second, %s duplicate keys |\n",
				commas(c.Mock.PeakInFlight), commas(c.Mock.MaxPerSecond), commas(c.Mock.Duplicates))
		}
		if c.Seconds > 0 {
			mockCPU := "—"
			if c.MockCPUSeconds > 0 {
				mockCPU = fmt.Sprintf("%.2f cores", c.MockCPUSeconds/c.Seconds)
			}
			p("| CPU during the loop | mock API %s, runner (the client) %.2f cores |\n", mockCPU, c.RunnerCPUSeconds/c.Seconds)
		}
		p("\n")
	}

	if len(r.Processes) > 0 {
		window := "the run"
		if r.Ceiling != nil && r.Pipeline == nil {
			window = fmt.Sprintf("the ceiling loop, %.1f s", r.Ceiling.Seconds)
		}
		if r.Recorder != nil {
			window = fmt.Sprintf("the recorder's start → drained, %.1f s", r.Recorder.DrainSeconds)
		}
		if r.Pipeline != nil {
			window = fmt.Sprintf("first publish → last job recorded, %.1f s", r.Pipeline.WindowSeconds)
		}
		p("## Processes\n\nCPU in the measured window (%s); peak RSS is VmHWM over the process's life.\n\n", window)
		p("| process | CPU s | avg cores | total CPU s | peak RSS |\n|---|--:|--:|--:|--:|\n")
		var cpu, cores float64
		for _, pr := range r.Processes {
			p("| %s | %.2f | %.2f | %.2f | %s |\n", pr.Name, pr.CPUSeconds, pr.AvgCores, pr.TotalCPUSeconds, bytesIEC(pr.PeakRSS))
			cpu += pr.CPUSeconds
			cores += pr.AvgCores
		}
		p("| **all** | %.2f | %.2f | | |\n\n", cpu, cores)
	}
	return b.String()
}

func (r *Report) pipelineMarkdown(b *strings.Builder, pl *Pipeline) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Throughput\n\n| | |\n|---|---|\n")
	jobs := fmt.Sprintf("%s on the %s lane", commas(pl.Jobs), pl.Lane)
	if pl.LiveJobs > 0 {
		jobs += fmt.Sprintf(", plus %s live-lane trickle jobs", commas(pl.LiveJobs))
	}
	p("| jobs | %s |\n", jobs)
	p("| enqueue | %s jobs/s (first publish → last PubAck, %.2f s) |\n", commas(pl.EnqueueRate), pl.EnqueueSeconds)
	p("| end to end | **%s jobs/s** (first publish → last job recorded, %.2f s) |\n", commas(pl.EndToEndRate), pl.EndToEndSeconds)
	p("| time to drain | %.2f s (last PubAck → last job recorded) |\n", pl.DrainSeconds)
	if c := r.Ceiling; c != nil {
		p("| ceiling | %s req/s (steady; see below) |\n", commas(c.SteadyRate))
		p("| end to end / ceiling | **%.0f%%** |\n", 100*r.Ratio)
	}
	if pl.Mock != nil {
		p("| mock API | peak %s calls in flight, max %s calls in one second |\n", commas(pl.Mock.PeakInFlight), commas(pl.Mock.MaxPerSecond))
	}
	p("\n")

	if len(pl.Latency) > 0 {
		p("## Latency\n\nQueue wait: stored in JOBS → call started. End to end: stored in JOBS → final result committed in SQLite.\n\n")
		p("| lane | jobs | queue wait p50 | p99 | max | end to end p50 | p99 | max |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, l := range pl.Latency {
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", l.Lane, commas(l.Jobs),
				ms(l.QueueWait.P50), ms(l.QueueWait.P99), ms(l.QueueWait.Max),
				ms(l.EndToEnd.P50), ms(l.EndToEnd.P99), ms(l.EndToEnd.Max))
		}
		p("\n")
	}

	p("## Correctness\n\n| | |\n|---|---|\n")
	lost := commas(pl.Lost)
	if pl.TimedOut {
		lost += " (timed out)"
	}
	if len(pl.MissingSample) > 0 {
		lost += ", e.g. " + strings.Join(pl.MissingSample, ", ")
	}
	p("| recorded | %s of %s", commas(pl.Recorded), commas(pl.Jobs))
	if pl.LiveJobs > 0 {
		p(" + %s of %s live", commas(pl.LiveRecorded), commas(pl.LiveJobs))
	}
	p(" |\n| lost | %s |\n", lost)
	p("| duplicate results | %s (%s results in RESULTS for %s attempts) |\n", commas(max(pl.ExtraResults, 0)), commas(pl.ResultsMessages), commas(pl.Attempts))
	if pl.Mock != nil {
		if pl.DuplicateCallsChecked {
			p("| duplicate calls | %s (idempotency keys the mock saw more than once) |\n", commas(pl.Mock.Duplicates))
		} else {
			p("| duplicate calls | not checked: retries are expected here; %.3f calls per job, %s keys seen more than once |\n", pl.CallsPerJob, commas(pl.Mock.Duplicates))
		}
	}
	p("| statuses | %s |\n", statusCounts(pl.Statuses))
	p("| retried jobs | %s (%s attempts in all) |\n", commas(pl.RetriedJobs), commas(pl.Attempts))
	p("| publishes | %s failed and retried, %s answered as duplicates |\n", commas(pl.PublishFailures), commas(pl.PublishDuplicates))
	p("| work consumer at the end | %s pending, %s awaiting ack |\n", commas(pl.ConsumerPending), commas(pl.ConsumerAckPending))
	if pl.Mock != nil {
		p("| mock API calls | %s (%s), %s canceled, %s throttled |\n", commas(pl.Mock.Requests), statusList(pl.Mock.ByStatus), commas(pl.Mock.Canceled), commas(pl.Mock.Throttled))
	}
	p("\n")
}

// commas formats a number with thousands separators, rounding floats.
func commas[T int | int64 | float64](v T) string {
	n := int64(v)
	if f, ok := any(v).(float64); ok {
		n = int64(f + 0.5)
		if f < 0 {
			n = int64(f - 0.5)
		}
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// ms formats milliseconds: whole above 10 ms, else one decimal.
func ms(v float64) string {
	if v >= 10 {
		return commas(v) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// statusList renders HTTP status counts as "200: 1,000, 503: 10".
func statusList(m map[string]int64) string {
	if len(m) == 0 {
		return "no answers"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + commas(m[k])
	}
	return strings.Join(parts, ", ")
}

// statusCounts renders job statuses as "succeeded 1,000, dead 2".
func statusCounts(m map[string]int) string {
	order := []string{"succeeded", "failed", "dead", "expired", "retrying"}
	var parts []string
	for _, s := range order {
		if m[s] > 0 {
			parts = append(parts, s+" "+commas(m[s]))
		}
	}
	var rest []string
	for s := range m {
		if !slices.Contains(order, s) {
			rest = append(rest, s)
		}
	}
	slices.Sort(rest)
	for _, s := range rest {
		parts = append(parts, s+" "+commas(m[s]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// writeReport writes report.json and report.md into dir.
func writeReport(dir string, r *Report) (string, error) {
	if err := writeJSON(filepath.Join(dir, "report.json"), r); err != nil {
		return "", err
	}
	md := r.Markdown()
	return md, os.WriteFile(filepath.Join(dir, "report.md"), []byte(md), 0o644)
}
