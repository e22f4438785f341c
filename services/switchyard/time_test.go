package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/cancel"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/pkg/schedule"
)

// cli runs the switchyard command against b's server.
func (b *statusBundle) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args[:len(args):len(args)], "--server", b.url)
	err := run(context.Background(), args, &out, &errOut)
	if err != nil {
		t.Logf("switchyard %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), err
}

func TestScheduleCommands(t *testing.T) {
	b := setupStatus(t)
	tpl := `{"provider":"acme","task":"sync","request":{"method":"POST","path":"/v1/sync","body":{"full":true}},"expires_in":"2h"}`
	out, err := b.cli(t, "schedule", "add", "nightly", "--cron", "0 4 * * *", "--timezone", "Europe/Paris", "--lane", "bulk", "--job", tpl)
	if err != nil || !strings.Contains(out, "stored: 0 0 4 * * * (Europe/Paris), acme.sync on bulk") {
		t.Fatalf("add: %q, %v", out, err)
	}
	if out, err := b.cli(t, "schedule", "add", "nightly", "--cron", "0 4 * * *", "--timezone", "Europe/Paris", "--lane", "bulk", "--job", tpl); err != nil || !strings.Contains(out, "unchanged") {
		t.Errorf("adding it again: %q, %v; want unchanged", out, err)
	}
	file := filepath.Join(t.TempDir(), "batch.ndjson")
	if err := os.WriteFile(file, []byte(tpl+"\n"+strings.Replace(tpl, "sync", "audit", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli(t, "schedule", "add", "hourly", "--every", "1h", "--jobs", file); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli(t, "schedule", "add", "bad", "--every", "1h", "--job", `{"provider":"acme","task":"x","request":{"path":"/x"},"typo":1}`); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Errorf("a template with an unknown field: %v, want an error naming it", err)
	}
	out, err = b.cli(t, "schedule", "ls")
	if err != nil || !strings.Contains(out, "nightly") || !strings.Contains(out, "batch of 2 on live") || !strings.Contains(out, "@every 1h0m0s") {
		t.Fatalf("ls: %q, %v", out, err)
	}
	out, err = b.cli(t, "schedule", "ls", "--json")
	var listed []schedule.Stored
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 || listed[1].Job.ExpiresIn != 2*time.Hour || listed[1].UpdatedAt.IsZero() {
		t.Fatalf("ls --json: %q, %v", out, err)
	}
	if _, err := b.cli(t, "schedule", "rm", "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli(t, "schedule", "rm", "nightly"); err == nil {
		t.Error("removing a missing schedule succeeded")
	}
}

func TestCancelCommand(t *testing.T) {
	b := setupStatus(t)
	p, err := producer.New(b.js.Conn())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Enqueue(t.Context(), producer.NewJob("acme", "charge", "POST", "/charge"), producer.ID("inv:981"), producer.Delay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	out, err := b.cli(t, "cancel", "--job", "inv:981", "--reason", "customer asked")
	if err != nil || !strings.Contains(out, "1 delayed job schedule(s) deleted") {
		t.Fatalf("cancel --job: %q, %v", out, err)
	}
	if out, err := b.cli(t, "cancel", "--batch", "nightly-2026-11-21"); err != nil || !strings.Contains(out, "cancelled batch nightly-2026-11-21") {
		t.Fatalf("cancel --batch: %q, %v", out, err)
	}
	if _, err := b.cli(t, "cancel", "--job", "a", "--batch", "b"); err == nil {
		t.Error("--job and --batch together were accepted")
	}
	kv, err := b.js.KeyValue(t.Context(), cancel.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{cancel.JobKey("inv:981"), cancel.BatchKey("nightly-2026-11-21")} {
		if _, err := kv.Get(t.Context(), key); err != nil {
			t.Errorf("tombstone %s: %v", key, err)
		}
	}
	s, _ := b.js.Stream(t.Context(), "JOBS")
	if info, _ := s.Info(t.Context(), jetstream.WithSubjectFilter("sched.>")); len(info.State.Subjects) != 0 {
		t.Errorf("schedules left: %v", info.State.Subjects)
	}
}
