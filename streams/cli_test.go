package streams_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// TestDefinitionsAcceptedByNatsCLI creates every stream and a work
// consumer with the real nats CLI (the module's `go tool nats`) from the
// files in this folder, then checks that the services, applying the same
// definitions, find nothing to change.
func TestDefinitionsAcceptedByNatsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the nats CLI")
	}
	bin := filepath.Join(t.TempDir(), "nats")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/natscli/nats")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the nats CLI: %v\n%s", err, out)
	}
	srv := natstest.Start(t)
	home := t.TempDir()
	nats := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", srv.URL()}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nats %v: %v\n%s", args, err, out)
		}
	}
	for _, file := range []string{"jobs.json", "results.json", "dlq.json", "events.json"} {
		nats("stream", "add", "--config", file)
	}
	consumer := filepath.Join(t.TempDir(), "work_acme_live.json")
	if err := os.WriteFile(consumer, streams.WorkConsumer("acme", "live"), 0o600); err != nil {
		t.Fatal(err)
	}
	nats("consumer", "add", streams.Jobs, "--config", consumer)
	recorder := filepath.Join(t.TempDir(), "recorder.json")
	if err := os.WriteFile(recorder, streams.RecorderConsumer(), 0o600); err != nil {
		t.Fatal(err)
	}
	nats("consumer", "add", streams.Results, "--config", recorder)
	nats("consumer", "add", streams.Jobs, "--config", "consumer-schedules.json")

	_, js := srv.Connect(t)
	ctx := context.Background()
	for _, name := range streams.All {
		before := streamConfig(t, js, name)
		if _, err := natsx.ApplyStream(ctx, js, streams.Stream(name), nil, natstest.Logger(t)); err != nil {
			t.Fatalf("apply %s over the CLI's: %v", name, err)
		}
		if after := streamConfig(t, js, name); after.Retention != before.Retention || after.MaxAge != before.MaxAge ||
			!slices.Equal(after.Subjects, before.Subjects) || after.AllowMsgSchedules != before.AllowMsgSchedules {
			t.Errorf("%s changed when applied over the CLI's stream", name)
		}
	}
	if !streamConfig(t, js, streams.Jobs).AllowMsgSchedules {
		t.Error("the CLI made JOBS without message schedules")
	}
	c, err := natsx.ApplyConsumer(ctx, js, streams.Jobs, streams.WorkConsumer("acme", "live"), nil, natstest.Logger(t))
	if err != nil {
		t.Fatalf("apply work consumer over the CLI's: %v", err)
	}
	if got := c.CachedInfo().Config.FilterSubject; got != "jobs.acme.live.>" {
		t.Errorf("filter subject = %q", got)
	}
	if _, err := natsx.ApplyConsumer(ctx, js, streams.Results, streams.RecorderConsumer(), nil, natstest.Logger(t)); err != nil {
		t.Fatalf("apply recorder consumer over the CLI's: %v", err)
	}
	// The README's recipe for a delayed job: a schedule published with
	// plain nats pub fires on the job's subject at its time.
	at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	nats("pub", "sched.job.acme.live.charge.~.cli-1",
		"-H", "Nats-Msg-Id:cli-1", "-H", "Nats-Schedule:@at "+at, "-H", "Nats-Schedule-Target:jobs.acme.live.charge",
		`{"v":1,"id":"cli-1","provider":"acme","task":"charge","request":{"path":"/charge"},"not_before":"`+at+`"}`)
	s, err := js.Stream(ctx, streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := s.GetLastMsgForSubject(ctx, "jobs.acme.live.charge")
		if err == nil {
			if m.Header.Get("Nats-Scheduler") != "sched.job.acme.live.charge.~.cli-1" {
				t.Errorf("fired job's headers %v", m.Header)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delayed job published with nats pub never fired: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var logs strings.Builder
	if _, err := natsx.ApplyConsumer(ctx, js, streams.Jobs, streams.SchedulesConsumer(), nil, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("apply schedules consumer over the CLI's: %v", err)
	}
	if logs.Len() > 0 {
		t.Errorf("applying the schedules consumer over the CLI's changed it:\n%s", logs.String())
	}
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}
