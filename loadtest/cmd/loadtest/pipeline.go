package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// pollEvery is how often the results database is read; the end of the run
// is seen at most this late.
const pollEvery = 250 * time.Millisecond

// runPipeline enqueues the scenario's jobs while the workers run, waits
// until every one is recorded (or the scenario's timeout), and fills
// r.Pipeline, r.Samples and r.Failures. It returns an error only when the
// run could not be carried out at all (a process died, NATS refused);
// lost or duplicated jobs are failures in the report.
func runPipeline(ctx context.Context, sc *Scenario, st *stack, r *Report, logger *slog.Logger) error {
	nc, err := nats.Connect(st.natsURL, nats.Name("loadtest-enqueue"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	mainLane := sc.MainLane()
	resultSubjects := []string{job.ResultSubject(sc.Provider, sc.Task)}
	if sc.LiveTrickle.Rate > 0 && sc.LiveTrickle.Task != sc.Task {
		resultSubjects = append(resultSubjects, job.ResultSubject(sc.Provider, sc.LiveTrickle.Task))
	}
	resultsBefore, err := countResults(ctx, js, resultSubjects)
	if err != nil {
		return err
	}
	db, err := openResults(st.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	prog := newProgress(db, r.RunID)
	if err := prog.skipExisting(ctx); err != nil {
		return fmt.Errorf("results database %s: %w", st.dbPath, err)
	}
	mc := newMockClient(st.mockURL)
	if err := mc.Reset(ctx); err != nil {
		return err
	}
	if len(st.workers) == 0 {
		// Connect mode: the workers are someone else's; wait until one
		// serves the scenario's lanes.
		if err := waitWorkers(ctx, js, sc, 1, nil, logger); err != nil {
			return fmt.Errorf("%w (is a worker serving provider %q?)", err, sc.Provider)
		}
	}
	consumer, err := js.Consumer(ctx, streams.Jobs, job.WorkConsumer(sc.Provider, mainLane))
	if err != nil {
		return fmt.Errorf("work consumer for %s/%s (is a worker serving provider %q?): %w", sc.Provider, mainLane, sc.Provider, err)
	}
	smp := &sampler{mock: mc, consumer: consumer, provider: sc.Provider}

	tpl, err := newJobTemplate(sc.Provider, mainLane, sc.Task, r.RunID, r.RunID+"-", sc.PayloadBytes)
	if err != nil {
		return err
	}
	pub, err := newPublisher(nc, sc.Enqueue.Window)
	if err != nil {
		return err
	}

	// The trickle publishes from its own connection, as a separate
	// producer would, so it never waits behind the bulk window.
	var (
		stopTrickle  chan struct{}
		trickleDone  chan [2]int
		liveSent     int
		liveFailures int
	)
	trickleOver := sc.LiveTrickle.Rate == 0
	var liveTpl *jobTemplate
	if !trickleOver {
		liveTpl, err = newJobTemplate(sc.Provider, job.LaneLive, sc.LiveTrickle.Task, r.RunID, r.RunID+"-live-", sc.PayloadBytes)
		if err != nil {
			return err
		}
	}

	pctx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	// The measured window opens here, just before the first publish.
	st.sampleWindow(false)
	first := time.Now()
	enqDone := make(chan error, 1)
	go func() { enqDone <- pub.enqueue(pctx, tpl, sc.Jobs, sc.Enqueue.Rate) }()
	if !trickleOver {
		nc2, err := nats.Connect(st.natsURL, nats.Name("loadtest-trickle"), nats.MaxReconnects(-1))
		if err != nil {
			return err
		}
		defer nc2.Close()
		js2, err := jetstream.New(nc2)
		if err != nil {
			return err
		}
		stopTrickle, trickleDone = make(chan struct{}), make(chan [2]int, 1)
		go func() {
			sent, failures := trickle(pctx, stopTrickle, js2, liveTpl, sc.LiveTrickle.Rate)
			trickleDone <- [2]int{sent, failures}
		}()
	}
	logger.Info("enqueueing", "jobs", sc.Jobs, "subject", tpl.subject, "window", sc.Enqueue.Window, "live_trickle", sc.LiveTrickle.Rate)

	var (
		enqueued, mainDone, timedOut bool
		lastAck, windowEnd           time.Time
		profDone                     chan struct{}
	)
	// Samples fall on a one-second grid from the first publish (up to one
	// poll late when the machine is busy); the first is the empty start.
	smp.samples = append(smp.samples, Sample{})
	nextSample := first.Add(time.Second)
	stopTheTrickle := func() {
		if stopTrickle != nil {
			close(stopTrickle)
			stopTrickle = nil
		}
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-enqDone:
			enqDone = nil
			if err != nil {
				if pctx.Err() != nil {
					continue // the timeout is handled below
				}
				return fmt.Errorf("enqueue: %w", err)
			}
			enqueued = true
			lastAck = pub.lastAckTime()
			secs := lastAck.Sub(first).Seconds()
			logger.Info("enqueued", "jobs", sc.Jobs, "seconds", fmt.Sprintf("%.2f", secs), "rate", commas(float64(sc.Jobs)/secs)+"/s",
				"failed_publishes", pub.failures.Load())
			continue
		case res := <-trickleDone:
			trickleDone = nil
			liveSent, liveFailures, trickleOver = res[0], res[1], true
			continue
		case <-pctx.Done():
			timedOut = true
			break wait
		case <-tick.C:
		}
		if err := st.failed(); err != nil {
			return err
		}
		if err := prog.poll(pctx); err != nil {
			if pctx.Err() != nil {
				continue
			}
			return err
		}
		now := time.Now()
		if !now.Before(nextSample) {
			for !nextSample.After(now) {
				nextSample = nextSample.Add(time.Second)
			}
			s := smp.take(pctx, now.Sub(first).Seconds(), pub.acked.Load(), prog)
			logger.Info("progress", "t", fmt.Sprintf("%.0fs", s.T), "enqueued", s.Enqueued, "recorded", s.Recorded,
				"retrying", s.Retrying, "rate", commas(s.Rate)+"/s", "mock_in_flight", s.MockInFlight, "pending", s.Pending, "ack_pending", s.AckPending)
		}
		if profDone == nil && len(st.pprof) > 0 && prog.Final(string(mainLane)) >= sc.Jobs/4 {
			profDone = make(chan struct{})
			var profiles sync.WaitGroup
			for name, base := range st.pprof {
				profiles.Go(func() {
					secs := int(sc.Profile.D().Seconds())
					u := base + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
					if err := fetchProfile(ctx, u, filepath.Join(r.Dir, name+".cpu.pprof"), sc.Profile.D()+30*time.Second); err != nil {
						logger.Warn("CPU profile", "process", name, "err", err)
					} else {
						logger.Info("CPU profile written", "process", name, "seconds", secs)
					}
				})
			}
			go func() { profiles.Wait(); close(profDone) }()
		}
		if !mainDone && enqueued && prog.Final(string(mainLane)) >= sc.Jobs {
			mainDone = true
			st.sampleWindow(true)
			windowEnd = time.Now()
			stopTheTrickle()
		}
		if mainDone && trickleOver && prog.Final(string(job.LaneLive)) >= liveSent {
			break wait
		}
	}
	if timedOut {
		logger.Warn("timed out", "timeout", sc.Timeout, "recorded", prog.Final(string(mainLane)), "of", sc.Jobs)
		if !mainDone {
			st.sampleWindow(true)
			windowEnd = time.Now()
		}
		stopTheTrickle()
		if trickleDone != nil {
			res := <-trickleDone
			liveSent, liveFailures = res[0], res[1]
		}
		if lastAck.IsZero() {
			lastAck = pub.lastAckTime()
		}
	}

	// Analysis runs after the window, with its own deadline: a timed-out
	// run still gets a report of what it did.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer acancel()
	if err := prog.poll(actx); err == nil {
		smp.take(actx, time.Since(first).Seconds(), pub.acked.Load(), prog)
	}
	if profDone != nil {
		<-profDone
	}
	for name, base := range st.pprof {
		if err := fetchProfile(actx, base+"/debug/pprof/heap", filepath.Join(r.Dir, name+".heap.pprof"), 30*time.Second); err != nil {
			logger.Warn("heap profile", "process", name, "err", err)
		}
	}

	pl := &Pipeline{
		Lane: string(mainLane), Jobs: sc.Jobs, LiveJobs: liveSent, TimedOut: timedOut,
		FirstPublish: first, LastAck: lastAck, WindowSeconds: windowEnd.Sub(first).Seconds(),
		PublishFailures: pub.failures.Load(), PublishDuplicates: pub.duplicates.Load(), LivePublishFailures: liveFailures,
		DuplicateCallsChecked: sc.duplicateCallsMeaningful(),
	}
	r.Pipeline = pl
	r.Samples = smp.samples
	sum, err := summarizeBatch(actx, db, r.RunID)
	if err != nil {
		return err
	}
	pl.Recorded, pl.LiveRecorded = sum.Final[string(mainLane)], sum.Final[string(job.LaneLive)]
	if mainLane == job.LaneLive {
		pl.LiveRecorded = 0
	}
	pl.Lost = max(sc.Jobs-pl.Recorded, 0) + max(liveSent-pl.LiveRecorded, 0)
	pl.Latency, pl.Statuses, pl.RetriedJobs, pl.Attempts = sum.Latency, sum.Statuses, sum.Retried, sum.Attempts
	pl.LastRecorded = sum.LastRecorded[string(mainLane)]
	if !lastAck.IsZero() {
		pl.EnqueueSeconds = lastAck.Sub(first).Seconds()
		if pl.EnqueueSeconds > 0 {
			pl.EnqueueRate = float64(min(int64(sc.Jobs), pub.acked.Load())) / pl.EnqueueSeconds
		}
	}
	if !pl.LastRecorded.IsZero() {
		pl.EndToEndSeconds = pl.LastRecorded.Sub(first).Seconds()
		if pl.EndToEndSeconds > 0 {
			pl.EndToEndRate = float64(pl.Recorded) / pl.EndToEndSeconds
		}
		if !lastAck.IsZero() {
			pl.DrainSeconds = pl.LastRecorded.Sub(lastAck).Seconds()
		}
	}
	if resultsAfter, err := countResults(actx, js, resultSubjects); err == nil {
		pl.ResultsMessages = resultsAfter - resultsBefore
		pl.ExtraResults = pl.ResultsMessages - pl.Attempts
	} else {
		logger.Warn("count results", "err", err)
	}
	if stats, err := mc.Stats(actx); err == nil {
		ps := providerStats(stats, sc.Provider)
		pl.Mock = &ps
		if n := sc.Jobs + liveSent; n > 0 {
			pl.CallsPerJob = float64(ps.Requests) / float64(n)
		}
	} else {
		logger.Warn("mock stats", "err", err)
	}
	if info, err := consumer.Info(actx); err == nil {
		pl.ConsumerPending, pl.ConsumerAckPending = int64(info.NumPending), int64(info.NumAckPending)
	}

	if pl.Lost > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%s job(s) lost: no final result recorded", commas(pl.Lost)))
		if missing, err := missingJobs(actx, db, r.RunID, r.RunID+"-", sc.Jobs, 10); err == nil {
			pl.MissingSample = missing
		}
	}
	if timedOut {
		reason := "timed out after " + sc.Timeout.String()
		if ctx.Err() != nil {
			reason = "interrupted"
		}
		r.Failures = append(r.Failures, reason)
	}
	if pl.ExtraResults > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%s duplicate result(s): RESULTS holds more results than attempts", commas(pl.ExtraResults)))
	}
	if pl.Mock != nil && pl.DuplicateCallsChecked && pl.Mock.Duplicates > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%s duplicate call(s): the mock saw an idempotency key more than once", commas(pl.Mock.Duplicates)))
	}
	logger.Info("pipeline done", "recorded", pl.Recorded, "lost", pl.Lost, "end_to_end", commas(pl.EndToEndRate)+" jobs/s",
		"seconds", fmt.Sprintf("%.2f", pl.EndToEndSeconds))
	return nil
}

// countResults sums the messages RESULTS holds on subjects.
func countResults(ctx context.Context, js jetstream.JetStream, subjects []string) (int64, error) {
	s, err := js.Stream(ctx, streams.Results)
	if err != nil {
		return 0, fmt.Errorf("RESULTS stream: %w", err)
	}
	var n int64
	for _, subj := range subjects {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return 0, fmt.Errorf("RESULTS stream info: %w", err)
		}
		n += int64(info.State.Subjects[subj])
	}
	return n, nil
}

// fetchProfile saves a pprof endpoint's answer to path.
func fetchProfile(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
