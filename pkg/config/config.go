package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/logging"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/schedule"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

// Config is the whole configuration of every Switchyard service; each
// service reads the parts it needs.
type Config struct {
	Log       logging.Config             `koanf:"log"`
	NATS      natsx.Config               `koanf:"nats"`
	Worker    worker.Config              `koanf:"worker"`
	Recorder  recorder.Config            `koanf:"recorder"`
	Gateway   gateway.Config             `koanf:"gateway"`
	Providers map[string]provider.Config `koanf:"providers"`
	// Schedules are periodic jobs, stored as NATS message schedules by
	// every worker at start (see package schedule).
	Schedules map[string]schedule.Config `koanf:"schedules"`
}

// Options says where Load finds configuration besides the built-in defaults.
type Options struct {
	// File is the YAML file from --config; "" means none.
	File string
	// Env is the environment as os.Environ returns it; nil means
	// os.Environ(). Only SWITCHYARD_ variables are read.
	Env []string
	// Flags maps a koanf key to a value, only for flags the user actually
	// set (see SetFlags), so an unset flag's default does not override the
	// file.
	Flags map[string]any
	// Defaults are a service's own defaults, applied before the file, as
	// koanf keys ("providers.echo.base_url") or nested maps.
	Defaults map[string]any
}

// EnvPrefix starts every environment variable Load reads. After it, "__"
// separates nesting levels, because a single '_' occurs inside keys
// (SWITCHYARD_WORKER__MAX_BATCH is worker.max_batch).
const EnvPrefix = "SWITCHYARD_"

const (
	delim    = "."
	envLevel = "__"
)

// ClientEnv are SWITCHYARD_ variables that configure the switchyard CLI as
// a client of a running system, not a service; Load ignores them rather
// than rejecting them as unknown keys, so one shell can hold both.
var ClientEnv = []string{"SWITCHYARD_API", "SWITCHYARD_API_TOKEN"}

// Load reads the configuration in layers, each overriding the one before:
// built-in defaults, opts.Defaults, opts.File, the environment, opts.Flags.
// It then applies every component's defaults and validates it. Errors read
// as one line and name the key, e.g.
// "config: providers.acme: base_url: is required".
func Load(opts Options) (*Config, error) {
	k := koanf.New(delim)

	if len(opts.Defaults) > 0 {
		if err := k.Load(confmap.Provider(opts.Defaults, delim), nil); err != nil {
			return nil, fmt.Errorf("config: defaults: %w", err)
		}
	}
	if opts.File != "" {
		if err := k.Load(file.Provider(opts.File), yaml.Parser()); err != nil {
			// A read error already names the file; a parse error does not.
			if _, ok := errors.AsType[*fs.PathError](err); ok {
				return nil, fmt.Errorf("config: %w", err)
			}
			return nil, fmt.Errorf("config: %s: %w", opts.File, err)
		}
	}

	environ := opts.Env
	if environ == nil {
		environ = os.Environ()
	}
	fromEnv, err := envKeys(environ)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	err = k.Load(env.Provider(delim, env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			if slices.Contains(ClientEnv, name) {
				return "", nil // koanf skips an empty key
			}
			return envKey(name), v
		},
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	if len(opts.Flags) > 0 {
		if err := k.Load(confmap.Provider(opts.Flags, delim), nil); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}

	var c Config
	if err := decode(k, &c, fromEnv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// envKey turns SWITCHYARD_PROVIDERS__ACME__BASE_URL into
// providers.acme.base_url.
func envKey(name string) string {
	name = strings.TrimPrefix(name, EnvPrefix)
	return strings.ReplaceAll(strings.ToLower(name), envLevel, delim)
}

// envKeys maps each key set from the environment to its variable, so an
// error about the key can say where it came from. It rejects names that
// cannot be a key at all, which koanf would otherwise turn into odd paths.
func envKeys(environ []string) (map[string]string, error) {
	keys := make(map[string]string)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || slices.Contains(ClientEnv, name) {
			continue
		}
		key := envKey(name)
		if strings.ContainsFunc(name, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
		}) || slices.Contains(strings.Split(key, delim), "") {
			return nil, fmt.Errorf("environment variable %s: not a configuration key (want %sSECTION__KEY)", name, EnvPrefix)
		}
		keys[key] = name
	}
	return keys, nil
}

func (c Config) withDefaults() Config {
	c.Log = c.Log.WithDefaults()
	c.NATS = c.NATS.WithDefaults()
	c.Worker = c.Worker.WithDefaults()
	c.Recorder = c.Recorder.WithDefaults()
	c.Gateway = c.Gateway.WithDefaults()
	ps := make(map[string]provider.Config, len(c.Providers))
	for name, p := range c.Providers {
		ps[name] = p.WithDefaults()
	}
	c.Providers = ps
	return c
}

// validate reports every bad section, each prefixed with its key path, so a
// broken deployment is fixed in one round rather than one error at a time.
func (c Config) validate() error {
	var errs []error
	check := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	check("log", c.Log.Validate())
	check("nats", c.NATS.Validate())
	check("worker", c.Worker.Validate())
	check("recorder", c.Recorder.Validate())
	check("gateway", c.Gateway.Validate())
	for _, name := range slices.Sorted(maps.Keys(c.Providers)) {
		if !job.ValidToken(name) {
			check("providers", fmt.Errorf("%q is not a valid provider name (want [a-z0-9_-]{1,64})", name))
			continue
		}
		check("providers."+name, c.Providers[name].Validate())
	}
	for _, name := range slices.Sorted(maps.Keys(c.Schedules)) {
		if !job.ValidToken(name) {
			check("schedules", fmt.Errorf("%q is not a valid schedule name (want [a-z0-9_-]{1,64})", name))
			continue
		}
		sc := c.Schedules[name]
		check("schedules."+name, sc.Validate())
		for _, p := range sc.Providers() {
			if _, ok := c.Providers[p]; !ok && len(c.Providers) > 0 {
				check("schedules."+name, fmt.Errorf("provider %q is not configured under providers", p))
			}
		}
	}
	return join(errs)
}
