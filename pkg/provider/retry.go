package provider

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Error classes a retry policy can name in Errors: failures with no HTTP
// answer.
const (
	RetryOnTimeout = "timeout" // no answer within the timeout
	RetryOnNetwork = "network" // refused, reset, DNS, TLS: no answer at all
)

// Defaults of a retry policy.
var (
	// DefaultRetryStatuses are the answers worth another attempt: a
	// request timeout, a rate limit, and any server error.
	DefaultRetryStatuses = []string{"408", "429", "5xx"}
	// DefaultRetryErrors are the failures with no answer worth another
	// attempt.
	DefaultRetryErrors = []string{RetryOnTimeout, RetryOnNetwork}
)

// RetryPolicy says how a failed call is tried again: how many attempts a
// job gets, the exponential backoff with full jitter between them, and
// which failures retry at all (the rest fail at once). In a provider's
// tasks.<task>.retry, every field left unset takes the provider's value.
type RetryPolicy struct {
	// Attempts per job, the first call included, unless the job says
	// otherwise (max_attempts in the envelope). Default 5 (or the older
	// key max_attempts).
	Attempts int `koanf:"attempts"`
	// Base and Cap shape the backoff: the delay before attempt n+1 is
	// uniform in [0, min(Cap, Base·2^(n-1))], or the provider's
	// Retry-After when longer. Defaults 1s and 5m (or the older keys
	// backoff_base and backoff_cap).
	Base time.Duration `koanf:"base"`
	Cap  time.Duration `koanf:"cap"`
	// Statuses are the HTTP answers that retry: codes ("503"), or classes
	// ("4xx", "5xx"). Default 408, 429, 5xx. Any other status fails at
	// once. An empty list retries no status.
	Statuses []string `koanf:"statuses"`
	// Errors are the failures with no answer that retry: "timeout",
	// "network". Default both.
	Errors []string `koanf:"errors"`
}

// RetryBudget caps the retries of a provider at a share of its recent
// successful calls, so an outage never becomes a retry storm. Each worker
// replica keeps its own budget over its own calls (see package limit).
type RetryBudget struct {
	// Ratio is the most retries per successful call over the window.
	// Default 0.2; 0 turns the budget off (every retry allowed).
	Ratio float64 `koanf:"ratio"`
	// MinPerSecond is a floor of retries per second each replica may
	// make whatever the successes, so a provider that answers nothing can
	// still be retried, slowly. Default 1.
	MinPerSecond float64 `koanf:"min_per_second"`
	// Window is how far back successes and retries are counted. Default 10s.
	Window time.Duration `koanf:"window"`
}

// Task holds what one task of a provider overrides.
type Task struct {
	Retry RetryPolicy `koanf:"retry"`
	// Delivery overrides the provider's delivery for the task; "" keeps it.
	Delivery Delivery `koanf:"delivery"`
}

// withDefaults fills the provider's policy from the older flat keys and
// the defaults.
func (r RetryPolicy) withDefaults(c Config) RetryPolicy {
	r.Attempts = cmp.Or(r.Attempts, c.MaxAttempts, 5)
	r.Base = cmp.Or(r.Base, c.BackoffBase, time.Second)
	r.Cap = cmp.Or(r.Cap, c.BackoffCap, 5*time.Minute)
	if r.Statuses == nil {
		r.Statuses = DefaultRetryStatuses
	}
	if r.Errors == nil {
		r.Errors = DefaultRetryErrors
	}
	return r
}

// over returns r with its unset fields taken from parent.
func (r RetryPolicy) over(parent RetryPolicy) RetryPolicy {
	r.Attempts = cmp.Or(r.Attempts, parent.Attempts)
	r.Base = cmp.Or(r.Base, parent.Base)
	r.Cap = cmp.Or(r.Cap, parent.Cap)
	if r.Statuses == nil {
		r.Statuses = parent.Statuses
	}
	if r.Errors == nil {
		r.Errors = parent.Errors
	}
	return r
}

func (b RetryBudget) withDefaults() RetryBudget {
	if b.Ratio == 0 && b.MinPerSecond == 0 && b.Window == 0 {
		b.Ratio = 0.2
	}
	if b.MinPerSecond == 0 {
		b.MinPerSecond = 1
	}
	if b.Window == 0 {
		b.Window = 10 * time.Second
	}
	return b
}

// validate names the first bad field, relative to the policy's key.
func (r RetryPolicy) validate() error {
	if r.Attempts < 1 || r.Attempts > job.MaxAttemptsCap {
		return fmt.Errorf("attempts: %d must be between 1 and %d", r.Attempts, job.MaxAttemptsCap)
	}
	if r.Base <= 0 || r.Cap < r.Base {
		return fmt.Errorf("base, cap: want 0 < base (%s) <= cap (%s)", r.Base, r.Cap)
	}
	if _, err := parseStatuses(r.Statuses); err != nil {
		return err
	}
	if _, err := parseErrors(r.Errors); err != nil {
		return err
	}
	return nil
}

func (b RetryBudget) validate() error {
	switch {
	case math.IsNaN(b.Ratio) || b.Ratio < 0 || b.Ratio > 100:
		return fmt.Errorf("ratio: %v must be between 0 (off) and 100", b.Ratio)
	case math.IsNaN(b.MinPerSecond) || b.MinPerSecond < 0 || b.MinPerSecond > MaxRatePerSecond:
		return fmt.Errorf("min_per_second: %v must be between 0 and %g", b.MinPerSecond, float64(MaxRatePerSecond))
	case b.Window < 100*time.Millisecond || b.Window > time.Hour:
		return fmt.Errorf("window: %s must be between 100ms and 1h", b.Window)
	}
	return nil
}

// parseStatuses reads status entries: "503", "5xx"; an entry may hold
// several separated by commas (as an environment variable would).
func parseStatuses(entries []string) (*[600]bool, error) {
	var set [600]bool
	for _, entry := range entries {
		for s := range strings.SplitSeq(entry, ",") {
			s = strings.ToLower(strings.TrimSpace(s))
			if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
				lo := int(s[0]-'0') * 100
				for c := lo; c < lo+100; c++ {
					set[c] = true
				}
				continue
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 100 || n > 599 {
				return nil, fmt.Errorf("statuses: %q must be an HTTP status (100-599) or a class such as 5xx", s)
			}
			set[n] = true
		}
	}
	return &set, nil
}

func parseErrors(entries []string) (map[job.Class]bool, error) {
	set := map[job.Class]bool{}
	for _, entry := range entries {
		for s := range strings.SplitSeq(entry, ",") {
			switch s = strings.ToLower(strings.TrimSpace(s)); s {
			case RetryOnTimeout:
				set[job.ClassTimeout] = true
			case RetryOnNetwork:
				set[job.ClassNetwork] = true
			default:
				return nil, fmt.Errorf("errors: %q must be %q or %q", s, RetryOnTimeout, RetryOnNetwork)
			}
		}
	}
	return set, nil
}

// Policy is a resolved retry policy: a provider's, or one task's.
type Policy struct {
	Attempts  int
	Base, Cap time.Duration
	statuses  *[600]bool
	errors    map[job.Class]bool
}

func newPolicy(r RetryPolicy) (*Policy, error) {
	st, err := parseStatuses(r.Statuses)
	if err != nil {
		return nil, err
	}
	er, err := parseErrors(r.Errors)
	if err != nil {
		return nil, err
	}
	return &Policy{Attempts: r.Attempts, Base: r.Base, Cap: r.Cap, statuses: st, errors: er}, nil
}

// Retries reports whether the policy retries a failed call: an answer by
// its status, a failure with no answer by its class. Invalid requests
// never retry.
func (p *Policy) Retries(e *Error) bool {
	switch {
	case e.Class == job.ClassInvalid, errors.Is(e.Err, ErrPrivateNetwork):
		// A refused address stays refused: retrying would only keep
		// probing the network.
		return false
	case e.HTTPStatus > 0 && e.HTTPStatus < len(p.statuses):
		return p.statuses[e.HTTPStatus]
	case e.HTTPStatus > 0:
		return false
	default:
		return p.errors[e.Class]
	}
}

// Delay is the wait before the attempt after attempt: the provider's
// Retry-After (at most MaxRetryAfter) when it asked for one longer than
// the backoff, else the backoff.
func (p *Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	return max(min(retryAfter, MaxRetryAfter), Backoff(attempt, p.Base, p.Cap))
}

// Policy returns the retry policy of task: the task's override over the
// provider's.
func (p *Provider) Policy(task string) *Policy {
	if tp, ok := p.policies[task]; ok {
		return tp
	}
	return p.policy
}

// buildPolicies resolves the provider's policy and each task's.
func (p *Provider) buildPolicies() error {
	var err error
	if p.policy, err = newPolicy(p.cfg.Retry); err != nil {
		return fmt.Errorf("retry.%w", err)
	}
	p.policies = make(map[string]*Policy, len(p.cfg.Tasks))
	for name, t := range p.cfg.Tasks {
		if p.policies[name], err = newPolicy(t.Retry.over(p.cfg.Retry)); err != nil {
			return fmt.Errorf("tasks.%s.retry.%w", name, err)
		}
	}
	return nil
}
