package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-io/switchyard/streams"
)

// streamsCheckEvery is how long a successful look-up of the worker's
// streams stands for Ready.
const streamsCheckEvery = 5 * time.Second

// Ready reports why the worker cannot do its work now, or nil: it is not
// started or is stopping, it is not connected to NATS, or one of the
// streams it reads and writes (JOBS, RESULTS, DLQ) does not answer. The
// connection is checked on every call, the streams at most every 5 s
// while they answer. It serves GET /readyz.
func (w *Worker) Ready(ctx context.Context) error {
	w.mu.Lock()
	started, stopped := w.started, w.stopped
	w.mu.Unlock()
	switch {
	case stopped:
		return errors.New("stopping")
	case !started:
		return errors.New("starting")
	case !w.js.Conn().IsConnected():
		return errors.New("not connected to NATS")
	}
	return w.streamsReady(ctx)
}

// lookUpStreams checks that the worker's streams exist.
func (w *Worker) lookUpStreams(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for _, name := range []string{streams.Jobs, streams.Results, streams.DLQ} {
		if _, err := w.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}
