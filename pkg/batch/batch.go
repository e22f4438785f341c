// Package batch declares batches of jobs and records their completion.
//
// A producer that enqueues many jobs under one batch id declares the batch
// with the number of jobs it holds. The declaration lives in the KV bucket
// "batches", one key per batch id, so any client (and `nats kv get batches
// <id>`) can read it. The recorder watches the bucket; once every job of a
// declared batch has a final outcome in the results store, it publishes one
// Completed event on events.batch.<id>.completed (stream EVENTS, with the
// message id "batch:<id>:completed", so two recorder replicas publish it
// once) and then marks the declaration completed.
//
// The bucket equals `nats kv add batches --history 1 --ttl 720h`.
package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Bucket is the KV bucket of declarations.
const Bucket = "batches"

// TTL is how long a declaration is kept after its last change: long enough
// for any batch to drain, short enough that the bucket does not grow
// forever.
const TTL = 30 * 24 * time.Hour

// MaxExpected bounds a declared size.
const MaxExpected = 100_000_000

// ErrConflict is matched by the error of Declare when the batch is
// already declared with a different size.
var ErrConflict = errors.New("batch: already declared with another size")

// ErrNotDeclared is matched by the error of Get for an unknown batch.
var ErrNotDeclared = errors.New("batch: not declared")

// Declaration is the value stored under a batch id.
type Declaration struct {
	ID         string    `json:"id"`
	Expected   int       `json:"expected"`
	DeclaredAt time.Time `json:"declared_at"`
	// CompletedAt and Counts are set by the recorder once every job has a
	// final outcome; Counts is the jobs per status then.
	CompletedAt *time.Time         `json:"completed_at,omitempty"`
	Counts      map[job.Status]int `json:"counts,omitempty"`
}

// Completed is the event published on EventSubject(id).
type Completed struct {
	V           int                `json:"v"`
	Batch       string             `json:"batch"`
	Expected    int                `json:"expected"`
	Counts      map[job.Status]int `json:"counts"`
	DeclaredAt  time.Time          `json:"declared_at"`
	CompletedAt time.Time          `json:"completed_at"`
}

// EventSubject is where the completion of batch id is published.
func EventSubject(id string) string { return "events.batch." + id + ".completed" }

// EventMsgID is the Nats-Msg-Id of that event.
func EventMsgID(id string) string { return "batch:" + id + ":completed" }

// Registry reads and writes declarations.
type Registry struct {
	kv jetstream.KeyValue
}

// Open returns a registry on the bucket, creating it if needed. Binding
// first means a client allowed only to use the bucket (a producer) never
// needs the right to create it.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err == nil {
		return &Registry{kv: kv}, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("batch: bind bucket %s: %w", Bucket, err)
	}
	kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Switchyard batch declarations: expected job count, and completion once every job is final",
		History:     1,
		TTL:         TTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("batch: open bucket %s: %w", Bucket, err)
	}
	return &Registry{kv: kv}, nil
}

// Declare records that batch id holds expected jobs. Declaring the same
// size again is a no-op, so a producer that restarts may declare again;
// another size fails with ErrConflict.
func (r *Registry) Declare(ctx context.Context, id string, expected int) error {
	if !job.ValidBatch(id) {
		return invalidID(id)
	}
	if expected < 1 || expected > MaxExpected {
		return fmt.Errorf("batch %s: expected %d must be between 1 and %d", id, expected, MaxExpected)
	}
	d := Declaration{ID: id, Expected: expected, DeclaredAt: time.Now().UTC()}
	b, _ := json.Marshal(d)
	_, err := r.kv.Create(ctx, id, b)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("batch %s: declare: %w", id, err)
	}
	have, _, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if have.Expected != expected {
		return fmt.Errorf("batch %s: declared with %d jobs, now %d: %w", id, have.Expected, expected, ErrConflict)
	}
	return nil
}

// Get returns the declaration of batch id and its revision.
func (r *Registry) Get(ctx context.Context, id string) (*Declaration, uint64, error) {
	if !job.ValidBatch(id) {
		return nil, 0, invalidID(id)
	}
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("batch %s: %w", id, ErrNotDeclared)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("batch %s: %w", id, err)
	}
	d, err := decode(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("batch %s: %w", id, err)
	}
	return d, e.Revision(), nil
}

// Wait returns the declaration of batch id once the recorder has marked it
// completed, or the error of ctx. It watches the key, so it returns as
// soon as the mark is written.
func (r *Registry) Wait(ctx context.Context, id string) (*Declaration, error) {
	if !job.ValidBatch(id) {
		return nil, invalidID(id)
	}
	w, err := r.kv.Watch(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("batch %s: watch: %w", id, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("batch %s: watch ended", id)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			d, err := decode(e.Value())
			if err != nil {
				return nil, fmt.Errorf("batch %s: %w", id, err)
			}
			if d.CompletedAt != nil {
				return d, nil
			}
		}
	}
}

// complete marks d completed if the stored revision is still rev; a
// revision mismatch means another recorder got there first, which is fine.
func (r *Registry) complete(ctx context.Context, d *Declaration, rev uint64) error {
	b, _ := json.Marshal(d)
	_, err := r.kv.Update(ctx, d.ID, b, rev)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("batch %s: mark completed: %w", d.ID, err)
	}
	return nil
}

func decode(b []byte) (*Declaration, error) {
	var d Declaration
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("unreadable declaration: %w", err)
	}
	return &d, nil
}

func invalidID(id string) error {
	return fmt.Errorf("batch: id %q must be 1–128 characters of [A-Za-z0-9_-]", id)
}
