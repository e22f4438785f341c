package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	gojson "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/producer"
)

// Media types POST /v1/jobs takes.
const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
	acceptPost  = mediaJSON + ", " + mediaNDJSON
)

// headerOverhead is what a message's header block adds to its size besides
// the id, with room to spare, as the producer counts it.
const headerOverhead = 64

// IdempotencyNamespace is the UUID namespace of the ids derived from an
// Idempotency-Key: a job without an id at position pos of a request with
// key k gets the UUIDv5 of k + "/" + pos, where pos is the job's index in
// an application/json array (0 for a single job) or its line number in an
// NDJSON stream.
var IdempotencyNamespace = uuid.MustParse("3c0e5f0a-6b1d-4a8e-9f27-5d2b7c9e4a13")

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// ingest is what a request's query and headers say about all its jobs.
type ingest struct {
	lane  job.Lane
	batch string
	key   string // Idempotency-Key, "" if none
}

func (h *Handler) postJobs(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		err = fmt.Errorf("charset %s is not UTF-8", cs)
	}
	if mt == "application/ndjson" {
		mt = mediaNDJSON
	}
	if err != nil || (mt != mediaJSON && mt != mediaNDJSON) {
		w.Header().Set("Accept-Post", acceptPost)
		writeProblem(w, newProblem(r, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %q: send application/json (one job or an array) or application/x-ndjson (one job per line), in UTF-8", r.Header.Get("Content-Type"))))
		return
	}
	in, perr := parseIngest(r)
	if perr != nil {
		writeProblem(w, newProblem(r, http.StatusBadRequest, perr.Name+": "+perr.Reason, *perr))
		return
	}
	// Refuse at once while the connection is down, rather than take a
	// body in and answer 503 after the publish timeout.
	if !h.nc.IsConnected() {
		h.retryLater(w)
		writeProblem(w, newProblem(r, http.StatusServiceUnavailable,
			"JetStream is unavailable: the gateway is not connected to NATS; nothing was enqueued, send the request again after Retry-After"))
		return
	}
	if mt == mediaNDJSON {
		h.postNDJSON(w, r, in)
		return
	}
	h.postJSON(w, r, in)
}

// parseIngest reads the query parameters lane and batch and the header
// Idempotency-Key. Unknown parameters are errors, so that a misspelt one
// does not go unnoticed.
func parseIngest(r *http.Request) (ingest, *InvalidParam) {
	in := ingest{lane: job.LaneLive}
	q := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		switch vs := q[name]; {
		case name != "lane" && name != "batch":
			return in, &InvalidParam{Name: name, Reason: "unknown parameter (POST /v1/jobs takes lane and batch)"}
		case len(vs) > 1:
			return in, &InvalidParam{Name: name, Reason: "given more than once"}
		}
	}
	if q.Has("lane") {
		in.lane = job.Lane(q.Get("lane"))
		if !in.lane.Valid() {
			return in, &InvalidParam{Name: "lane", Reason: fmt.Sprintf("%q is not a lane (want live or bulk)", in.lane)}
		}
	}
	if q.Has("batch") {
		in.batch = q.Get("batch")
		if !job.ValidBatch(in.batch) {
			return in, &InvalidParam{Name: "batch", Reason: fmt.Sprintf("%q must be 1-128 characters of [A-Za-z0-9_-]", in.batch)}
		}
	}
	if vs := r.Header.Values("Idempotency-Key"); len(vs) > 0 {
		key := vs[0]
		// The header is a structured-field string ("…"); a bare token is
		// taken as it is.
		if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
			key = key[1 : len(key)-1]
		}
		if len(vs) > 1 || key == "" || len(key) > maxIdempotencyKey || !printable(key) {
			return in, &InvalidParam{Name: "Idempotency-Key", Reason: fmt.Sprintf("must be given once, 1-%d printable ASCII characters", maxIdempotencyKey)}
		}
		in.key = key
	}
	return in, nil
}

// postJSON publishes one job or an array of them. Every job is decoded,
// validated and sized before the first is published, so a bad one stops
// them all; once publishing, JetStream may store some and not others,
// and the answer says which.
func (h *Handler) postJSON(w http.ResponseWriter, r *http.Request, in ingest) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeProblem(w, newProblem(r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("the body is over %d bytes (gateway.max_body); send bulk loads as application/x-ndjson", h.cfg.MaxBody)))
			return
		}
		writeProblem(w, newProblem(r, http.StatusBadRequest, "reading the body: "+err.Error()))
		return
	}
	raws, single, perr := splitJobs(body)
	if perr != nil {
		writeProblem(w, newProblem(r, http.StatusBadRequest, perr.Name+": "+perr.Reason, *perr))
		return
	}
	jobs := make([]*job.Job, len(raws))
	var invalid, tooLarge []InvalidParam
	badJobs := 0
	limit := h.msgLimit(r.Context())
	for i, raw := range raws {
		prefix := ""
		if !single {
			prefix = fmt.Sprintf("jobs[%d]", i)
		}
		j, problems := prepare(raw, in, strconv.Itoa(i))
		for _, p := range problems {
			invalid = append(invalid, InvalidParam{Name: fieldName(prefix, p.Field), Reason: p.Reason})
		}
		if len(problems) > 0 {
			badJobs++
			continue
		}
		if size, ok := fits(j, limit); !ok {
			tooLarge = append(tooLarge, InvalidParam{Name: fieldName(prefix, ""),
				Reason: fmt.Sprintf("about %d bytes as a message, more than the %d that NATS and the JOBS stream allow", size, limit)})
		}
		jobs[i] = j
	}
	switch {
	case len(invalid) > 0:
		writeProblem(w, newProblem(r, http.StatusBadRequest,
			fmt.Sprintf("%s: %s; nothing was enqueued", countJobs(badJobs, len(raws), single, "is invalid", "are invalid"), invalid[0].Name+": "+invalid[0].Reason),
			append(invalid, tooLarge...)...))
		return
	case len(tooLarge) > 0:
		writeProblem(w, newProblem(r, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%s: %s; nothing was enqueued", countJobs(len(tooLarge), len(raws), single, "is too large", "are too large"), tooLarge[0].Name+": "+tooLarge[0].Reason),
			tooLarge...))
		return
	}

	results := h.publish(r.Context(), jobs, in.lane)
	var unavailable, large, rejected int
	for _, res := range results {
		switch res.Status {
		case StatusUnavailable:
			unavailable++
		case StatusTooLarge:
			large++
		case StatusRejected:
			rejected++
		}
	}
	var p *Problem
	switch {
	case unavailable > 0:
		h.retryLater(w)
		p = newProblem(r, http.StatusServiceUnavailable, fmt.Sprintf(
			"JetStream is unavailable or the JOBS stream is full: %s (%s); send the request again with the same ids after Retry-After",
			countJobs(unavailable, len(jobs), single, "was not stored", "were not stored"), firstError(results, StatusUnavailable)))
	case large > 0:
		p = newProblem(r, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s (%s)",
			countJobs(large, len(jobs), single, "was refused as too large", "were refused as too large"), firstError(results, StatusTooLarge)))
	case rejected > 0:
		p = newProblem(r, http.StatusBadGateway, fmt.Sprintf("%s (%s)",
			countJobs(rejected, len(jobs), single, "was refused by JetStream", "were refused by JetStream"), firstError(results, StatusRejected)))
	default:
		writeBody(w, http.StatusAccepted, "application/json", Accepted{Jobs: results})
		return
	}
	h.logger.Warn("gateway: jobs not stored", "status", p.Status, "jobs", len(jobs), "detail", p.Detail)
	p.Jobs = results
	writeProblem(w, p)
}

// publish sends jobs, valid and with their ids, and returns their outcomes
// in order once they are all known, within the publish timeout.
func (h *Handler) publish(ctx context.Context, jobs []*job.Job, lane job.Lane) []JobResult {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	results := make([]JobResult, len(jobs))
	for i, j := range jobs {
		results[i] = JobResult{ID: j.ID, Status: StatusUnavailable}
	}
	pl := h.p.Pipeline(ctx, producer.Window(h.cfg.Window))
	for i, j := range jobs {
		if _, err := pl.Add(j, producer.Lane(lane), producer.Ref(i)); err != nil {
			results[i].Status, results[i].Error = classify(err)
			if ctx.Err() != nil {
				for k := i + 1; k < len(jobs); k++ {
					results[k].Error = "not sent: " + err.Error()
				}
				break
			}
		}
	}
	for _, res := range pl.Wait().Results {
		i := res.Ref.(int)
		results[i].Status, results[i].Error = outcome(res)
		results[i].StreamSeq = res.Sequence
	}
	return results
}

// outcome is the status of a job from its producer.Result.
func outcome(r producer.Result) (Status, string) {
	switch {
	case r.Err != nil:
		return classify(r.Err)
	case r.Duplicate:
		return StatusDuplicate, ""
	}
	return StatusStored, ""
}

// classify maps a producer error to a status and the text that goes with
// it.
func classify(err error) (Status, string) {
	switch {
	case errors.Is(err, producer.ErrTooLarge):
		return StatusTooLarge, err.Error()
	case errors.Is(err, producer.ErrRejected):
		return StatusRejected, err.Error()
	case errors.Is(err, job.ErrInvalid):
		return StatusInvalid, err.Error()
	}
	// ErrStreamFull, ErrUnavailable, ErrUnconfirmed, ErrClosed, the
	// request's context: the job may be sent again.
	return StatusUnavailable, err.Error()
}

// splitJobs splits a body into its job envelopes: one JSON object, or an
// array of them.
func splitJobs(body []byte) (raws [][]byte, single bool, perr *InvalidParam) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return nil, false, &InvalidParam{Name: "body", Reason: "is empty (want a job envelope or an array of them)"}
	case body[0] == '{':
		return [][]byte{body}, true, nil
	case body[0] != '[':
		return nil, false, &InvalidParam{Name: "body", Reason: "must be a job envelope (a JSON object) or an array of them"}
	}
	var elems []gojson.RawMessage
	if err := gojson.Unmarshal(body, &elems); err != nil {
		return nil, false, &InvalidParam{Name: "body", Reason: "not a JSON array of job envelopes: " + err.Error()}
	}
	if len(elems) == 0 {
		return nil, false, &InvalidParam{Name: "body", Reason: "the array holds no jobs"}
	}
	raws = make([][]byte, len(elems))
	for i, e := range elems {
		raws[i] = e
	}
	return raws, false, nil
}

// prepare decodes one envelope strictly, fills in what the request says
// (batch, and the version and id when they are absent) and validates it.
// pos is the job's position, for an id derived from an Idempotency-Key.
// It returns the job, or every problem found with it.
func prepare(data []byte, in ingest, pos string) (*job.Job, []*job.FieldError) {
	j, fe := decode(data)
	if fe != nil {
		return nil, []*job.FieldError{fe}
	}
	var problems []*job.FieldError
	if in.batch != "" {
		switch j.Batch {
		case "":
			j.Batch = in.batch
		case in.batch:
		default:
			problems = append(problems, &job.FieldError{Field: "batch",
				Reason: fmt.Sprintf("%q differs from the batch parameter %q", j.Batch, in.batch)})
		}
	}
	if j.ID == "" {
		if in.key != "" {
			j.ID = uuid.NewSHA1(IdempotencyNamespace, []byte(in.key+"/"+pos)).String()
		} else {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, []*job.FieldError{{Field: "id", Reason: "cannot generate one: " + err.Error()}}
			}
			j.ID = id.String()
		}
	}
	if err := j.Validate(); err != nil {
		if ve, ok := errors.AsType[*job.ValidationError](err); ok {
			problems = append(problems, ve.Problems...)
		} else {
			problems = append(problems, &job.FieldError{Field: "envelope", Reason: err.Error()})
		}
	}
	if len(problems) > 0 {
		return j, problems
	}
	return j, nil
}

// decode parses an envelope as job.Decode does (unknown fields and
// trailing data are errors), except that a missing "v" means version 1,
// and a value of the wrong type is named by its field.
func decode(data []byte) (*job.Job, *job.FieldError) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, &job.FieldError{Field: "envelope", Reason: "must be a JSON object (a job envelope)"}
	}
	dec := gojson.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j job.Job
	if err := dec.Decode(&j); err != nil {
		if te, ok := errors.AsType[*gojson.UnmarshalTypeError](err); ok && te.Field != "" {
			return nil, &job.FieldError{Field: te.Field, Reason: fmt.Sprintf("must be %s, not a JSON %s", jsonType(te.Type.Kind().String()), te.Value)}
		}
		return nil, &job.FieldError{Field: "envelope", Reason: "not a v1 job envelope: " + err.Error()}
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return nil, &job.FieldError{Field: "envelope", Reason: "trailing data after the JSON object"}
	}
	if err := job.CheckKeys(data); err != nil {
		if fe, ok := errors.AsType[*job.FieldError](err); ok {
			return nil, fe
		}
		return nil, &job.FieldError{Field: "envelope", Reason: err.Error()}
	}
	if j.V == 0 {
		j.V = job.Version
	}
	return &j, nil
}

// jsonType names a Go kind as JSON would.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}

// fits reports whether j, as the producer will send it, is within limit
// bytes (limit <= 0: no limit), and its size.
func fits(j *job.Job, limit int64) (int64, bool) {
	if limit <= 0 {
		return 0, true
	}
	data, err := gojson.Marshal(j)
	if err != nil {
		return 0, true // the producer reports it
	}
	size := int64(len(data) + len(j.ID) + headerOverhead)
	return size, size <= limit
}

// fieldName joins a job's prefix (jobs[3], or "" for a lone job) and a
// field of it; a problem with the whole envelope is named by the prefix.
func fieldName(prefix, field string) string {
	switch {
	case field == "" || field == "envelope":
		if prefix == "" {
			return "envelope"
		}
		return prefix
	case prefix == "":
		return field
	}
	return prefix + "." + field
}

// countJobs reads like "the job is invalid", "1 of 5 jobs is invalid" or
// "2 of 5 jobs are invalid": one, n of of, does (singular) or do
// (plural) something.
func countJobs(n, of int, single bool, singular, plural string) string {
	switch {
	case single:
		return "the job " + singular
	case n == 1:
		return fmt.Sprintf("1 of %d jobs %s", of, singular)
	}
	return fmt.Sprintf("%d of %d jobs %s", n, of, plural)
}

func firstError(results []JobResult, s Status) string {
	for _, r := range results {
		if r.Status == s {
			return r.Error
		}
	}
	return ""
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
