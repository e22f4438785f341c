package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/streams"
)

// RecorderRun is what a scenario of kind recorder measured: a backlog of
// results in RESULTS drained by one recorder process into its store.
type RecorderRun struct {
	Database string `json:"database"`
	Results  int    `json:"results"`
	Recorded int    `json:"recorded"`
	Lost     int    `json:"lost"`
	// PublishRate is Results over first publish → last PubAck, with no
	// recorder running.
	PublishSeconds float64 `json:"publish_seconds"`
	PublishRate    float64 `json:"publish_rate"`
	// DrainSeconds runs from the recorder's process start until its
	// consumer has nothing pending or unacknowledged; the recorder acks a
	// batch only after its commit, so that is the last commit.
	DrainSeconds float64 `json:"drain_seconds"`
	Rate         float64 `json:"rate"`
	// MachineCores is the whole machine's busy CPU over the drain, which
	// includes a PostgreSQL server the runner did not start.
	MachineCores float64 `json:"machine_cores"`
	// RecorderMicros is the recorder's CPU per result.
	RecorderMicros float64 `json:"recorder_micros_per_result"`
}

// recorderBatch is the batch id of a run's results, so that their rows are
// told apart from anything else in a shared database.
func recorderBatch(runID string) string { return runID }

// runRecorderLoad measures the recorder alone: start nats-server, publish
// sc.Jobs results to RESULTS, start the recorder, wait until its consumer
// is drained, then count the rows of the run's batch in the store.
func runRecorderLoad(ctx context.Context, o options, sc *Scenario, r *Report, root, logDir string, logger *slog.Logger) error {
	database, err := recorderDatabase(o, sc)
	if err != nil {
		return err
	}
	if !o.noBuild {
		names := []string{binNATS, binRecorder}
		logger.Info("building", "binaries", names, "into", o.binDir)
		if err := build(ctx, root, o.binDir, names, logWriter{logger}); err != nil {
			return err
		}
	}
	dataDir, err := os.MkdirTemp("", "loadtest-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	if database == databaseSQLite {
		database = filepath.Join(dataDir, "results.db")
	}
	st := &stack{pprof: map[string]string{}}
	defer st.kill()
	so := stackOptions{binDir: o.binDir, dataDir: dataDir, logDir: logDir}
	if err := st.startNATS(ctx, sc, so, logger); err != nil {
		return err
	}
	nc, err := nats.Connect(st.natsURL, nats.Name("loadtest-recorder"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := natsx.ApplyStreams(ctx, js, 1, logger); err != nil {
		return err
	}

	run := &RecorderRun{Database: sc.Database, Results: sc.Jobs}
	r.Recorder = run
	batch := recorderBatch(r.RunID)
	pub, err := newPublisher(nc, sc.Enqueue.Window)
	if err != nil {
		return err
	}
	logger.Info("publishing results", "results", sc.Jobs, "batch", batch)
	start := time.Now()
	for i := range sc.Jobs {
		if err := pub.publish(ctx, resultMsg(sc, batch, i, start)); err != nil {
			return err
		}
	}
	if err := pub.settle(ctx); err != nil {
		return err
	}
	run.PublishSeconds = time.Since(start).Seconds()
	run.PublishRate = float64(sc.Jobs) / run.PublishSeconds
	logger.Info("results published", "rate", int(run.PublishRate))

	cfgPath := filepath.Join(logDir, "switchyard.yaml")
	if err := writeRecorderConfig(cfgPath, sc, st.natsURL, database); err != nil {
		return err
	}
	args := []string{"--config", cfgPath}
	if sc.Profile > 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		st.pprof["recorder"] = "http://127.0.0.1:" + strconv.Itoa(port)
		args = append(args, "--pprof", "127.0.0.1:"+strconv.Itoa(port))
	}
	busy0, _ := readMachineCPU()
	st.sampleWindow(false)
	began := time.Now()
	st.recorder, err = startProcess("recorder", filepath.Join(o.binDir, binRecorder), args, logDir, nil)
	if err != nil {
		return err
	}
	st.procs = append(st.procs, st.recorder)
	st.recorder.first, _ = readProc(st.recorder.pid())

	if sc.Profile > 0 {
		go func() {
			path := filepath.Join(r.Dir, "recorder.cpu.pprof")
			if err := fetchProfile(ctx, st.pprof["recorder"]+"/debug/pprof/profile?seconds="+strconv.Itoa(int(sc.Profile.D().Seconds())), path, sc.Profile.D()+30*time.Second); err != nil {
				logger.Warn("recorder profile", "err", err)
			}
		}()
	}
	if err := waitDrained(ctx, js, st, sc.Timeout.D(), logger); err != nil {
		r.Failures = append(r.Failures, err.Error())
	}
	run.DrainSeconds = time.Since(began).Seconds()
	st.sampleWindow(true)
	busy1, _ := readMachineCPU()
	run.Rate = float64(sc.Jobs) / run.DrainSeconds
	run.MachineCores = (busy1 - busy0).Seconds() / run.DrainSeconds
	if p := st.recorder; p.last.CPU > 0 {
		run.RecorderMicros = float64((p.last.CPU - p.first.CPU).Microseconds()) / float64(sc.Jobs)
	}

	store, err := recorder.Open(ctx, database)
	if err != nil {
		return fmt.Errorf("open the store to count: %w", err)
	}
	defer store.Close()
	counts, err := store.BatchCounts(ctx, batch)
	if err != nil {
		return err
	}
	for _, n := range counts {
		run.Recorded += n
	}
	run.Lost = sc.Jobs - run.Recorded
	if run.Lost != 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d of %d results not recorded", run.Lost, sc.Jobs))
	}
	st.stop(logger)
	r.Processes = st.procReports()
	return nil
}

// recorderDatabase returns "sqlite" or the PostgreSQL URL to record into.
func recorderDatabase(o options, sc *Scenario) (string, error) {
	if sc.Database != databasePostgres {
		return databaseSQLite, nil
	}
	url := cmpOr(o.postgresURL, os.Getenv("TEST_POSTGRES_URL"))
	if url == "" {
		return "", fmt.Errorf("scenario %s records into PostgreSQL: give its URL with --postgres or TEST_POSTGRES_URL", sc.Name)
	}
	return url, nil
}

// resultMsg is the i-th result of the run: a succeeded first attempt with
// a response body of sc.PayloadBytes, as a worker would publish it.
func resultMsg(sc *Scenario, batch string, i int, now time.Time) *nats.Msg {
	id, _ := uuid.NewV7()
	if sc.IDs == "random" {
		id = uuid.New()
	}
	jobID := batch + "-" + id.String()
	started := now.Add(time.Duration(i) * time.Microsecond)
	res := job.Result{
		V: job.Version, JobID: jobID, Provider: sc.Provider, Task: sc.Task, Lane: job.LaneBulk, Batch: batch,
		Attempt: 1, Status: job.StatusSucceeded, HTTPStatus: 200, LatencyMS: 500 + int64(i%300),
		EnqueuedAt: started.Add(-time.Second), StartedAt: started, FinishedAt: started.Add(time.Duration(500+i%300) * time.Millisecond),
		Response: &job.Response{
			Headers: map[string][]string{"Content-Type": {"application/json"}},
			Body:    payload(sc.PayloadBytes),
		},
		Meta:     json.RawMessage(`{"row":` + strconv.Itoa(i) + `}`),
		WorkerID: "loadtest",
	}
	data, _ := json.Marshal(&res)
	m := nats.NewMsg(job.ResultSubject(sc.Provider, sc.Task))
	m.Header.Set(nats.MsgIdHdr, jobID+":1:final")
	m.Data = data
	return m
}

// writeRecorderConfig writes the recorder's switchyard.yaml.
func writeRecorderConfig(path string, sc *Scenario, natsURL, database string) error {
	rec := map[string]any{"database": database, "api": map[string]any{"listen": "-"}}
	for k, v := range sc.Config.Recorder {
		rec[k] = v
	}
	cfg := map[string]any{
		"log":      map[string]any{"level": "warn", "format": "json"},
		"nats":     map[string]any{"url": natsURL, "name": "loadtest-" + sc.Name},
		"recorder": rec,
	}
	b, err := yaml.Parser().Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// waitDrained waits until the recorder's consumer exists and has nothing
// pending and nothing awaiting an ack.
func waitDrained(ctx context.Context, js jetstream.JetStream, st *stack, timeout time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("results not drained within %s", timeout)
		case <-tick.C:
		}
		if err := st.failed(); err != nil {
			return err
		}
		c, err := js.Consumer(ctx, streams.Results, streams.Recorder)
		if err != nil {
			continue // not created yet
		}
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		if time.Since(lastLog) > 5*time.Second {
			logger.Info("draining", "pending", info.NumPending, "ack_pending", info.NumAckPending)
			lastLog = time.Now()
		}
	}
}

// readMachineCPU returns the machine's busy CPU time so far: every
// column of the cpu line of /proc/stat but idle and iowait.
func readMachineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
