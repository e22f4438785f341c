package cancel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// Bucket is the KV bucket of tombstones.
const Bucket = "cancels"

// TTL is how long a tombstone lasts.
const TTL = 7 * 24 * time.Hour

// Tombstone is the value of a key in the bucket: when and why.
type Tombstone struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// JobKey is the key of a job's tombstone. KV keys may not hold ':', which
// job ids may; '=' takes its place (no id holds '=').
func JobKey(id string) string { return "job." + strings.ReplaceAll(id, ":", "=") }

// BatchKey is the key of a batch's tombstone.
func BatchKey(batch string) string { return "batch." + batch }

// Registry writes tombstones.
type Registry struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// Open returns a registry on the bucket, creating it if needed.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := bucket(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Registry{js: js, kv: kv}, nil
}

// bucket binds the bucket, or creates it: binding first means a client
// allowed only to use it never needs the right to create it.
func bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("cancel: bind bucket %s: %w", Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Switchyard cancellations: job.<id> and batch.<id> tombstones workers check before each call",
		History:     1,
		TTL:         TTL,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, Bucket) // created by another client meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("cancel: create bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Job cancels the job with this id, and reports how many delayed-job
// schedules it removed (0 or 1). The tombstone is written before the
// schedule is purged, so a schedule firing meanwhile is still caught by
// the worker.
func (r *Registry) Job(ctx context.Context, id, reason string) (int, error) {
	if !job.ValidID(id) {
		return 0, fmt.Errorf("cancel: %q is not a job id (1-128 of [A-Za-z0-9._:-])", id)
	}
	if err := r.put(ctx, JobKey(id), reason); err != nil {
		return 0, err
	}
	return r.purge(ctx, job.DelayJobFilter(id))
}

// Batch cancels every job of batch that has not started its call, and
// reports how many delayed-job schedules it removed.
func (r *Registry) Batch(ctx context.Context, batch, reason string) (int, error) {
	if !job.ValidBatch(batch) {
		return 0, fmt.Errorf("cancel: %q is not a batch id (1-128 of [A-Za-z0-9_-])", batch)
	}
	if err := r.put(ctx, BatchKey(batch), reason); err != nil {
		return 0, err
	}
	return r.purge(ctx, job.DelayBatchFilter(batch))
}

func (r *Registry) put(ctx context.Context, key, reason string) error {
	b, _ := json.Marshal(Tombstone{At: time.Now().UTC(), Reason: reason})
	if _, err := r.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("cancel: write %s: %w", key, err)
	}
	return nil
}

// purge removes the schedules on filter from JOBS and counts them.
func (r *Registry) purge(ctx context.Context, filter string) (int, error) {
	s, err := r.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return 0, fmt.Errorf("cancel: look up stream %s: %w", streams.Jobs, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("cancel: count schedules on %s: %w", filter, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		return 0, fmt.Errorf("cancel: purge schedules on %s: %w", filter, err)
	}
	return n, nil
}
