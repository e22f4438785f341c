package provider

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// Scope says over which set of processes a limit holds.
type Scope string

const (
	// ScopeReplica: the limit holds in each worker process separately.
	ScopeReplica Scope = "replica"
)

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
	// ConcurrencyScope says where Concurrency holds. Only "replica" exists
	// today, and it must be said explicitly or left to its default.
	ConcurrencyScope Scope `koanf:"concurrency_scope"`
	// LiveReserve is how many of Concurrency only the live lane may use, so a
	// bulk backlog never takes every slot. It is always below Concurrency, so
	// bulk keeps at least one. Default Concurrency/10, at least 1 when
	// Concurrency is 2 or more (0 means the default).
	LiveReserve int `koanf:"live_reserve"`
	// Timeout bounds one call, from dial to the last body byte. Default 30s.
	Timeout time.Duration `koanf:"timeout"`
	// MaxAttempts is the default number of attempts per job. Default 5.
	MaxAttempts int `koanf:"max_attempts"`
	// BackoffBase and BackoffCap shape the exponential backoff with full
	// jitter between attempts. Defaults 1s and 5m.
	BackoffBase time.Duration `koanf:"backoff_base"`
	BackoffCap  time.Duration `koanf:"backoff_cap"`
	// IdempotencyHeader carries the job id on every call. Default
	// "Idempotency-Key"; "-" disables it.
	IdempotencyHeader string `koanf:"idempotency_header"`
	// ResponseBodyLimit caps the response body kept in a result, in bytes.
	// Default 65536.
	ResponseBodyLimit int `koanf:"response_body_limit"`
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
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = 5 * time.Minute
	}
	if c.IdempotencyHeader == "" {
		c.IdempotencyHeader = "Idempotency-Key"
	}
	if c.ResponseBodyLimit == 0 {
		c.ResponseBodyLimit = 64 << 10
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
	if c.ConcurrencyScope != ScopeReplica {
		return fmt.Errorf("concurrency_scope: %q is not supported (want %q)", c.ConcurrencyScope, ScopeReplica)
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
	if c.ResponseBodyLimit < 0 || c.ResponseBodyLimit > MaxResponseBodyLimit {
		return fmt.Errorf("response_body_limit: %d must be between 0 and %d (a result must fit in one NATS message)", c.ResponseBodyLimit, MaxResponseBodyLimit)
	}
	return c.Auth.validate()
}

func (a AuthConfig) validate() error {
	if a.Header == "" {
		if a.Env != "" || a.File != "" {
			return errors.New("auth.header: is required when auth.env or auth.file is set")
		}
		return nil
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
