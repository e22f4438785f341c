package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Scenario is one load test, read from a YAML file in loadtest/scenarios/.
// Every field is documented in loadtest/README.md; zero values take the
// defaults applied by withDefaults.
type Scenario struct {
	// Name names the report directory. Default: the file name without .yaml.
	Name        string `koanf:"name" json:"name"`
	Description string `koanf:"description" json:"description,omitempty"`
	// Kind is "pipeline" (the default): jobs through the workers to the
	// recorder; or "recorder": Jobs results published straight to RESULTS
	// as a backlog, which the recorder alone then drains. That measures
	// the results store without the rest of the pipeline competing for
	// the CPU.
	Kind string `koanf:"kind" json:"kind"`
	// Database is the recorder's store: "sqlite" (the default, a file in
	// the run's data directory) or, for kind recorder, "postgres": the
	// database at --postgres (or TEST_POSTGRES_URL). The run's rows
	// are told apart by a batch id of their own, so nothing is emptied.
	Database string `koanf:"database" json:"database"`
	// IDs, for kind recorder, orders the job ids of the results: "uuid7"
	// (the default: time-ordered, as producers generate them) or "random"
	// (UUIDv4, as content-derived or natural ids are), which a B-tree
	// store inserts at random places.
	IDs string `koanf:"ids" json:"ids,omitempty"`
	// Jobs is how many jobs are enqueued on Lane. Required.
	Jobs int `koanf:"jobs" json:"jobs"`
	// Provider and Task name the subject jobs.<provider>.<lane>.<task>.
	// Defaults "loadtest" and "call".
	Provider string `koanf:"provider" json:"provider"`
	Task     string `koanf:"task" json:"task"`
	// Lane is bulk (default) or live.
	Lane string `koanf:"lane" json:"lane"`
	// PayloadBytes is the size of each job's request body (JSON). Default 100.
	PayloadBytes int `koanf:"payload_bytes" json:"payload_bytes"`
	// InFlight is the provider's concurrency in each worker. Bulk can use
	// InFlight - LiveReserve of it. Default 1000.
	InFlight int `koanf:"in_flight" json:"in_flight"`
	// LiveReserve, CallTimeout and MaxAttempts set the provider's keys of
	// the same name; zero leaves the provider's default.
	LiveReserve int      `koanf:"live_reserve" json:"live_reserve,omitempty"`
	CallTimeout Duration `koanf:"call_timeout" json:"call_timeout,omitempty"`
	MaxAttempts int      `koanf:"max_attempts" json:"max_attempts,omitempty"`
	// Workers is the number of worker processes. Default 1.
	Workers     int           `koanf:"workers" json:"workers"`
	LiveTrickle TrickleConfig `koanf:"live_trickle" json:"live_trickle"`
	Mock        MockConfig    `koanf:"mock" json:"mock"`
	Enqueue     EnqueueConfig `koanf:"enqueue" json:"enqueue"`
	Ceiling     CeilingConfig `koanf:"ceiling" json:"ceiling"`
	// Timeout bounds the pipeline phase, from the first publish until every
	// job is recorded, and separately the ceiling loop. Default 10m.
	Timeout Duration `koanf:"timeout" json:"timeout"`
	// Profile, when set, takes a CPU profile of worker-1 this long once a
	// quarter of the jobs are recorded, and a heap profile at the end.
	Profile Duration `koanf:"profile" json:"profile,omitempty"`
	// Config is merged into the sections of the generated switchyard.yaml,
	// so services can be tuned without changing the runner.
	Config ExtraConfig `koanf:"config" json:"config"`
}

// Scenario kinds and databases.
const (
	kindPipeline     = "pipeline"
	kindRecorder     = "recorder"
	databaseSQLite   = "sqlite"
	databasePostgres = "postgres"
)

// TrickleConfig is a steady stream of live-lane jobs for the same provider,
// running while the main jobs drain.
type TrickleConfig struct {
	// Rate is live jobs per second; 0 turns the trickle off.
	Rate float64 `koanf:"rate" json:"rate"`
	// Task of the live jobs. Default: the scenario's task.
	Task string `koanf:"task" json:"task,omitempty"`
}

// MockConfig becomes the mock API's flags.
type MockConfig struct {
	LatencyMin  Duration `koanf:"latency_min" json:"latency_min"`
	LatencyMax  Duration `koanf:"latency_max" json:"latency_max"`
	TailRate    float64  `koanf:"tail_rate" json:"tail_rate,omitempty"`
	TailLatency Duration `koanf:"tail_latency" json:"tail_latency,omitempty"`
	ErrorRate   float64  `koanf:"error_rate" json:"error_rate,omitempty"`
	RateLimit   float64  `koanf:"rate_limit" json:"rate_limit,omitempty"`
	Burst       int      `koanf:"burst" json:"burst,omitempty"`
	LimitMode   string   `koanf:"limit_mode" json:"limit_mode,omitempty"`
	// Config is passed as --config, relative to the scenario file.
	Config string `koanf:"config" json:"config,omitempty"`
	// ExtraArgs are appended to the mock's command line as they are.
	ExtraArgs []string `koanf:"extra_args" json:"extra_args,omitempty"`
}

// EnqueueConfig shapes publishing.
type EnqueueConfig struct {
	// Window is the most publishes awaiting their PubAck. Default 4096.
	Window int `koanf:"window" json:"window"`
	// Rate caps publishing in jobs per second; 0 is as fast as possible.
	Rate float64 `koanf:"rate" json:"rate,omitempty"`
}

// CeilingConfig shapes the plain-Go comparison loop.
type CeilingConfig struct {
	// InFlight is how many requests the loop keeps open. Default
	// in_flight × workers.
	InFlight int `koanf:"in_flight" json:"in_flight"`
	// Requests is how many responses end the loop. Default min(jobs, 200000).
	Requests int  `koanf:"requests" json:"requests"`
	Skip     bool `koanf:"skip" json:"skip,omitempty"`
}

// ExtraConfig holds keys merged into switchyard.yaml: Worker into worker,
// Recorder into recorder, Provider into providers.<provider>.
type ExtraConfig struct {
	Worker   map[string]any `koanf:"worker" json:"worker,omitempty"`
	Recorder map[string]any `koanf:"recorder" json:"recorder,omitempty"`
	Provider map[string]any `koanf:"provider" json:"provider,omitempty"`
}

// Duration is a time.Duration written as "500ms" in YAML and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults that are not derived from other fields.
const (
	defaultProvider     = "loadtest"
	defaultTask         = "call"
	defaultPayloadBytes = 100
	defaultInFlight     = 1000
	defaultWindow       = 4096
	defaultTimeout      = 10 * time.Minute
	maxCeilingRequests  = 200000
	// maxPayloadBytes keeps a job well inside the JOBS stream's 512 KiB
	// max_msg_size.
	maxPayloadBytes = 256 << 10
)

// LoadScenario reads, defaults and validates a scenario file. Errors name
// the file and the field.
func LoadScenario(path string) (*Scenario, error) { return loadScenarioWith(path, nil) }

// loadScenarioWith is LoadScenario with override applied to the decoded
// file before the defaults, so that defaults derived from a field follow
// the override.
func loadScenarioWith(path string, override func(*Scenario)) (*Scenario, error) {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		if _, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	var s Scenario
	if err := decodeScenario(k, &s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if override != nil {
		override(&s)
	}
	if s.Mock.Config != "" && !filepath.IsAbs(s.Mock.Config) {
		s.Mock.Config = filepath.Join(filepath.Dir(path), s.Mock.Config)
	}
	s.withDefaults()
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return &s, nil
}

// decodeScenario unmarshals strictly: unknown keys, fractions where a whole
// number belongs and durations without a unit are errors naming the key.
func decodeScenario(k *koanf.Koanf, s *Scenario) error {
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf("", s, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: strictHook,
			MatchName:  func(mapKey, fieldName string) bool { return mapKey == fieldName },
			Metadata:   &md,
			TagName:    "koanf",
		},
	})
	if err != nil {
		return cleanDecodeError(err)
	}
	if len(md.Unused) > 0 {
		keys := make([]string, len(md.Unused))
		for i, key := range md.Unused {
			keys[i] = keyPath(key)
		}
		slices.Sort(keys)
		return fmt.Errorf("unknown key %s (see loadtest/README.md for the fields)", strings.Join(keys, ", "))
	}
	return nil
}

var durationType = reflect.TypeFor[Duration]()

func strictHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType {
		switch v := data.(type) {
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as \"500ms\"", v)
			}
			return Duration(d), nil
		case int, int64, uint64, float64:
			if reflect.ValueOf(v).IsZero() {
				return Duration(0), nil
			}
			return nil, fmt.Errorf("%v needs a unit, e.g. \"%vms\"", v, v)
		}
		return nil, fmt.Errorf("%v is not a duration such as \"500ms\"", data)
	}
	if f, ok := data.(float64); ok && to.Kind() == reflect.Int && f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	return data, nil
}

// cleanDecodeError reduces mapstructure's tree of wrapped and joined
// errors to one "key: reason" per bad field.
func cleanDecodeError(err error) error {
	msgs := decodeMessages(err)
	slices.Sort(msgs)
	return errors.New(strings.Join(msgs, "; "))
}

func decodeMessages(err error) []string {
	if de, ok := err.(*mapstructure.DecodeError); ok {
		inner := de.Unwrap()
		if _, nested := errors.AsType[*mapstructure.DecodeError](inner); nested {
			return decodeMessages(inner)
		}
		return []string{keyPath(de.Name()) + ": " + inner.Error()}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []string
		for _, e := range u.Unwrap() {
			out = append(out, decodeMessages(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return decodeMessages(u.Unwrap())
	}
	return []string{err.Error()}
}

func keyPath(name string) string {
	return strings.NewReplacer("[", ".", "]", "").Replace(name)
}

func (s *Scenario) withDefaults() {
	s.Kind = cmpOr(s.Kind, kindPipeline)
	s.Database = cmpOr(s.Database, databaseSQLite)
	if s.Kind == kindRecorder {
		s.Ceiling.Skip = true
		s.IDs = cmpOr(s.IDs, "uuid7")
	}
	s.Provider = cmpOr(s.Provider, defaultProvider)
	s.Task = cmpOr(s.Task, defaultTask)
	s.Lane = cmpOr(s.Lane, string(job.LaneBulk))
	if s.PayloadBytes == 0 {
		s.PayloadBytes = defaultPayloadBytes
	}
	if s.InFlight == 0 {
		s.InFlight = defaultInFlight
	}
	if s.Workers == 0 {
		s.Workers = 1
	}
	s.LiveTrickle.Task = cmpOr(s.LiveTrickle.Task, s.Task)
	if s.Enqueue.Window == 0 {
		s.Enqueue.Window = defaultWindow
	}
	if s.Ceiling.InFlight == 0 {
		s.Ceiling.InFlight = s.InFlight * max(s.Workers, 1)
	}
	if s.Ceiling.Requests == 0 {
		s.Ceiling.Requests = min(s.Jobs, maxCeilingRequests)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(defaultTimeout)
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Validate reports every bad field, each named as it is written in the
// file.
func (s *Scenario) Validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if s.Kind != kindPipeline && s.Kind != kindRecorder {
		bad("kind", "%q must be pipeline or recorder", s.Kind)
	}
	switch {
	case s.Database != databaseSQLite && s.Database != databasePostgres:
		bad("database", "%q must be sqlite or postgres", s.Database)
	case s.Database == databasePostgres && s.Kind != kindRecorder:
		bad("database", "postgres needs kind recorder (the pipeline's progress is read from SQLite)")
	}
	if s.IDs != "" && (s.Kind != kindRecorder || s.IDs != "uuid7" && s.IDs != "random") {
		bad("ids", "%q must be uuid7 or random, with kind recorder", s.IDs)
	}
	if s.Jobs < 1 {
		bad("jobs", "%d must be at least 1 (it is required)", s.Jobs)
	}
	if !job.ValidToken(s.Provider) {
		bad("provider", "%q must match [a-z0-9_-]{1,64}", s.Provider)
	}
	if !job.ValidToken(s.Task) {
		bad("task", "%q must match [a-z0-9_-]{1,64}", s.Task)
	}
	if !job.Lane(s.Lane).Valid() {
		bad("lane", "%q must be bulk or live", s.Lane)
	}
	if s.PayloadBytes < 0 || s.PayloadBytes > maxPayloadBytes {
		bad("payload_bytes", "%d must be between 0 and %d", s.PayloadBytes, maxPayloadBytes)
	}
	if s.InFlight < 1 {
		bad("in_flight", "%d must be at least 1", s.InFlight)
	}
	if s.LiveReserve < 0 || (s.LiveReserve > 0 && s.LiveReserve >= s.InFlight) {
		bad("live_reserve", "%d must be between 0 and in_flight-1 (%d)", s.LiveReserve, s.InFlight-1)
	}
	if s.CallTimeout < 0 {
		bad("call_timeout", "%s must not be negative", s.CallTimeout)
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > job.MaxAttemptsCap {
		bad("max_attempts", "%d must be between 0 (provider default) and %d", s.MaxAttempts, job.MaxAttemptsCap)
	}
	if s.Workers < 1 || s.Workers > 64 {
		bad("workers", "%d must be between 1 and 64", s.Workers)
	}
	if t := s.LiveTrickle; t.Rate < 0 || t.Rate > 1000 || math.IsNaN(t.Rate) {
		bad("live_trickle.rate", "%v must be between 0 and 1000 jobs/s", t.Rate)
	} else if t.Rate > 0 && s.Lane != string(job.LaneBulk) {
		bad("live_trickle.rate", "needs lane bulk: the trickle runs on the live lane beside the bulk jobs")
	}
	if !job.ValidToken(s.LiveTrickle.Task) {
		bad("live_trickle.task", "%q must match [a-z0-9_-]{1,64}", s.LiveTrickle.Task)
	}
	s.Mock.validate(bad)
	if s.Enqueue.Window < 1 || s.Enqueue.Window > 1<<20 {
		bad("enqueue.window", "%d must be between 1 and %d", s.Enqueue.Window, 1<<20)
	}
	if s.Enqueue.Rate < 0 || math.IsNaN(s.Enqueue.Rate) {
		bad("enqueue.rate", "%v must not be negative (0 is as fast as possible)", s.Enqueue.Rate)
	}
	if s.Timeout <= 0 {
		bad("timeout", "%s must be positive", s.Timeout)
	}
	if s.Profile < 0 || (s.Profile > 0 && s.Profile.D() < time.Second) {
		bad("profile", "%s must be 0 (off) or at least 1s", s.Profile)
	}
	// The ceiling's defaults derive from jobs, in_flight and workers: check
	// it only once those are right, or a single mistake reads as three.
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	if s.Ceiling.InFlight < 1 || s.Ceiling.InFlight > 50000 {
		bad("ceiling.in_flight", "%d must be between 1 and 50000", s.Ceiling.InFlight)
	}
	if s.Ceiling.Requests < 1 {
		bad("ceiling.requests", "%d must be at least 1", s.Ceiling.Requests)
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

func (m MockConfig) validate(bad func(field, format string, args ...any)) {
	if m.LatencyMin < 0 {
		bad("mock.latency_min", "%s must not be negative", m.LatencyMin)
	}
	if m.LatencyMax != 0 && m.LatencyMax < m.LatencyMin {
		bad("mock.latency_max", "%s is below mock.latency_min (%s)", m.LatencyMax, m.LatencyMin)
	}
	if m.TailRate < 0 || m.TailRate > 1 || math.IsNaN(m.TailRate) {
		bad("mock.tail_rate", "%v must be between 0 and 1", m.TailRate)
	}
	if m.TailLatency < 0 {
		bad("mock.tail_latency", "%s must not be negative", m.TailLatency)
	}
	if m.TailRate > 0 && m.TailLatency == 0 {
		bad("mock.tail_latency", "is required when mock.tail_rate is set")
	}
	if m.ErrorRate < 0 || m.ErrorRate > 1 || math.IsNaN(m.ErrorRate) {
		bad("mock.error_rate", "%v must be between 0 and 1", m.ErrorRate)
	}
	if m.RateLimit < 0 || math.IsNaN(m.RateLimit) {
		bad("mock.rate_limit", "%v must not be negative (0 is no limit)", m.RateLimit)
	}
	if m.Burst < 0 {
		bad("mock.burst", "%d must not be negative", m.Burst)
	}
}

// MainLane is the lane of the scenario's Jobs.
func (s *Scenario) MainLane() job.Lane { return job.Lane(s.Lane) }

// args returns the mock API's command-line flags for this scenario.
func (m MockConfig) args() []string {
	args := []string{"--latency-min", m.LatencyMin.String(), "--latency-max", max(m.LatencyMax, m.LatencyMin).String()}
	if m.TailRate > 0 {
		args = append(args, "--tail-rate", fmt.Sprint(m.TailRate), "--tail-latency", m.TailLatency.String())
	}
	if m.ErrorRate > 0 {
		args = append(args, "--error-rate", fmt.Sprint(m.ErrorRate))
	}
	if m.RateLimit > 0 {
		args = append(args, "--rate-limit", fmt.Sprint(m.RateLimit))
	}
	if m.Burst > 0 {
		args = append(args, "--burst", fmt.Sprint(m.Burst))
	}
	if m.LimitMode != "" {
		args = append(args, "--limit-mode", m.LimitMode)
	}
	if m.Config != "" {
		args = append(args, "--config", m.Config)
	}
	return append(args, m.ExtraArgs...)
}

// duplicateCallsMeaningful says whether the mock's count of idempotency
// keys seen on more than one call must be zero: only when no call is
// expected to be retried (no errors, no throttling, no tail beyond the
// call timeout).
func (s *Scenario) duplicateCallsMeaningful() bool {
	timeout := s.CallTimeout.D()
	if timeout == 0 {
		timeout = 30 * time.Second // the provider default
	}
	slowest := max(s.Mock.LatencyMin, s.Mock.LatencyMax).D()
	if s.Mock.TailRate > 0 {
		slowest = max(slowest, s.Mock.TailLatency.D())
	}
	return s.Mock.ErrorRate == 0 && s.Mock.RateLimit == 0 && slowest < timeout
}
