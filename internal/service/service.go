// Package service holds what every Switchyard main does the same way:
// common flags, loading config, building the logger, and connecting to
// NATS with the streams applied.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/config"
	"github.com/switchyard-io/switchyard/pkg/logging"
	"github.com/switchyard-io/switchyard/pkg/natsx"
)

// Flags are the flags every service has. Register them with NewFlags,
// parse, then Load.
type Flags struct {
	fs    *flag.FlagSet
	file  *string
	pprof *string
	keys  map[string]string
}

// NewFlags registers --config, --log-level and --log-format on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, keys: map[string]string{}}
	f.file = fs.String("config", "", "YAML config `file`")
	f.pprof = fs.String("pprof", "", "serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060); off by default")
	f.Key("log-level", "log.level", "", "log `level`: debug, info, warn, error (default info)")
	f.Key("log-format", "log.format", "", "log `format`: auto, text, json (default auto)")
	return f
}

// NATSURL registers --nats-url, for services that connect to an external
// server.
func (f *Flags) NATSURL() {
	f.Key("nats-url", "nats.url", "", "NATS server `URL`s, comma separated (default nats://127.0.0.1:4222)")
}

// Key registers a string flag that sets a config key.
func (f *Flags) Key(name, key, value, usage string) {
	f.fs.String(name, value, usage)
	f.keys[name] = key
}

// Load layers defaults, the config file, the environment and the flags that
// were set, and builds the logger.
func (f *Flags) Load(stderr io.Writer, defaults map[string]any) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(config.Options{File: *f.file, Flags: config.SetFlags(f.fs, f.keys), Defaults: defaults})
	if err != nil {
		return nil, nil, err
	}
	logger, err := logging.New(stderr, cfg.Log)
	if err != nil {
		return nil, nil, err
	}
	tuneGC(logger)
	if *f.pprof != "" {
		if err := servePprof(*f.pprof, logger); err != nil {
			return nil, nil, err
		}
	}
	return cfg, logger, nil
}

// defaultGCPercent is the GOGC a service runs with unless GOGC is set. A
// worker with thousands of calls in flight allocates fast and keeps a
// large, stable live heap (connections, buffers), so Go's default of 100
// spends a sixth of its CPU marking the same objects again; 200 halves that
// for about a third more memory. Set GOMEMLIMIT as well in a container with
// a hard memory limit.
const defaultGCPercent = 200

func tuneGC(logger *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
		logger.Debug("GOGC not set; using the service default", "gogc", defaultGCPercent)
	}
}

// servePprof serves the profiling endpoints on their own listener, never on
// a service's public one. It lives as long as the process.
func servePprof(addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	logger.Info("serving pprof", "addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

// Connect connects to NATS and applies the Switchyard streams.
func Connect(ctx context.Context, cfg natsx.Config, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := natsx.Connect(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := natsx.ApplyStreams(actx, js, cfg.Replicas, logger); err != nil {
		// A request the user may not make is not answered, so it only
		// times out; the server's refusal arrives on the side.
		if perr := nc.LastError(); errors.Is(perr, nats.ErrPermissionViolation) {
			err = fmt.Errorf("%w (%v; if this is a producer's user, it may not create streams: start a worker or the recorder first, see deploy/README.md)", err, perr)
		}
		nc.Close()
		return nil, nil, fmt.Errorf("apply streams: %w", err)
	}
	return nc, js, nil
}

// Exit prints err and exits 1, or exits 0 when err is nil or flag.ErrHelp.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
