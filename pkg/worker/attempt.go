package worker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// attempt makes the job's call once its provider's limits let it start,
// and feeds the answer back into them. A failure over the retry budget is
// not an attempt: the job stays here, holding its slot, for its backoff
// and then for room in the budget, and calls again. ok is false when the
// job was handed back (naked) without an outcome: the worker stopped
// before or during the call.
//
// An at-most-once job (once) is acked before its call, and called once:
// never again in place, whatever the breaker or the budget say.
func (w *Worker) attempt(ctx context.Context, c *call, d *delivery, maxAttempts int, policy *provider.Policy, once bool) (started, finished time.Time, reply *provider.Reply, callErr error, ok bool) {
	l := c.lane
	for {
		// Wait for the provider's limits to let this call start: its rate
		// token, the end of a pause, a closed breaker. Quick, except under a
		// pause, an open breaker or a slow rate.
		if err := l.limiter.Wait(ctx, c.stop, l.lane, d.msg); err != nil {
			// Stopped before its turn: never called, so another replica may
			// take it at once.
			_ = d.msg.Nak()
			return started, finished, nil, nil, false
		}
		if w.cancelled(ctx, *d) { // cancelled while it waited for its turn
			return started, finished, nil, nil, false
		}
		c.admitted = false
		if once && !w.ackBeforeCall(ctx, d) {
			return started, finished, nil, nil, false
		}
		started = time.Now()
		l.m.begin(d.attempt)
		reply, callErr = l.provider.Call(ctx, d.job)
		finished = time.Now()
		l.m.end(reply, callErr, finished.Sub(started))
		l.limiter.Record(started, health(reply, callErr))
		if reply != nil {
			var h http.Header
			if reply.Response != nil {
				h = reply.Response.Headers
			}
			l.limiter.Observe(started, reply.HTTPStatus, h)
		}
		if ctx.Err() != nil && errors.Is(callErr, ctx.Err()) {
			// Stopped mid-call: no outcome, so hand the job to another
			// replica now, unless it may be called only once.
			if d.acked {
				w.logger.Warn("stopped during an at-most-once call; the job stays unknown", "job_id", d.job.ID)
				return started, finished, nil, nil, false
			}
			_ = d.msg.Nak()
			return started, finished, nil, nil, false
		}
		if once || !retrying(callErr) {
			break
		}
		// A failure while the breaker is open (it may just have opened it,
		// or been a probe) is the outage's, and one over the retry budget
		// must not become a retry now: neither is an attempt. A nak would
		// count a delivery, hence an attempt, so the job waits here (for
		// the breaker; or its backoff, then room in the budget) and calls
		// again as the same attempt; the failure's result is not published.
		outage := l.limiter.HoldForBreaker()
		// A 429 is not charged to the budget: the limiter already paces
		// the provider's calls to what it takes (a pause, the adaptive
		// rate), and charging it would hold jobs back for budget on top,
		// down to the budget's floor while successes are few.
		if !outage && (d.attempt >= maxAttempts || throttled(callErr) || l.limiter.TakeRetry()) {
			break
		}
		delay := policy.Delay(d.attempt, retryAfter(callErr))
		if outage {
			delay = 0 // the breaker's open period is the wait
		}
		if !w.awaitRetry(ctx, c, *d, delay, !outage) {
			_ = d.msg.Nak()
			return started, finished, nil, nil, false
		}
	}
	return started, finished, reply, callErr, true
}

// keepAliveEvery is how often a held job tells the server it is still
// being worked on; AckWait is at least 10s.
const keepAliveEvery = 5 * time.Second

// awaitRetry holds a job whose failed call is not an attempt: for delay,
// then (with budget) until the retry budget has room, then readmits it
// with the limiter, which waits for the breaker too, so the next call
// takes its quota and rate tokens as a fetched job would. It reports false
// when the worker stopped meanwhile: the job was not called again and
// should be handed back.
func (w *Worker) awaitRetry(ctx context.Context, c *call, d delivery, delay time.Duration, budget bool) bool {
	l := c.lane
	if w.logger.Enabled(ctx, slog.LevelDebug) {
		w.logger.Debug("failure held, not an attempt", "job_id", d.job.ID, "provider", l.provider.Name(), "attempt", d.attempt,
			"why", map[bool]string{true: "over the retry budget", false: "breaker open"}[budget], "delay", delay)
	}
	if budget {
		if err := l.limiter.AwaitRetry(ctx, c.stop, delay, d.msg); err != nil {
			return false
		}
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

// throttled reports whether a failed call was refused for its rate (429).
func throttled(err error) bool {
	var perr *provider.Error
	return errors.As(err, &perr) && perr.Class == job.ClassThrottled
}
