package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchyard-io/switchyard/pkg/provider"
)

// keepAliveEvery is how often a held job tells the server it is still
// being worked on; AckWait is at least 10s.
const keepAliveEvery = 5 * time.Second

// awaitRetry holds a job whose failed call is over its provider's retry
// budget until the budget has room (and the delay is over), then readmits
// it with the limiter, so the next call takes its quota and rate tokens
// as a fetched job would. It reports false when the worker stopped
// meanwhile: the job was not called again and should be handed back.
func (w *Worker) awaitRetry(ctx context.Context, c *call, d delivery, delay time.Duration) bool {
	l := c.lane
	if w.logger.Enabled(ctx, slog.LevelDebug) {
		w.logger.Debug("retry over budget; waiting for room", "job_id", d.job.ID, "provider", l.provider.Name(), "attempt", d.attempt, "delay", delay)
	}
	if err := l.limiter.AwaitRetry(ctx, c.stop, delay, d.msg); err != nil {
		return false
	}
	// Admit waits while the provider is paused, its quota spent or its
	// breaker open: keep the job alive meanwhile, and give up on a stop.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				cancel()
				return
			case <-actx.Done():
				return
			case <-t.C:
				_ = d.msg.InProgress()
			}
		}
	}()
	adm, err := l.limiter.Admit(actx, l.lane, 1)
	if err != nil {
		return false
	}
	c.adm, c.admitted = adm, true
	return true
}

// retryAfter is the wait a failed call's provider asked for, if any.
func retryAfter(err error) time.Duration {
	var perr *provider.Error
	if errors.As(err, &perr) {
		return perr.RetryAfter
	}
	return 0
}
