package producer

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// NewJob returns a job for provider's task that makes the call method
// path, ready for options such as Body, Lane or Batch. Its id is left
// empty, so Enqueue or Add generates one.
func NewJob(provider, task, method, path string) *job.Job {
	return &job.Job{V: job.Version, Provider: provider, Task: task, Request: job.Request{Method: method, Path: path}}
}

// JobOption sets something on a job before it is validated and sent. The
// job passed to Enqueue or Add is never modified: options apply to a copy.
type JobOption func(*draft)

// draft is a job being prepared: a shallow copy of the caller's job, with
// the maps it shares with the caller cloned before an option writes them.
type draft struct {
	job      job.Job
	lane     job.Lane
	now      func() time.Time
	content  bool   // derive the id from the content when it is empty
	prefix   string // prepended to a content id
	problems []*job.FieldError
	ownMaps  bool
	ref      any
}

func (d *draft) fail(field, reason string) {
	d.problems = append(d.problems, &job.FieldError{Field: field, Reason: reason})
}

func (d *draft) cloneMaps() {
	if !d.ownMaps {
		d.job.Request.Headers = maps.Clone(d.job.Request.Headers)
		d.job.Request.Query = maps.Clone(d.job.Request.Query)
		d.ownMaps = true
	}
}

// ID sets the job id: 1–128 characters of [A-Za-z0-9._:-]. Enqueueing two
// jobs with the same id within the stream's dedup window stores only the
// first.
func ID(id string) JobOption { return func(d *draft) { d.job.ID = id } }

// IDFromContent derives the id of a job that has none from its content
// instead of generating a random one: prefix followed by the UUIDv5 (in
// ContentNamespace) of the envelope with a placeholder id. The same job
// enqueued twice, by a retry or a re-run of the same input, then has the
// same id, and the stream keeps only one within its dedup window; two jobs
// that differ in any field of the envelope have different ids. The lane is
// not part of the envelope, so it does not count.
func IDFromContent(prefix string) JobOption {
	return func(d *draft) { d.content, d.prefix = true, prefix }
}

// ContentNamespace is the UUID namespace of the ids IDFromContent makes.
var ContentNamespace = uuid.MustParse("6a1c0f52-8e3b-4d7a-9c25-1f4e8b7d3a60")

// Ref attaches v to the job's Result (Result.Ref), for the caller to tie
// an outcome to its own records: a line number, a row id. It is not sent.
func Ref(v any) JobOption { return func(d *draft) { d.ref = v } }

// Lane puts the job on lane l. Default job.LaneLive.
func Lane(l job.Lane) JobOption { return func(d *draft) { d.lane = l } }

// Batch sets the job's batch, which groups jobs for tracking.
func Batch(name string) JobOption { return func(d *draft) { d.job.Batch = name } }

// MaxAttempts overrides the provider's number of attempts for this job.
func MaxAttempts(n int) JobOption { return func(d *draft) { d.job.MaxAttempts = n } }

// NotBefore keeps the job from being called before t: a job due later is
// stored as a schedule that the server publishes at t (see the package
// doc).
func NotBefore(t time.Time) JobOption {
	return func(d *draft) { t := t.UTC(); d.job.NotBefore = &t }
}

// Delay keeps the job from being called for d from now (not_before).
func Delay(delay time.Duration) JobOption {
	return func(d *draft) { t := d.now().Add(delay).UTC(); d.job.NotBefore = &t }
}

// ExpiresAt gives up on the job if it has not been called by t: it is
// recorded as expired instead.
func ExpiresAt(t time.Time) JobOption {
	return func(d *draft) { t := t.UTC(); d.job.ExpiresAt = &t }
}

// ExpiresIn gives up on the job if it has not been called within ttl from
// now.
func ExpiresIn(ttl time.Duration) JobOption {
	return func(d *draft) { t := d.now().Add(ttl).UTC(); d.job.ExpiresAt = &t }
}

// Meta sets the job's meta, echoed into every result, to v marshalled as
// JSON; it must be an object (a map, a struct, or a json.RawMessage
// holding one).
func Meta(v any) JobOption {
	return func(d *draft) {
		b, err := json.Marshal(v)
		if err != nil {
			d.fail("meta", "cannot be marshalled as JSON: "+err.Error())
			return
		}
		d.job.Meta = b
	}
}

// Body sets the request body to v marshalled as JSON (a json.RawMessage is
// used as it is). For a body that is not JSON, set Request.BodyBase64.
func Body(v any) JobOption {
	return func(d *draft) {
		b, err := json.Marshal(v)
		if err != nil {
			d.fail("request.body", "cannot be marshalled as JSON: "+err.Error())
			return
		}
		d.job.Request.Body = b
	}
}

// Header sets one request header.
func Header(name, value string) JobOption {
	return func(d *draft) {
		d.cloneMaps()
		if d.job.Request.Headers == nil {
			d.job.Request.Headers = map[string]string{}
		}
		d.job.Request.Headers[name] = value
	}
}

// Query sets one query parameter to values.
func Query(name string, values ...string) JobOption {
	return func(d *draft) {
		d.cloneMaps()
		if d.job.Request.Query == nil {
			d.job.Request.Query = job.Query{}
		}
		d.job.Request.Query[name] = values
	}
}

var sha1Pool = sync.Pool{New: func() any { return sha1.New() }}

// contentUUID is the UUIDv5 of data in ContentNamespace, as
// uuid.NewSHA1(ContentNamespace, data) computes it, without its
// allocations: a bulk load makes one per job.
func contentUUID(data []byte) uuid.UUID {
	h := sha1Pool.Get().(hash.Hash)
	h.Reset()
	h.Write(ContentNamespace[:])
	h.Write(data)
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	sha1Pool.Put(h)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// contentPlaceholder stands for a content id while the envelope is
// validated, hashed and marshalled; it has the length of every UUID.
const contentPlaceholder = "00000000-0000-0000-0000-000000000000"

// headerOverhead is what a message's header block adds to its size besides
// the id, with room to spare: "NATS/1.0\r\nNats-Msg-Id: …\r\n\r\n".
const headerOverhead = 64

// prepared is a job validated and encoded as the message to publish.
type prepared struct {
	msg *nats.Msg
	id  string
	ref any
}

// prepare applies the options to a copy of j, fills in the version and the
// id, validates the result and encodes it as the message to publish. It
// returns the id even when the job is invalid, if it is known.
func (p *Producer) prepare(j *job.Job, defaults, opts []JobOption) (prepared, error) {
	if j == nil {
		return prepared{}, &job.FieldError{Field: "envelope", Reason: "no job given (nil)"}
	}
	d := draft{job: *j, lane: job.LaneLive, now: p.cfg.now}
	for _, o := range defaults {
		o(&d)
	}
	for _, o := range opts {
		o(&d)
	}
	if d.job.V == 0 {
		d.job.V = job.Version
	}
	content := false
	if d.job.ID == "" {
		if d.content {
			content = true
			d.job.ID = d.prefix + contentPlaceholder
		} else {
			id, err := uuid.NewV7()
			if err != nil {
				return prepared{}, fmt.Errorf("generate job id: %w", err)
			}
			d.job.ID = id.String()
		}
	}
	problems := d.problems
	if !d.lane.Valid() {
		problems = append(problems, &job.FieldError{Field: "lane", Reason: fmt.Sprintf("%q is not a lane (want live or bulk)", d.lane)})
	}
	if err := d.job.Validate(); err != nil {
		if ve, ok := errors.AsType[*job.ValidationError](err); ok {
			problems = append(problems, ve.Problems...)
		} else {
			return prepared{}, err
		}
	}
	id := d.job.ID
	if content {
		id = "" // not known until the envelope is
	}
	if len(problems) > 0 {
		return prepared{id: id}, &job.ValidationError{Problems: problems}
	}
	// goccy/go-json writes the same JSON as encoding/json for a Job, about
	// three times faster; a bulk load spends much of its time here.
	data, err := gojson.Marshal(&d.job)
	if err != nil {
		return prepared{id: id}, &job.FieldError{Field: "envelope", Reason: "cannot be marshalled: " + err.Error()}
	}
	if content {
		id = d.prefix + contentUUID(data).String()
		// The id is the second field, after the version: the first
		// "id" key is it, whatever the body holds.
		at := bytes.Index(data, []byte(`"id":"`)) + len(`"id":"`)
		if at < len(`"id":"`) || len(data) < at+len(id) || string(data[at:at+len(id)]) != d.job.ID {
			return prepared{}, fmt.Errorf("content id: id field not found in %.80s", data)
		}
		copy(data[at:], id)
	}
	msg := &nats.Msg{
		Subject: job.Subject(d.job.Provider, d.lane, d.job.Task),
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
	size := int64(len(data) + len(id) + headerOverhead)
	if nb := d.job.NotBefore; nb != nil && nb.After(d.now()) {
		d.job.ID = id
		delay(msg, d.lane, &d.job)
		size += int64(len(msg.Subject) + len(id) + scheduleOverhead)
	}
	if limit := p.nc.MaxPayload(); limit > 0 && size > limit {
		return prepared{id: id}, fmt.Errorf("%w: %d bytes, more than the server's max_payload of %d", ErrTooLarge, size, limit)
	}
	return prepared{msg: msg, id: id, ref: d.ref}, nil
}

// scheduleOverhead bounds what a delayed job's schedule headers add
// besides the job's subject and id.
const scheduleOverhead = 160

// delay turns msg, job j for lane, into a NATS message schedule that the
// server holds and publishes on the job's subject at not_before, so that
// no worker holds it or spends deliveries on it meanwhile. The schedule's
// subject names the job (job.DelaySubject): publishing it again replaces
// it, and cancelling purges it. Its Nats-Msg-Id keeps retries of the
// publish from storing it twice; the server drops that header when it
// fires, so the job id also travels in job.HeaderJobID.
//
// Nats-Schedule is written by hand: jetstream.WithScheduleAt rounds the
// time down to whole seconds, and "@at" takes RFC 3339 with fractions.
func delay(msg *nats.Msg, lane job.Lane, j *job.Job) {
	msg.Header.Set("Nats-Schedule-Target", msg.Subject)
	msg.Header.Set("Nats-Schedule", "@at "+j.NotBefore.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(job.HeaderJobID, j.ID)
	msg.Subject = job.DelaySubject(lane, j)
}
