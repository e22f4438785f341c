package producer

import (
	"log/slog"
	"time"
)

// Option configures a Producer.
type Option func(*config)

type config struct {
	ackTimeout time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	retryFor   time.Duration
	logger     *slog.Logger
	now        func() time.Time
}

func defaultConfig() config {
	return config{
		ackTimeout: 10 * time.Second,
		backoffMin: 50 * time.Millisecond,
		backoffMax: 2 * time.Second,
		retryFor:   time.Minute,
		logger:     slog.New(slog.DiscardHandler),
		now:        time.Now,
	}
}

// WithAckTimeout bounds how long one publish waits for the stream's
// acknowledgement before it counts as a transient failure and is sent
// again. Default 10s; it must be positive.
func WithAckTimeout(d time.Duration) Option { return func(c *config) { c.ackTimeout = d } }

// WithBackoff sets the delay before the first retry of a job (min) and the
// most it grows to (max), doubling in between with jitter. Default 50ms
// and 2s.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = minDelay, maxDelay }
}

// WithRetryFor bounds how long a job's transient failures are retried,
// from its first failure, before it is reported with ErrUnavailable.
// Default one minute; 0 retries until the context ends.
func WithRetryFor(d time.Duration) Option { return func(c *config) { c.retryFor = d } }

// WithLogger receives a line when a job starts being retried and when a
// job fails. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithNow sets the clock that Delay and ExpiresIn count from. Default
// time.Now. (Timeouts and retries run on the real clock.)
func WithNow(now func() time.Time) Option { return func(c *config) { c.now = now } }

// PipelineOption configures a Pipeline.
type PipelineOption func(*pipelineConfig)

type pipelineConfig struct {
	window   int
	onResult func(Result)
	defaults []JobOption
}

// DefaultWindow is how many jobs a Pipeline has awaiting acknowledgement
// at most, unless Window says otherwise.
const DefaultWindow = 4096

// Window bounds the jobs a Pipeline has sent (or is retrying) whose
// outcome is not known yet: Add blocks while n are outstanding. Default
// DefaultWindow; values below 1 mean 1.
func Window(n int) PipelineOption { return func(c *pipelineConfig) { c.window = n } }

// OnResult has every job's outcome delivered to fn as soon as it is known,
// instead of collected for Wait. Calls are serialized but happen on the
// goroutines that receive acknowledgements: fn must be quick, and must not
// call Add or Wait (Add may be waiting for the very slot fn's return
// frees).
func OnResult(fn func(Result)) PipelineOption { return func(c *pipelineConfig) { c.onResult = fn } }

// Defaults applies opts to every job added to the Pipeline, before the
// options given to Add.
func Defaults(opts ...JobOption) PipelineOption {
	return func(c *pipelineConfig) { c.defaults = append(c.defaults, opts...) }
}
