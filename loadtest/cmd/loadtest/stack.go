package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/config"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// Binary names in the bin directory, as `go build -o DIR` names them.
const (
	binNATS     = "nats-server"
	binMock     = "mockapi"
	binWorker   = "worker"
	binRecorder = "recorder"
)

// buildTargets maps each binary to its package.
var buildTargets = map[string]string{
	binWorker:   "./services/worker",
	binRecorder: "./services/recorder",
	binMock:     "./loadtest/cmd/mockapi",
	binNATS:     "github.com/nats-io/nats-server/v2",
}

// build compiles the named binaries into binDir with one `go build`, so the
// Go build cache makes a rebuild of unchanged code cost only the link.
func build(ctx context.Context, root, binDir string, names []string, out io.Writer) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, buildTargets[n])
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// process is one child process of the stack. Its stdout and stderr go to
// one log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	// done is closed once the process has exited and err is set.
	done chan struct{}
	err  error
	// stopping is set before a deliberate stop, so its exit is no failure.
	stopping bool
	// Samples of /proc at the start and end of the measured window, and
	// just before the stop (for peak RSS).
	first, last, final procSample
}

// startProcess starts bin with args. The child gets its own process group
// (so a terminal's Ctrl-C reaches only the runner, which then stops it in
// order) and SIGKILL when the runner dies. stdout, when not nil, receives
// the child's stdout instead of the log file.
func startProcess(name, bin string, args []string, logDir string, stdout *os.File) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the runner's environment without SWITCHYARD_ variables: the
// services read those as configuration, and a run must be configured by its
// scenario alone.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes an unexpected exit, with the end of its log.
func (p *process) failure() error {
	return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 15))
}

// stop sends SIGTERM and waits up to grace, then kills the process group.
func (p *process) stop(grace time.Duration, logger *slog.Logger) {
	p.signalStop()
	p.waitStop(grace, logger)
}

// signalStop records a final /proc sample (a process that has exited has no
// memory figures left to read) and sends SIGTERM.
func (p *process) signalStop() {
	if p.stopping {
		return
	}
	p.stopping = true
	if p.exited() {
		return
	}
	if s, err := readProc(p.pid()); err == nil {
		p.final = s
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
}

// waitStop waits for a signalled process up to grace, then kills its group.
func (p *process) waitStop(grace time.Duration, logger *slog.Logger) {
	select {
	case <-p.done:
	case <-time.After(grace):
		logger.Warn("process did not stop in time; killing it", "process", p.name, "grace", grace)
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// kill ends the process group at once; for error paths.
func (p *process) kill() {
	p.stopping = true
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the child binds it; on loopback in a test run that is rare
// enough to accept.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// stack is the system under test: NATS, the mock API, the recorder and the
// workers, either started by the runner (managed) or already running
// (connect mode, where procs is empty).
type stack struct {
	natsURL, mockURL, dbPath string
	configPath               string
	// pprof maps a process name (worker-1, recorder) to its profiling
	// endpoint, when profiling.
	pprof map[string]string

	nats, mock, recorder *process
	workers              []*process
	// procs lists every started process in start order.
	procs []*process
	// The runner's own samples at the start and end of the measured window.
	selfFirst, selfLast procSample
}

// stackOptions says what to start and where.
type stackOptions struct {
	binDir  string
	dataDir string // NATS storage, SQLite file
	logDir  string // process logs and switchyard.yaml
	// mockOnly starts just the mock API (--ceiling-only).
	mockOnly bool
}

// startStack starts the processes in dependency order: NATS, the mock, the
// recorder, the workers; it returns once each is ready. On error, whatever
// was started is killed.
func startStack(ctx context.Context, sc *Scenario, o stackOptions, logger *slog.Logger) (st *stack, err error) {
	st = &stack{pprof: map[string]string{}}
	// pprofArgs gives a process a profiling endpoint when the scenario
	// profiles.
	pprofArgs := func(name string) ([]string, error) {
		if sc.Profile == 0 {
			return nil, nil
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		st.pprof[name] = "http://127.0.0.1:" + strconv.Itoa(port)
		return []string{"--pprof", "127.0.0.1:" + strconv.Itoa(port)}, nil
	}
	defer func() {
		if err != nil {
			st.kill()
		}
	}()
	bin := func(name string) string { return filepath.Join(o.binDir, name) }

	if !o.mockOnly {
		if err := st.startNATS(ctx, sc, o, logger); err != nil {
			return st, err
		}
	}

	if st.mock, st.mockURL, err = startMock(ctx, bin(binMock), sc.Mock.args(), o.logDir); err != nil {
		return st, err
	}
	st.procs = append(st.procs, st.mock)
	if err := newMockClient(st.mockURL).WaitHealthy(ctx, 10*time.Second); err != nil {
		return st, err
	}
	logger.Info("mock API ready", "url", st.mockURL)
	if o.mockOnly {
		return st, nil
	}

	st.dbPath = filepath.Join(o.dataDir, "results.db")
	st.configPath = filepath.Join(o.logDir, "switchyard.yaml")
	if err := writeConfig(st.configPath, sc, st.natsURL, newMockClient(st.mockURL).ProviderURL(sc.Provider), st.dbPath); err != nil {
		return st, err
	}

	nc, err := nats.Connect(st.natsURL, nats.Name("loadtest-setup"))
	if err != nil {
		return st, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return st, err
	}

	recArgs, err := pprofArgs("recorder")
	if err != nil {
		return st, err
	}
	st.recorder, err = startProcess("recorder", bin(binRecorder), append([]string{"--config", st.configPath}, recArgs...), o.logDir, nil)
	if err != nil {
		return st, err
	}
	st.procs = append(st.procs, st.recorder)
	if err := waitConsumer(ctx, js, streams.Results, streams.Recorder, 0, st.recorder); err != nil {
		return st, err
	}
	logger.Info("recorder ready", "database", st.dbPath)

	for i := 1; i <= sc.Workers; i++ {
		name := "worker-" + strconv.Itoa(i)
		args := []string{"--config", st.configPath, "--id", name}
		if i == 1 {
			more, err := pprofArgs(name)
			if err != nil {
				return st, err
			}
			args = append(args, more...)
		}
		w, err := startProcess(name, bin(binWorker), args, o.logDir, nil)
		if err != nil {
			return st, err
		}
		st.workers = append(st.workers, w)
		st.procs = append(st.procs, w)
	}
	if err := waitWorkers(ctx, js, sc, sc.Workers, st.workers, logger); err != nil {
		return st, err
	}
	logger.Info("workers ready", "workers", sc.Workers, "in_flight", sc.InFlight)
	return st, nil
}

// startNATS starts nats-server with JetStream on free loopback ports, its
// storage under o.dataDir, and waits until it is ready.
func (st *stack) startNATS(ctx context.Context, sc *Scenario, o stackOptions, logger *slog.Logger) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	monitor, err := freePort()
	if err != nil {
		return err
	}
	natsArgs := []string{
		"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(monitor),
		"-sd", filepath.Join(o.dataDir, "nats"),
	}
	if sc.Profile > 0 {
		prof, err := freePort()
		if err != nil {
			return err
		}
		natsArgs = append(natsArgs, "--profile", strconv.Itoa(prof))
		st.pprof["nats-server"] = "http://127.0.0.1:" + strconv.Itoa(prof)
	}
	st.nats, err = startProcess("nats-server", filepath.Join(o.binDir, binNATS), natsArgs, o.logDir, nil)
	if err != nil {
		return err
	}
	st.procs = append(st.procs, st.nats)
	st.natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	if err := waitNATS(ctx, st.natsURL, st.nats); err != nil {
		return err
	}
	logger.Info("nats-server ready", "url", st.natsURL, "monitor", "http://127.0.0.1:"+strconv.Itoa(monitor))
	return nil
}

// startMock starts the mock API on a kernel-chosen port and reads the base
// URL it prints as its first line of stdout; the rest of its output goes to
// its log.
func startMock(ctx context.Context, bin string, args []string, logDir string) (*process, string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	p, err := startProcess("mockapi", bin, append([]string{"--listen", "127.0.0.1:0"}, args...), logDir, pw)
	pw.Close() // the child has its own copy
	if err != nil {
		pr.Close()
		return nil, "", err
	}
	lines := make(chan string, 1)
	go func() {
		defer pr.Close()
		r := bufio.NewReader(pr)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		// Keep the rest of stdout in the log, and keep the pipe drained so
		// the mock never blocks writing to it.
		if f, err := os.OpenFile(p.log, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			_, _ = io.Copy(f, r)
			f.Close()
		} else {
			_, _ = io.Copy(io.Discard, r)
		}
	}()
	select {
	case line := <-lines:
		u, err := url.Parse(line)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.kill()
			if p.exited() && line == "" {
				return nil, "", p.failure()
			}
			return nil, "", fmt.Errorf("mockapi: first line of stdout %q is not its base URL; see %s", line, p.log)
		}
		return p, strings.TrimRight(line, "/"), nil
	case <-time.After(15 * time.Second):
		p.kill()
		return nil, "", fmt.Errorf("mockapi printed no URL within 15s; see %s", p.log)
	case <-ctx.Done():
		p.kill()
		return nil, "", ctx.Err()
	}
}

// writeConfig writes the one switchyard.yaml every service reads, and
// loads it with the services' own loader so a bad key fails here, naming
// the key, rather than in a child's log.
func writeConfig(path string, sc *Scenario, natsURL, providerURL, dbPath string) error {
	// Every worker process reads this file: each takes a port of its own
	// for its metrics and probes.
	worker := map[string]any{"http": map[string]any{"listen": "127.0.0.1:0"}}
	maps.Copy(worker, sc.Config.Worker)
	recorder := map[string]any{"database": dbPath}
	maps.Copy(recorder, sc.Config.Recorder)
	// The mock provider listens on loopback.
	prov := map[string]any{"base_url": providerURL, "allow_private_network": true, "concurrency": sc.InFlight}
	if sc.LiveReserve > 0 {
		prov["live_reserve"] = sc.LiveReserve
	}
	if sc.CallTimeout > 0 {
		prov["timeout"] = sc.CallTimeout.String()
	}
	if sc.MaxAttempts > 0 {
		prov["max_attempts"] = sc.MaxAttempts
	}
	maps.Copy(prov, sc.Config.Provider)
	cfg := map[string]any{
		"log":       map[string]any{"level": "warn", "format": "json"},
		"nats":      map[string]any{"url": natsURL, "name": "loadtest-" + sc.Name},
		"worker":    worker,
		"recorder":  recorder,
		"providers": map[string]any{sc.Provider: prov},
	}
	b, err := yaml.Parser().Marshal(cfg)
	if err != nil {
		return fmt.Errorf("switchyard.yaml: %w", err)
	}
	header := "# Written by the load-test runner for scenario " + sc.Name + ".\n"
	if err := os.WriteFile(path, append([]byte(header), b...), 0o644); err != nil {
		return err
	}
	if _, err := config.Load(config.Options{File: path, Env: []string{}}); err != nil {
		return fmt.Errorf("the generated %s is invalid (check the scenario's config block): %w", path, err)
	}
	return nil
}

// waitNATS waits until the server accepts a client with JetStream enabled.
func waitNATS(ctx context.Context, natsURL string, p *process) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(natsURL, nats.Timeout(time.Second))
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				_, jerr = js.AccountInfo(ctx)
			}
			nc.Close()
			if jerr == nil {
				return nil
			}
			err = jerr
		}
		if p != nil && p.exited() {
			return p.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server at %s not ready after 15s: %w", natsURL, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitConsumer polls until stream has the durable consumer name, with at
// least minWaiting pull requests waiting on it (so that as many replicas
// are fetching). p, when set, is the process expected to create it.
func waitConsumer(ctx context.Context, js jetstream.JetStream, stream, name string, minWaiting int, p ...*process) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for {
		c, err := js.Consumer(ctx, stream, name)
		if err == nil {
			info := c.CachedInfo()
			if info.NumWaiting >= minWaiting {
				return nil
			}
			last = fmt.Errorf("%d pull requests waiting, want %d", info.NumWaiting, minWaiting)
		} else {
			last = err
		}
		for _, q := range p {
			if q.exited() {
				return q.failure()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer %s on %s not ready after 30s: %w", name, stream, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitWorkers waits until the work consumers of the scenario's lanes exist
// and, for the main lane, until workers replicas are fetching from it, so
// that no job is counted as waiting for a worker that had not started.
func waitWorkers(ctx context.Context, js jetstream.JetStream, sc *Scenario, workers int, procs []*process, logger *slog.Logger) error {
	lanes := []job.Lane{sc.MainLane()}
	if sc.LiveTrickle.Rate > 0 {
		lanes = append(lanes, job.LaneLive)
	}
	for _, lane := range lanes {
		if err := waitConsumer(ctx, js, streams.Jobs, job.WorkConsumer(sc.Provider, lane), 0, procs...); err != nil {
			return err
		}
	}
	// Pull requests come and go as fetches expire, so "all replicas are
	// fetching" is seen, not guaranteed; it is worth a short wait only.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := waitConsumer(wctx, js, streams.Jobs, job.WorkConsumer(sc.Provider, sc.MainLane()), workers, procs...)
	if err != nil && ctx.Err() == nil {
		if errors.Is(err, context.DeadlineExceeded) {
			logger.Warn("not every worker was seen fetching; starting anyway", "workers", workers)
			return nil
		}
		return err
	}
	return err
}

// sampleWindow records a /proc sample of every running process and of the
// runner into first (at the start of the measured window) or last (at its
// end).
func (st *stack) sampleWindow(end bool) {
	if s, err := readProc(0); err == nil {
		if end {
			st.selfLast = s
		} else {
			st.selfFirst = s
		}
	}
	for _, p := range st.procs {
		if p.exited() {
			continue
		}
		s, err := readProc(p.pid())
		if err != nil {
			continue
		}
		if end {
			p.last = s
		} else {
			p.first = s
		}
	}
}

// workerGrace bounds a worker's stop: its default shutdown_grace (30s) and
// some slack. The workers are idle when they are stopped, so they are
// normally gone in well under a second.
const workerGrace = 45 * time.Second

// stopWorkers stops every worker at once and waits for them.
func (st *stack) stopWorkers(logger *slog.Logger) {
	for _, w := range st.workers {
		w.signalStop()
	}
	for _, w := range st.workers {
		w.waitStop(workerGrace, logger)
	}
}

// stop stops everything still running in the documented order: workers
// (which finish or hand back their calls), the recorder (which commits what
// it holds), the mock API, and NATS last, because the others need it to
// stop cleanly.
func (st *stack) stop(logger *slog.Logger) {
	if st == nil {
		return
	}
	st.stopWorkers(logger)
	for _, p := range []*process{st.recorder, st.mock, st.nats} {
		if p != nil {
			p.stop(15*time.Second, logger)
		}
	}
}

// kill ends every process at once, newest first; for error paths.
func (st *stack) kill() {
	if st == nil {
		return
	}
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].kill()
	}
}

// failed returns the first process that exited without being stopped.
func (st *stack) failed() error {
	if st == nil {
		return nil
	}
	for _, p := range st.procs {
		if !p.stopping && p.exited() {
			return p.failure()
		}
	}
	return nil
}
