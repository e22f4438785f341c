package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/config"
)

// writeConfig writes a YAML file for one test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkErr fails unless err matches wantErr ("" means no error) and reads as
// the single line it will be on stderr.
func checkErr(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("Load: unexpected error: %v", err)
	case wantErr == "":
		return true
	case err == nil:
		t.Fatalf("Load: got no error, want one containing %q", wantErr)
	case !strings.Contains(err.Error(), wantErr):
		t.Fatalf("Load: error %q does not contain %q", err, wantErr)
	case !strings.HasPrefix(err.Error(), "config: ") || strings.Contains(err.Error(), "\n"):
		t.Fatalf("Load: error %q is not one line starting with \"config: \"", err)
	}
	return false
}

const acme = `
providers:
  acme:
    base_url: https://api.acme.example
`

func TestLoad(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		file     string // YAML; "" means no file
		env      []string
		flags    map[string]any
		defaults map[string]any
		wantErr  string
		check    func(t *testing.T, c *config.Config)
	}{
		{
			name: "built-in defaults",
			check: func(t *testing.T, c *config.Config) {
				if c.Worker.MaxBatch != 256 || c.NATS.URL != "nats://127.0.0.1:4222" || c.Log.Level != "info" || c.Log.Format != "auto" {
					t.Errorf("defaults not applied: %+v", c)
				}
				if c.Worker.ID == "" {
					t.Error("worker.id: no default")
				}
				if c.Providers == nil {
					t.Error("providers: want an empty map, not nil")
				}
			},
		},
		{
			name: "env nesting with __ and _ inside keys",
			env: []string{
				"PATH=/bin",
				"SWITCHYARDX=ignored",
				"SWITCHYARD_NATS__URL=nats://nats:4222",
				"SWITCHYARD_WORKER__MAX_BATCH=12",
				"SWITCHYARD_WORKER__FETCH_MAX_WAIT=5s",
				"SWITCHYARD_PROVIDERS__ACME__BASE_URL=https://api.acme.example",
				"SWITCHYARD_PROVIDERS__MY_API-2__BASE_URL=https://my.example",
				"SWITCHYARD_PROVIDERS__MY_API-2__AUTH__PREFIX=Bearer ",
			},
			check: func(t *testing.T, c *config.Config) {
				if c.NATS.URL != "nats://nats:4222" || c.Worker.MaxBatch != 12 || c.Worker.FetchMaxWait != 5*time.Second {
					t.Errorf("env not applied: nats=%+v worker=%+v", c.NATS, c.Worker)
				}
				if got := c.Providers["acme"].BaseURL; got != "https://api.acme.example" {
					t.Errorf("providers.acme.base_url = %q", got)
				}
				if got := c.Providers["my_api-2"]; got.BaseURL != "https://my.example" || got.Auth.Prefix != "Bearer " {
					t.Errorf("providers.my_api-2 = %+v", got)
				}
			},
		},
		{
			name: "file with provider defaults applied",
			file: acme,
			check: func(t *testing.T, c *config.Config) {
				p := c.Providers["acme"]
				if p.Concurrency != 100 || p.Timeout != 30*time.Second || p.IdempotencyHeader != "Idempotency-Key" {
					t.Errorf("provider defaults not applied: %+v", p)
				}
			},
		},
		{
			name:     "service defaults merge with file providers",
			defaults: map[string]any{"providers.echo.base_url": "http://127.0.0.1:8080", "providers.echo.allow_private_network": true},
			file:     acme,
			check: func(t *testing.T, c *config.Config) {
				if len(c.Providers) != 2 || c.Providers["echo"].BaseURL != "http://127.0.0.1:8080" {
					t.Errorf("providers = %+v", c.Providers)
				}
			},
		},
		{
			name:  "typed flag values",
			flags: map[string]any{"worker.shutdown_grace": 5 * time.Second, "log.level": "debug"},
			check: func(t *testing.T, c *config.Config) {
				if c.Worker.ShutdownGrace != 5*time.Second || c.Log.Level != "debug" {
					t.Errorf("flags not applied: worker=%+v log=%+v", c.Worker, c.Log)
				}
			},
		},
		{
			name: "empty env value means default",
			env:  []string{"SWITCHYARD_WORKER__MAX_BATCH=", "SWITCHYARD_WORKER__FETCH_MAX_WAIT="},
			check: func(t *testing.T, c *config.Config) {
				if c.Worker.MaxBatch != 256 || c.Worker.FetchMaxWait != 2*time.Second {
					t.Errorf("worker = %+v", c.Worker)
				}
			},
		},
		{
			name:    "unknown key in file",
			file:    "worker:\n  max_bach: 3\n",
			wantErr: "config: worker.max_bach: unknown key",
		},
		{
			name:    "unknown provider key in file",
			file:    acme + "    base_ur: https://typo.example\n",
			wantErr: "config: providers.acme.base_ur: unknown key",
		},
		{
			name:    "unknown section in file",
			file:    "workers:\n  max_batch: 3\n",
			wantErr: "config: workers: unknown key",
		},
		{
			name:    "keys match case exactly",
			file:    "worker:\n  Max_Batch: 3\n",
			wantErr: "worker.Max_Batch: unknown key",
		},
		{
			name:    "unknown key in env",
			env:     []string{"SWITCHYARD_WORKER__MAX_BACH=3"},
			wantErr: "config: worker.max_bach (from SWITCHYARD_WORKER__MAX_BACH): unknown key",
		},
		{
			name:    "single underscore in env is not nesting",
			env:     []string{"SWITCHYARD_NATS_URL=nats://nats:4222"},
			wantErr: "nats_url (from SWITCHYARD_NATS_URL): unknown key",
		},
		{
			name:    "env name with an empty level",
			env:     []string{"SWITCHYARD_WORKER____MAX_BATCH=3"},
			wantErr: "environment variable SWITCHYARD_WORKER____MAX_BATCH: not a configuration key",
		},
		{
			name:    "recorder committers",
			file:    "recorder:\n  committers: 17\n",
			wantErr: "config: recorder: committers: 17 must be between 0 (the store's choice) and 16",
		},
		{
			name:    "recorder retention below a minute",
			file:    "recorder:\n  retention: {max_age: 30s}\n",
			wantErr: "config: recorder: retention.max_age: 30s must be 0 (keep forever) or at least 1m",
		},
		{
			name:    "worker http listen without a port",
			file:    "worker:\n  http: {listen: localhost}\n",
			wantErr: `config: worker: http.listen: "localhost" must be host:port, :port or - (off)`,
		},
		{
			name: "worker http turned off",
			env:  []string{"SWITCHYARD_WORKER__HTTP__LISTEN=-"},
		},
		{
			name:    "bad duration",
			file:    "worker:\n  fetch_max_wait: soon\n",
			wantErr: `config: worker.fetch_max_wait: "soon" is not a duration`,
		},
		{
			name:    "duration without unit",
			file:    acme + "    timeout: 30\n",
			wantErr: "config: providers.acme.timeout: 30 needs a unit",
		},
		{
			name:    "duration of the wrong type",
			file:    "worker:\n  fetch_max_wait: true\n",
			wantErr: `config: worker.fetch_max_wait: true is not a duration`,
		},
		{
			name: "zero duration needs no unit",
			file: "worker:\n  shutdown_grace: 0\n",
		},
		{
			name:    "fraction for an int",
			file:    "worker:\n  max_batch: 1.5\n",
			wantErr: "config: worker.max_batch: 1.5 is not a whole number",
		},
		{
			name:    "bad int",
			file:    "worker:\n  max_batch: lots\n",
			wantErr: `config: worker.max_batch: cannot parse "lots" as int`,
		},
		{
			name:    "bad int in env",
			env:     []string{"SWITCHYARD_RECORDER__BATCH_SIZE=lots"},
			wantErr: `config: recorder.batch_size (from SWITCHYARD_RECORDER__BATCH_SIZE): cannot parse "lots" as int`,
		},
		{
			name:    "section that is not a map",
			file:    "worker: 5\n",
			wantErr: "config: worker: expected a map",
		},
		{
			name:    "missing provider base_url",
			file:    "providers:\n  acme:\n    timeout: 5s\n",
			wantErr: "config: providers.acme: base_url: is required",
		},
		{
			name:    "empty provider block",
			file:    "providers:\n  acme:\n",
			wantErr: "config: providers.acme: base_url: is required",
		},
		{
			name:    "provider on loopback without opt-in",
			file:    "providers:\n  acme:\n    base_url: http://127.0.0.1:8080\n",
			wantErr: `config: providers.acme: base_url: "http://127.0.0.1:8080" is on a private, loopback, link-local or unspecified address; set allow_private_network: true to call it`,
		},
		{
			name:    "provider on the metadata address without opt-in",
			file:    "providers:\n  acme:\n    base_url: http://169.254.169.254/latest\n",
			wantErr: `config: providers.acme: base_url: "http://169.254.169.254/latest" is on a private`,
		},
		{
			name:    "unknown redirect policy",
			file:    "providers:\n  acme:\n    base_url: https://api.acme.example\n    follow_redirects: always\n",
			wantErr: `config: providers.acme: follow_redirects: "always" must be "off" or "same_host"`,
		},
		{
			name:    "invalid provider name",
			file:    "providers:\n  Acme:\n    base_url: https://api.acme.example\n",
			wantErr: `config: providers: "Acme" is not a valid provider name`,
		},
		{
			name:    "component validation names the section",
			file:    "worker:\n  max_batch: 20000\n",
			wantErr: "config: worker: max_batch: 20000 must be between 1 and 10000",
		},
		{
			name:    "bad log level",
			file:    "log:\n  level: verbose\n",
			wantErr: `config: log: level: "verbose" must be debug, info, warn or error`,
		},
		{
			name:    "bad log format",
			env:     []string{"SWITCHYARD_LOG__FORMAT=xml"},
			wantErr: `config: log: format: "xml" must be auto, text or json`,
		},
		{
			name:    "every bad section reported on one line",
			file:    "worker:\n  max_batch: 20000\nrecorder:\n  batch_size: 0\nnats:\n  replicas: 2\n",
			wantErr: "config: nats: replicas: 2 must be 1, 3 or 5; worker: max_batch: 20000",
		},
		{
			name:    "malformed YAML names the file",
			file:    "worker: [\n",
			wantErr: "switchyard.yaml: yaml: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := config.Options{
				Env:      tt.env,
				Flags:    tt.flags,
				Defaults: tt.defaults,
			}
			if opts.Env == nil {
				opts.Env = []string{} // never the host's environment
			}
			if tt.file != "" {
				opts.File = writeConfig(t, tt.file)
			}
			c, err := config.Load(opts)
			if checkErr(t, err, tt.wantErr) && tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// TestLoadPrecedence sets the same key in more and more layers; the last
// layer added must win every time.
func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, "worker:\n  max_batch: 20\n")

	tests := []struct {
		name string
		opts config.Options
		want int
	}{
		{"built-in default", config.Options{}, 256},
		{"service default", config.Options{
			Defaults: map[string]any{"worker.max_batch": 10},
		}, 10},
		{"file over service default", config.Options{
			Defaults: map[string]any{"worker.max_batch": 10},
			File:     file,
		}, 20},
		{"env over file", config.Options{
			Defaults: map[string]any{"worker.max_batch": 10},
			File:     file,
			Env:      []string{"SWITCHYARD_WORKER__MAX_BATCH=30"},
		}, 30},
		{"flag over env", config.Options{
			Defaults: map[string]any{"worker.max_batch": 10},
			File:     file,
			Env:      []string{"SWITCHYARD_WORKER__MAX_BATCH=30"},
			Flags:    map[string]any{"worker.max_batch": 40},
		}, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.opts.Env == nil {
				tt.opts.Env = []string{}
			}
			c, err := config.Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.Worker.MaxBatch != tt.want {
				t.Errorf("worker.max_batch = %d, want %d", c.Worker.MaxBatch, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := config.Load(config.Options{File: path, Env: []string{}})
	checkErr(t, err, path)
	if !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error %q does not say the file is missing", err)
	}
}

func TestSetFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.String("config", "", "")
	fs.Int("max-batch", 256, "")
	fs.Duration("grace", 30*time.Second, "")
	fs.String("nats", "nats://127.0.0.1:4222", "")
	if err := fs.Parse([]string{"--config", "x.yaml", "--max-batch", "7", "--grace", "3s"}); err != nil {
		t.Fatal(err)
	}
	flags := config.SetFlags(fs, map[string]string{
		"max-batch": "worker.max_batch",
		"grace":     "worker.shutdown_grace",
		"nats":      "nats.url",
	})
	if len(flags) != 2 {
		t.Fatalf("SetFlags = %v, want only the two mapped flags that were set", flags)
	}

	env := []string{"SWITCHYARD_NATS__URL=nats://from-env:4222"}
	c, err := config.Load(config.Options{Env: env, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.MaxBatch != 7 || c.Worker.ShutdownGrace != 3*time.Second {
		t.Errorf("worker = %+v", c.Worker)
	}
	// An unset flag's default must not hide the environment.
	if c.NATS.URL != "nats://from-env:4222" {
		t.Errorf("nats.url = %q, want the env value", c.NATS.URL)
	}
}

// Not parallel: provider auth reads the process environment (t.Setenv).
func TestLoadProviderAuthEnv(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		wantErr string
	}{
		{"set", "s3cret", ""},
		{"unset", "", "config: providers.acme: auth.env: environment variable SWITCHYARD_TEST_ACME_TOKEN is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Named with the prefix on purpose: it is not read as a key
			// because Env below is injected, but a real deployment must
			// avoid the prefix (see example.yaml).
			t.Setenv("SWITCHYARD_TEST_ACME_TOKEN", tt.value)
			file := writeConfig(t, acme+"    auth:\n      header: Authorization\n      env: SWITCHYARD_TEST_ACME_TOKEN\n")
			_, err := config.Load(config.Options{File: file, Env: []string{}})
			checkErr(t, err, tt.wantErr)
		})
	}
}

// Not parallel: the example's providers read their credentials from the
// process environment.
func TestExampleConfig(t *testing.T) {
	t.Setenv("ACME_API_TOKEN", "acme-token")
	t.Setenv("GLOBEX_API_KEY", "globex-key")

	c, err := config.Load(config.Options{File: "testdata/example.yaml", Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) != 2 {
		t.Fatalf("providers = %v, want acme and globex-eu", c.Providers)
	}
	g := c.Providers["globex-eu"]
	if g.IdempotencyHeader != "-" || g.Timeout != 10*time.Second || g.LiveReserve != 2 {
		t.Errorf("providers.globex-eu = %+v", g)
	}
	if c.Recorder.FetchMaxWait != 250*time.Millisecond || c.Providers["acme"].BackoffCap != 5*time.Minute {
		t.Errorf("durations not parsed: recorder=%+v", c.Recorder)
	}
	a := c.Providers["acme"]
	if !slices.Equal(a.Retry.Statuses, []string{"408", "429", "5xx"}) || a.Tasks["create_refund"].Retry.Attempts != 2 ||
		a.RetryBudget.Ratio != 0.2 || a.Breaker.Consecutive != 10 {
		t.Errorf("providers.acme retry = %+v, tasks = %+v, budget = %+v, breaker = %+v", a.Retry, a.Tasks, a.RetryBudget, a.Breaker)
	}
	n, h := c.Schedules["nightly-sync"], c.Schedules["hourly-report"]
	if n.Pattern() != "0 0 4 * * *" || n.Timezone != "Europe/Paris" || n.Job == nil || n.Job.ExpiresIn != 2*time.Hour ||
		h.Pattern() != "@every 1h0m0s" || len(h.Jobs) != 2 || h.Jobs[1].Request.Query["kind"] == nil {
		t.Errorf("schedules = %+v", c.Schedules)
	}
}

func TestRetryKeysFromTheEnvironment(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Options{Env: []string{
		"SWITCHYARD_PROVIDERS__ACME__BASE_URL=https://api.test",
		"SWITCHYARD_PROVIDERS__ACME__RETRY__STATUSES=429,503",
		"SWITCHYARD_PROVIDERS__ACME__TASKS__REFUND__RETRY__ATTEMPTS=1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Providers["acme"]
	if a.Tasks["refund"].Retry.Attempts != 1 || !slices.Equal(a.Retry.Statuses, []string{"429,503"}) {
		t.Errorf("retry = %+v, tasks = %+v", a.Retry, a.Tasks)
	}
	_, err = config.Load(config.Options{Env: []string{
		"SWITCHYARD_PROVIDERS__ACME__BASE_URL=https://api.test",
		"SWITCHYARD_PROVIDERS__ACME__RETRY__STATUSES=429,5xz",
	}})
	if err == nil || !strings.Contains(err.Error(), "providers.acme: retry.statuses") {
		t.Errorf("a bad status: error %v, want one naming providers.acme: retry.statuses", err)
	}
}

func TestScheduleErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		env     []string
		wantErr string
	}{
		{"no timing", []string{"SWITCHYARD_SCHEDULES__BEAT__JOB__PROVIDER=acme"}, "schedules.beat: set exactly one of cron and every"},
		{"unknown provider", []string{
			"SWITCHYARD_PROVIDERS__ACME__BASE_URL=https://acme.example",
			"SWITCHYARD_SCHEDULES__BEAT__EVERY=1m", "SWITCHYARD_SCHEDULES__BEAT__JOB__PROVIDER=globex",
			"SWITCHYARD_SCHEDULES__BEAT__JOB__TASK=t", "SWITCHYARD_SCHEDULES__BEAT__JOB__REQUEST__PATH=/x",
		}, `schedules.beat: provider "globex" is not configured`},
		{"unknown key", []string{"SWITCHYARD_SCHEDULES__BEAT__EVERYY=1m"}, "schedules.beat.everyy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(config.Options{Env: tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadIgnoresClientEnv: the CLI's client variables share the prefix
// but are not configuration keys; a service must start beside them, and
// an unknown key must still be rejected.
func TestLoadIgnoresClientEnv(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Options{Env: []string{
		"SWITCHYARD_API=http://10.0.0.5:8472", "SWITCHYARD_API_TOKEN=s3cret", "SWITCHYARD_WORKER__MAX_BATCH=30",
	}})
	if err != nil {
		t.Fatalf("Load with the CLI's variables set: %v", err)
	}
	if c.Worker.MaxBatch != 30 {
		t.Errorf("worker.max_batch = %d, want 30", c.Worker.MaxBatch)
	}
	if _, err := config.Load(config.Options{Env: []string{"SWITCHYARD_APIS=x"}}); err == nil {
		t.Error("an unknown SWITCHYARD_ variable was accepted")
	}
}

// TestLoadGateway: the gateway section takes its defaults, reads tokens
// from the environment as a comma-separated list, and refuses to listen
// beyond loopback without them.
func TestLoadGateway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		env     []string
		wantErr string
		check   func(t *testing.T, c *config.Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c *config.Config) {
				g := c.Gateway
				if g.Listen != "127.0.0.1:8473" || len(g.Tokens) != 0 || g.MaxBody != 1<<20 || g.MaxStreamBytes != 256<<20 ||
					g.Window != 1024 || g.PublishTimeout != 10*time.Second || g.RetryAfter != 5*time.Second {
					t.Errorf("gateway = %+v", g)
				}
			},
		},
		{
			name: "file",
			file: "gateway:\n  listen: 0.0.0.0:9000\n  tokens: [alpha, beta]\n  max_body: 65536\n  window: 64\n  publish_timeout: 3s\n",
			check: func(t *testing.T, c *config.Config) {
				g := c.Gateway
				if g.Listen != "0.0.0.0:9000" || len(g.Tokens) != 2 || g.Tokens[1] != "beta" || g.MaxBody != 65536 || g.Window != 64 || g.PublishTimeout != 3*time.Second {
					t.Errorf("gateway = %+v", g)
				}
			},
		},
		{
			name: "tokens from the environment",
			env:  []string{"SWITCHYARD_GATEWAY__LISTEN=:9000", "SWITCHYARD_GATEWAY__TOKENS=alpha,beta"},
			check: func(t *testing.T, c *config.Config) {
				if g := c.Gateway; len(g.Tokens) != 2 || g.Tokens[0] != "alpha" || g.Tokens[1] != "beta" {
					t.Errorf("gateway.tokens = %q", g.Tokens)
				}
			},
		},
		{
			name:    "beyond loopback without tokens",
			env:     []string{"SWITCHYARD_GATEWAY__LISTEN=:9000"},
			wantErr: "config: gateway: tokens: required when listen (:9000) is not a loopback address",
		},
		{
			name:    "unknown key",
			file:    "gateway:\n  token: s3cret\n",
			wantErr: "config: gateway.token: unknown key",
		},
		{
			name:    "bad value",
			file:    "gateway:\n  window: 0.5\n",
			wantErr: "config: gateway.window: 0.5 is not a whole number",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := config.Options{Env: tt.env}
			if opts.Env == nil {
				opts.Env = []string{}
			}
			if tt.file != "" {
				opts.File = writeConfig(t, tt.file)
			}
			c, err := config.Load(opts)
			if checkErr(t, err, tt.wantErr) && tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
