package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Pipeline enqueues many jobs asynchronously: Add returns once a job is
// sent, at most a window of jobs are outstanding at once, and every job
// Add accepted gets exactly one Result. Make one with Producer.Pipeline.
//
// Add and Stats are safe for concurrent use. When the pipeline's context
// ends, Add stops accepting jobs, retries stop, and every job still
// outstanding is reported at once with ErrUnconfirmed.
type Pipeline struct {
	p       *Producer
	ctx     context.Context
	cfg     pipelineConfig
	collect bool
	// slots holds one token per outstanding job: Add puts one in, the
	// job's outcome takes it out.
	slots     chan struct{}
	wg        sync.WaitGroup
	cbMu      sync.Mutex // serializes OnResult calls
	stopAbort func() bool

	// Guarded by Producer.mu.
	closed  bool
	aborted bool
	stats   Stats
	results []Result
	entries map[*entry]struct{}
}

// Result is the outcome of one job added to a Pipeline or enqueued.
type Result struct {
	// Index is the job's place among the jobs the pipeline accepted,
	// counting from 0 in the order Add accepted them.
	Index int
	// ID is the job's id, given or generated.
	ID string
	// Subject is the subject the job was published on.
	Subject string
	// Stream and Sequence say where the job is stored; for a duplicate,
	// where the first copy is.
	Stream   string
	Sequence uint64
	// Duplicate is true when the stream already had a job with this id
	// within its dedup window and dropped this one. After a retry that can
	// be this job's own earlier attempt, whose acknowledgement was lost.
	Duplicate bool
	// Attempts counts the publishes made for the job.
	Attempts int
	// Ref is what the job's Ref option attached, if any.
	Ref any
	// Err is nil when the job is stored (or was already).
	Err error
}

// Stats counts a pipeline's jobs so far.
type Stats struct {
	// Added counts the jobs Add accepted.
	Added int
	// Stored counts the jobs the stream stored; Duplicates those it
	// already had; Failed those reported with an error.
	Stored, Duplicates, Failed int
	// Retries counts the publishes that failed transiently and were (or
	// are being) tried again.
	Retries int
	// LastError is the latest transient publish error, nil if none.
	LastError error
}

// Pending is how many jobs have no outcome yet.
func (s Stats) Pending() int { return s.Added - s.Stored - s.Duplicates - s.Failed }

// Summary is what Wait returns: the final counts, and each job's Result in
// Add order unless the pipeline delivered them to OnResult.
type Summary struct {
	Stats
	Results []Result
}

// Err is nil when no job failed, else an error that counts the failures
// and lists the first few (only the count with OnResult).
func (s Summary) Err() error {
	if s.Failed == 0 {
		return nil
	}
	var errs []error
	for _, r := range s.Results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", r.ID, r.Err))
			if len(errs) == 3 {
				break
			}
		}
	}
	return fmt.Errorf("%d of %d jobs not enqueued: %w", s.Failed, s.Added, errors.Join(errs...))
}

// Pipeline starts a pipeline whose jobs are published while ctx lasts.
func (p *Producer) Pipeline(ctx context.Context, opts ...PipelineOption) *Pipeline {
	cfg := pipelineConfig{window: DefaultWindow}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.window = max(cfg.window, 1)
	pl := &Pipeline{
		p:       p,
		ctx:     ctx,
		cfg:     cfg,
		collect: cfg.onResult == nil,
		slots:   make(chan struct{}, cfg.window),
		entries: make(map[*entry]struct{}),
	}
	pl.stopAbort = context.AfterFunc(ctx, pl.abort)
	return pl
}

// Add validates j with opts applied (after the pipeline's Defaults),
// waits while the window is full, and sends it; it returns the job's id.
// The job's outcome follows as a Result. An error means the job was not
// accepted and has no Result: it is invalid (job.ErrInvalid, naming the
// field), too large (ErrTooLarge), the context has ended, or Wait has been
// called (ErrPipelineClosed).
func (pl *Pipeline) Add(j *job.Job, opts ...JobOption) (string, error) {
	p := pl.p
	if err := pl.ctx.Err(); err != nil {
		return "", err
	}
	p.mu.Lock()
	closed := pl.closed
	p.mu.Unlock()
	if closed {
		return "", ErrPipelineClosed
	}
	pj, err := p.prepare(j, pl.cfg.defaults, opts)
	if err != nil {
		return pj.id, err
	}
	id := pj.id
	select {
	case pl.slots <- struct{}{}:
	case <-pl.ctx.Done():
		return id, pl.ctx.Err()
	}
	p.mu.Lock()
	if pl.closed || pl.aborted {
		p.mu.Unlock()
		<-pl.slots
		if pl.aborted {
			return id, pl.ctx.Err()
		}
		return id, ErrPipelineClosed
	}
	e := &entry{pl: pl, index: pl.stats.Added, id: id, msg: pj.msg, ref: pj.ref}
	pl.stats.Added++
	if pl.collect {
		pl.results = append(pl.results, Result{})
	}
	pl.wg.Add(1)
	pl.entries[e] = struct{}{}
	p.mu.Unlock()
	p.send(e)
	return id, nil
}

// Stats returns the counts so far.
func (pl *Pipeline) Stats() Stats {
	pl.p.mu.Lock()
	defer pl.p.mu.Unlock()
	return pl.stats
}

// Wait stops the pipeline accepting jobs and returns once every job it
// accepted has its outcome, delivered to OnResult or in Summary.Results.
// It returns at once with ErrUnconfirmed results for the jobs still
// outstanding when the context ends. Calling it again returns the same.
func (pl *Pipeline) Wait() Summary {
	p := pl.p
	p.mu.Lock()
	pl.closed = true
	p.mu.Unlock()
	pl.wg.Wait()
	pl.stopAbort()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Summary{Stats: pl.stats, Results: pl.results}
}

// deliver hands r to OnResult and frees the job's slot in the window.
func (pl *Pipeline) deliver(r Result) {
	if fn := pl.cfg.onResult; fn != nil {
		pl.cbMu.Lock()
		fn(r)
		pl.cbMu.Unlock()
	}
	<-pl.slots
	pl.wg.Done()
}

// abort runs when the context ends: every outstanding job is reported,
// unconfirmed, and its retry cancelled.
func (pl *Pipeline) abort() {
	p := pl.p
	cause := context.Cause(pl.ctx)
	p.mu.Lock()
	pl.aborted = true
	rs := make([]Result, 0, len(pl.entries))
	for e := range pl.entries {
		r := e.result()
		r.Err = fmt.Errorf("%w: %w", ErrUnconfirmed, cause)
		if e.token != 0 {
			r.Err = fmt.Errorf("%w: %w before the stream acknowledged the job", ErrUnconfirmed, cause)
		}
		p.finishLocked(e, r)
		rs = append(rs, r)
	}
	p.mu.Unlock()
	slices.SortFunc(rs, func(a, b Result) int { return a.Index - b.Index })
	for _, r := range rs {
		pl.deliver(r)
	}
}
