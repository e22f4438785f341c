package provider_test

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/provider"
)

// noRate is the rate_limit block of a provider that sets none.
var noRate = provider.RateLimit{Per: time.Second, Recovery: 15 * time.Second}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   provider.Config
		want provider.Config
	}{
		{
			name: "zero config",
			in:   provider.Config{BaseURL: "https://api.test"},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 100, ConcurrencyScope: provider.ScopeReplica, LiveReserve: 10,
				Timeout: 30 * time.Second, MaxAttempts: 5, BackoffBase: time.Second, BackoffCap: 5 * time.Minute,
				IdempotencyHeader: "Idempotency-Key", ResponseBodyLimit: 65536, FollowRedirects: provider.RedirectsOff,
				RateLimit: noRate, FleetPause: provider.PauseOn429,
			},
		},
		{
			name: "live reserve follows concurrency",
			in:   provider.Config{BaseURL: "https://api.test", Concurrency: 5},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 5, ConcurrencyScope: provider.ScopeReplica, LiveReserve: 1,
				Timeout: 30 * time.Second, MaxAttempts: 5, BackoffBase: time.Second, BackoffCap: 5 * time.Minute,
				IdempotencyHeader: "Idempotency-Key", ResponseBodyLimit: 65536, FollowRedirects: provider.RedirectsOff,
				RateLimit: noRate, FleetPause: provider.PauseOn429,
			},
		},
		{
			name: "rate limit burst is a fiftieth of a second's worth",
			in:   provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 6000, Per: time.Minute}},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 100, ConcurrencyScope: provider.ScopeReplica, LiveReserve: 10,
				Timeout: 30 * time.Second, MaxAttempts: 5, BackoffBase: time.Second, BackoffCap: 5 * time.Minute,
				IdempotencyHeader: "Idempotency-Key", ResponseBodyLimit: 65536, FollowRedirects: provider.RedirectsOff,
				RateLimit:  provider.RateLimit{Rate: 6000, Per: time.Minute, Burst: 2, Recovery: 15 * time.Second},
				FleetPause: provider.PauseOn429,
			},
		},
		{
			name: "slow rate limit bursts one",
			in:   provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 2}},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 100, ConcurrencyScope: provider.ScopeReplica, LiveReserve: 10,
				Timeout: 30 * time.Second, MaxAttempts: 5, BackoffBase: time.Second, BackoffCap: 5 * time.Minute,
				IdempotencyHeader: "Idempotency-Key", ResponseBodyLimit: 65536, FollowRedirects: provider.RedirectsOff,
				RateLimit:  provider.RateLimit{Rate: 2, Per: time.Second, Burst: 1, Recovery: 15 * time.Second},
				FleetPause: provider.PauseOn429,
			},
		},
		{
			name: "retry block mirrored to the older keys",
			in:   provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Attempts: 7, Base: time.Millisecond, Cap: time.Second, Statuses: []string{"503"}}},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 100, ConcurrencyScope: provider.ScopeReplica, LiveReserve: 10,
				Timeout: 30 * time.Second, MaxAttempts: 7, BackoffBase: time.Millisecond, BackoffCap: time.Second,
				Retry:             provider.RetryPolicy{Attempts: 7, Base: time.Millisecond, Cap: time.Second, Statuses: []string{"503"}, Errors: provider.DefaultRetryErrors},
				IdempotencyHeader: "Idempotency-Key", ResponseBodyLimit: 65536,
				RateLimit: noRate, FleetPause: provider.PauseOn429, FollowRedirects: provider.RedirectsOff,
			},
		},
		{
			name: "explicit values kept",
			in: provider.Config{
				BaseURL: "https://api.test", Concurrency: 7, ConcurrencyScope: provider.ScopeFleet, LiveReserve: 3,
				Timeout: time.Second, MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffCap: time.Second,
				IdempotencyHeader: "-", ResponseBodyLimit: 10, FollowRedirects: provider.RedirectsSameHost, AllowPrivateNetwork: true,
				RateLimit:  provider.RateLimit{Rate: 100, Per: 10 * time.Second, Burst: 20, Recovery: time.Second},
				DailyQuota: 5000, FleetPause: provider.PauseOn429And503,
			},
			want: provider.Config{
				BaseURL: "https://api.test", Concurrency: 7, ConcurrencyScope: provider.ScopeFleet, LiveReserve: 3,
				Timeout: time.Second, MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffCap: time.Second,
				IdempotencyHeader: "-", ResponseBodyLimit: 10, FollowRedirects: provider.RedirectsSameHost, AllowPrivateNetwork: true,
				RateLimit:  provider.RateLimit{Rate: 100, Per: 10 * time.Second, Burst: 20, Recovery: time.Second},
				DailyQuota: 5000, FleetPause: provider.PauseOn429And503,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in.WithDefaults()
			tt.want = withRetryDefaults(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WithDefaults() =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() after WithDefaults: %v", err)
			}
		})
	}
}

// withRetryDefaults fills in the retry block of a wanted config from its
// older flat keys, and the default budget and breaker, unless set.
func withRetryDefaults(c provider.Config) provider.Config {
	if c.Retry.Attempts == 0 {
		c.Retry = provider.RetryPolicy{Attempts: c.MaxAttempts, Base: c.BackoffBase, Cap: c.BackoffCap,
			Statuses: provider.DefaultRetryStatuses, Errors: provider.DefaultRetryErrors}
	}
	if c.RetryBudget == (provider.RetryBudget{}) {
		c.RetryBudget = provider.RetryBudget{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}
	}
	if c.Breaker == (provider.BreakerConfig{}) {
		c.Breaker = provider.BreakerConfig{FailureRate: 0.5, MinCalls: 20, Window: 10 * time.Second, Consecutive: 10,
			OpenFor: 5 * time.Second, MaxOpenFor: 2 * time.Minute, Probes: 3}
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("SWITCHYARD_TEST_TOKEN", "secret")
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       provider.Config // WithDefaults is applied before Validate
		wantErr   bool
		wantField string // named in the error
	}{
		{name: "minimal", cfg: provider.Config{BaseURL: "https://api.test"}},
		{name: "http with port and path", cfg: provider.Config{BaseURL: "http://127.0.0.1:8080/api/v2/", AllowPrivateNetwork: true}},
		{name: "auth env", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_TOKEN"}}},
		{name: "auth file", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "X-Api-Key", File: secretFile}}},

		{name: "missing base_url", cfg: provider.Config{}, wantErr: true, wantField: "base_url"},
		{name: "relative base_url", cfg: provider.Config{BaseURL: "/api/v2"}, wantErr: true, wantField: "base_url"},
		{name: "base_url without scheme", cfg: provider.Config{BaseURL: "api.test/v2"}, wantErr: true, wantField: "base_url"},
		{name: "ftp scheme", cfg: provider.Config{BaseURL: "ftp://api.test/"}, wantErr: true, wantField: "base_url"},
		{name: "no host", cfg: provider.Config{BaseURL: "http:///api"}, wantErr: true, wantField: "base_url"},
		{name: "unparsable", cfg: provider.Config{BaseURL: "http://api.test:port/"}, wantErr: true, wantField: "base_url"},
		{name: "query", cfg: provider.Config{BaseURL: "https://api.test/v2?key=1"}, wantErr: true, wantField: "base_url"},
		{name: "fragment", cfg: provider.Config{BaseURL: "https://api.test/v2#x"}, wantErr: true, wantField: "base_url"},
		{name: "user info", cfg: provider.Config{BaseURL: "https://user:pass@api.test/"}, wantErr: true, wantField: "base_url"},
		{name: "user without password", cfg: provider.Config{BaseURL: "https://user@api.test/"}, wantErr: true, wantField: "base_url"},
		{name: "negative concurrency", cfg: provider.Config{BaseURL: "https://api.test", Concurrency: -1}, wantErr: true, wantField: "concurrency"},
		{name: "live_reserve above concurrency", cfg: provider.Config{BaseURL: "https://api.test", Concurrency: 4, LiveReserve: 5}, wantErr: true, wantField: "live_reserve"},
		{name: "live_reserve taking every slot", cfg: provider.Config{BaseURL: "https://api.test", Concurrency: 4, LiveReserve: 4}, wantErr: true, wantField: "live_reserve"},
		{name: "concurrency 1 leaves bulk its slot", cfg: provider.Config{BaseURL: "https://api.test", Concurrency: 1}},
		{name: "negative live_reserve", cfg: provider.Config{BaseURL: "https://api.test", LiveReserve: -1}, wantErr: true, wantField: "live_reserve"},
		{name: "unsupported scope", cfg: provider.Config{BaseURL: "https://api.test", ConcurrencyScope: "global"}, wantErr: true, wantField: "concurrency_scope"},
		{name: "fleet scope", cfg: provider.Config{BaseURL: "https://api.test", ConcurrencyScope: provider.ScopeFleet}},
		{name: "rate limit", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 100, Per: time.Second, Burst: 20}}},
		{name: "rate limit per minute", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 60, Per: time.Minute}}},
		{name: "only a recovery", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Recovery: time.Second}}},
		{name: "negative rate", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: -1}}, wantErr: true, wantField: "rate_limit.rate"},
		{name: "NaN rate", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: math.NaN()}}, wantErr: true, wantField: "rate_limit.rate"},
		{name: "infinite rate", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: math.Inf(1)}}, wantErr: true, wantField: "rate_limit.rate"},
		{name: "rate too high", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 2e6}}, wantErr: true, wantField: "rate_limit.rate"},
		{name: "rate below one a day", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 1, Per: 48 * time.Hour}}, wantErr: true, wantField: "daily_quota"},
		{name: "per too short", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 1, Per: time.Microsecond}}, wantErr: true, wantField: "rate_limit.per"},
		{name: "negative per", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 1, Per: -time.Second}}, wantErr: true, wantField: "rate_limit.per"},
		{name: "negative burst", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Rate: 1, Burst: -1}}, wantErr: true, wantField: "rate_limit.burst"},
		{name: "burst without rate", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Burst: 5}}, wantErr: true, wantField: "rate_limit.burst"},
		{name: "recovery too short", cfg: provider.Config{BaseURL: "https://api.test", RateLimit: provider.RateLimit{Recovery: time.Millisecond}}, wantErr: true, wantField: "rate_limit.recovery"},
		{name: "daily quota", cfg: provider.Config{BaseURL: "https://api.test", DailyQuota: 10000}},
		{name: "negative daily quota", cfg: provider.Config{BaseURL: "https://api.test", DailyQuota: -1}, wantErr: true, wantField: "daily_quota"},
		{name: "fleet pause on 503 too", cfg: provider.Config{BaseURL: "https://api.test", FleetPause: provider.PauseOn429And503}},
		{name: "fleet pause off", cfg: provider.Config{BaseURL: "https://api.test", FleetPause: provider.PauseOff}},
		{name: "fleet pause unknown", cfg: provider.Config{BaseURL: "https://api.test", FleetPause: "always"}, wantErr: true, wantField: "fleet_pause"},
		{name: "negative timeout", cfg: provider.Config{BaseURL: "https://api.test", Timeout: -time.Second}, wantErr: true, wantField: "timeout"},
		{name: "negative max_attempts", cfg: provider.Config{BaseURL: "https://api.test", MaxAttempts: -1}, wantErr: true, wantField: "max_attempts"},
		{name: "backoff_cap below base", cfg: provider.Config{BaseURL: "https://api.test", BackoffBase: 2 * time.Second, BackoffCap: time.Second}, wantErr: true, wantField: "backoff_cap"},
		{name: "negative backoff_base", cfg: provider.Config{BaseURL: "https://api.test", BackoffBase: -time.Second}, wantErr: true, wantField: "backoff_base"},
		{name: "retry block", cfg: provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Attempts: 3, Statuses: []string{"429", "502,503"}, Errors: []string{"network"}}}},
		{name: "retry no status", cfg: provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Statuses: []string{}}}},
		{name: "older key agrees", cfg: provider.Config{BaseURL: "https://api.test", MaxAttempts: 3, Retry: provider.RetryPolicy{Attempts: 3}}},
		{name: "older key disagrees", cfg: provider.Config{BaseURL: "https://api.test", MaxAttempts: 3, Retry: provider.RetryPolicy{Attempts: 4}}, wantErr: true, wantField: "max_attempts"},
		{name: "retry attempts too many", cfg: provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Attempts: 1000}}, wantErr: true, wantField: "retry.attempts"},
		{name: "retry bad status", cfg: provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Statuses: []string{"5xy"}}}, wantErr: true, wantField: "retry.statuses"},
		{name: "retry bad error", cfg: provider.Config{BaseURL: "https://api.test", Retry: provider.RetryPolicy{Errors: []string{"dns"}}}, wantErr: true, wantField: "retry.errors"},
		{name: "task override", cfg: provider.Config{BaseURL: "https://api.test", Tasks: map[string]provider.Task{"refund": {Retry: provider.RetryPolicy{Attempts: 1}}}}},
		{name: "task bad name", cfg: provider.Config{BaseURL: "https://api.test", Tasks: map[string]provider.Task{"Refund!": {}}}, wantErr: true, wantField: "tasks"},
		{name: "task bad cap", cfg: provider.Config{BaseURL: "https://api.test", Tasks: map[string]provider.Task{"refund": {Retry: provider.RetryPolicy{Cap: time.Millisecond}}}}, wantErr: true, wantField: "tasks.refund.retry.base, cap"},
		{name: "budget off", cfg: provider.Config{BaseURL: "https://api.test", RetryBudget: provider.RetryBudget{MinPerSecond: 1, Window: time.Second}}},
		{name: "budget negative ratio", cfg: provider.Config{BaseURL: "https://api.test", RetryBudget: provider.RetryBudget{Ratio: -1}}, wantErr: true, wantField: "retry_budget.ratio"},
		{name: "budget short window", cfg: provider.Config{BaseURL: "https://api.test", RetryBudget: provider.RetryBudget{Window: time.Millisecond}}, wantErr: true, wantField: "retry_budget.window"},
		{name: "breaker rate above 1", cfg: provider.Config{BaseURL: "https://api.test", Breaker: provider.BreakerConfig{FailureRate: 1.5}}, wantErr: true, wantField: "breaker.failure_rate"},
		{name: "breaker max below open", cfg: provider.Config{BaseURL: "https://api.test", Breaker: provider.BreakerConfig{OpenFor: time.Minute, MaxOpenFor: time.Second}}, wantErr: true, wantField: "breaker.max_open_for"},
		{name: "breaker negative probes", cfg: provider.Config{BaseURL: "https://api.test", Breaker: provider.BreakerConfig{Probes: -1}}, wantErr: true, wantField: "breaker.probes"},
		{name: "negative response_body_limit", cfg: provider.Config{BaseURL: "https://api.test", ResponseBodyLimit: -1}, wantErr: true, wantField: "response_body_limit"},
		{name: "auth.header without env or file", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "Authorization"}}, wantErr: true, wantField: "auth.env"},
		{
			name:    "auth env and file both set",
			cfg:     provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "Authorization", Env: "SWITCHYARD_TEST_TOKEN", File: secretFile}},
			wantErr: true, wantField: "auth.file",
		},
		{name: "auth.env without header", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Env: "SWITCHYARD_TEST_TOKEN"}}, wantErr: true, wantField: "auth.header"},
		{name: "auth.file without header", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{File: secretFile}}, wantErr: true, wantField: "auth.header"},
		{name: "auth.env unset", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "X-Key", Env: "SWITCHYARD_TEST_SURELY_UNSET_VAR"}}, wantErr: true, wantField: "auth.env"},
		{name: "auth.header with CRLF", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "X-Key\r\nHost: evil", Env: "SWITCHYARD_TEST_TOKEN"}}, wantErr: true, wantField: "auth.header"},
		{name: "auth.header with a colon", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "X-Key:", Env: "SWITCHYARD_TEST_TOKEN"}}, wantErr: true, wantField: "auth.header"},
		{name: "auth.prefix with LF", cfg: provider.Config{BaseURL: "https://api.test", Auth: provider.AuthConfig{Header: "Authorization", Prefix: "Bearer\n", Env: "SWITCHYARD_TEST_TOKEN"}}, wantErr: true, wantField: "auth.prefix"},
		{name: "idempotency_header with CR", cfg: provider.Config{BaseURL: "https://api.test", IdempotencyHeader: "Idem\rpotency"}, wantErr: true, wantField: "idempotency_header"},
		{name: "idempotency_header off", cfg: provider.Config{BaseURL: "https://api.test", IdempotencyHeader: "-"}},
		{name: "follow_redirects same_host", cfg: provider.Config{BaseURL: "https://api.test", FollowRedirects: provider.RedirectsSameHost}},
		{name: "follow_redirects unknown", cfg: provider.Config{BaseURL: "https://api.test", FollowRedirects: "always"}, wantErr: true, wantField: "follow_redirects"},

		// A private base_url needs allow_private_network; the error names both keys.
		{name: "loopback IPv4", cfg: provider.Config{BaseURL: "http://127.0.0.1:8080/"}, wantErr: true, wantField: "allow_private_network"},
		{name: "loopback elsewhere in 127/8", cfg: provider.Config{BaseURL: "http://127.9.9.9/"}, wantErr: true, wantField: "base_url"},
		{name: "loopback IPv6", cfg: provider.Config{BaseURL: "http://[::1]:8080/"}, wantErr: true, wantField: "allow_private_network"},
		{name: "IPv4-mapped loopback", cfg: provider.Config{BaseURL: "http://[::ffff:127.0.0.1]/"}, wantErr: true, wantField: "allow_private_network"},
		{name: "NAT64 metadata address", cfg: provider.Config{BaseURL: "http://[64:ff9b::a9fe:a9fe]/"}, wantErr: true, wantField: "allow_private_network"},
		{name: "localhost", cfg: provider.Config{BaseURL: "http://localhost:8080"}, wantErr: true, wantField: "allow_private_network"},
		{name: "LOCALHOST with a dot", cfg: provider.Config{BaseURL: "http://LOCALHOST.:8080"}, wantErr: true, wantField: "allow_private_network"},
		{name: "a .localhost name", cfg: provider.Config{BaseURL: "http://api.localhost"}, wantErr: true, wantField: "allow_private_network"},
		{name: "cloud metadata", cfg: provider.Config{BaseURL: "http://169.254.169.254/latest"}, wantErr: true, wantField: "allow_private_network"},
		{name: "RFC 1918 10/8", cfg: provider.Config{BaseURL: "https://10.1.2.3"}, wantErr: true, wantField: "allow_private_network"},
		{name: "RFC 1918 172.16/12", cfg: provider.Config{BaseURL: "https://172.31.0.1"}, wantErr: true, wantField: "allow_private_network"},
		{name: "RFC 1918 192.168/16", cfg: provider.Config{BaseURL: "https://192.168.1.1"}, wantErr: true, wantField: "allow_private_network"},
		{name: "unspecified", cfg: provider.Config{BaseURL: "http://0.0.0.0:80"}, wantErr: true, wantField: "allow_private_network"},
		{name: "IPv6 unique local", cfg: provider.Config{BaseURL: "http://[fd00::1]"}, wantErr: true, wantField: "allow_private_network"},
		{name: "IPv6 link-local with zone", cfg: provider.Config{BaseURL: "http://[fe80::1%25eth0]"}, wantErr: true, wantField: "allow_private_network"},
		{name: "carrier-grade NAT", cfg: provider.Config{BaseURL: "http://100.100.100.200"}, wantErr: true, wantField: "allow_private_network"},
		{name: "public IPv4", cfg: provider.Config{BaseURL: "https://93.184.215.14"}},
		{name: "public IPv6", cfg: provider.Config{BaseURL: "https://[2606:4700::1]"}},
		{name: "loopback with opt-in", cfg: provider.Config{BaseURL: "http://127.0.0.1:8080/", AllowPrivateNetwork: true}},
		{name: "metadata with opt-in", cfg: provider.Config{BaseURL: "http://[::1]/", AllowPrivateNetwork: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("error %q does not name %s", err, tt.wantField)
			}
			// New applies the same checks and names the provider too.
			p, newErr := provider.New("acme", tt.cfg)
			if (newErr != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, wantErr %v", newErr, tt.wantErr)
			}
			if newErr != nil {
				if !strings.Contains(newErr.Error(), "acme") || !strings.Contains(newErr.Error(), tt.wantField) {
					t.Errorf("New error %q does not name the provider and %s", newErr, tt.wantField)
				}
				return
			}
			p.Close()
		})
	}
}

func TestNewInvalidName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pname   string
		wantErr bool
	}{
		{name: "lower case", pname: "acme"},
		{name: "digits dash underscore", pname: "a-1_b"},
		{name: "upper case", pname: "Acme", wantErr: true},
		{name: "empty", pname: "", wantErr: true},
		{name: "dot", pname: "a.b", wantErr: true},
		{name: "too long", pname: strings.Repeat("a", 65), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := provider.New(tt.pname, provider.Config{BaseURL: "https://api.test"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, wantErr %v", tt.pname, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), `"`+tt.pname+`"`) {
					t.Errorf("error %q does not name the provider", err)
				}
				return
			}
			if p.Name() != tt.pname {
				t.Errorf("Name() = %q", p.Name())
			}
			if !reflect.DeepEqual(p.Config(), (provider.Config{BaseURL: "https://api.test"}).WithDefaults()) {
				t.Errorf("Config() = %+v, want defaults applied", p.Config())
			}
			p.Close()
		})
	}
}
