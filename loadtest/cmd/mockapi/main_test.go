package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

// lockedBuffer collects stderr, which the server's goroutines write too.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is run in a goroutine, as a parent process would see it.
type proc struct {
	url    string
	stdout *bufio.Reader
	stderr *lockedBuffer
	cancel context.CancelFunc
	// done is closed when run has returned err.
	done chan struct{}
	err  error
}

// start runs the command with args and reads the URL line it prints.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	p := &proc{stdout: bufio.NewReader(pr), stderr: &lockedBuffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		p.err = run(ctx, args, pw, p.stderr)
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	line, err := p.stdout.ReadString('\n')
	if err != nil {
		<-p.done
		t.Fatalf("no URL line (%v); run returned %v; stderr:\n%s", err, p.err, p.stderr)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*\n$`).MatchString(line) {
		t.Fatalf("stdout line %q is no base URL", line)
	}
	p.url = strings.TrimSuffix(line, "\n")
	return p
}

// stop cancels the context, as SIGINT or SIGTERM would, and returns what
// run returned, checking that it printed nothing more.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second): // a deadline for a hang, not a wait for the event
		t.Fatalf("run still running 10s after cancel; stderr:\n%s", p.stderr)
	}
	if rest, _ := io.ReadAll(p.stdout); len(rest) > 0 {
		t.Errorf("more on stdout after the URL: %q", rest)
	}
	return p.err
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mockapi.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// servers are the --server choices, each with its arguments: none for the
// default.
var servers = []struct {
	name string
	args []string
}{
	{"lean", nil},
	{"net/http", []string{"--server", "net/http"}},
}

// TestRun serves providers from a file and flags, then stops cleanly, with
// each server.
func TestRun(t *testing.T) {
	t.Parallel()
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			testRun(t, srv.name, srv.args)
		})
	}
}

func testRun(t *testing.T, server string, args []string) {
	file := writeFile(t, `
default:
  error_rate: 1   # the flag below overrides it
providers:
  limited:
    rate_limit: 0.001
    burst: 1
    retry_after: 2s
`)
	p := start(t, slices.Concat(args, []string{"--listen", "127.0.0.1:0", "--latency-min", "0s", "--latency-max", "0s", "--error-rate", "0", "--config", file})...)

	if resp := get(t, p.url+"/free/v1/x"); resp.StatusCode != 200 {
		t.Errorf("free: status %d, want 200 (--error-rate 0 over the file's 1)", resp.StatusCode)
	}
	if resp := get(t, p.url+"/limited/v1/x"); resp.StatusCode != 200 {
		t.Errorf("limited, first: status %d", resp.StatusCode)
	}
	if resp := get(t, p.url+"/limited/v1/x"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("limited, second: status %d, Retry-After %q; want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get(t, p.url+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz: status %d", resp.StatusCode)
	}
	resp, err := http.Get(p.url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st mockapi.MultiStats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Total.Requests != 3 || st.Total.Throttled != 1 || st.Providers["limited"].Throttled != 1 || st.Providers["free"].Requests != 1 {
		t.Errorf("stats %+v", st)
	}

	if err := p.stop(t); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
	if logs := p.stderr.String(); !strings.Contains(logs, "msg=serving") || !strings.Contains(logs, "server="+server+" ") ||
		!strings.Contains(logs, "msg=stopped requests=3") {
		t.Errorf("stderr:\n%s", logs)
	}
}

// TestRunCutsHeldRequests: a request waiting out a long latency does not
// hold up shutdown beyond the grace, with either server.
func TestRunCutsHeldRequests(t *testing.T) {
	t.Parallel()
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			testRunCutsHeldRequests(t, srv.args)
		})
	}
}

func testRunCutsHeldRequests(t *testing.T, args []string) {
	p := start(t, slices.Concat(args, []string{"--latency-min", "1h", "--latency-max", "1h", "--shutdown-grace", "50ms"})...)
	held := make(chan error, 1)
	go func() {
		resp, err := http.Get(p.url + "/slow/v1/x")
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	// Await the request in flight by polling the mock's own counter: the
	// process offers no other signal.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get(p.url + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		var st mockapi.MultiStats
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.Total.InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never got in flight")
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	if err := <-held; err == nil {
		t.Error("the held request got an answer")
	}
	if logs := p.stderr.String(); !strings.Contains(logs, "cutting requests still in flight") {
		t.Errorf("stderr does not say requests were cut:\n%s", logs)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	unknownKey := writeFile(t, "providers:\n  acme:\n    rate_limt: 5\n")
	badName := writeFile(t, "providers:\n  Acme: {}\n")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined: -nope"},
		{"bad flag value", []string{"--rate-limit", "fast"}, `invalid value "fast" for flag -rate-limit`},
		{"argument", []string{"serve"}, `unexpected argument "serve"`},
		{"bad latency", []string{"--latency-max", "100ms"}, "default: LatencyMax: 100ms is below LatencyMin (500ms)"},
		{"bad limit mode", []string{"--rate-limit", "5", "--limit-mode", "loud"}, `LimitMode: "loud" must be`},
		{"missing file", []string{"--config", "/nonexistent/mockapi.yaml"}, "--config /nonexistent/mockapi.yaml: open"},
		{"unknown key", []string{"--config", unknownKey}, "providers.acme.rate_limt: unknown key"},
		{"bad provider name", []string{"--config", badName}, `provider "Acme"`},
		{"bad listen", []string{"--listen", "127.0.0.1:99999"}, "--listen:"},
		{"bad server", []string{"--server", "nginx"}, `--server: "nginx" must be lean or net/http`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q on error", stdout.String())
			}
		})
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err %v, want flag.ErrHelp", err)
	}
}

// TestParseArgs checks the layering: built-in defaults, the file's default
// section, the flags, and each provider over the result.
func TestParseArgs(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
default:
  latency_min: 100ms
  latency_max: 200ms
  error_rate: 0.5
  seed: 7
providers:
  acme:
    rate_limit: 50
    burst: 5
    limit_mode: headers
  slow:
    latency_max: 0      # a bare zero needs no unit
    tail_rate: 0.01
    tail_latency: 10s
    idempotency_header: X-Request-Id
`)
	builtIn := mockapi.Config{LatencyMin: 500 * time.Millisecond, LatencyMax: 800 * time.Millisecond}
	fromFile := mockapi.Config{LatencyMin: 100 * time.Millisecond, LatencyMax: 200 * time.Millisecond, ErrorRate: 0.5, Seed: 7}
	withFlags := fromFile
	withFlags.ErrorRate, withFlags.RateLimit, withFlags.RetryAfter = 0.1, 20, 3*time.Second
	provider := func(def mockapi.Config, edit func(*mockapi.Config)) mockapi.Config {
		edit(&def)
		return def
	}
	tests := []struct {
		name    string
		args    []string
		wantDef mockapi.Config
		wantPer map[string]mockapi.Config
	}{
		{"none", nil, builtIn, map[string]mockapi.Config{}},
		{
			"all flags",
			[]string{
				"--latency-min", "1ms", "--latency-max", "2ms", "--tail-rate", "0.1", "--tail-latency", "3s",
				"--error-rate", "0.2", "--rate-limit", "50", "--burst", "7", "--limit-mode", "silent",
				"--retry-after", "4s", "--seed", "-9", "--idempotency-header", "X-Key",
			},
			mockapi.Config{
				LatencyMin: time.Millisecond, LatencyMax: 2 * time.Millisecond, TailRate: 0.1, TailLatency: 3 * time.Second,
				ErrorRate: 0.2, RateLimit: 50, Burst: 7, LimitMode: mockapi.LimitSilent, RetryAfter: 4 * time.Second,
				Seed: -9, IdempotencyHeader: "X-Key",
			},
			map[string]mockapi.Config{},
		},
		{
			"file", []string{"--config", file}, fromFile,
			map[string]mockapi.Config{
				"acme": provider(fromFile, func(c *mockapi.Config) {
					c.RateLimit, c.Burst, c.LimitMode = 50, 5, mockapi.LimitHeaders
				}),
				"slow": provider(fromFile, func(c *mockapi.Config) {
					c.LatencyMax, c.TailRate, c.TailLatency, c.IdempotencyHeader = 0, 0.01, 10*time.Second, "X-Request-Id"
				}),
			},
		},
		{
			"flags over file", []string{"--error-rate", "0.1", "--config", file, "--rate-limit", "20", "--retry-after", "3s"}, withFlags,
			map[string]mockapi.Config{
				// acme's own rate_limit wins over the default's.
				"acme": provider(withFlags, func(c *mockapi.Config) {
					c.RateLimit, c.Burst, c.LimitMode = 50, 5, mockapi.LimitHeaders
				}),
				"slow": provider(withFlags, func(c *mockapi.Config) {
					c.LatencyMax, c.TailRate, c.TailLatency, c.IdempotencyHeader = 0, 0.01, 10*time.Second, "X-Request-Id"
				}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseArgs(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.def != tt.wantDef {
				t.Errorf("default %+v\nwant    %+v", o.def, tt.wantDef)
			}
			if !reflect.DeepEqual(o.per, tt.wantPer) {
				t.Errorf("providers %+v\nwant      %+v", o.per, tt.wantPer)
			}
			if o.listen != "127.0.0.1:0" || o.server != "lean" {
				t.Errorf("listen %q, server %q; want the defaults", o.listen, o.server)
			}
		})
	}
}
