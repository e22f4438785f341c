package provider

import (
	"fmt"
	"math"
	"time"
)

// BreakerConfig configures a provider's circuit breaker. It opens when
// calls fail in a way that says the provider is down (no answer, a
// timeout, a 408 or a 5xx; a 429 is the rate limit's business and other
// 4xx mean the provider is up), on every replica at once; while it is
// open the provider's lanes fetch nothing, so jobs wait in the stream
// without spending attempts. After OpenFor one replica lets Probes calls
// through: a success closes it, a failure opens it again for twice as
// long, up to MaxOpenFor. See package limit.
type BreakerConfig struct {
	// Disabled turns the breaker off. Default false.
	Disabled bool `koanf:"disabled"`
	// FailureRate opens the breaker when at least this share of one
	// replica's calls in the last Window failed, once there were MinCalls.
	// Default 0.5.
	FailureRate float64 `koanf:"failure_rate"`
	// MinCalls is how many calls in the window FailureRate needs. Default 20.
	MinCalls int `koanf:"min_calls"`
	// Window is how far back FailureRate looks. Default 10s.
	Window time.Duration `koanf:"window"`
	// Consecutive opens the breaker after this many failures in a row on
	// one replica, whatever the window says. Default 10.
	Consecutive int `koanf:"consecutive"`
	// OpenFor is how long the breaker stays open before probing. Default 5s.
	OpenFor time.Duration `koanf:"open_for"`
	// MaxOpenFor caps OpenFor as it doubles on failed probes. Default 2m.
	MaxOpenFor time.Duration `koanf:"max_open_for"`
	// Probes is how many calls the probing replica lets through while
	// half-open. Default 3.
	Probes int `koanf:"probes"`
}

func (b BreakerConfig) withDefaults() BreakerConfig {
	if b.FailureRate == 0 {
		b.FailureRate = 0.5
	}
	if b.MinCalls == 0 {
		b.MinCalls = 20
	}
	if b.Window == 0 {
		b.Window = 10 * time.Second
	}
	if b.Consecutive == 0 {
		b.Consecutive = 10
	}
	if b.OpenFor == 0 {
		b.OpenFor = 5 * time.Second
	}
	if b.MaxOpenFor == 0 {
		b.MaxOpenFor = max(2*time.Minute, b.OpenFor)
	}
	if b.Probes == 0 {
		b.Probes = 3
	}
	return b
}

func (b BreakerConfig) validate() error {
	switch {
	case math.IsNaN(b.FailureRate) || b.FailureRate <= 0 || b.FailureRate > 1:
		return fmt.Errorf("failure_rate: %v must be above 0 and at most 1", b.FailureRate)
	case b.MinCalls < 1:
		return fmt.Errorf("min_calls: %d must be at least 1", b.MinCalls)
	case b.Window < 100*time.Millisecond || b.Window > time.Hour:
		return fmt.Errorf("window: %s must be between 100ms and 1h", b.Window)
	case b.Consecutive < 1:
		return fmt.Errorf("consecutive: %d must be at least 1", b.Consecutive)
	case b.OpenFor < 100*time.Millisecond:
		return fmt.Errorf("open_for: %s must be at least 100ms", b.OpenFor)
	case b.MaxOpenFor < b.OpenFor || b.MaxOpenFor > 24*time.Hour:
		return fmt.Errorf("max_open_for: %s must be between open_for (%s) and 24h", b.MaxOpenFor, b.OpenFor)
	case b.Probes < 1 || b.Probes > 1000:
		return fmt.Errorf("probes: %d must be between 1 and 1000", b.Probes)
	}
	return nil
}
