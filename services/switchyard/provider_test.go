package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// provider runs `switchyard provider args...` and returns its output.
func (b *statusBundle) provider(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(append([]string{"provider"}, args...), "--server", b.url, "--log-level", "error")
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestProviderPauseAndResume(t *testing.T) {
	b := setupStatus(t)
	b.startWorker(t) // creates acme's work consumers

	out, err := b.provider(t, "pause", "acme", "--lane", "bulk", "--for", "30m")
	if err != nil {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "work_acme_bulk: paused until ") || strings.Contains(out, "work_acme_live") {
		t.Fatalf("pause --lane bulk printed %q", out)
	}
	ci, err := b.js.Consumer(context.Background(), streams.Jobs, job.WorkConsumer("acme", job.LaneBulk))
	if err != nil {
		t.Fatal(err)
	}
	if info := ci.CachedInfo(); !info.Paused || info.PauseRemaining < 29*time.Minute {
		t.Fatalf("consumer paused %v for %s more, want 30m", info.Paused, info.PauseRemaining)
	}
	r := b.statusJSON(t)
	bulk, live := findRow(r, "acme", "bulk"), findRow(r, "acme", "live")
	if bulk == nil || live == nil {
		t.Fatalf("status rows: %+v", r.Rows)
	}
	if d := time.Until(bulk.ConsumerPausedUntil); d < 29*time.Minute || d > 31*time.Minute || !live.ConsumerPausedUntil.IsZero() {
		t.Fatalf("status: bulk paused until %s, live until %s; want bulk only, for 30m", bulk.ConsumerPausedUntil, live.ConsumerPausedUntil)
	}
	text := b.status(t)
	if !strings.Contains(text, "consumer 30m0s more") && !strings.Contains(text, "consumer 29m59s more") {
		t.Errorf("status does not show the consumer pause:\n%s", text)
	}

	// Without --lane: both lanes; resume both.
	if out, err := b.provider(t, "pause", "--for", "1h", "acme"); err != nil || strings.Count(out, "paused until") != 2 {
		t.Fatalf("pause without --lane: %v\n%s", err, out)
	}
	out, err = b.provider(t, "resume", "acme")
	if err != nil || out != "work_acme_live: resumed\nwork_acme_bulk: resumed\n" {
		t.Fatalf("resume: %v\n%q", err, out)
	}
	r = b.statusJSON(t)
	for _, row := range r.Rows {
		if !row.ConsumerPausedUntil.IsZero() {
			t.Fatalf("after resume, %s/%s still paused until %s", row.Provider, row.Lane, row.ConsumerPausedUntil)
		}
	}

	// A pause with an end resumes by itself.
	if out, err := b.provider(t, "pause", "acme", "--lane", "live", "--for", "1s"); err != nil {
		t.Fatalf("pause --for 1s: %v\n%s", err, out)
	}
	waitStatus(t, 5*time.Second, func() (bool, string) {
		row := findRow(b.statusJSON(t), "acme", "live")
		return row != nil && row.ConsumerPausedUntil.IsZero(), "acme/live still paused"
	})
}

func TestProviderPauseErrors(t *testing.T) {
	b := setupStatus(t)
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no duration", []string{"pause", "acme"}, "--for"},
		{"too long", []string{"pause", "acme", "--for", "1000h"}, "--for"},
		{"bad lane", []string{"pause", "acme", "--for", "1m", "--lane", "slow"}, "want live or bulk"},
		{"bad name", []string{"resume", "Acme!"}, "provider name"},
		{"no consumer", []string{"pause", "nobody", "--for", "1m"}, "no worker has served it yet"},
		{"no consumer for the lane", []string{"resume", "nobody", "--lane", "bulk"}, "no worker has served nobody's bulk lane yet"},
		{"unknown verb", []string{"stop", "acme"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := b.provider(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q\n%s", err, tc.wantErr, out)
			}
		})
	}
}
