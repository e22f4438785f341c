package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/streams"
)

// Expander turns each firing of a periodic schedule into its jobs. Every
// worker replica runs one; they share the durable consumer "schedules",
// so each firing is expanded by one of them (or again by another if that
// one dies before its ack, which the jobs' ids make harmless). Create it
// with NewExpander, run it with Start, end it with Stop.
type Expander struct {
	js     jetstream.JetStream
	logger *slog.Logger

	mu   sync.Mutex
	cc   jetstream.ConsumeContext
	reg  *batch.Registry
	busy sync.WaitGroup
}

// NewExpander returns an expander. It does not touch NATS until Start.
func NewExpander(js jetstream.JetStream, logger *slog.Logger) *Expander {
	return &Expander{js: js, logger: logger.With("component", "schedules")}
}

// Start binds the consumer (creating it if needed) and starts expanding.
func (e *Expander) Start(ctx context.Context) error {
	c, err := natsx.ApplyConsumer(ctx, e.js, streams.Jobs, streams.SchedulesConsumer(), nil, e.logger)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	reg, err := batch.Open(ctx, e.js)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reg = reg
	cc, err := c.Consume(e.handle, jetstream.PullMaxMessages(16))
	if err != nil {
		return fmt.Errorf("schedule: consume %s: %w", streams.Schedules, err)
	}
	e.cc = cc
	return nil
}

// Stop stops taking firings and waits for the one being expanded. It is
// idempotent and safe before Start.
func (e *Expander) Stop() {
	e.mu.Lock()
	cc := e.cc
	e.cc = nil
	e.mu.Unlock()
	if cc == nil {
		return
	}
	cc.Stop()
	<-cc.Closed()
	e.busy.Wait()
}

func (e *Expander) handle(msg jetstream.Msg) {
	e.busy.Add(1)
	defer e.busy.Done()
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	var spec Spec
	if err := json.Unmarshal(msg.Data(), &spec); err != nil {
		e.logger.Error("unreadable schedule firing; dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	// The server stamps a firing when its tick comes; ticks are whole
	// seconds, so the second names the tick.
	tick := meta.Timestamp.UTC().Truncate(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.superseded(ctx, msg.Subject(), meta.Sequence.Stream) {
		// Firings queued while no worker ran collapse into the latest
		// one, as the server collapses the ticks it missed itself.
		e.logger.Info("schedule firing skipped: a later one is waiting", "schedule", spec.Name, "tick", tick)
		_ = msg.Ack()
		return
	}
	if err := e.expand(ctx, msg, &spec, tick); err != nil {
		e.logger.Warn("expand schedule firing; retrying", "schedule", spec.Name, "tick", tick, "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	if err := msg.Ack(); err != nil {
		e.logger.Warn("ack schedule firing", "schedule", spec.Name, "err", err)
	}
}

// superseded reports whether a later firing of the same schedule than the
// one at seq is in the stream.
func (e *Expander) superseded(ctx context.Context, subject string, seq uint64) bool {
	st, err := e.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return false
	}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	return err == nil && last.Sequence > seq
}

// expand publishes the jobs of one firing. A batch is declared before its
// jobs, so its completion event cannot come early.
func (e *Expander) expand(ctx context.Context, msg jetstream.Msg, spec *Spec, tick time.Time) error {
	jobs, batchID, err := spec.jobs(spec.Name, tick)
	if err != nil {
		// Validated when stored; a schedule written by hand can still be
		// wrong, and retrying will not fix it.
		e.logger.Error("schedule makes invalid jobs; firing dropped", "schedule", spec.Name, "err", err)
		return nil
	}
	if batchID != "" {
		if err := e.reg.Declare(ctx, batchID, len(jobs)); err != nil && !errors.Is(err, batch.ErrConflict) {
			return err
		}
	}
	// A window of publishes at a time: big batches neither stall the
	// connection's async publisher nor outlive the firing's ack wait.
	for start := 0; start < len(jobs); start += publishWindow {
		if err := e.publish(ctx, jobs[start:min(start+publishWindow, len(jobs))], spec.lane()); err != nil {
			return err
		}
		_ = msg.InProgress()
	}
	e.logger.Info("schedule fired", "schedule", spec.Name, "tick", tick, "jobs", len(jobs), "batch", batchID)
	return nil
}

// publishWindow bounds the jobs of a firing awaiting their PubAck.
const publishWindow = 1000

// publish stores jobs on lane, each with its id as Nats-Msg-Id, and
// returns once every one is stored (or dropped as a duplicate).
func (e *Expander) publish(ctx context.Context, jobs []*job.Job, lane job.Lane) error {
	futures := make([]jetstream.PubAckFuture, 0, len(jobs))
	for _, j := range jobs {
		data, err := json.Marshal(j)
		if err != nil {
			return err
		}
		m := &nats.Msg{Subject: job.Subject(j.Provider, lane, j.Task), Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, j.ID)
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish job %s: %w", j.ID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish job %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
