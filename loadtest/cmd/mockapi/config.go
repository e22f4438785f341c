package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

// options is the command line and config file, decoded.
type options struct {
	listen        string
	shutdownGrace time.Duration
	// server is serverLean or serverNetHTTP.
	server string
	// def serves every provider not in per.
	def mockapi.Config
	// per holds the providers of the file's providers section, each the
	// default section overridden by its own keys.
	per map[string]mockapi.Config
}

// The HTTP servers --server chooses from.
const (
	// serverLean is mockapi.LeanServer: a fraction of net/http's CPU per
	// request, which a load test leaves to the system it measures.
	serverLean = "lean"
	// serverNetHTTP is net/http's server, for comparison, or for a client
	// that needs more of HTTP than the lean server speaks.
	serverNetHTTP = "net/http"
)

// The default section's defaults: the latency of the APIs that motivated
// Switchyard.
const (
	defaultLatencyMin = 500 * time.Millisecond
	defaultLatencyMax = 800 * time.Millisecond
)

// parseArgs reads the flags and the --config file. The file's sections are
//
//	default:    the config of every provider (mockapi.Config's koanf keys)
//	providers:  {name: {keys}}, each starting from default
//
// and the flags below --config set keys of the default section, over the
// file.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("mockapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "`address` to listen on; port 0 picks a free one")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 2*time.Second, "how long requests in flight may finish at shutdown")
	fs.StringVar(&o.server, "server", serverLean, "HTTP server: "+serverLean+" (mockapi.LeanServer, least CPU) or "+serverNetHTTP)
	configFile := fs.String("config", "", "YAML config `file` with default: and providers: sections")
	// keys maps each flag below to its key in the default section.
	keys := map[string]string{}
	key := func(name string) string {
		keys[name] = strings.ReplaceAll(name, "-", "_")
		return name
	}
	fs.Duration(key("latency-min"), defaultLatencyMin, "shortest latency")
	fs.Duration(key("latency-max"), defaultLatencyMax, "longest ordinary latency")
	fs.Float64(key("tail-rate"), 0, "share of requests (0-1) that wait in [latency-max, tail-latency] instead")
	fs.Duration(key("tail-latency"), 0, "longest tail latency")
	fs.Float64(key("error-rate"), 0, "share of requests (0-1) answered 503")
	fs.Float64(key("rate-limit"), 0, "requests per second each provider admits; 0 means no limit")
	fs.Int(key("burst"), 0, "token bucket capacity (default max(1, ceil(rate-limit)))")
	fs.String(key("limit-mode"), "", "how a 429 speaks: retry-after, headers or silent (default retry-after)")
	fs.Duration(key("retry-after"), 0, "fixed Retry-After of a 429, rounded up to seconds (default: until a token is free)")
	fs.Int64(key("seed"), 0, "seed of the latency and error draws")
	fs.String(key("idempotency-header"), "", "header counted per key (default "+mockapi.DefaultIdempotencyHeader+")")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}
	if o.server != serverLean && o.server != serverNetHTTP {
		return o, fmt.Errorf("--server: %q must be %s or %s", o.server, serverLean, serverNetHTTP)
	}

	k := koanf.New(".")
	base := map[string]any{"default.latency_min": defaultLatencyMin, "default.latency_max": defaultLatencyMax}
	if err := k.Load(confmap.Provider(base, "."), nil); err != nil {
		return o, err
	}
	if *configFile != "" {
		if err := k.Load(file.Provider(*configFile), yaml.Parser()); err != nil {
			return o, fmt.Errorf("--config %s: %w", *configFile, err)
		}
	}
	set := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := keys[f.Name]; ok {
			set["default."+key] = f.Value.(flag.Getter).Get()
		}
	})
	if err := k.Load(confmap.Provider(set, "."), nil); err != nil {
		return o, err
	}

	var err error
	o.def, o.per, err = decodeConfig(k)
	if err != nil && *configFile != "" {
		err = fmt.Errorf("--config %s: %w", *configFile, err)
	}
	return o, err
}

// decodeConfig decodes the default section, then each provider over a copy
// of it, strictly: an unknown key or a value of the wrong type is an error
// naming the key.
func decodeConfig(k *koanf.Koanf) (mockapi.Config, map[string]mockapi.Config, error) {
	var def mockapi.Config
	for _, section := range slices.Sorted(maps.Keys(k.Raw())) {
		if section != "default" && section != "providers" {
			return def, nil, fmt.Errorf("%s: unknown section (want default and providers)", section)
		}
	}
	if err := decodeSection(k, "default", &def); err != nil {
		return def, nil, err
	}
	per := map[string]mockapi.Config{}
	for _, name := range k.MapKeys("providers") {
		cfg := def
		if err := decodeSection(k, "providers."+name, &cfg); err != nil {
			return def, nil, err
		}
		per[name] = cfg
	}
	return def, per, nil
}

// decodeSection decodes the keys under path into cfg, leaving the fields
// of keys it does not have as they were.
func decodeSection(k *koanf.Koanf, path string, cfg *mockapi.Config) error {
	if !k.Exists(path) {
		return nil
	}
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf(path, cfg, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: strictHook,
			TagName:    "koanf",
			Metadata:   &md,
		},
	})
	if err != nil {
		return keyErrors(path, err)
	}
	if len(md.Unused) > 0 {
		slices.Sort(md.Unused)
		return fmt.Errorf("%s.%s: unknown key", path, md.Unused[0])
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// strictHook refuses what mapstructure would take silently: a bare number
// as a duration (30 would be 30ns) and a fraction where a whole number
// belongs.
func strictHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType && from != durationType {
		switch v := data.(type) {
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as \"500ms\"", v)
			}
			return d, nil
		case int, int64, float64:
			if reflect.ValueOf(v).IsZero() {
				return time.Duration(0), nil
			}
			return nil, fmt.Errorf("%v needs a unit, e.g. \"%vms\"", v, v)
		}
		return nil, errors.New("want a duration such as \"500ms\"")
	}
	if f, ok := data.(float64); ok && to.Kind() >= reflect.Int && to.Kind() <= reflect.Int64 && f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	return data, nil
}

// keyErrors turns mapstructure's multi-line tree of errors into one line,
// one "section.key: problem" per bad key.
func keyErrors(path string, err error) error {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if de, ok := err.(*mapstructure.DecodeError); ok {
			inner := de.Unwrap()
			if _, nested := errors.AsType[*mapstructure.DecodeError](inner); nested {
				walk(inner)
				return
			}
			out = append(out, fmt.Sprintf("%s.%s: %v", path, de.Name(), inner))
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			out = append(out, fmt.Sprintf("%s: %v", path, err))
		}
	}
	walk(err)
	slices.Sort(out)
	return errors.New(strings.Join(out, "; "))
}
