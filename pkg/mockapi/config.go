package mockapi

import (
	"fmt"
	"math"
	"time"
)

// LimitMode says how a rate-limited answer (429) speaks to the client.
type LimitMode string

const (
	// LimitRetryAfter answers 429 with Retry-After only: the common
	// provider. It is the default.
	LimitRetryAfter LimitMode = "retry-after"
	// LimitHeaders adds X-RateLimit-Limit, -Remaining, -Reset and the IETF
	// draft RateLimit-Policy and RateLimit headers to every answer, 200s
	// included, so a client can pace itself before it is refused.
	LimitHeaders LimitMode = "headers"
	// LimitSilent answers a bare 429: no Retry-After, no rate-limit headers,
	// no body. It is the provider that limits without saying so.
	LimitSilent LimitMode = "silent"
)

// maxRateLimit keeps the token interval at one nanosecond or more.
const maxRateLimit = 1e9

// Config shapes the fake API. The zero value answers 200 at once. The koanf
// tags are the keys of loadtest/cmd/mockapi's config file.
type Config struct {
	// LatencyMin and LatencyMax bound the uniform random delay before each
	// answer. LatencyMax zero means exactly LatencyMin.
	LatencyMin time.Duration `koanf:"latency_min"`
	LatencyMax time.Duration `koanf:"latency_max"`
	// TailRate is the share of requests, from 0 to 1, that wait uniformly
	// in [LatencyMax, TailLatency] instead: the slow tail real APIs have,
	// which a client's timeouts and concurrency must survive. Default 0.
	TailRate float64 `koanf:"tail_rate"`
	// TailLatency is the longest tail delay. Required (at least LatencyMax)
	// when TailRate is above 0.
	TailLatency time.Duration `koanf:"tail_latency"`
	// ErrorRate is the share of requests, from 0 to 1, answered 503 with
	// Retry-After: 1 instead of 200. /status/ paths ignore it.
	ErrorRate float64 `koanf:"error_rate"`
	// Seed makes latencies and errors reproducible: the n-th request gets
	// the same draw in every run with the same seed. Zero is a seed too.
	Seed int64 `koanf:"seed"`
	// IdempotencyHeader names the header whose values are counted per key.
	// Default DefaultIdempotencyHeader.
	IdempotencyHeader string `koanf:"idempotency_header"`

	// RateLimit is the sustained rate, in requests per second, that the
	// server admits; a request over it is answered 429 at once, without
	// the latency wait. 0, the default, means no limit. It applies to every
	// counted path, /status/ included, as a provider's limit would.
	RateLimit float64 `koanf:"rate_limit"`
	// Burst is the token bucket's capacity: how many requests may arrive
	// at once after a quiet spell. Default max(1, ceil(RateLimit)).
	Burst int `koanf:"burst"`
	// LimitMode says how a 429 speaks. Default LimitRetryAfter. Ignored
	// without RateLimit.
	LimitMode LimitMode `koanf:"limit_mode"`
	// RetryAfter, when set, is the Retry-After every rate-limited 429
	// carries, rounded up to whole seconds; by default it is the whole
	// seconds until a token is free, at least 1.
	RetryAfter time.Duration `koanf:"retry_after"`
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.LatencyMin < 0:
		return fmt.Errorf("LatencyMin: %s must not be negative", c.LatencyMin)
	case c.LatencyMax < 0:
		return fmt.Errorf("LatencyMax: %s must not be negative", c.LatencyMax)
	case c.LatencyMax != 0 && c.LatencyMax < c.LatencyMin:
		return fmt.Errorf("LatencyMax: %s is below LatencyMin (%s)", c.LatencyMax, c.LatencyMin)
	case !isShare(c.TailRate):
		return fmt.Errorf("TailRate: %v must be between 0 and 1", c.TailRate)
	case c.TailLatency < 0:
		return fmt.Errorf("TailLatency: %s must not be negative", c.TailLatency)
	case c.TailRate > 0 && c.TailLatency < c.latencyTop():
		return fmt.Errorf("TailLatency: %s is below LatencyMax (%s); it is required when TailRate is set", c.TailLatency, c.latencyTop())
	case !isShare(c.ErrorRate):
		return fmt.Errorf("ErrorRate: %v must be between 0 and 1", c.ErrorRate)
	case math.IsNaN(c.RateLimit) || c.RateLimit < 0 || c.RateLimit > maxRateLimit:
		return fmt.Errorf("RateLimit: %v must be between 0 and %g requests per second", c.RateLimit, float64(maxRateLimit))
	case c.Burst < 0:
		//lint:ignore ST1005 errors start with the field they name, as the others do
		return fmt.Errorf("Burst: %d must not be negative", c.Burst)
	case c.RetryAfter < 0:
		return fmt.Errorf("RetryAfter: %s must not be negative", c.RetryAfter)
	}
	switch c.LimitMode {
	case "", LimitRetryAfter, LimitHeaders, LimitSilent:
	default:
		return fmt.Errorf("LimitMode: %q must be %s, %s or %s", c.LimitMode, LimitRetryAfter, LimitHeaders, LimitSilent)
	}
	return nil
}

func isShare(f float64) bool { return f >= 0 && f <= 1 } // false for NaN

// latencyTop is the longest ordinary delay, where the tail starts.
func (c Config) latencyTop() time.Duration { return max(c.LatencyMin, c.LatencyMax) }

// burst is Burst with its default applied.
func (c Config) burst() int64 {
	if c.Burst > 0 {
		return int64(c.Burst)
	}
	return max(1, int64(math.Ceil(c.RateLimit)))
}
