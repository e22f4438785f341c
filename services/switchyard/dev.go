package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/api"
	"github.com/switchyard-io/switchyard/pkg/schedule"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

// devOptions are the flags of `switchyard dev` that are not config keys.
type devOptions struct {
	listen     string
	port       int
	data       string
	demo       int
	once       bool
	timeout    time.Duration
	latencyMin time.Duration
	latencyMax time.Duration
	errorRate  float64
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchyard dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := service.NewFlags(fs)
	flags.Key("api-listen", "recorder.api.listen", "", "`address` of the recorder's query API (default 127.0.0.1:8472; - turns it off)")
	var o devOptions
	fs.StringVar(&o.listen, "listen", "127.0.0.1", "`address` the embedded NATS server listens on")
	fs.IntVar(&o.port, "port", 4222, "NATS client `port` (-1 picks a free one)")
	fs.StringVar(&o.data, "data", ".switchyard", "`dir`ectory for JetStream storage and the results database")
	fs.IntVar(&o.demo, "demo", 0, "enqueue `N` demo jobs across the demo providers and report on them")
	fs.BoolVar(&o.once, "once", false, "with --demo: exit when every demo job is recorded (exit 1 if any is missing)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "with --once: give up waiting after this `long`")
	fs.DurationVar(&o.latencyMin, "demo-latency-min", 500*time.Millisecond, "demo provider's fastest `answer`")
	fs.DurationVar(&o.latencyMax, "demo-latency-max", 800*time.Millisecond, "demo provider's slowest `answer`")
	fs.Float64Var(&o.errorRate, "demo-error-rate", 0.01, "share of demo calls answered 503, to show retries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.once && o.demo <= 0 {
		return errors.New("--once needs --demo N")
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	// The demo API comes first: its address goes into the demo providers.
	mock, api, apiURL, err := startDemoAPI(mockapi.Config{LatencyMin: o.latencyMin, LatencyMax: o.latencyMax, ErrorRate: o.errorRate})
	if err != nil {
		return err
	}
	defer api.Close()

	cfg, logger, err := flags.Load(stderr, devDefaults(apiURL, o.data))
	if err != nil {
		return err
	}
	st, err := startStack(ctx, o, cfg.Recorder, cfg.Worker, cfg.Providers, cfg.Schedules, logger)
	if err != nil {
		return err
	}
	defer st.stop(logger)

	fmt.Fprintf(stdout, `Switchyard dev is running.
  NATS       %s   (nats --server %s stream ls)
  demo API   %s   (providers demo_a, demo_b)
  results    %s
  query API  %s
`, st.url, st.url, apiURL, cfg.Recorder.Database, st.queryAPI)

	if o.demo > 0 {
		err := runDemo(ctx, st.js, st.store, mock, o, stdout)
		if o.once || err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// devDefaults configures the two demo providers and puts the results
// database in the data dir. A config file or the environment can override
// any of it, or add real providers beside them.
func devDefaults(apiURL, dataDir string) map[string]any {
	demo := func(path string) map[string]any {
		// 2,000 in flight per provider: thousands of calls at once, within
		// the open-file limit of a process that also serves them.
		// The demo API listens on loopback, hence allow_private_network.
		return map[string]any{"base_url": apiURL + path, "allow_private_network": true, "concurrency": 2000, "timeout": "10s", "max_attempts": 5, "backoff_base": "200ms", "backoff_cap": "2s"}
	}
	return map[string]any{
		"recorder": map[string]any{"database": filepath.Join(dataDir, "switchyard.db")},
		"providers": map[string]any{
			"demo_a": demo("/a"),
			"demo_b": demo("/b"),
		},
	}
}

func startDemoAPI(cfg mockapi.Config) (*mockapi.Server, *http.Server, string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, "", fmt.Errorf("demo provider: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, "", fmt.Errorf("demo provider: %w", err)
	}
	mock := mockapi.New(cfg)
	hs := &http.Server{Handler: mock, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return mock, hs, "http://" + ln.Addr().String(), nil
}

// stack is everything dev runs, stopped in the reverse order of start.
type stack struct {
	srv   *server.Server
	url   string
	nc    *nats.Conn
	js    jetstream.JetStream
	store *recorder.SQLite
	rec   *recorder.Service
	api   *api.Server
	// queryAPI says where the query API is, or why it is not.
	queryAPI string
	w        *worker.Worker
	// metrics holds the recorder's and the worker's metrics, served on
	// the query API's /metrics.
	metrics *prometheus.Registry
	exp     *schedule.Expander
}

func startStack(ctx context.Context, o devOptions, recCfg recorder.Config, workCfg worker.Config, providers map[string]provider.Config, schedules map[string]schedule.Config, logger *slog.Logger) (st *stack, err error) {
	st = &stack{}
	defer func() {
		if err != nil {
			st.stop(logger)
		}
	}()
	st.srv, err = natsx.RunEmbedded(natsx.EmbeddedConfig{
		Host: o.listen, Port: o.port, StoreDir: filepath.Join(o.data, "jetstream"), Logger: logger.With("component", "nats-server"),
	})
	if err != nil {
		return st, fmt.Errorf("%w (is another server on port %d? pick another with --port)", err, o.port)
	}
	st.url = st.srv.ClientURL()
	st.nc, st.js, err = service.Connect(ctx, natsx.Config{URL: st.url, Name: "switchyard-dev"}.WithDefaults(), logger)
	if err != nil {
		return st, err
	}
	if st.store, err = recorder.OpenSQLite(ctx, recCfg.Database); err != nil {
		return st, err
	}
	if st.rec, err = recorder.StartService(ctx, st.js, st.store, recCfg, logger); err != nil {
		return st, err
	}
	st.metrics = httpserve.NewRegistry()
	st.metrics.MustRegister(st.rec.Recorder.Collector())
	st.startQueryAPI(ctx, recCfg.API, logger)
	ps, err := provider.NewAll(providers)
	if err != nil {
		return st, err
	}
	if st.w, err = worker.New(st.js, workCfg, ps, logger); err != nil {
		return st, err
	}
	st.metrics.MustRegister(st.w.Collector())
	if err := st.w.Start(ctx); err != nil {
		return st, err
	}
	if err := schedule.NewStore(st.js).Apply(ctx, schedules, logger); err != nil {
		return st, err
	}
	st.exp = schedule.NewExpander(st.js, logger)
	return st, st.exp.Start(ctx)
}

// startQueryAPI serves the recorder's query API. Unlike the NATS port, a
// taken API port does not stop dev: the API is for looking, and another
// recorder (or dev) may well hold the default port. The startup output
// says so instead.
func (st *stack) startQueryAPI(ctx context.Context, cfg recorder.APIConfig, logger *slog.Logger) {
	st.api = api.NewServer(cfg, st.store, api.ReadyWhen(st.rec.Recorder.Healthy, "the last write to the results store failed"), logger, api.WithDeclarations(st.rec.Registry), api.WithMetrics(st.metrics))
	switch err := st.api.Start(ctx); {
	case err != nil:
		logger.Warn("query API not started", "err", err)
		st.queryAPI = fmt.Sprintf("off: %v (pick another with --api-listen)", err)
	case !api.Enabled(cfg):
		st.queryAPI = "off (--api-listen -)"
	default:
		hint := "switchyard jobs ls"
		if u := st.api.URL(); u != defaultAPI {
			hint += " --api " + u
		}
		st.queryAPI = fmt.Sprintf("%s   (%s)", st.api.URL(), hint)
	}
}

// stop shuts down in the one safe order: the query API first, as it reads
// the store; the schedule expander and the worker next, so calls in
// flight can still store their results; then the recorder, so those
// results are written; then the connection and the server.
func (st *stack) stop(logger *slog.Logger) {
	if st.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := st.api.Shutdown(ctx); err != nil {
			logger.Warn("query API shutdown cut requests short", "err", err)
		}
		cancel()
	}
	if st.exp != nil {
		st.exp.Stop()
	}
	if st.w != nil {
		st.w.Stop(context.Background())
	}
	if st.rec != nil {
		st.rec.Stop()
	}
	if st.store != nil {
		if err := st.store.Close(); err != nil {
			logger.Error("close results store", "err", err)
		}
	}
	if st.nc != nil {
		st.nc.Close()
	}
	if st.srv != nil {
		st.srv.Shutdown()
		st.srv.WaitForShutdown()
	}
}
