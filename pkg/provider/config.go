package provider

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Scope says over which set of processes a limit holds.
type Scope string

const (
	// ScopeReplica: the limit holds in each worker process separately.
	ScopeReplica Scope = "replica"
	// ScopeFleet: the limit holds for every worker replica together. Each
	// replica takes its share of it among the replicas serving the
	// provider (see package limit), at least one.
	ScopeFleet Scope = "fleet"
)

// FleetPause values: which answers that name a wait stop the provider for
// every replica, rather than only delaying the job that got them.
const (
	// PauseOn429: a 429 with Retry-After (or rate-limit headers saying
	// when the budget resets) pauses the provider fleet-wide. A 503's
	// Retry-After delays only its own job. The default.
	PauseOn429 = "429"
	// PauseOn429And503: a 503 with Retry-After pauses the fleet too, for
	// providers that say "slow down" with 503.
	PauseOn429And503 = "429,503"
	// PauseOff: each job waits alone; only the adaptive rate reacts.
	PauseOff = "off"
)

// Bounds of the rate-limit keys.
const (
	// MaxRatePerSecond is the highest rate limit accepted, in calls/s.
	MaxRatePerSecond = 1e6
	// MinRatePer is the shortest rate_limit.per.
	MinRatePer = time.Millisecond
)

// RateLimit caps how fast calls start, across the whole fleet: at most
// Rate calls per Per on average, with at most Burst at once after a quiet
// spell. Every replica serving the provider takes its share (see package
// limit for how, and for the error bounds).
type RateLimit struct {
	// Rate is the number of calls allowed per Per, for all replicas
	// together. 0, the default, sets no rate; the rate still adapts down
	// on 429s that give no other guidance, and follows a RateLimit-Policy
	// header when the provider sends one.
	Rate float64 `koanf:"rate"`
	// Per is the period Rate counts over. Default 1s.
	Per time.Duration `koanf:"per"`
	// Burst is how many calls may start at once after a quiet spell, for
	// the fleet. Default: a fiftieth of a second's worth of Rate (20 ms),
	// at least 1. The fleet's busiest second then stays within about 2 % of
	// Rate (see package limit for the bound), inside what a provider that
	// counts calls in a sliding one-second window allows. Keep it at or
	// below the provider's own burst.
	Burst int `koanf:"burst"`
	// Recovery is how long the adaptive rate takes, after a 429 cut it to
	// 0.7 of what it was, to climb back there while calls succeed. Default
	// 15s. Shorter recovers sooner and meets the provider's limit more
	// often.
	Recovery time.Duration `koanf:"recovery"`
}

// PerSecond returns the rate in calls per second, 0 when none is set.
func (r RateLimit) PerSecond() float64 {
	if r.Rate <= 0 || r.Per <= 0 {
		return 0
	}
	return r.Rate * float64(time.Second) / float64(r.Per)
}

// MaxResponseBodyLimit is the largest response body a result may keep:
// with its headers and the job's meta, a result stays well inside NATS's
// default 1 MiB payload.
const MaxResponseBodyLimit = 512 << 10

// Config describes one third-party API. A provider is configuration, not
// code: adding one means adding a block like this.
type Config struct {
	// BaseURL is the absolute http(s) URL every job path is relative to.
	BaseURL string `koanf:"base_url"`
	// Auth, when its Header is set, adds a credential to every call.
	Auth AuthConfig `koanf:"auth"`
	// Concurrency caps the calls in flight. Default 100.
	Concurrency int `koanf:"concurrency"`
	// ConcurrencyScope says where Concurrency holds: "replica" (the
	// default), in each worker process; "fleet", for all replicas together,
	// each holding its share and at least one.
	ConcurrencyScope Scope `koanf:"concurrency_scope"`
	// LiveReserve is how many of Concurrency only the live lane may use, so a
	// bulk backlog never takes every slot. It is always below Concurrency, so
	// bulk keeps at least one. Default Concurrency/10, at least 1 when
	// Concurrency is 2 or more (0 means the default). With the fleet scope
	// it is divided among the replicas like Concurrency.
	LiveReserve int `koanf:"live_reserve"`
	// RateLimit caps the calls started per second across the fleet.
	RateLimit RateLimit `koanf:"rate_limit"`
	// DailyQuota caps the calls per UTC day across the fleet; 0, the
	// default, sets none. When it is spent the provider's lanes stop
	// fetching: jobs wait in the stream without spending attempts, and
	// resume the next UTC day.
	DailyQuota int64 `koanf:"daily_quota"`
	// FleetPause says which answers naming a wait pause the provider for
	// every replica: "429" (the default), "429,503" or "off".
	FleetPause string `koanf:"fleet_pause"`
	// Timeout bounds one call, from dial to the last body byte. Default 30s.
	Timeout time.Duration `koanf:"timeout"`
	// MaxAttempts, BackoffBase and BackoffCap are the older spelling of
	// Retry.Attempts, Retry.Base and Retry.Cap, kept so existing configs
	// work; WithDefaults makes each pair equal, and setting both keys of a
	// pair to different values is an error.
	MaxAttempts int           `koanf:"max_attempts"`
	BackoffBase time.Duration `koanf:"backoff_base"`
	BackoffCap  time.Duration `koanf:"backoff_cap"`
	// Retry is the provider's retry policy: attempts, backoff, and which
	// statuses and errors retry.
	Retry RetryPolicy `koanf:"retry"`
	// RetryBudget caps retries at a share of recent successful calls.
	RetryBudget RetryBudget `koanf:"retry_budget"`
	// Breaker stops the provider's calls, on every replica, while it is
	// failing (see package limit).
	Breaker BreakerConfig `koanf:"breaker"`
	// IdempotencyHeader carries the job id on every call. Default
	// "Idempotency-Key"; "-" disables it.
	IdempotencyHeader string `koanf:"idempotency_header"`
	// ResponseBodyLimit caps the response body kept in a result, in bytes.
	// Default 65536.
	ResponseBodyLimit int `koanf:"response_body_limit"`
	// Delivery is "at_least_once" (the default, also when empty) or
	// "at_most_once"; see Delivery. Tasks may override it.
	Delivery Delivery `koanf:"delivery"`
	// AckWait is how long the server waits for a job's ack before it
	// delivers the job again. 0, the default, means 2×Timeout+10s, which a
	// call never outlives. Shorter brings back the jobs of a worker that
	// died sooner; calls that run longer than half of it tell the server
	// they are still in progress, so they are not delivered twice.
	AckWait time.Duration `koanf:"ack_wait"`
	// Tasks overrides settings of single tasks, by task name: the retry
	// policy and the delivery.
	Tasks map[string]Task `koanf:"tasks"`
	// FollowRedirects is "off" (the default: a 3xx answer fails the call)
	// or "same_host" (follow up to MaxRedirects redirects that stay on
	// base_url's scheme and host). A redirect elsewhere is never followed.
	FollowRedirects string `koanf:"follow_redirects"`
	// AllowPrivateNetwork lets calls reach loopback, private (10/8,
	// 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, where cloud
	// metadata lives), unspecified and other reserved addresses. Off by
	// default, so that a base_url or a DNS answer cannot turn a job into a
	// probe of the worker's own network; checked on the base_url at start
	// and on every address dialled. Set it for a provider that really
	// lives there (a mock, a sidecar, an internal service). With a proxy
	// from the environment (HTTPS_PROXY), the address dialled is the
	// proxy's, and the proxy decides where the call may go.
	AllowPrivateNetwork bool `koanf:"allow_private_network"`
}

// AuthConfig names a header and where its secret value comes from. The
// value never comes from a job and never appears in logs.
type AuthConfig struct {
	Header string `koanf:"header"`
	// Prefix is prepended to the secret, e.g. "Bearer ".
	Prefix string `koanf:"prefix"`
	// Env names the environment variable holding the secret.
	Env string `koanf:"env"`
	// File names a file holding the secret (trailing newlines trimmed).
	File string `koanf:"file"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 100
	}
	if c.ConcurrencyScope == "" {
		c.ConcurrencyScope = ScopeReplica
	}
	if c.LiveReserve == 0 && c.Concurrency >= 2 {
		c.LiveReserve = max(1, c.Concurrency/10)
	}
	if c.RateLimit.Per == 0 {
		c.RateLimit.Per = time.Second
	}
	if c.RateLimit.Burst == 0 && c.RateLimit.Rate > 0 {
		c.RateLimit.Burst = max(1, int(math.Ceil(c.RateLimit.PerSecond()/50)))
	}
	if c.RateLimit.Recovery == 0 {
		c.RateLimit.Recovery = 15 * time.Second
	}
	if c.FleetPause == "" {
		c.FleetPause = PauseOn429
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	c.Retry = c.Retry.withDefaults(c)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, c.Retry.Attempts)
	c.BackoffBase = cmp.Or(c.BackoffBase, c.Retry.Base)
	c.BackoffCap = cmp.Or(c.BackoffCap, c.Retry.Cap)
	c.RetryBudget = c.RetryBudget.withDefaults()
	c.Breaker = c.Breaker.withDefaults()
	if c.IdempotencyHeader == "" {
		c.IdempotencyHeader = "Idempotency-Key"
	}
	if c.ResponseBodyLimit == 0 {
		c.ResponseBodyLimit = 64 << 10
	}
	if c.FollowRedirects == "" {
		c.FollowRedirects = RedirectsOff
	}
	return c
}

// Validate reports the first bad field, named relative to the provider
// ("base_url", "auth.env", ...). Call it on a config with defaults applied.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return errors.New("base_url: is required")
	case err != nil:
		return fmt.Errorf("base_url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("base_url: %q must be an absolute http or https URL", c.BaseURL)
	case u.Host == "":
		return fmt.Errorf("base_url: %q has no host", c.BaseURL)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("base_url: %q may not carry a query, fragment or credentials", c.BaseURL)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("concurrency: %d must be at least 1", c.Concurrency)
	}
	if c.ConcurrencyScope != ScopeReplica && c.ConcurrencyScope != ScopeFleet {
		return fmt.Errorf("concurrency_scope: %q must be %q or %q", c.ConcurrencyScope, ScopeReplica, ScopeFleet)
	}
	if c.LiveReserve < 0 || (c.LiveReserve >= c.Concurrency && c.LiveReserve > 0) {
		return fmt.Errorf("live_reserve: %d must be below concurrency (%d), so that bulk keeps a slot", c.LiveReserve, c.Concurrency)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout: %s must be positive", c.Timeout)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("max_attempts: %d must be at least 1", c.MaxAttempts)
	}
	if c.BackoffBase <= 0 || c.BackoffCap < c.BackoffBase {
		return fmt.Errorf("backoff_base, backoff_cap: want 0 < base (%s) <= cap (%s)", c.BackoffBase, c.BackoffCap)
	}
	switch {
	case c.MaxAttempts != c.Retry.Attempts:
		return fmt.Errorf("max_attempts: %d differs from retry.attempts (%d); it is the older spelling, set only one", c.MaxAttempts, c.Retry.Attempts)
	case c.BackoffBase != c.Retry.Base:
		return fmt.Errorf("backoff_base: %s differs from retry.base (%s); it is the older spelling, set only one", c.BackoffBase, c.Retry.Base)
	case c.BackoffCap != c.Retry.Cap:
		return fmt.Errorf("backoff_cap: %s differs from retry.cap (%s); it is the older spelling, set only one", c.BackoffCap, c.Retry.Cap)
	}
	if err := c.Retry.validate(); err != nil {
		return fmt.Errorf("retry.%w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Tasks)) {
		if !job.ValidToken(name) {
			return fmt.Errorf("tasks: %q is not a valid task name (want [a-z0-9_-]{1,64})", name)
		}
		if err := c.Tasks[name].Retry.over(c.Retry).validate(); err != nil {
			return fmt.Errorf("tasks.%s.retry.%w", name, err)
		}
	}
	if err := c.RetryBudget.validate(); err != nil {
		return fmt.Errorf("retry_budget.%w", err)
	}
	if err := c.Breaker.validate(); err != nil {
		return fmt.Errorf("breaker.%w", err)
	}
	if err := c.RateLimit.validate(); err != nil {
		return err
	}
	if c.DailyQuota < 0 {
		return fmt.Errorf("daily_quota: %d must not be negative (0 is no quota)", c.DailyQuota)
	}
	switch c.FleetPause {
	case PauseOn429, PauseOn429And503, PauseOff:
	default:
		return fmt.Errorf("fleet_pause: %q must be %q, %q or %q", c.FleetPause, PauseOn429, PauseOn429And503, PauseOff)
	}
	if c.ResponseBodyLimit < 0 || c.ResponseBodyLimit > MaxResponseBodyLimit {
		return fmt.Errorf("response_body_limit: %d must be between 0 and %d (a result must fit in one NATS message)", c.ResponseBodyLimit, MaxResponseBodyLimit)
	}
	if err := c.validateDelivery(); err != nil {
		return err
	}
	if c.FollowRedirects != RedirectsOff && c.FollowRedirects != RedirectsSameHost {
		return fmt.Errorf("follow_redirects: %q must be %q or %q", c.FollowRedirects, RedirectsOff, RedirectsSameHost)
	}
	if c.IdempotencyHeader != "-" && !validHeaderName(c.IdempotencyHeader) {
		return fmt.Errorf("idempotency_header: %q is not a valid header name (or \"-\" for none)", c.IdempotencyHeader)
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	// Last, so that a config with other mistakes names those first.
	if !c.AllowPrivateNetwork {
		return checkBaseHost(u)
	}
	return nil
}

func (r RateLimit) validate() error {
	switch {
	case math.IsNaN(r.Rate) || math.IsInf(r.Rate, 0) || r.Rate < 0:
		return fmt.Errorf("rate_limit.rate: %v must be a number of calls, 0 or more (0 is no fixed rate)", r.Rate)
	case r.Per < MinRatePer:
		return fmt.Errorf("rate_limit.per: %s must be at least %s", r.Per, MinRatePer)
	case r.PerSecond() > MaxRatePerSecond:
		return fmt.Errorf("rate_limit.rate: %v per %s is %g calls/s, above the most allowed (%g)", r.Rate, r.Per, r.PerSecond(), float64(MaxRatePerSecond))
	case r.Rate > 0 && r.PerSecond() < 1.0/86400:
		return fmt.Errorf("rate_limit.rate: %v per %s is below one call a day; use daily_quota", r.Rate, r.Per)
	case r.Burst < 0:
		return fmt.Errorf("rate_limit.burst: %d must not be negative", r.Burst)
	case r.Rate == 0 && r.Burst != 0:
		return fmt.Errorf("rate_limit.burst: %d is set without rate_limit.rate", r.Burst)
	case r.Rate > 0 && r.Burst < 1:
		return fmt.Errorf("rate_limit.burst: %d must be at least 1", r.Burst)
	case r.Recovery < 100*time.Millisecond || r.Recovery > 24*time.Hour:
		return fmt.Errorf("rate_limit.recovery: %s must be between 100ms and 24h", r.Recovery)
	}
	return nil
}

func (a AuthConfig) validate() error {
	if a.Header == "" {
		if a.Env != "" || a.File != "" {
			return errors.New("auth.header: is required when auth.env or auth.file is set")
		}
		return nil
	}
	if !validHeaderName(a.Header) {
		return fmt.Errorf("auth.header: %q is not a valid header name", a.Header)
	}
	if strings.ContainsFunc(a.Prefix, unicode.IsControl) {
		return errors.New("auth.prefix: holds control characters (a header value cannot)")
	}
	if (a.Env == "") == (a.File == "") {
		return errors.New("auth: set exactly one of auth.env and auth.file")
	}
	_, err := a.secret()
	return err
}

// secret reads the credential. It is called once, when the provider is
// built, so a missing secret fails at start, not on the first call.
func (a AuthConfig) secret() (string, error) {
	if a.Env != "" {
		v, ok := os.LookupEnv(a.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("auth.env: environment variable %s is not set", a.Env)
		}
		if strings.ContainsFunc(v, unicode.IsControl) {
			return "", fmt.Errorf("auth.env: %s holds control characters (a header value cannot)", a.Env)
		}
		return a.Prefix + v, nil
	}
	b, err := os.ReadFile(a.File)
	if err != nil {
		return "", fmt.Errorf("auth.file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("auth.file: %s is empty", a.File)
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return "", fmt.Errorf("auth.file: %s holds control characters (a header value cannot)", a.File)
	}
	return a.Prefix + v, nil
}

// validHeaderName reports whether s is an RFC 9110 token, so that no CR, LF
// or separator can reach the request from the config.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
