package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// unroutedSweeper dead-letters jobs that no work consumer covers: a
// provider no worker serves, a lane that does not exist, a subject of the
// wrong shape. On a work-queue stream such a message would otherwise sit
// unseen forever. "Served" is read from the server (the consumers that
// exist on JOBS), not from this replica's config, so replicas serving
// different providers never dead-letter each other's jobs.
//
// A subject is drained only when it was uncovered on two sweeps in a row, so
// a lane whose consumer is being created (or recreated) is left alone, and
// never when its provider and lane are served by this replica.
type unroutedSweeper struct {
	w *Worker
	// suspects are the subjects found uncovered on the last sweep.
	suspects map[string]bool
}

// drainPrefix starts the description of every drain consumer, so that a
// worker whose lane it blocks can recognise and remove it.
const drainPrefix = "switchyard: dead-lettering unrouted jobs on "

func (u *unroutedSweeper) run(ctx context.Context) {
	t := time.NewTicker(u.w.cfg.UnroutedInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := u.sweep(ctx); err != nil && ctx.Err() == nil {
			u.w.logger.Warn("look for unrouted jobs", "err", err)
		}
	}
}

func (u *unroutedSweeper) sweep(ctx context.Context) error {
	s, err := u.w.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return err
	}
	if s.CachedInfo().State.Msgs == 0 {
		return nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(job.JobsPrefix+".>"))
	if err != nil {
		return err
	}
	var filters []string
	consumers := s.ListConsumers(ctx)
	for ci := range consumers.Info() {
		filters = append(filters, ci.Config.FilterSubject)
		filters = append(filters, ci.Config.FilterSubjects...)
	}
	if err := consumers.Err(); err != nil {
		return fmt.Errorf("list consumers: %w", err)
	}
	suspects := map[string]bool{}
	for subject := range info.State.Subjects {
		if covered(subject, filters) || u.served(subject) {
			continue
		}
		suspects[subject] = true
		if u.suspects[subject] {
			if err := u.drain(ctx, s, subject); err != nil {
				return err
			}
		}
	}
	u.suspects = suspects
	return nil
}

// served reports whether this replica serves subject's provider and lane:
// then a missing consumer is about to be recreated, not a reason to give
// the jobs up.
func (u *unroutedSweeper) served(subject string) bool {
	a, err := job.ParseSubject(subject)
	return err == nil && u.w.providers[a.Provider] != nil
}

// clear deletes drain consumers whose subject falls under filter, and
// reports whether it deleted any.
func (u *unroutedSweeper) clear(ctx context.Context, filter string) bool {
	s, err := u.w.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return false
	}
	deleted := false
	consumers := s.ListConsumers(ctx)
	for ci := range consumers.Info() {
		if strings.HasPrefix(ci.Config.Description, drainPrefix) && subjectMatches(filter, ci.Config.FilterSubject) {
			if s.DeleteConsumer(ctx, ci.Name) == nil {
				u.w.logger.Info("removed an unrouted-jobs drain in the way of a work consumer", "consumer", ci.Name, "subject", ci.Config.FilterSubject)
				deleted = true
			}
		}
	}
	return deleted
}

// drain dead-letters every message on one unrouted subject through a
// short-lived consumer filtered to exactly that subject.
func (u *unroutedSweeper) drain(ctx context.Context, s jetstream.Stream, subject string) error {
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       drainPrefix + subject,
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           30 * time.Second,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		// Usually another replica is draining it, or a worker for it just
		// started (its consumer now overlaps): either way, not ours.
		u.w.logger.Debug("not draining unrouted subject", "subject", subject, "err", err)
		return nil
	}
	defer func() { _ = s.DeleteConsumer(context.WithoutCancel(ctx), c.CachedInfo().Name) }()
	reason, class := unroutedReason(subject)
	for ctx.Err() == nil {
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if ctx.Err() != nil {
				_ = msg.Nak() // stopping: leave it for the next sweep
				continue
			}
			d := delivery{msg: msg}
			if meta, err := msg.Metadata(); err == nil {
				d.attempt, d.seq, d.enqueuedAt = int(meta.NumDelivered), meta.Sequence.Stream, meta.Timestamp
			}
			j, _ := job.Decode(msg.Data())
			u.w.deadLetter(ctx, d, j, class, reason, 0)
		}
		if n == 0 {
			return batch.Error()
		}
	}
	return nil
}

func unroutedReason(subject string) (string, job.Class) {
	a, err := job.ParseSubject(subject)
	if err != nil {
		return err.Error(), job.ClassInvalid
	}
	return fmt.Sprintf("no worker serves provider %q lane %q: consumer %s does not exist on %s",
		a.Provider, a.Lane, job.WorkConsumer(a.Provider, a.Lane), streams.Jobs), job.ClassUnrouted
}

// covered reports whether any filter matches subject.
func covered(subject string, filters []string) bool {
	for _, f := range filters {
		if f != "" && subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether a literal subject matches a filter with
// NATS wildcards (* for one token, > for the rest).
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
