package provider

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff returns the delay before the attempt after attempt (1-based):
// exponential with full jitter, uniform in [0, min(cap, base·2^(attempt-1))].
// Full jitter spreads a crowd of failing jobs evenly instead of retrying
// them in waves.
func Backoff(attempt int, base, cap time.Duration) time.Duration {
	ceiling := base
	for i := 1; i < attempt && 0 < ceiling && ceiling < cap; i++ {
		if ceiling > cap/2 {
			ceiling = cap // doubling would pass the cap, and could overflow
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, cap)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(min(ceiling, math.MaxInt64-1) + 1)
}

// MaxRetryAfter bounds how long a provider's Retry-After can park a job: a
// broken or hostile header must not hold it for years.
const MaxRetryAfter = time.Hour

// RetryDelay is the wait before the next attempt under the provider's own
// policy (see Policy.Delay; a task's override is Policy(task).Delay).
func (p *Provider) RetryDelay(attempt int, retryAfter time.Duration) time.Duration {
	return p.policy.Delay(attempt, retryAfter)
}
