package recorder

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// pruneChunk is how many rows one Store.Prune call touches. Small enough
// that the transaction holds SQLite's single writer for milliseconds, so
// Record never waits long behind retention.
const pruneChunk = 1000

// Pruner applies RetentionConfig in the background: every Interval it
// prunes in chunks until nothing is left to prune. Several recorder
// replicas may each run one; pruning is idempotent.
type Pruner struct {
	store  Store
	cfg    RetentionConfig
	logger *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewPruner returns a pruner of store; it does nothing until Start, and
// nothing at all when cfg keeps everything.
func NewPruner(store Store, cfg RetentionConfig, logger *slog.Logger) *Pruner {
	return &Pruner{store: store, cfg: cfg, logger: logger.With("component", "pruner")}
}

// Enabled reports whether the configuration prunes anything.
func (p *Pruner) Enabled() bool { return p.cfg.MaxAge > 0 || p.cfg.BodyMaxAge > 0 }

// Start prunes once at once, then every Interval, until Stop or ctx ends.
func (p *Pruner) Start(ctx context.Context) {
	if !p.Enabled() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		interval := max(p.cfg.Interval, time.Second)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if _, err := p.PruneOnce(ctx); err != nil && ctx.Err() == nil {
				p.logger.Warn("pruning failed; trying again next interval", "in", interval, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// Stop ends the pruner after the chunk in hand. It is idempotent and safe
// before Start.
func (p *Pruner) Stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// PruneOnce prunes everything due now, in chunks, and returns the totals.
func (p *Pruner) PruneOnce(ctx context.Context) (Pruned, error) {
	return p.PruneAt(ctx, time.Now())
}

// PruneAt is PruneOnce as if the time were now.
func (p *Pruner) PruneAt(ctx context.Context, now time.Time) (Pruned, error) {
	o := PruneOptions{Limit: pruneChunk}
	if p.cfg.MaxAge > 0 {
		o.RowsBefore = now.Add(-p.cfg.MaxAge)
	}
	if p.cfg.BodyMaxAge > 0 {
		o.BodiesBefore = now.Add(-p.cfg.BodyMaxAge)
	}
	var total Pruned
	for {
		n, err := p.store.Prune(ctx, o)
		total.Jobs += n.Jobs
		total.Bodies += n.Bodies
		total.Rollups += n.Rollups
		if err != nil {
			return total, err
		}
		if n.Jobs < o.Limit && n.Bodies < o.Limit && n.Rollups < o.Limit {
			break
		}
	}
	if total.Jobs > 0 || total.Bodies > 0 {
		p.logger.Info("pruned", "jobs", total.Jobs, "bodies", total.Bodies)
	}
	return total, nil
}
