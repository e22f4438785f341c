package natsx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/streams"
)

// ErrConflict is matched by an error from ApplyStream or ApplyConsumer when
// the existing object differs from its definition in a way the server
// refused to change. The object is left as it was.
var ErrConflict = errors.New("existing config conflicts with its definition")

// Override sets one field of a definition, by its JSON name, before it is
// applied, such as {"num_replicas": 3} or {"ack_wait": 90e9}. Overridden
// fields count as declared.
type Override map[string]any

// Diff is one declared field whose existing value differs.
type Diff struct {
	Field      string
	Have, Want string
}

func (d Diff) String() string { return fmt.Sprintf("%s: have %s, want %s", d.Field, d.Have, d.Want) }

// ApplyStreams applies every stream of package streams with the given
// replica count.
func ApplyStreams(ctx context.Context, js jetstream.JetStream, replicas int, logger *slog.Logger) error {
	for _, name := range streams.All {
		s, err := ApplyStream(ctx, js, streams.Stream(name), Override{"num_replicas": replicas}, logger)
		if err != nil {
			return err
		}
		if name == streams.Jobs {
			warnJobLimits(s.CachedInfo().Config, logger)
		}
	}
	return nil
}

// warnJobLimits says when JOBS has a limit that would drop jobs. Message
// schedules (delayed and periodic jobs) need discard "old", which the
// server refuses to combine with "new"; with discard old, a max_msgs,
// max_bytes, max_age or max_msgs_per_subject limit deletes the oldest jobs
// instead of refusing new ones. Bound JOBS through JetStream's storage
// limits instead (max_file_store, account limits): those refuse new
// messages, which producers report as ErrStreamFull.
func warnJobLimits(c jetstream.StreamConfig, logger *slog.Logger) {
	if c.Discard != jetstream.DiscardOld {
		return
	}
	if c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxAge > 0 || c.MaxMsgsPerSubject > 0 {
		logger.Error("stream JOBS has a limit with discard old: when it is reached the oldest jobs are deleted, never called; remove max_msgs, max_bytes, max_age and max_msgs_per_subject and bound JetStream storage instead",
			"max_msgs", c.MaxMsgs, "max_bytes", c.MaxBytes, "max_age", c.MaxAge.String(), "max_msgs_per_subject", c.MaxMsgsPerSubject)
	}
}

// ApplyStream creates the stream that def (a stream config as JSON, the
// format of `nats stream add --config`) describes, or brings an existing one
// in line with it. Only the fields def declares are compared, so settings an
// operator added by hand survive. Declared fields that differ are updated
// where the server allows it and logged; where it refuses, the error wraps
// ErrConflict and names the fields.
func ApplyStream(ctx context.Context, js jetstream.JetStream, def []byte, over Override, logger *slog.Logger) (jetstream.Stream, error) {
	var want jetstream.StreamConfig
	keys, err := decodeDefinition(def, over, &want)
	if err != nil {
		return nil, fmt.Errorf("stream definition: %w", err)
	}
	for try := 0; ; try++ {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && try == 0 {
				continue // created by another replica meanwhile; compare with it
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", want.Name, err)
			}
			logger.Info("stream created", "stream", want.Name)
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", want.Name, err)
		}
		have := s.CachedInfo().Config
		if have.Replicas > want.Replicas {
			// An operator scaled it up (say R3 on a cluster); a service
			// started with the default of 1 must not scale it back down.
			want.Replicas = have.Replicas
		}
		diffs, merged, err := compare(keys, want, have)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", want.Name, err)
		}
		if len(diffs) == 0 {
			return s, nil
		}
		var update jetstream.StreamConfig
		if err := json.Unmarshal(merged, &update); err != nil {
			return nil, fmt.Errorf("stream %s: %w", want.Name, err)
		}
		s, err = js.UpdateStream(ctx, update)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w: %s; the server refused the update: %w", want.Name, ErrConflict, joinDiffs(diffs), err)
		}
		logger.Warn("stream updated to match its definition", "stream", want.Name, "changed", joinDiffs(diffs))
		return s, nil
	}
}

// ApplyConsumer is ApplyStream for a durable consumer on stream.
func ApplyConsumer(ctx context.Context, js jetstream.JetStream, stream string, def []byte, over Override, logger *slog.Logger) (jetstream.Consumer, error) {
	var want jetstream.ConsumerConfig
	keys, err := decodeDefinition(def, over, &want)
	if err != nil {
		return nil, fmt.Errorf("consumer definition: %w", err)
	}
	if want.Durable == "" {
		return nil, errors.New("consumer definition: durable_name is required")
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s for consumer %s: %w", stream, want.Durable, err)
	}
	for try := 0; ; try++ {
		c, err := s.Consumer(ctx, want.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = s.CreateConsumer(ctx, want)
			if errors.Is(err, jetstream.ErrConsumerExists) && try == 0 {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create consumer %s on %s: %w", want.Durable, stream, err)
			}
			logger.Info("consumer created", "stream", stream, "consumer", want.Durable)
			return c, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up consumer %s on %s: %w", want.Durable, stream, err)
		}
		diffs, merged, err := compare(keys, want, c.CachedInfo().Config)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", want.Durable, err)
		}
		if len(diffs) == 0 {
			return c, nil
		}
		var update jetstream.ConsumerConfig
		if err := json.Unmarshal(merged, &update); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", want.Durable, err)
		}
		c, err = s.UpdateConsumer(ctx, update)
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w: %s; the server refused the update: %w", want.Durable, stream, ErrConflict, joinDiffs(diffs), err)
		}
		logger.Warn("consumer updated to match its definition", "stream", stream, "consumer", want.Durable, "changed", joinDiffs(diffs))
		return c, nil
	}
}

// decodeDefinition decodes def with overrides strictly into out and returns
// the declared field names.
func decodeDefinition(def []byte, over Override, out any) ([]string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(def, &fields); err != nil {
		return nil, err
	}
	for k, v := range over {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("override %s: %w", k, err)
		}
		fields[k] = b
	}
	merged, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// compare returns the declared fields whose values differ, and have with
// want's declared fields laid over it, as JSON.
func compare(keys []string, want, have any) ([]Diff, []byte, error) {
	w, err := fieldsOf(want)
	if err != nil {
		return nil, nil, err
	}
	h, err := fieldsOf(have)
	if err != nil {
		return nil, nil, err
	}
	var diffs []Diff
	for _, k := range keys {
		if !bytes.Equal(w[k], h[k]) {
			diffs = append(diffs, Diff{Field: k, Have: show(h[k]), Want: show(w[k])})
			if w[k] == nil {
				delete(h, k)
			} else {
				h[k] = w[k]
			}
		}
	}
	merged, err := json.Marshal(h)
	return diffs, merged, err
}

// fieldsOf marshals v and splits it into compacted fields, so that equal
// values compare equal as bytes.
func fieldsOf(v any) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, raw := range m {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		m[k] = buf.Bytes()
	}
	return m, nil
}

func show(raw json.RawMessage) string {
	if raw == nil {
		return "(unset)"
	}
	return string(raw)
}

func joinDiffs(diffs []Diff) string {
	s := make([]string, len(diffs))
	for i, d := range diffs {
		s[i] = d.String()
	}
	return strings.Join(s, "; ")
}

// AckWaitFor sizes a work consumer's AckWait from a provider's call timeout:
// long enough that a call running to its timeout, plus publishing its
// result, never outlives the ack deadline and gets delivered twice.
func AckWaitFor(callTimeout time.Duration) time.Duration {
	return 2*callTimeout + 10*time.Second
}
