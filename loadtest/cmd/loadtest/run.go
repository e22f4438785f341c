package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run is the whole runner. The phases, in order:
//
//  1. build the binaries and start the stack (or connect to one);
//  2. the pipeline: enqueue, wait until every job is recorded, analyse;
//  3. stop the workers and the recorder;
//  4. the ceiling: the plain-Go loop against the same mock API;
//  5. stop the mock and NATS; write report.json, report.md, chart.png.
//
// The workers are stopped before the ceiling so that their idle
// keep-alive connections do not count against the mock's file limit and
// their CPU does not count against the ceiling. run returns an error when
// a job was lost or duplicated, or the run timed out; never for a
// throughput figure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	raiseFileLimit(logger)

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	o.binDir = cmpOr(o.binDir, filepath.Join(root, "loadtest", "bin"))
	o.reportsDir = cmpOr(o.reportsDir, filepath.Join(root, "loadtest", "reports"))

	sc, err := loadScenario(o.scenario, o.jobs)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(o.scenario)
	if err != nil {
		return err
	}
	started := time.Now().UTC()
	runID := "lt-" + started.Format("20060102T150405Z") + "-" + randomHex(2)
	dir, err := reportDir(o.reportsDir, sc.Name, started)
	if err != nil {
		return err
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	r := &Report{
		Command: commandLine(args), Mode: o.mode(), RunID: runID, Started: started, Dir: dir,
		Machine: describeMachine(root), ScenarioFile: o.scenario, Scenario: sc, ScenarioText: string(text),
		Failures: []string{},
	}
	if o.jobs > 0 {
		r.Overrides = append(r.Overrides, "--jobs "+strconv.Itoa(o.jobs))
	}
	logger.Info("load test", "scenario", sc.Name, "jobs", sc.Jobs, "run", runID, "report", dir)

	if sc.Kind == kindRecorder {
		if !o.startsProcesses() || o.ceilingOnly {
			return fmt.Errorf("scenario %s (kind recorder) starts its own nats-server and recorder: drop --nats, --mock, --db and --ceiling-only", sc.Name)
		}
		if err := runRecorderLoad(ctx, o, sc, r, root, logDir, logger); err != nil {
			return err
		}
		return finishReport(dir, r, stdout, logger)
	}

	st, cleanup, err := obtainStack(ctx, o, sc, root, logDir, logger)
	defer cleanup()
	if err != nil {
		return err
	}

	if !o.ceilingOnly {
		if err := runPipeline(ctx, sc, st, r, logger); err != nil {
			return err
		}
		st.stopWorkers(logger)
		if st.recorder != nil {
			st.recorder.stop(15*time.Second, logger)
		}
	}
	if !sc.Ceiling.Skip && ctx.Err() == nil {
		if err := ceilingPhase(ctx, o, sc, st, r, logger); err != nil {
			return err
		}
	}
	st.stop(logger)
	r.Processes = st.procReports()
	r.Finished = time.Now().UTC()

	if r.Pipeline != nil {
		if err := writeChart(filepath.Join(dir, "chart.png"), sc.Name+" — "+runID, r.Samples); err != nil {
			logger.Warn("chart not written", "err", err)
		}
	}
	return finishReport(dir, r, stdout, logger)
}

// finishReport writes the report, prints it, and fails on any correctness
// failure.
func finishReport(dir string, r *Report, stdout io.Writer, logger *slog.Logger) error {
	r.Finished = time.Now().UTC()
	md, err := writeReport(dir, r)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	logger.Info("report written", "dir", dir)
	if len(r.Failures) > 0 {
		return fmt.Errorf("%d correctness failure(s): %s", len(r.Failures), strings.Join(r.Failures, "; "))
	}
	return nil
}

// loadScenario loads the file, applying --jobs before the defaults so that
// the defaults derived from jobs follow it.
func loadScenario(path string, jobs int) (*Scenario, error) {
	if jobs == 0 {
		return LoadScenario(path)
	}
	return loadScenarioWith(path, func(s *Scenario) { s.Jobs = jobs })
}

// obtainStack builds and starts the processes the mode needs, or describes
// the running stack in connect mode. cleanup kills whatever is still
// running and removes the data directory; it is always safe to call.
func obtainStack(ctx context.Context, o options, sc *Scenario, root, logDir string, logger *slog.Logger) (*stack, func(), error) {
	if !o.startsProcesses() {
		return &stack{natsURL: o.natsURL, mockURL: strings.TrimRight(o.mockURL, "/"), dbPath: o.dbPath}, func() {}, nil
	}
	names := []string{binNATS, binMock, binRecorder, binWorker}
	if o.ceilingOnly {
		names = []string{binMock}
	}
	if !o.noBuild {
		logger.Info("building", "binaries", names, "into", o.binDir)
		if err := build(ctx, root, o.binDir, names, logWriter{logger}); err != nil {
			return nil, func() {}, err
		}
	}
	dataDir, err := os.MkdirTemp("", "loadtest-data-")
	if err != nil {
		return nil, func() {}, err
	}
	var st *stack
	cleanup := func() {
		st.kill()
		if o.keepData {
			logger.Info("data kept", "dir", dataDir)
		} else {
			os.RemoveAll(dataDir)
		}
	}
	st, err = startStack(ctx, sc, stackOptions{binDir: o.binDir, dataDir: dataDir, logDir: logDir, mockOnly: o.ceilingOnly}, logger)
	return st, cleanup, err
}

// ceilingPhase runs the plain-Go loop against the mock API with its
// counters reset, and records the mock's and the runner's CPU during it.
func ceilingPhase(ctx context.Context, o options, sc *Scenario, st *stack, r *Report, logger *slog.Logger) error {
	mc := newMockClient(st.mockURL)
	if err := mc.Reset(ctx); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	logger.Info("ceiling: plain Go loop", "in_flight", sc.Ceiling.InFlight, "requests", sc.Ceiling.Requests)
	if sc.Ceiling.Requests < 3*sc.Ceiling.InFlight {
		logger.Warn("ceiling: fewer than three rounds of requests; its steady rate will be rough",
			"requests", sc.Ceiling.Requests, "in_flight", sc.Ceiling.InFlight)
	}
	if o.ceilingOnly {
		st.sampleWindow(false)
	}
	mockBefore, selfBefore := sampleProc(st.mock), sampleSelf()
	cctx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	c := runCeiling(cctx, mc.ProviderURL(sc.Provider)+"/call", payload(sc.PayloadBytes),
		sc.Ceiling.InFlight, sc.Ceiling.Requests, r.RunID+"-ceiling-")
	mockAfter, selfAfter := sampleProc(st.mock), sampleSelf()
	if o.ceilingOnly {
		st.sampleWindow(true)
	}
	if mockBefore != nil && mockAfter != nil {
		c.MockCPUSeconds = (mockAfter.CPU - mockBefore.CPU).Seconds()
	}
	if selfBefore != nil && selfAfter != nil {
		c.RunnerCPUSeconds = (selfAfter.CPU - selfBefore.CPU).Seconds()
	}
	if stats, err := mc.Stats(ctx); err == nil {
		ps := providerStats(stats, sc.Provider)
		c.Mock = &ps
	} else {
		logger.Warn("ceiling: mock stats", "err", err)
	}
	if c.Errors > 0 {
		logger.Warn("ceiling: requests without an answer", "errors", c.Errors)
	}
	r.Ceiling = c
	if r.Pipeline != nil && c.SteadyRate > 0 {
		r.Ratio = r.Pipeline.EndToEndRate / c.SteadyRate
	}
	logger.Info("ceiling done", "steady_rate", commas(c.SteadyRate), "rate", commas(c.Rate), "errors", c.Errors)
	return nil
}

// sampleProc samples a started process; nil when there is none or it has
// exited.
func sampleProc(p *process) *procSample {
	if p == nil || p.exited() {
		return nil
	}
	s, err := readProc(p.pid())
	if err != nil {
		return nil
	}
	return &s
}

// sampleSelf samples the runner.
func sampleSelf() *procSample {
	s, err := readProc(0)
	if err != nil {
		return nil
	}
	return &s
}

func providerStats(r mockReport, provider string) MockStats {
	if ps, ok := r.Providers[provider]; ok {
		return ps
	}
	return r.Total
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: the
// ceiling loop holds one socket per request in flight. Setting it
// explicitly also makes the children inherit it.
func raiseFileLimit(logger *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("read RLIMIT_NOFILE", "err", err)
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("raise RLIMIT_NOFILE", "err", err)
	}
}

// reportDir creates <reports>/<name>-<UTC timestamp>, adding a suffix if
// a run in the same second already took the name.
func reportDir(reports, name string, t time.Time) (string, error) {
	if err := os.MkdirAll(reports, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(reports, name+"-"+t.Format("20060102T150405Z"))
	dir := base
	for i := 2; ; i++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		dir = base + "-" + strconv.Itoa(i)
	}
}

// commandLine reconstructs the command as a user would type it.
func commandLine(args []string) string {
	prog := os.Args[0]
	if strings.Contains(prog, "go-build") || strings.HasSuffix(prog, ".test") {
		prog = "go run ./loadtest/cmd/loadtest"
	}
	parts := []string{prog}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logWriter sends `go build` output to the log line by line.
type logWriter struct{ logger *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		w.logger.Info("go build: " + line)
	}
	return len(p), nil
}

// procReports summarises every started process and the runner over the
// measured window (for a ceiling-only run, the ceiling loop).
func (st *stack) procReports() []ProcReport {
	var out []ProcReport
	add := func(name string, pid int, first, last, final procSample) {
		pr := ProcReport{Name: name, PID: pid}
		if !first.At.IsZero() && !last.At.IsZero() {
			pr.CPUSeconds = (last.CPU - first.CPU).Seconds()
			if wall := last.At.Sub(first.At).Seconds(); wall > 0 {
				pr.AvgCores = pr.CPUSeconds / wall
			}
		}
		end := final
		if end.At.IsZero() {
			end = last
		}
		pr.TotalCPUSeconds = end.CPU.Seconds()
		pr.PeakRSS = max(final.PeakRSS, last.PeakRSS)
		out = append(out, pr)
	}
	if st != nil {
		for _, p := range st.procs {
			add(p.name, p.pid(), p.first, p.last, p.final)
		}
	}
	self, _ := readProc(0)
	var first, last procSample
	if st != nil {
		first, last = st.selfFirst, st.selfLast
	}
	add("runner (this process)", os.Getpid(), first, last, self)
	return out
}
