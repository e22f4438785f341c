package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
)

// Version is the envelope version this package reads and writes.
const Version = 1

// Limits a job may not exceed.
const (
	MaxIDLen       = 128
	MaxAttemptsCap = 100
	MaxPathLen     = 2048
	MaxHeaders     = 64
	// MaxMetaBytes bounds meta, which is copied into every result: with the
	// provider's response body cap it keeps each result within one message.
	MaxMetaBytes = 16 << 10
)

// Job is the v1 job envelope: one third-party call to make.
type Job struct {
	V        int     `json:"v"`
	ID       string  `json:"id"`
	Provider string  `json:"provider"`
	Task     string  `json:"task"`
	Request  Request `json:"request"`
	// Batch groups jobs for tracking; optional.
	Batch string `json:"batch,omitempty"`
	// MaxAttempts overrides the provider's default; 0 means the default.
	MaxAttempts int        `json:"max_attempts,omitempty"`
	NotBefore   *time.Time `json:"not_before,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// Meta is any JSON object; it is echoed into every result.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Request is the HTTP call a job asks for, relative to its provider.
type Request struct {
	// Method defaults to GET.
	Method string `json:"method,omitempty"`
	// Path is relative to the provider's base_url and must start with "/".
	Path    string            `json:"path"`
	Query   Query             `json:"query,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is sent as application/json unless headers say otherwise.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyBase64 carries a body that is not JSON (encoded as base64 in the
	// envelope). At most one of Body and BodyBase64 is set.
	BodyBase64 []byte `json:"body_base64,omitempty"`
}

// Query holds query parameters. In JSON each value may be a string or an
// array of strings: {"expand": ["lines"], "limit": "10"}.
type Query map[string][]string

// UnmarshalJSON accepts a string or an array of strings for each key.
func (q *Query) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("query must be an object: %w", err)
	}
	out := make(Query, len(raw))
	for k, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			out[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return fmt.Errorf("query %q must be a string or an array of strings", k)
		}
		out[k] = many
	}
	*q = out
	return nil
}

// disallowUnknownFields is goccy/go-json's Decoder.DisallowUnknownFields as
// an option of Unmarshal, which the package does not export: the flag's
// value is that of its internal DisallowUnknownFieldsOption (1<<4). If a
// new version moves it, the "unknown field" cases of TestDecode fail.
func disallowUnknownFields(o *gojson.DecodeOption) { o.Flags |= 1 << 4 }

// Decode parses a job envelope strictly: unknown fields, trailing data and a
// version other than 1 are errors. It does not validate the fields; call
// Validate for that.
func Decode(data []byte) (*Job, error) {
	// goccy/go-json decodes the same JSON into the same struct as
	// encoding/json at a fraction of the cost; every worker decodes every
	// job, so it shows in profiles.
	// Unmarshal rejects trailing data itself and, unlike a Decoder, needs
	// no allocations of its own.
	var j Job
	if err := gojson.UnmarshalWithOption(data, &j, disallowUnknownFields); err != nil {
		return nil, &FieldError{Field: "envelope", Reason: "not a v1 job: " + err.Error()}
	}
	if j.V != Version {
		return nil, &FieldError{Field: "v", Reason: fmt.Sprintf("unsupported envelope version %d (want %d)", j.V, Version)}
	}
	if err := CheckKeys(data); err != nil {
		return nil, err
	}
	return &j, nil
}

// Parse decodes data, validates it, and checks it against the subject it
// arrived on. It is what a worker does with every message.
func Parse(subject string, data []byte) (*Job, Address, error) {
	addr, err := ParseSubject(subject)
	if err != nil {
		return nil, Address{}, err
	}
	j, err := Decode(data)
	if err != nil {
		return nil, addr, err
	}
	if err := j.ValidateFor(addr); err != nil {
		return j, addr, err
	}
	return j, addr, nil
}

// ValidID reports whether id may be used as a job id: 1–128 characters of
// [A-Za-z0-9._:-]. UUIDs, ULIDs and most natural keys qualify.
func ValidID(id string) bool { return matches(id, 128, &idChars) }

// ValidBatch reports whether b may be used as a batch id: 1–128
// characters of [A-Za-z0-9_-], so that it is a subject token and a KV key.
func ValidBatch(b string) bool { return matches(b, 128, &batchChars) }

// Character classes as lookup tables: these checks run on every job a
// worker takes, where a regexp costs more than the rest of validation.
var idChars, batchChars, tokenChars [256]bool

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		lower, upper, digit := 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9'
		tokenChars[c] = lower || digit || b == '_' || b == '-'
		batchChars[c] = tokenChars[c] || upper
		idChars[c] = batchChars[c] || b == '.' || b == ':'
	}
}

func matches(s string, maxLen int, class *[256]bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !class[s[i]] {
			return false
		}
	}
	return true
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (j *Job) Validate() error {
	var p problems
	j.validate(&p)
	return p.err()
}

// ValidateFor validates j and checks that it matches the subject it was
// published on.
func (j *Job) ValidateFor(a Address) error {
	var p problems
	j.validate(&p)
	if j.Provider != a.Provider {
		p.add("provider", fmt.Sprintf("%q does not match the subject's provider %q", j.Provider, a.Provider))
	}
	if j.Task != a.Task {
		p.add("task", fmt.Sprintf("%q does not match the subject's task %q", j.Task, a.Task))
	}
	return p.err()
}

func (j *Job) validate(p *problems) {
	if j.V != Version {
		p.add("v", fmt.Sprintf("unsupported envelope version %d (want %d)", j.V, Version))
	}
	if !ValidID(j.ID) {
		p.add("id", fmt.Sprintf("%q must be 1-%d characters of [A-Za-z0-9._:-]", j.ID, MaxIDLen))
	}
	p.addErr(checkToken("provider", j.Provider))
	p.addErr(checkToken("task", j.Task))
	if j.Batch != "" && !ValidBatch(j.Batch) {
		p.add("batch", fmt.Sprintf("%q must be 1-128 characters of [A-Za-z0-9_-]", j.Batch))
	}
	if j.MaxAttempts < 0 || j.MaxAttempts > MaxAttemptsCap {
		p.add("max_attempts", fmt.Sprintf("%d must be between 1 and %d (or 0 for the provider's default)", j.MaxAttempts, MaxAttemptsCap))
	}
	if j.NotBefore != nil && j.ExpiresAt != nil && !j.ExpiresAt.After(*j.NotBefore) {
		p.add("expires_at", "must be after not_before")
	}
	if len(j.Meta) > 0 && !isJSONObject(j.Meta) {
		p.add("meta", "must be a JSON object")
	}
	if len(j.Meta) > MaxMetaBytes {
		p.add("meta", fmt.Sprintf("%d bytes, at most %d allowed (it is copied into every result)", len(j.Meta), MaxMetaBytes))
	}
	j.Request.validate(p)
}

// Methods a job may use.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// Headers a job may never set: they belong to the transport or the provider.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Upgrade": true,
}

func (r *Request) validate(p *problems) {
	if r.Method != "" && !methods[r.Method] {
		p.add("request.method", fmt.Sprintf("%q is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", r.Method))
	}
	p.addErr(ValidatePath(r.Path))
	for k, vs := range r.Query {
		if k == "" {
			p.add("request.query", "empty parameter name")
		}
		// Check the name on its own so a bad name with no values is caught,
		// and a bad name is reported once, not once per value.
		bad := hasControl(k)
		for _, v := range vs {
			bad = bad || hasControl(v)
		}
		if bad {
			p.add("request.query."+k, "control characters are not allowed")
		}
	}
	if len(r.Headers) > MaxHeaders {
		p.add("request.headers", fmt.Sprintf("%d headers, at most %d allowed", len(r.Headers), MaxHeaders))
	}
	canonical := make(map[string]string, len(r.Headers))
	for k, v := range r.Headers {
		// "x-a" and "X-A" are one header: which value went out would
		// depend on map order.
		ck := http.CanonicalHeaderKey(k)
		if other, ok := canonical[ck]; ok {
			first, second := min(k, other), max(k, other)
			p.add("request.headers."+second, fmt.Sprintf("names the same header as %q", first))
		}
		canonical[ck] = k
		switch {
		case !validHeaderName(k):
			p.add("request.headers."+k, "not a valid header name")
		case reservedHeaders[ck]:
			p.add("request.headers."+k, "is set by the transport and may not be set by a job")
		case hasControl(v):
			p.add("request.headers."+k, "CR, LF and other control characters are not allowed in header values")
		}
	}
	if len(r.Body) > 0 && len(r.BodyBase64) > 0 {
		p.add("request.body", "set body or body_base64, not both")
	}
	if len(r.Body) > 0 && !json.Valid(r.Body) {
		p.add("request.body", "must be valid JSON (use body_base64 for anything else)")
	}
}

// ValidatePath checks that path is a safe path relative to a provider's base
// URL: it starts with a single "/", names no scheme or host, has no ".."
// segment (also when percent-decoded), no backslash, query, fragment or
// control character. Its error is a *FieldError for "request.path".
func ValidatePath(path string) error {
	if err := checkPath(path); err != nil {
		return &FieldError{Field: "request.path", Reason: err.Error()}
	}
	return nil
}

func checkPath(path string) error {
	switch {
	case path == "":
		return errors.New("is required")
	case len(path) > MaxPathLen:
		return fmt.Errorf("longer than %d bytes", MaxPathLen)
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%q must start with / (it is relative to the provider's base_url)", path)
	case strings.HasPrefix(path, "//"):
		return fmt.Errorf("%q would name a host", path)
	case strings.Contains(path, `\`):
		return fmt.Errorf("%q contains a backslash", path)
	case strings.ContainsAny(path, "?#"):
		return fmt.Errorf("%q contains ? or # (put parameters in request.query)", path)
	case hasControl(path) || strings.Contains(path, " "):
		return fmt.Errorf("%q contains spaces or control characters", path)
	}
	// The checks above leave a path that cannot name a scheme, host or
	// user, so what remains is its percent-decoded form, where "%2e%2e"
	// and "%2f" tricks show up.
	decoded := path
	if strings.IndexByte(path, '%') >= 0 {
		var err error
		if decoded, err = url.PathUnescape(path); err != nil {
			return fmt.Errorf("%q is not a valid path: %w", path, err)
		}
	}
	if strings.Contains(decoded, `\`) || hasControl(decoded) {
		return fmt.Errorf("%q decodes to a backslash or control character", path)
	}
	// "/%2Fevil.com" decodes to "//evil.com", which names a host to any code
	// that re-parses the decoded path.
	if strings.HasPrefix(decoded, "//") {
		return fmt.Errorf("%q decodes to a path starting with //", path)
	}
	for seg := range strings.SplitSeq(decoded, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("%q has a %q segment", path, seg)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isJSONObject reports whether raw is one valid JSON object, without
// decoding it: a valid JSON value is an object exactly when it starts with
// '{'.
func isJSONObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(raw)
}
