package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/shlex"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// guideCommands returns every `nats` command in the sh blocks of
// docs/operations.md, in order, split into arguments.
func guideCommands(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in && strings.HasPrefix(l, "nats "):
			args, err := shlex.Split(l)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			cmds = append(cmds, args[1:])
		}
	}
	return cmds
}

// TestOperationsGuideCommands runs every nats command of
// docs/operations.md, in order, with the module's nats CLI against a
// server holding Switchyard's streams, consumers, buckets and a few
// messages of each kind, so a flag or argument the CLI does not have, or a
// name Switchyard does not use, fails here.
func TestOperationsGuideCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the nats CLI")
	}
	cmds := guideCommands(t)
	if len(cmds) < 20 {
		t.Fatalf("found only %d nats commands in docs/operations.md", len(cmds))
	}
	// `go tool -n` builds the module's nats CLI into the build cache (once)
	// and prints where it is.
	out, err := exec.Command("go", "tool", "-n", "nats").Output()
	if err != nil {
		t.Fatalf("build the nats CLI: %v", err)
	}
	bin := strings.TrimSpace(string(out))

	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := t.Context()
	logger := natstest.Logger(t)
	srv.ApplyStreams(t, js)
	for _, lane := range []string{"live", "bulk"} {
		if _, err := natsx.ApplyConsumer(ctx, js, streams.Jobs, streams.WorkConsumer("acme", lane), nil, logger); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(subject, data string) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
	publish("dlq.acme.create_invoice", `{"v":1,"job_id":"j1","provider":"acme","task":"create_invoice","reason":"http_5xx","error":"503","attempts":5,"subject":"jobs.acme.live.create_invoice","job":{}}`)
	publish("jobs.acme.live.create_invoice", `{"v":1,"id":"j2"}`)
	publish("jobs.acme.bulk.create_invoice", `{"v":1,"id":"j3"}`)
	publish("results.acme.create_invoice", `{"v":1,"job_id":"j2","status":"succeeded"}`)
	limits, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LIMITS"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := batch.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Declare(ctx, "nightly-2026-11-21", 500000); err != nil {
		t.Fatal(err)
	}

	// Live traffic for the commands that wait for it (nats sub --count,
	// kv watch --updates).
	live, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-live.Done():
				return
			case <-tick.C:
			}
			_, _ = js.Publish(live, "results.acme.create_invoice", []byte(`{"status":"succeeded"}`))
			_, _ = js.Publish(live, "events.batch.b1.completed", []byte(`{}`))
			_, _ = limits.Put(live, "pause.acme", []byte(`{}`))
		}
	}()

	dir := t.TempDir()
	for _, args := range cmds {
		if args[0] == "context" {
			continue // the test passes the server itself
		}
		name := strings.Join(args, " ")
		argv := append([]string{bin, "--server", srv.URL(), "--no-context"}, args...)
		// Watches and views run until stopped (a view waits at its pager's
		// prompt): they pass once they show what they are for. A view
		// needs a terminal, which script(1) gives it.
		want := ""
		switch {
		case slices.Contains(args, "watch"):
			want = "pause.acme"
		case slices.Contains(args, "view"):
			want = "Subject: "
			script, err := exec.LookPath("script")
			if err != nil {
				t.Logf("nats %s: not run, no script(1) for a terminal", name)
				continue
			}
			quoted := make([]string, len(argv))
			for i, a := range argv {
				quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			}
			argv = []string{script, "-qec", strings.Join(quoted, " "), "/dev/null"}
		}
		began := time.Now()
		out, err := runUntil(ctx, dir, argv, want)
		switch {
		case err != nil:
			t.Errorf("nats %s: %v\n%s", name, err, out)
		case strings.Contains(out, "nats: error"):
			t.Errorf("nats %s:\n%s", name, out)
		default:
			t.Logf("nats %s: ok (%d bytes of output, %s)", name, len(out), time.Since(began).Round(time.Millisecond))
		}
	}
}

// runUntil runs argv in dir until it exits, or, when want is set, until
// its output contains want (then it is stopped, and that is success).
func runUntil(ctx context.Context, dir string, argv []string, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out := &watchWriter{want: want, found: make(chan struct{})}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if want != "" && err == nil {
			err = fmt.Errorf("exited without showing %q", want)
		}
		return out.String(), err
	case <-out.found:
		cancel()
		<-done
		return out.String(), nil
	case <-ctx.Done():
		<-done
		return out.String(), fmt.Errorf("still running after 20s")
	}
}

// watchWriter collects output and closes found once it holds want.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	seen  bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && !w.seen && strings.Contains(w.buf.String(), w.want) {
		w.seen = true
		close(w.found)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
