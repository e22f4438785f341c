package job

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkErr fails t unless err matches wantErr, and, when it is an error,
// matches ErrInvalid and names wantField (so a user can find the bad field).
func checkErr(t *testing.T, err error, wantErr bool, wantField string) {
	t.Helper()
	if (err != nil) != wantErr {
		t.Fatalf("err = %v, wantErr %v", err, wantErr)
	}
	if err == nil {
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("err %v does not match ErrInvalid", err)
	}
	if wantField != "" && !strings.Contains(err.Error(), wantField+":") {
		t.Errorf("err %q does not name field %q", err, wantField)
	}
	if wantField != "" && !slices.Contains(fields(err), wantField) {
		t.Errorf("err fields %q, want one to be %q", fields(err), wantField)
	}
}

// fields lists the Field of every problem in err.
func fields(err error) []string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		out := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			out[i] = p.Field
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []string{fe.Field}
	}
	return nil
}

func TestValidatePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"simple", "/ok/path", false},
		{"root", "/", false},
		{"encoded space", "/v1/invoices/%20ok", false},
		{"encoded slash inside segment", "/files/a%2Fb", false},
		{"dots inside a segment", "/v1/file.tar.gz/..x/x..", false},
		{"three dots", "/a/...", false},
		{"trailing slash", "/v1/invoices/", false},
		{"empty segment", "/a//b", false},
		{"colon and at", "/v1/users/@me:profile", false},
		{"non-ASCII", "/v1/caf\u00e9", false},
		{"max length", "/" + strings.Repeat("a", MaxPathLen-1), false},

		{"empty", "", true},
		{"relative", "relative", true},
		{"dot-relative", "./x", true},
		{"absolute URL", "http://evil/x", true},
		{"scheme without slashes", "javascript:alert(1)", true},
		{"host-relative", "//evil.com/x", true},
		{"encoded host-relative", "/%2fevil.com/x", true},
		{"dot-dot", "/a/../b", true},
		{"trailing dot-dot", "/a/..", true},
		{"dot", "/a/./b", true},
		{"encoded dot-dot", "/%2e%2e/admin", true},
		{"mixed encoded dot-dot", "/a/.%2E/b", true},
		{"encoded slashes around dot-dot", "/a%2f..%2fb", true},
		{"backslash", `/a\b`, true},
		{"encoded backslash", "/a%5cb", true},
		{"query", "/x?y=1", true},
		{"fragment", "/x#f", true},
		{"CRLF header injection", "/x\r\nHost: evil", true},
		{"encoded CRLF", "/x%0d%0aHost:%20evil", true},
		{"NUL", "/x\x00", true},
		{"DEL", "/x\x7f", true},
		{"tab", "/x\ty", true},
		{"space", "/a b", true},
		{"bad escape", "/a%zz", true},
		{"truncated escape", "/a%2", true},
		{"too long", "/" + strings.Repeat("a", MaxPathLen), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkErr(t, ValidatePath(tt.path), tt.wantErr, "request.path")
		})
	}
}

// validJob returns a job that passes Validate, for tests to break one field.
func validJob() *Job {
	nb := time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)
	ea := nb.Add(2 * time.Hour)
	return &Job{
		V:        Version,
		ID:       "0193f3c2-7d1e-7c3a-9b2f-5e8d4a6c1b09",
		Provider: "acme",
		Task:     "create_invoice",
		Request: Request{
			Method:  "POST",
			Path:    "/v1/invoices",
			Query:   Query{"expand": {"lines"}},
			Headers: map[string]string{"X-Tenant": "42"},
			Body:    json.RawMessage(`{"amount":1200}`),
		},
		Batch:       "nightly-2026-11-21",
		MaxAttempts: 5,
		NotBefore:   &nb,
		ExpiresAt:   &ea,
		Meta:        json.RawMessage(`{"order":981}`),
	}
}

func TestJobValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		edit      func(j *Job)
		wantErr   bool
		wantField string
	}{
		{"valid", func(*Job) {}, false, ""},
		{"minimal", func(j *Job) {
			*j = Job{V: 1, ID: "a", Provider: "p", Task: "t", Request: Request{Path: "/"}}
		}, false, ""},
		{"id with all allowed characters", func(j *Job) { j.ID = "Az09._:-" }, false, ""},
		{"id of 128", func(j *Job) { j.ID = strings.Repeat("a", 128) }, false, ""},
		{"max_attempts 0 means default", func(j *Job) { j.MaxAttempts = 0 }, false, ""},
		{"max_attempts at cap", func(j *Job) { j.MaxAttempts = MaxAttemptsCap }, false, ""},
		{"only not_before", func(j *Job) { j.ExpiresAt = nil }, false, ""},
		{"body_base64 alone", func(j *Job) { j.Request.Body, j.Request.BodyBase64 = nil, []byte{0xff} }, false, ""},
		{"lowercase custom header", func(j *Job) { j.Request.Headers = map[string]string{"x-tenant": "42"} }, false, ""},
		{"UTF-8 header value", func(j *Job) { j.Request.Headers["X-Name"] = "caf\u00e9" }, false, ""},

		{"wrong version", func(j *Job) { j.V = 2 }, true, "v"},
		{"missing id", func(j *Job) { j.ID = "" }, true, "id"},
		{"id with space", func(j *Job) { j.ID = "job 1" }, true, "id"},
		{"id with slash", func(j *Job) { j.ID = "a/b" }, true, "id"},
		{"id too long", func(j *Job) { j.ID = strings.Repeat("a", 129) }, true, "id"},
		{"missing provider", func(j *Job) { j.Provider = "" }, true, "provider"},
		{"uppercase provider", func(j *Job) { j.Provider = "Acme" }, true, "provider"},
		{"provider with dot", func(j *Job) { j.Provider = "acme.eu" }, true, "provider"},
		{"provider wildcard", func(j *Job) { j.Provider = "*" }, true, "provider"},
		{"task too long", func(j *Job) { j.Task = strings.Repeat("t", 65) }, true, "task"},
		{"task with space", func(j *Job) { j.Task = "create invoice" }, true, "task"},
		{"batch with dot", func(j *Job) { j.Batch = "a.b" }, true, "batch"},
		{"batch too long", func(j *Job) { j.Batch = strings.Repeat("b", 129) }, true, "batch"},
		{"max_attempts negative", func(j *Job) { j.MaxAttempts = -1 }, true, "max_attempts"},
		{"max_attempts over cap", func(j *Job) { j.MaxAttempts = MaxAttemptsCap + 1 }, true, "max_attempts"},
		{"meta array", func(j *Job) { j.Meta = json.RawMessage(`[1]`) }, true, "meta"},
		{"meta string", func(j *Job) { j.Meta = json.RawMessage(`"x"`) }, true, "meta"},
		{"meta null", func(j *Job) { j.Meta = json.RawMessage(`null`) }, true, "meta"},
		{"expires_at before not_before", func(j *Job) { *j.ExpiresAt = j.NotBefore.Add(-time.Second) }, true, "expires_at"},
		{"expires_at equal to not_before", func(j *Job) { *j.ExpiresAt = *j.NotBefore }, true, "expires_at"},
		{"bad method", func(j *Job) { j.Request.Method = "TRACE" }, true, "request.method"},
		{"lowercase method", func(j *Job) { j.Request.Method = "get" }, true, "request.method"},
		{"bad path", func(j *Job) { j.Request.Path = "//evil.com/x" }, true, "request.path"},
		{"missing path", func(j *Job) { j.Request.Path = "" }, true, "request.path"},
		{"empty query name", func(j *Job) { j.Request.Query = Query{"": {"x"}} }, true, "request.query"},
		{"control char in query value", func(j *Job) { j.Request.Query = Query{"a": {"ok", "x\r\ny"}} }, true, "request.query.a"},
		{"control char in query name without values", func(j *Job) { j.Request.Query = Query{"a\nb": nil} }, true, "request.query.a\nb"},
		{"CRLF in header value", func(j *Job) { j.Request.Headers["X-A"] = "1\r\nX-Injected: 2" }, true, "request.headers.X-A"},
		{"LF in header value", func(j *Job) { j.Request.Headers["X-A"] = "1\nX" }, true, "request.headers.X-A"},
		{"reserved Host", func(j *Job) { j.Request.Headers["Host"] = "evil.com" }, true, "request.headers.Host"},
		{"reserved host lowercase", func(j *Job) { j.Request.Headers["host"] = "evil.com" }, true, "request.headers.host"},
		{"reserved Content-Length", func(j *Job) { j.Request.Headers["Content-Length"] = "0" }, true, "request.headers.Content-Length"},
		{"reserved Transfer-Encoding", func(j *Job) { j.Request.Headers["Transfer-Encoding"] = "chunked" }, true, "request.headers.Transfer-Encoding"},
		{"reserved TE", func(j *Job) { j.Request.Headers["TE"] = "trailers" }, true, "request.headers.TE"},
		{"header name with space", func(j *Job) { j.Request.Headers["X Bad"] = "1" }, true, "request.headers.X Bad"},
		{"header name with colon", func(j *Job) { j.Request.Headers["X-A:"] = "1" }, true, "request.headers.X-A:"},
		{"one header in two cases", func(j *Job) { j.Request.Headers["x-tenant"] = "43" }, true, "request.headers.x-tenant"},
		{"empty header name", func(j *Job) { j.Request.Headers[""] = "1" }, true, "request.headers."},
		{"too many headers", func(j *Job) {
			for i := range MaxHeaders {
				j.Request.Headers["X-H"+strconv.Itoa(i)] = "v"
			}
		}, true, "request.headers"},
		{"body and body_base64", func(j *Job) { j.Request.BodyBase64 = []byte("x") }, true, "request.body"},
		{"body not JSON", func(j *Job) { j.Request.Body = json.RawMessage(`{`) }, true, "request.body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := validJob()
			tt.edit(j)
			checkErr(t, j.Validate(), tt.wantErr, tt.wantField)
		})
	}
}

// TestJobValidateListsEveryProblem: a producer fixing a job should see all
// its problems at once, not one per round trip.
func TestJobValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	j := validJob()
	j.ID, j.Provider, j.Request.Path = "", "Acme", "relative"
	err := j.Validate()
	got := fields(err)
	want := []string{"id", "provider", "request.path"}
	if !slices.Equal(got, want) {
		t.Errorf("fields = %q, want %q (err %v)", got, want, err)
	}
}

func TestParseSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		subject   string
		want      Address
		wantErr   bool
		wantField string
	}{
		{"live", "jobs.acme.live.create_invoice", Address{"acme", LaneLive, "create_invoice"}, false, ""},
		{"bulk", "jobs.a-1.bulk.t_2", Address{"a-1", LaneBulk, "t_2"}, false, ""},

		{"wrong prefix", "results.acme.live.create_invoice", Address{}, true, "subject"},
		{"3 tokens", "jobs.acme.live", Address{}, true, "subject"},
		{"5 tokens", "jobs.acme.live.create.invoice", Address{}, true, "subject"},
		{"empty", "", Address{}, true, "subject"},
		{"empty token", "jobs..live.t", Address{}, true, "subject provider"},
		{"bad lane", "jobs.acme.fast.create_invoice", Address{}, true, "subject lane"},
		{"uppercase lane", "jobs.acme.LIVE.create_invoice", Address{}, true, "subject lane"},
		{"uppercase provider", "jobs.Acme.live.create_invoice", Address{}, true, "subject provider"},
		{"wildcard provider", "jobs.*.live.t", Address{}, true, "subject provider"},
		{"bad task", "jobs.acme.live.Create", Address{}, true, "subject task"},
		{"wildcard task", "jobs.acme.live.>", Address{}, true, "subject task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSubject(tt.subject)
			checkErr(t, err, tt.wantErr, tt.wantField)
			if got != tt.want {
				t.Errorf("ParseSubject(%q) = %+v, want %+v", tt.subject, got, tt.want)
			}
			if err == nil && got.Subject() != tt.subject {
				t.Errorf("Subject() = %q, want the input %q back", got.Subject(), tt.subject)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	const body = `{"v":1,"id":"j1","provider":"acme","task":"create_invoice","request":{"path":"/x"}}`
	tests := []struct {
		name      string
		subject   string
		data      string
		wantErr   bool
		wantField string
	}{
		{"matching live", "jobs.acme.live.create_invoice", body, false, ""},
		{"matching bulk", "jobs.acme.bulk.create_invoice", body, false, ""},
		{"provider mismatch", "jobs.other.live.create_invoice", body, true, "provider"},
		{"task mismatch", "jobs.acme.live.refund", body, true, "task"},
		{"bad subject", "jobs.acme.create_invoice", body, true, "subject"},
		{"bad envelope", "jobs.acme.live.create_invoice", `{`, true, "envelope"},
		{"invalid job", "jobs.acme.live.create_invoice", strings.Replace(body, `"/x"`, `"x"`, 1), true, "request.path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, addr, err := Parse(tt.subject, []byte(tt.data))
			checkErr(t, err, tt.wantErr, tt.wantField)
			if err == nil && (j == nil || addr.Subject() != tt.subject) {
				t.Errorf("Parse = %+v, %+v; want a job and the subject's address", j, addr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	const good = `{"v":1,"id":"j1","provider":"acme","task":"t","request":{"path":"/x"}}`
	withRequest := func(req string) string {
		return `{"v":1,"id":"j1","provider":"acme","task":"t","request":` + req + `}`
	}
	tests := []struct {
		name      string
		data      string
		wantQuery Query
		wantErr   bool
		wantField string
	}{
		{"good", good, nil, false, ""},
		{"trailing whitespace", good + "\n\t ", nil, false, ""},
		{"query string", withRequest(`{"path":"/x","query":{"limit":"10"}}`), Query{"limit": {"10"}}, false, ""},
		{"query array", withRequest(`{"path":"/x","query":{"expand":["a","b"]}}`), Query{"expand": {"a", "b"}}, false, ""},
		{"query empty array", withRequest(`{"path":"/x","query":{"expand":[]}}`), Query{"expand": {}}, false, ""},
		{"query mixed", withRequest(`{"path":"/x","query":{"a":"1","b":["2","3"]}}`), Query{"a": {"1"}, "b": {"2", "3"}}, false, ""},

		{"unknown field", `{"v":1,"id":"j1","provider":"acme","task":"t","request":{"path":"/x"},"priority":1}`, nil, true, "envelope"},
		{"unknown request field", withRequest(`{"path":"/x","url":"http://evil"}`), nil, true, "envelope"},
		{"trailing object", good + `{}`, nil, true, "envelope"},
		{"trailing garbage", good + `x`, nil, true, "envelope"},
		{"trailing brace", good + `}`, nil, true, "envelope"},
		{"trailing bracket", good + `]`, nil, true, "envelope"},
		{"two jobs", good + good, nil, true, "envelope"},
		{"v=2", strings.Replace(good, `"v":1`, `"v":2`, 1), nil, true, "v"},
		{"v missing", strings.Replace(good, `"v":1,`, ``, 1), nil, true, "v"},
		{"v as string", strings.Replace(good, `"v":1`, `"v":"1"`, 1), nil, true, "envelope"},
		{"not JSON", `not json`, nil, true, "envelope"},
		{"empty", ``, nil, true, "envelope"},
		{"array", `[]`, nil, true, "envelope"},
		{"query value number", withRequest(`{"path":"/x","query":{"limit":10}}`), nil, true, "envelope"},
		{"query array of numbers", withRequest(`{"path":"/x","query":{"ids":[1,2]}}`), nil, true, "envelope"},
		{"query object value", withRequest(`{"path":"/x","query":{"a":{"b":"c"}}}`), nil, true, "envelope"},
		{"query not object", withRequest(`{"path":"/x","query":"a=1"}`), nil, true, "envelope"},
		{"body_base64 not base64", withRequest(`{"path":"/x","body_base64":"%%%"}`), nil, true, "envelope"},
		{"max_attempts fraction", strings.Replace(good, `"v":1`, `"v":1,"max_attempts":1.5`, 1), nil, true, "envelope"},
		{"not_before not RFC 3339", strings.Replace(good, `"v":1`, `"v":1,"not_before":"2026-11-21"`, 1), nil, true, "envelope"},

		// One reading of the envelope: exact names, each once.
		{"duplicate id", strings.Replace(good, `"id":"j1"`, `"id":"j1","id":"j2"`, 1), nil, true, "envelope"},
		{"duplicate request", good[:len(good)-1] + `,"request":{"path":"/y"}}`, nil, true, "envelope"},
		{"duplicate path", withRequest(`{"path":"/x","path":"/y"}`), nil, true, "envelope"},
		{"upper-case key", strings.Replace(good, `"id"`, `"ID"`, 1), nil, true, "envelope"},
		{"case-folded duplicate path", withRequest(`{"path":"/x","Path":"//evil.com"}`), nil, true, "envelope"},
		{"long s folds to s", strings.Replace(good, `"task"`, `"ta\u017fk"`, 1), nil, true, "envelope"},
		{"escaped key is still the key", strings.Replace(good, `"task"`, `"t\u0061sk"`, 1), nil, false, ""},
		{"escaped duplicate", strings.Replace(good, `"task":"t"`, `"task":"t","t\u0061sk":"u"`, 1), nil, true, "envelope"},
		{"duplicate keys inside meta are meta's business", strings.Replace(good, `"v":1`, `"v":1,"meta":{"a":1,"a":2,"b":{"}":"{"}}`, 1), nil, false, ""},
		{"duplicate keys inside body", withRequest(`{"path":"/x","body":{"a":[1,{"a":"]"}],"a":2}}`), nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, err := Decode([]byte(tt.data))
			checkErr(t, err, tt.wantErr, tt.wantField)
			if err != nil {
				if j != nil {
					t.Errorf("Decode returned a job with an error: %+v", j)
				}
				return
			}
			if !queryEqual(j.Request.Query, tt.wantQuery) {
				t.Errorf("query = %#v, want %#v", j.Request.Query, tt.wantQuery)
			}
		})
	}
}

func queryEqual(a, b Query) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestRoundTrip: what Go writes, Go reads back unchanged and valid.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := validJob()
	want.Request.Query = Query{"expand": {"lines", "customer"}}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Errorf("round trip changed the envelope:\n got %s\nwant %s", again, data)
	}
}
