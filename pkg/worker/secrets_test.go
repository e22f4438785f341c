package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/logging"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
	"github.com/switchyard-io/switchyard/streams"
)

// syncBuffer is a log sink shared by the worker, the client and the server.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsAppearNowhere runs a worker with a provider credential over a
// NATS connection with a user and password, against an API that echoes
// the credential back in every way it can, and looks for the secrets in
// every log line (debug, and the server's trace), every result and every
// dead letter.
func TestSecretsAppearNowhere(t *testing.T) {
	const (
		providerSecret = "prov-sk-7f3a9c1e5b2d"
		natsPassword   = "nats-pw-4e8b2a6c9d1f"
	)
	t.Setenv("SWITCHYARD_TEST_SECRET_KEY", providerSecret)
	var logs syncBuffer
	logger, err := logging.New(&logs, logging.Config{Level: "debug", Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.StartWithPassword(t, "worker", natsPassword, logger)
	ncfg := natsx.Config{URL: srv.URL(), User: "worker", Password: natsPassword}.WithDefaults()
	nc, err := natsx.Connect(ncfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := natsx.ApplyStreams(ctx, js, 1, logger); err != nil {
		t.Fatal(err)
	}

	// The API echoes the request's headers in its body and its headers,
	// with a 200, a 401 (failed at once) and a 500 (retried, then dead).
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Key", r.Header.Get("Authorization"))
		w.Header().Set("Authorization", r.Header.Get("Authorization"))
		status := map[string]int{"/ok": 200, "/unauthorized": 401, "/broken": 500}[r.URL.Path]
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": "bad key " + r.Header.Get("Authorization"), "request_headers": r.Header})
	}))
	t.Cleanup(api.Close)
	auth := provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_SECRET_KEY"}
	fast := func(base string) provider.Config {
		return provider.Config{BaseURL: base, AllowPrivateNetwork: true, Auth: auth, Timeout: 2 * time.Second,
			MaxAttempts: 2, BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond}
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // a closed port: the call fails with a *url.Error
	ps, err := provider.NewAll(map[string]provider.Config{"acme": fast(api.URL), "gone": fast(downURL)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(js, worker.Config{FetchMaxWait: 200 * time.Millisecond, UnroutedInterval: 100 * time.Millisecond}, ps, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			w.Stop(ctx)
		}
	})

	jobs := []*job.Job{
		newJob("s-ok", "acme", "echo", "/ok"),
		newJob("s-401", "acme", "echo", "/unauthorized"),
		newJob("s-500", "acme", "echo", "/broken"),
		newJob("s-down", "gone", "echo", "/x"),
		// A job that sets the provider's auth header itself gets it
		// overwritten, and its own value is its own business.
		func() *job.Job {
			j := newJob("s-override", "acme", "echo", "/ok")
			j.Request.Headers = map[string]string{"authorization": "Bearer job-chosen"}
			return j
		}(),
	}
	for _, j := range jobs {
		data, _ := json.Marshal(j)
		if _, err := js.Publish(ctx, job.Subject(j.Provider, job.LaneLive, j.Task), data, jetstream.WithMsgID(j.ID)); err != nil {
			t.Fatal(err)
		}
	}
	final := map[string]job.Status{}
	waitFor(t, 20*time.Second, func() (bool, string) {
		for _, m := range streamMessages(t, js, streams.Results) {
			var r job.Result
			if json.Unmarshal(m, &r) == nil && r.Status.Final() {
				final[r.JobID] = r.Status
			}
		}
		return len(final) == len(jobs), fmt.Sprintf("final results %v", final)
	})
	want := map[string]job.Status{"s-ok": job.StatusSucceeded, "s-401": job.StatusFailed, "s-500": job.StatusDead,
		"s-down": job.StatusDead, "s-override": job.StatusSucceeded}
	for id, st := range want {
		if final[id] != st {
			t.Errorf("job %s ended %s, want %s", id, final[id], st)
		}
	}
	w.Stop(ctx)
	stopped = true

	results := strings.Join(bytesToStrings(streamMessages(t, js, streams.Results)), "\n")
	dlq := strings.Join(bytesToStrings(streamMessages(t, js, streams.DLQ)), "\n")
	// The checks must be able to see a leak: the API did receive the
	// credential and echoed it, and the results hold what it answered.
	if !strings.Contains(results, "bad key Bearer "+provider.Redacted) {
		t.Fatalf("the results do not hold the scrubbed echo; the test sees nothing:\n%s", results)
	}
	if !strings.Contains(dlq, "s-down") || !strings.Contains(dlq, "s-500") {
		t.Fatalf("dead letters missing:\n%s", dlq)
	}
	if !strings.Contains(logs.String(), "CONNECT") {
		t.Fatalf("the server's trace was not captured")
	}
	for name, text := range map[string]string{"logs": logs.String(), "RESULTS": results, "DLQ": dlq} {
		for _, secret := range []string{providerSecret, natsPassword} {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s hold the secret %q: ...%s...", name, secret, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
}

// streamMessages returns every message stored in a stream.
func streamMessages(t *testing.T, js jetstream.JetStream, name string) [][]byte {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m.Data)
	}
	return out
}

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
