package limit

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxPause bounds any pause a provider's words can cause: a broken or
// hostile header must not stop a provider for days. It matches
// provider.MaxRetryAfter.
const MaxPause = time.Hour

// maxPolicyWindow is the longest RateLimit-Policy window read as a rate.
// Longer windows are quotas (calls per hour or day): spreading them evenly
// would throttle a provider that means to allow bursts, so they act only
// through their remaining count reaching 0.
const maxPolicyWindow = 60 * time.Second

// signal is what one answer's headers say about the provider's budget.
type signal struct {
	// retryAfter is the Retry-After wait, 0 if absent.
	retryAfter time.Duration
	// exhausted is set when a rate-limit header says no call is left in
	// the current window; reset is when the window resets (0 if unknown).
	exhausted bool
	reset     time.Duration
	// policyRate is the rate the provider announces (calls/s) through
	// RateLimit-Policy, 0 if none.
	policyRate float64
	// limitHeaders says some rate-limit header was present.
	limitHeaders bool
}

// Canonical header keys, indexed directly to skip canonicalizing.
const (
	hRetryAfter      = "Retry-After"
	hRateLimit       = "Ratelimit"
	hRateLimitPolicy = "Ratelimit-Policy"
	hRemaining       = "Ratelimit-Remaining"
	hReset           = "Ratelimit-Reset"
	hXRemaining      = "X-Ratelimit-Remaining"
	hXReset          = "X-Ratelimit-Reset"
)

// hasLimitHeaders is the cheap test run on every successful answer.
func hasLimitHeaders(h http.Header) bool {
	if len(h) == 0 {
		return false
	}
	_, a := h[hRateLimit]
	_, b := h[hRateLimitPolicy]
	_, c := h[hXRemaining]
	_, d := h[hRemaining]
	return a || b || c || d
}

// readSignal reads the headers of an answer received at now. It
// understands Retry-After (seconds or an HTTP date), X-RateLimit-Remaining
// with X-RateLimit-Reset (seconds, or a Unix time in seconds or
// milliseconds), the IETF draft's RateLimit ("name";r=R;t=T, and the older
// remaining=/reset= parameters) and RateLimit-Policy ("name";q=Q;w=W), and
// the separate RateLimit-Remaining/RateLimit-Reset of earlier drafts.
func readSignal(h http.Header, now time.Time) signal {
	var s signal
	if len(h) == 0 {
		return s
	}
	if v := first(h, hRetryAfter); v != "" {
		s.retryAfter = parseRetryAfter(v, now)
	}
	if v := first(h, hRateLimitPolicy); v != "" {
		s.limitHeaders = true
		s.policyRate = parsePolicy(v)
	}
	if v := first(h, hRateLimit); v != "" {
		s.limitHeaders = true
		if ok, reset := parseRateLimit(v); ok {
			s.exhausted, s.reset = true, reset
		}
	}
	for _, pair := range [...][2]string{{hXRemaining, hXReset}, {hRemaining, hReset}} {
		v := first(h, pair[0])
		if v == "" {
			continue
		}
		s.limitHeaders = true
		if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && n <= 0 {
			s.exhausted = true
			s.reset = max(s.reset, parseReset(first(h, pair[1]), now))
		}
	}
	return s
}

func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return seconds(secs)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxPause)
	}
	return 0
}

// parseReset reads a reset time: seconds from now, or a Unix time in
// seconds (GitHub's X-RateLimit-Reset) or milliseconds.
func parseReset(v string, now time.Time) time.Duration {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || n <= 0 || math.IsNaN(n) {
		return 0
	}
	switch {
	case n > 1e12: // Unix milliseconds
		return max(0, min(time.UnixMilli(int64(n)).Sub(now), MaxPause))
	case n > 1e9: // Unix seconds
		return max(0, min(time.Unix(int64(n), 0).Sub(now), MaxPause))
	}
	return seconds(n)
}

// seconds converts a count of seconds to a duration within [0, MaxPause].
func seconds(s float64) time.Duration {
	if !(s > 0) { // also NaN
		return 0
	}
	if s >= MaxPause.Seconds() {
		return MaxPause
	}
	return time.Duration(s * float64(time.Second))
}

// parseRateLimit reads a RateLimit field: a list of items, each with
// parameters. It reports whether some item has no call left (r=0, or
// remaining=0 in older drafts), and the longest reset among those. An
// older draft lists the parameters as items ("limit=10, remaining=0,
// reset=5"): a reset in an item of its own applies to the field.
func parseRateLimit(v string) (exhausted bool, reset time.Duration) {
	var spent bool
	var fieldReset time.Duration
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		remaining, wait := math.NaN(), math.NaN()
		for item != "" {
			var param string
			param, item, _ = strings.Cut(item, ";")
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseFloat(strings.Trim(val, `" `), 64)
			if err != nil {
				continue
			}
			switch k {
			case "r", "remaining":
				remaining = n
			case "t", "reset":
				wait = n
			}
		}
		switch {
		case remaining <= 0 && !math.IsNaN(wait): // false for NaN: no r given
			exhausted = true
			reset = max(reset, seconds(wait))
		case remaining <= 0:
			spent = true
		case math.IsNaN(remaining) && !math.IsNaN(wait):
			fieldReset = max(fieldReset, seconds(wait))
		}
	}
	if spent {
		exhausted = true
		reset = max(reset, fieldReset)
	}
	return exhausted, reset
}

// parsePolicy reads RateLimit-Policy items ("name";q=100;w=1, or an
// earlier draft's 100;w=1) and returns
// the lowest rate among those whose window is at most maxPolicyWindow, in
// calls/s; 0 if none.
func parsePolicy(v string) float64 {
	rate := 0.0
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		q, w := -1.0, 0.0
		for item != "" {
			var param string
			param, item, _ = strings.Cut(item, ";")
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				// An earlier draft's bare quota: "100;w=1". (Names are
				// quoted: not parsed, as a failed parse allocates.)
				if k == "" || k[0] < '0' || k[0] > '9' {
					continue
				}
				if n, err := strconv.ParseFloat(k, 64); err == nil && q < 0 {
					q = n
				}
				continue
			}
			n, err := strconv.ParseFloat(strings.Trim(val, `" `), 64)
			if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
				continue
			}
			switch k {
			case "q":
				q = n
			case "w":
				w = n
			}
		}
		if q > 0 && w > 0 && w <= maxPolicyWindow.Seconds() {
			if r := q / w; rate == 0 || r < rate {
				rate = r
			}
		}
	}
	return rate
}
