// Package streams holds the JetStream stream and consumer definitions that
// every Switchyard service applies at start; the JSON Schemas of the
// envelopes (*.schema.json) sit beside them for producers in any language.
// The JSON files are the source of truth: they are in the format
// `nats stream add --config` and `nats consumer add --config` accept, so an
// operator can create or inspect the same objects with the nats CLI.
//
// consumer-work.json is a template: PROVIDER and LANE stand for a provider
// name and a lane (live or bulk). WorkConsumer fills them in.
//
// JOBS also holds NATS message schedules on sched.> (package job names the
// subjects): delayed jobs, periodic schedules, and the firings of those,
// which consumer-schedules.json reads. No consumer may cover the schedules
// themselves, or it would consume them; and the server refuses schedules
// on a stream with discard "new", so JOBS discards "old" and must carry no
// max_msgs, max_bytes or max_age (bound it with JetStream storage limits,
// which refuse new messages instead).
package streams

import (
	"embed"
	"strings"
)

//go:embed jobs.json results.json dlq.json events.json consumer-*.json
var files embed.FS

// Names of the streams and of the recorder's consumer.
const (
	Jobs     = "JOBS"
	Results  = "RESULTS"
	DLQ      = "DLQ"
	Events   = "EVENTS"
	Recorder = "recorder"
	// Schedules is the consumer on JOBS, filtered to sched.fire.>, through
	// which workers turn the firings of periodic schedules into jobs.
	Schedules = "schedules"
)

var streamFiles = map[string]string{Jobs: "jobs.json", Results: "results.json", DLQ: "dlq.json", Events: "events.json"}

// All names every stream, in the order services apply them.
var All = []string{Jobs, Results, DLQ, Events}

// Stream returns the definition of one stream: Jobs, Results, DLQ or Events.
func Stream(name string) []byte { return mustRead(streamFiles[name]) }

// RecorderConsumer returns the definition of the recorder's durable consumer
// on RESULTS.
func RecorderConsumer() []byte { return mustRead("consumer-recorder.json") }

// SchedulesConsumer returns the definition of the durable consumer that
// workers share to expand the firings of periodic schedules.
func SchedulesConsumer() []byte { return mustRead("consumer-schedules.json") }

// WorkConsumer returns the definition of the durable consumer that workers
// share for one lane of one provider on JOBS. provider and lane must be valid
// subject tokens (job.ValidToken, job.Lane.Valid); they are substituted
// as text.
func WorkConsumer(provider, lane string) []byte {
	s := string(mustRead("consumer-work.json"))
	return []byte(strings.NewReplacer("PROVIDER", provider, "LANE", lane).Replace(s))
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("streams: " + name + " is not embedded: " + err.Error())
	}
	return b
}
