package recorder_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/recorder/storetest"
)

// TestPrunerRetention records an old and a new generation of jobs and
// prunes as if a day had passed since the old one: the old rows go, in
// more than one chunk; the new ones stay, their bodies cleared only when
// the body age says so.
func TestPrunerRetention(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "results.db"))
	const old, fresh = 2500, 300 // old spans three chunks
	record := func(prefix string, n int) {
		var batch []job.Result
		for i := range n {
			batch = append(batch, storetest.Result(fmt.Sprintf("%s-%05d", prefix, i), 1, job.StatusSucceeded))
		}
		if err := s.Record(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	record("old", old)
	cut := time.Now()
	for {
		// UpdatedAt comes from the store's clock; make sure the fresh rows
		// are stamped after cut.
		if time.Now().After(cut) {
			break
		}
	}
	record("new", fresh)

	p := recorder.NewPruner(s, recorder.RetentionConfig{MaxAge: 24 * time.Hour, BodyMaxAge: time.Hour}, slog.New(slog.DiscardHandler))
	got, err := p.PruneAt(ctx, cut.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Bodies older than cut+23h: every row left, i.e. the fresh ones (the
	// old ones were deleted first or have their bodies counted too; both
	// are allowed, so check the rows rather than the count).
	if got.Jobs != old {
		t.Errorf("pruned %d jobs, want %d", got.Jobs, old)
	}
	for _, id := range []string{"old-00000", "old-02499"} {
		if _, err := s.Job(ctx, id); !errors.Is(err, recorder.ErrNotFound) {
			t.Errorf("Job(%s) after pruning: err = %v, want ErrNotFound", id, err)
		}
	}
	row, err := s.Job(ctx, "new-00000")
	if err != nil {
		t.Fatalf("a fresh job was pruned: %v", err)
	}
	if row.Response != nil {
		t.Errorf("fresh job's body older than body_max_age kept: %s", row.Response)
	}
	if len(row.AttemptRows) != 1 {
		t.Errorf("fresh job has %d attempt rows, want 1", len(row.AttemptRows))
	}

	// Pruning again finds nothing; a time before everything prunes nothing.
	again, err := p.PruneAt(ctx, cut.Add(24*time.Hour))
	if err != nil || again.Jobs != 0 {
		t.Errorf("second prune = %+v, %v; want no jobs", again, err)
	}
}

func TestPrunerDisabledByDefault(t *testing.T) {
	p := recorder.NewPruner(nil, recorder.RetentionConfig{}, slog.New(slog.DiscardHandler))
	if p.Enabled() {
		t.Fatal("zero retention must keep everything")
	}
	p.Start(context.Background()) // must not touch the nil store
	p.Stop()
}
