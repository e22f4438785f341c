package api

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/recorder"
)

// Limits of GET /v1/stats.
const (
	maxWindow  = 7 * 24 * time.Hour
	maxWindows = 10
)

// maxIDLen bounds the job ids in paths and cursors. Stores keep any id a
// result carries; the recorder only lets through job.ValidID ones (at most
// 128 characters), so this is generous.
const maxIDLen = 1024

// defaultWindows are the windows GET /v1/stats reports when none is asked
// for.
var defaultWindows = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

// paramError is a bad query parameter.
type paramError struct {
	name, reason string
}

func (e *paramError) Error() string { return e.name + ": " + e.reason }

func badParam(name, format string, args ...any) *paramError {
	return &paramError{name: name, reason: fmt.Sprintf(format, args...)}
}

// checkParams rejects parameters outside allowed and parameters given more
// than once unless repeatable, so a misspelt filter is an error rather than
// a listing of everything.
func checkParams(q url.Values, allowed []string, repeatable string) *paramError {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same error for the same request
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return badParam(name, "unknown parameter (known: %s)", strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 && name != repeatable {
			return badParam(name, "given %d times; give it once", len(q[name]))
		}
	}
	return nil
}

var jobsParams = []string{"provider", "task", "status", "batch", "since", "limit", "cursor"}

// parseJobFilter reads the parameters of GET /v1/jobs.
func parseJobFilter(q url.Values) (recorder.JobFilter, *paramError) {
	var f recorder.JobFilter
	if err := checkParams(q, jobsParams, ""); err != nil {
		return f, err
	}
	if v := q.Get("provider"); v != "" {
		if !job.ValidToken(v) {
			return f, badParam("provider", "%q is not a provider name ([a-z0-9_-]{1,64})", v)
		}
		f.Provider = v
	}
	if v := q.Get("task"); v != "" {
		if !job.ValidToken(v) {
			return f, badParam("task", "%q is not a task name ([a-z0-9_-]{1,64})", v)
		}
		f.Task = v
	}
	if v := q.Get("status"); v != "" {
		if s := job.Status(v); s.Valid() {
			f.Status = s
		} else {
			return f, badParam("status", "%q is not one of succeeded, retrying, failed, dead, expired, cancelled, unknown", v)
		}
	}
	if v := q.Get("batch"); v != "" {
		if !job.ValidBatch(v) {
			return f, badParam("batch", "%q is not a batch id ([A-Za-z0-9_-]{1,128})", v)
		}
		f.Batch = v
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, badParam("since", "%q is not an RFC 3339 time such as 2026-11-21T04:00:00Z", v)
		}
		f.Since = t.UTC()
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > recorder.MaxPageSize {
			return f, badParam("limit", "must be a whole number from 1 to %d", recorder.MaxPageSize)
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return f, badParam("cursor", "not a cursor this API gave out (pass next_cursor unchanged)")
		}
		f.After = &c
	}
	return f, nil
}

// parseWindows reads the window parameters of GET /v1/stats.
func parseWindows(q url.Values) ([]time.Duration, *paramError) {
	if err := checkParams(q, []string{"window"}, "window"); err != nil {
		return nil, err
	}
	vs := q["window"]
	if len(vs) == 0 {
		return slices.Clone(defaultWindows), nil
	}
	if len(vs) > maxWindows {
		return nil, badParam("window", "at most %d windows", maxWindows)
	}
	ws := make([]time.Duration, len(vs))
	for i, v := range vs {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d%time.Minute != 0 || d > maxWindow {
			return nil, badParam("window", "%q must be whole minutes from 1m to %s, such as 5m or 1h", v, formatWindow(maxWindow))
		}
		ws[i] = d
	}
	return ws, nil
}

// A cursor is base64url (unpadded) of the row's UpdatedAt in Unix
// nanoseconds, 8 bytes big-endian, followed by its job id.
func encodeCursor(c recorder.Cursor) string {
	b := make([]byte, 8, 8+len(c.JobID))
	binary.BigEndian.PutUint64(b, uint64(c.UpdatedAt.UnixNano()))
	b = append(b, c.JobID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (recorder.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return recorder.Cursor{}, err
	}
	if len(b) < 9 {
		return recorder.Cursor{}, fmt.Errorf("cursor of %d bytes is too short", len(b))
	}
	nanos := int64(binary.BigEndian.Uint64(b[:8]))
	id := string(b[8:])
	if nanos < 0 || !validID(id) {
		return recorder.Cursor{}, fmt.Errorf("cursor holds no position")
	}
	return recorder.Cursor{UpdatedAt: time.Unix(0, nanos).UTC(), JobID: id}, nil
}

// validID accepts what a store could hold as a job id.
func validID(id string) bool {
	return id != "" && len(id) <= maxIDLen && utf8.ValidString(id) && !strings.ContainsFunc(id, unicode.IsControl)
}
