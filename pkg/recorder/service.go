package recorder

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
)

// Service is everything one recorder process runs over its store: the
// Recorder, the tracker that publishes batch completions, and the
// retention pruner. The recorder service and `switchyard dev` both run it.
type Service struct {
	// Registry holds the batch declarations the tracker watches.
	Registry *batch.Registry
	Recorder *Recorder
	Batches  *batch.Tracker
	Pruner   *Pruner
}

// StartService starts the batch tracker, the recorder (telling the tracker
// what each commit touched) and the pruner. On error, whatever started is
// stopped.
func StartService(ctx context.Context, js jetstream.JetStream, store Store, cfg Config, logger *slog.Logger) (*Service, error) {
	cfg = cfg.WithDefaults()
	reg, err := batch.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	s := &Service{Registry: reg, Batches: batch.NewTracker(js, reg, store, cfg.BatchCheckInterval, logger)}
	if err := s.Batches.Start(ctx); err != nil {
		return nil, err
	}
	if s.Recorder, err = New(js, store, cfg, logger, OnCommit(s.Batches.Touch)); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.Recorder.Start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	s.Pruner = NewPruner(store, cfg.Retention, logger)
	s.Pruner.Start(ctx)
	return s, nil
}

// Stop stops the pruner, then the recorder, which commits the batch in
// hand, then the tracker. It does not close the store.
func (s *Service) Stop() {
	if s.Pruner != nil {
		s.Pruner.Stop()
	}
	if s.Recorder != nil {
		s.Recorder.Stop()
	}
	s.Batches.Stop()
}
