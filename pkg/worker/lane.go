package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/streams"
)

// lane is the fetch loop of one provider's lane.
type lane struct {
	w        *Worker
	provider *provider.Provider
	lane     job.Lane
	slots    *slots
	consumer jetstream.Consumer
	// busy is set when the last fetch came back full: there is a backlog.
	busy bool
}

func (l *lane) bind(ctx context.Context) error {
	def, over := consumerFor(l.provider, l.lane)
	c, err := natsx.ApplyConsumer(ctx, l.w.js, streams.Jobs, def, over, l.w.logger)
	if err != nil {
		return err
	}
	l.consumer = c
	return nil
}

// want is how many slots the next fetch asks for. An idle live lane waits
// with no more than its reserve, which bulk cannot use anyway; a busy lane
// takes all it can start.
func (l *lane) want() int {
	if l.lane == job.LaneLive && !l.busy {
		return max(1, l.provider.Config().LiveReserve)
	}
	return l.w.cfg.MaxBatch
}

func (l *lane) run(fetchCtx, workCtx context.Context) {
	log := l.w.logger.With("provider", l.provider.Name(), "lane", l.lane)
	pause := time.Duration(0)
	for fetchCtx.Err() == nil {
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-fetchCtx.Done():
				return
			}
		}
		n, err := l.slots.acquire(fetchCtx, l.lane, l.want())
		if err != nil {
			return
		}
		got, err := l.fetch(fetchCtx, workCtx, n)
		l.slots.release(l.lane, n-got)
		l.busy = got == n
		switch {
		case err == nil || fetchCtx.Err() != nil:
			pause = 0
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			// Deleted under us (or the server lost its state): make it again.
			log.Warn("work consumer missing; recreating it", "err", err)
			if err := l.bind(fetchCtx); err != nil {
				log.Error("recreate work consumer", "err", err)
			}
			pause = time.Second
		default:
			log.Warn("fetch failed; retrying", "err", err)
			pause = min(max(2*pause, 100*time.Millisecond), 5*time.Second)
		}
	}
}

// fetch asks for n messages and starts each one as it arrives. It returns
// how many arrived.
func (l *lane) fetch(fetchCtx, workCtx context.Context, n int) (int, error) {
	// The pull is not cut short when fetching stops: the server may already
	// have sent messages to it, and dropping those would leave them waiting
	// out their AckWait. It ends by itself within FetchMaxWait.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(fetchCtx), l.w.cfg.FetchMaxWait)
	defer cancel()
	batch, err := l.consumer.Fetch(n, jetstream.FetchContext(ctx))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		l.w.calls.Go(func() {
			defer l.slots.release(l.lane, 1)
			l.w.process(workCtx, l, msg)
		})
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, jetstream.ErrNoMessages) {
		err = nil // an empty lane, or a fetch cut short by Stop
	}
	return got, err
}
