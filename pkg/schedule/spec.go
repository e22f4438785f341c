package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Config is a schedule as configuration declares it, under
// schedules.<name>. Exactly one of Cron and Every is set, and exactly one
// of Job and Jobs.
type Config struct {
	// Cron is a cron expression: six fields with seconds first
	// ("0 0 4 * * *"), five fields as crontab writes them (seconds 0), or
	// @yearly, @monthly, @weekly, @daily, @hourly.
	Cron string `koanf:"cron" json:"cron,omitempty"`
	// Every fires at this interval, at least 1s, counted from when the
	// schedule was stored.
	Every time.Duration `koanf:"every" json:"-"`
	// Timezone is the IANA zone Cron is read in (e.g. Europe/Paris).
	// Default UTC. Not with Every.
	Timezone string `koanf:"timezone" json:"timezone,omitempty"`
	// Lane is the lane of the jobs. Default live.
	Lane job.Lane `koanf:"lane" json:"lane,omitempty"`
	// Job is the one job each firing makes.
	Job *Template `koanf:"job" json:"job,omitempty"`
	// Jobs are the jobs of the batch each firing makes, declared as one
	// batch of len(Jobs) jobs.
	Jobs []Template `koanf:"jobs" json:"jobs,omitempty"`
}

// Template is a job without an id, which each firing fills in. Its
// strings may hold the placeholders {{tick}}, {{date}} and {{name}} (see
// placeholders).
type Template struct {
	Provider    string          `koanf:"provider" json:"provider"`
	Task        string          `koanf:"task" json:"task"`
	Request     RequestTemplate `koanf:"request" json:"request"`
	Batch       string          `koanf:"batch" json:"batch,omitempty"`
	MaxAttempts int             `koanf:"max_attempts" json:"max_attempts,omitempty"`
	// ExpiresIn sets each job's expires_at this long after the firing.
	ExpiresIn time.Duration  `koanf:"expires_in" json:"-"`
	Meta      map[string]any `koanf:"meta" json:"meta,omitempty"`
}

// RequestTemplate is job.Request with plain values, as YAML gives them.
type RequestTemplate struct {
	Method  string            `koanf:"method" json:"method,omitempty"`
	Path    string            `koanf:"path" json:"path"`
	Query   map[string]any    `koanf:"query" json:"query,omitempty"`
	Headers map[string]string `koanf:"headers" json:"headers,omitempty"`
	Body    any               `koanf:"body" json:"body,omitempty"`
}

// Spec is a named schedule as stored in its message.
type Spec struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	Config
	// Origin says who stored it: "config" or "cli".
	Origin string `json:"origin,omitempty"`
}

// Every and ExpiresIn travel as duration strings.
type specJSON struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	Config
	Every  string `json:"every,omitempty"`
	Origin string `json:"origin,omitempty"`
}

// MarshalJSON writes Every as a duration string ("1h").
func (s Spec) MarshalJSON() ([]byte, error) {
	w := specJSON{V: s.V, Name: s.Name, Config: s.Config, Origin: s.Origin}
	if s.Every > 0 {
		w.Every = s.Every.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Spec) UnmarshalJSON(b []byte) error {
	var w specJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Spec{V: w.V, Name: w.Name, Config: w.Config, Origin: w.Origin}
	if w.Every != "" {
		d, err := time.ParseDuration(w.Every)
		if err != nil {
			return fmt.Errorf("every: %w", err)
		}
		s.Every = d
	}
	return nil
}

type templateJSON struct {
	plainTemplate
	ExpiresIn string `json:"expires_in,omitempty"`
}

type plainTemplate Template

// MarshalJSON writes ExpiresIn as a duration string.
func (t Template) MarshalJSON() ([]byte, error) {
	w := templateJSON{plainTemplate: plainTemplate(t)}
	if t.ExpiresIn > 0 {
		w.ExpiresIn = t.ExpiresIn.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
// Unknown fields are errors, so that a misspelt one is not dropped.
func (t *Template) UnmarshalJSON(b []byte) error {
	var w templateJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*t = Template(w.plainTemplate)
	if w.ExpiresIn != "" {
		d, err := time.ParseDuration(w.ExpiresIn)
		if err != nil {
			return fmt.Errorf("expires_in: %w", err)
		}
		t.ExpiresIn = d
	}
	return nil
}

// Pattern is the schedule's Nats-Schedule header value.
func (c Config) Pattern() string {
	if c.Every > 0 {
		return "@every " + c.Every.String()
	}
	if f := strings.Fields(c.Cron); len(f) == 5 {
		return "0 " + strings.Join(f, " ")
	}
	return strings.Join(strings.Fields(c.Cron), " ")
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case (c.Cron == "") == (c.Every == 0):
		return errors.New("set exactly one of cron and every")
	case c.Every != 0 && (c.Every < time.Second || c.Every%time.Second != 0):
		return fmt.Errorf("every: %s must be whole seconds, at least 1s", c.Every)
	case c.Every != 0 && c.Timezone != "":
		return errors.New("timezone: only with cron (an interval is the same in every zone)")
	case c.Lane != "" && !c.Lane.Valid():
		return fmt.Errorf("lane: %q is not a lane (want live or bulk)", c.Lane)
	case (c.Job == nil) == (len(c.Jobs) == 0):
		return errors.New("set exactly one of job (one job per firing) and jobs (a batch per firing)")
	}
	if c.Cron != "" && !strings.HasPrefix(c.Cron, "@") {
		if n := len(strings.Fields(c.Cron)); n != 5 && n != 6 {
			return fmt.Errorf("cron: %q has %d fields; want 6 (seconds first) or 5 (crontab)", c.Cron, n)
		}
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			return fmt.Errorf("timezone: %q is not an IANA time zone: %w", c.Timezone, err)
		}
	}
	// Build one firing's jobs to check every template as a job.
	if _, _, err := c.jobs("check", time.Unix(0, 0)); err != nil {
		return err
	}
	return nil
}

// Providers lists the providers the schedule's jobs call.
func (c Config) Providers() []string {
	var out []string
	if c.Job != nil {
		out = append(out, c.Job.Provider)
	}
	for _, t := range c.Jobs {
		if !slices.Contains(out, t.Provider) {
			out = append(out, t.Provider)
		}
	}
	return out
}

// lane returns the jobs' lane.
func (c Config) lane() job.Lane {
	if c.Lane == "" {
		return job.LaneLive
	}
	return c.Lane
}

// Tick is how a firing's second appears in its job ids.
const Tick = "20060102T150405Z"

// BatchID returns the batch of the firing of schedule name at tick, for a
// schedule that fires a batch.
func BatchID(name string, tick time.Time) string {
	return name + "-" + tick.UTC().Format(Tick)
}

// JobID returns the id of the job of the firing of schedule name at tick;
// n numbers the jobs of a batch from 1, and is 0 for a single job.
func JobID(name string, tick time.Time, n int) string {
	id := name + ":" + tick.UTC().Format(Tick)
	if n > 0 {
		id += fmt.Sprintf(":%d", n)
	}
	return id
}

// Placeholders a template's strings may hold, replaced at each firing:
// {{tick}} by the firing's second in RFC 3339 (UTC), {{date}} by its date
// (YYYY-MM-DD) in the schedule's time zone, {{name}} by the schedule's
// name. "path": "/v1/reports/{{date}}" asks each day for that day.
var placeholders = []string{"{{tick}}", "{{date}}", "{{name}}"}

// fill returns t with the placeholders of its strings replaced. Their
// values hold no character JSON escapes, so the replacement is textual.
func (c Config) fill(t Template, name string, tick time.Time) (Template, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return t, err
	}
	if !bytes.Contains(b, []byte("{{")) {
		return t, nil
	}
	loc := time.UTC
	if c.Timezone != "" {
		if loc, err = time.LoadLocation(c.Timezone); err != nil {
			return t, err
		}
	}
	values := []string{tick.UTC().Format(time.RFC3339), tick.In(loc).Format(time.DateOnly), name}
	for i, p := range placeholders {
		b = bytes.ReplaceAll(b, []byte(p), []byte(values[i]))
	}
	var out Template
	err = json.Unmarshal(b, &out)
	return out, err
}

// jobs returns the jobs of the firing of schedule name at tick, and the
// batch it declares ("" for a single job).
func (c Config) jobs(name string, tick time.Time) ([]*job.Job, string, error) {
	if c.Job != nil {
		t, err := c.fill(*c.Job, name, tick)
		if err != nil {
			return nil, "", fmt.Errorf("job: %w", err)
		}
		j, err := t.build(JobID(name, tick, 0), tick)
		if err != nil {
			return nil, "", fmt.Errorf("job: %w", err)
		}
		return []*job.Job{j}, "", nil
	}
	b := BatchID(name, tick)
	js := make([]*job.Job, len(c.Jobs))
	for i, t := range c.Jobs {
		if t.Batch != "" {
			return nil, "", fmt.Errorf("jobs[%d]: batch: a batch schedule names its batch itself (<name>-<tick>)", i)
		}
		t.Batch = b
		t, err := c.fill(t, name, tick)
		if err != nil {
			return nil, "", fmt.Errorf("jobs[%d]: %w", i, err)
		}
		j, err := t.build(JobID(name, tick, i+1), tick)
		if err != nil {
			return nil, "", fmt.Errorf("jobs[%d]: %w", i, err)
		}
		js[i] = j
	}
	return js, b, nil
}

// build makes the job of a template.
func (t Template) build(id string, tick time.Time) (*job.Job, error) {
	j := &job.Job{
		V: job.Version, ID: id, Provider: t.Provider, Task: t.Task, Batch: t.Batch, MaxAttempts: t.MaxAttempts,
		Request: job.Request{Method: t.Request.Method, Path: t.Request.Path, Headers: t.Request.Headers},
	}
	if t.ExpiresIn > 0 {
		at := tick.Add(t.ExpiresIn).UTC()
		j.ExpiresAt = &at
	}
	if len(t.Request.Query) > 0 {
		b, err := json.Marshal(t.Request.Query)
		if err == nil {
			err = json.Unmarshal(b, &j.Request.Query)
		}
		if err != nil {
			return nil, fmt.Errorf("request.query: %w", err)
		}
	}
	if t.Request.Body != nil {
		b, err := json.Marshal(t.Request.Body)
		if err != nil {
			return nil, fmt.Errorf("request.body: %w", err)
		}
		j.Request.Body = b
	}
	if t.Meta != nil {
		b, err := json.Marshal(t.Meta)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		j.Meta = b
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return j, nil
}
