package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/streams"
)

// Origins of a stored schedule.
const (
	OriginConfig = "config"
	OriginCLI    = "cli"
)

// ErrNotFound is matched by the error of Get and Remove for an unknown
// schedule.
var ErrNotFound = errors.New("schedule: not found")

// Headers of a schedule message (nats-server's names).
const (
	hdrSchedule = "Nats-Schedule"
	hdrTimeZone = "Nats-Schedule-Time-Zone"
	hdrTarget   = "Nats-Schedule-Target"
)

// Store reads and writes the schedules held in JOBS.
type Store struct {
	js jetstream.JetStream
}

// NewStore returns a store on js. The JOBS stream must exist (services
// apply it at start).
func NewStore(js jetstream.JetStream) *Store { return &Store{js: js} }

// Stored is a schedule as read back, with when it was last written.
type Stored struct {
	Spec
	UpdatedAt time.Time `json:"updated_at"`
	seq       uint64
}

// MarshalJSON writes the spec's fields and updated_at (Spec's own
// MarshalJSON would otherwise be promoted and drop it).
func (s Stored) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(s.Spec)
	if err != nil {
		return nil, err
	}
	at, _ := json.Marshal(s.UpdatedAt)
	return append(append(b[:len(b)-1], `,"updated_at":`...), append(at, '}')...), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stored) UnmarshalJSON(b []byte) error {
	var at struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	if err := json.Unmarshal(b, &at); err != nil {
		return err
	}
	s.UpdatedAt = at.UpdatedAt
	return json.Unmarshal(b, &s.Spec)
}

// Put stores schedule name, replacing any schedule of that name, unless
// the stored one is the same already: then it is left alone, so that an
// "@every" schedule keeps its phase. It reports whether it wrote.
func (s *Store) Put(ctx context.Context, name string, c Config, origin string) (bool, error) {
	if !job.ValidToken(name) {
		return false, fmt.Errorf("schedule: name %q must match [a-z0-9_-]{1,64}", name)
	}
	if err := c.Validate(); err != nil {
		return false, fmt.Errorf("schedule %s: %w", name, err)
	}
	spec := Spec{V: 1, Name: name, Config: c, Origin: origin}
	data, err := json.Marshal(spec)
	if err != nil {
		return false, fmt.Errorf("schedule %s: %w", name, err)
	}
	for try := 0; ; try++ {
		have, err := s.Get(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		var seq uint64
		if have != nil {
			same, _ := json.Marshal(have.Spec)
			if string(same) == string(data) {
				return false, nil
			}
			seq = have.seq
		}
		m := &nats.Msg{Subject: job.CronSubject(name), Data: data, Header: nats.Header{}}
		m.Header.Set(hdrSchedule, c.Pattern())
		m.Header.Set(hdrTarget, job.FireSubject(name))
		if c.Timezone != "" {
			m.Header.Set(hdrTimeZone, c.Timezone)
		}
		// Only over what was read: two replicas applying the same change
		// at once write it once.
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
		_, err = s.js.PublishMsg(ctx, m)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence && try == 0 {
			continue // written meanwhile: compare with that
		}
		if err != nil {
			return false, fmt.Errorf("schedule %s: store: %w", name, err)
		}
		return true, nil
	}
}

// Get reads schedule name.
func (s *Store) Get(ctx context.Context, name string) (*Stored, error) {
	st, err := s.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return nil, fmt.Errorf("schedule: look up stream %s: %w", streams.Jobs, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, job.CronSubject(name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("schedule %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("schedule %s: read: %w", name, err)
	}
	var spec Spec
	if err := json.Unmarshal(m.Data, &spec); err != nil {
		return nil, fmt.Errorf("schedule %s: unreadable: %w", name, err)
	}
	return &Stored{Spec: spec, UpdatedAt: m.Time.UTC(), seq: m.Sequence}, nil
}

// List reads every schedule, by name.
func (s *Store) List(ctx context.Context) ([]*Stored, error) {
	st, err := s.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return nil, fmt.Errorf("schedule: look up stream %s: %w", streams.Jobs, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(job.CronFilter))
	if err != nil {
		return nil, fmt.Errorf("schedule: list: %w", err)
	}
	var out []*Stored
	for _, subj := range slices.Sorted(maps.Keys(info.State.Subjects)) {
		got, err := s.Get(ctx, strings.TrimPrefix(subj, job.CronSubject("")))
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// Remove deletes schedule name: it fires no more. A firing already
// stored is still expanded.
func (s *Store) Remove(ctx context.Context, name string) error {
	if _, err := s.Get(ctx, name); err != nil {
		return err
	}
	st, err := s.js.Stream(ctx, streams.Jobs)
	if err != nil {
		return fmt.Errorf("schedule: look up stream %s: %w", streams.Jobs, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(job.CronSubject(name))); err != nil {
		return fmt.Errorf("schedule %s: remove: %w", name, err)
	}
	return nil
}

// Apply stores the schedules of configuration, leaving unchanged ones
// alone, and logs the schedules that came from configuration but are in
// it no more (it does not delete them: replicas with older configuration
// may still be running).
func (s *Store) Apply(ctx context.Context, cfg map[string]Config, logger *slog.Logger) error {
	for _, name := range slices.Sorted(maps.Keys(cfg)) {
		wrote, err := s.Put(ctx, name, cfg[name], OriginConfig)
		if err != nil {
			return err
		}
		if wrote {
			logger.Info("schedule stored", "schedule", name, "pattern", cfg[name].Pattern(), "timezone", cfg[name].Timezone)
		}
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, st := range all {
		if _, ok := cfg[st.Name]; !ok && st.Origin == OriginConfig {
			logger.Warn("schedule from configuration is no longer in it and still fires; delete it with switchyard schedule rm", "schedule", st.Name)
		}
	}
	return nil
}
