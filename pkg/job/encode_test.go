package job

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
)

// oddStrings are strings whose JSON encoding has a catch: escapes, HTML
// characters, invalid UTF-8, line separators.
var oddStrings = []string{
	"",
	"plain",
	"quote \" backslash \\ slash /",
	"\x00\x01\x07\b\f\n\r\t\x1f\x7f",
	"<script>alert('x')</script> & more",
	"bad utf-8 \xff\xfe and \xc3( and truncated \xe2\x80",
	"line\u2028para\u2029end",
	"\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xaa",
	"unicode é ü 日本 🎉 \ufffd",
	"\\u003c not an escape",
}

// rawValues are valid JSON values for meta and response bodies, compact
// or not, with and without characters Marshal escapes.
var rawValues = []string{
	`{}`,
	`{"order":981}`,
	`{"a":[1,2.5e10,-3,true,false,null],"b":{"c":"d e"}}`,
	`{ "spaced" : [ 1 , 2 ] ,"s":"a\tb" }`,
	"{\n\t\"nl\": \"x\"\r\n}",
	`{"html":"<b>&amp;</b>"}`,
	`{"sep":"` + "\u2028\u2029" + `"}`,
	`{"esc":"\" \\ \u003c \n"}`,
	`"just a string with \" quote"`,
	`[1,"]",{"k":"}"}]`,
	`123`,
	`null`,
}

// encodeResults are results covering every field, empty and set.
func encodeResults() []Result {
	t0 := time.Date(2026, 11, 21, 4, 5, 6, 123456789, time.UTC)
	retry := t0.Add(90 * time.Second)
	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	local := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("CET", 3600))
	base := Result{
		V: Version, JobID: "01J9Z3K7Q8X2M4N6P0R2T4V6W8", Provider: "acme", Task: "create_invoice",
		Attempt: 1, Status: StatusSucceeded, LatencyMS: 412,
		EnqueuedAt: t0.Add(-3 * time.Second), StartedAt: t0, FinishedAt: t0.Add(412 * time.Millisecond),
		WorkerID: "worker-7f9c2d1a",
	}
	rs := []Result{
		{},
		base,
		func() Result {
			r := base
			r.Lane, r.Batch, r.HTTPStatus, r.Error, r.ErrorClass = LaneBulk, "nightly", 503, "server error", ClassHTTP5xx
			r.Status, r.RetryAt, r.Attempt, r.LatencyMS = StatusRetrying, &retry, 3, -1
			r.Meta = json.RawMessage(`{"order":981}`)
			r.Response = &Response{
				Headers: map[string][]string{
					"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}, "X-Empty": {}, "X-Nil": nil,
					"Set-Cookie-Like": {"<&>"}, "": {""},
				},
				Body: json.RawMessage(`{"id":"in_1","amount_due":1299}`), Truncated: true,
			}
			return r
		}(),
		func() Result {
			r := base
			r.Response = &Response{BodyText: "not json <>", Truncated: true}
			r.StartedAt, r.FinishedAt, r.EnqueuedAt = time.Time{}, whole, local
			return r
		}(),
		func() Result {
			r := base
			r.Response = &Response{BodyBase64: []byte{0, 1, 2, 0xff, 0xfe}}
			return r
		}(),
		func() Result {
			r := base
			r.Response = &Response{}
			r.Meta = json.RawMessage{}
			return r
		}(),
	}
	for _, s := range oddStrings {
		r := base
		r.JobID, r.Provider, r.Task, r.Batch, r.Error, r.WorkerID = s, s, s, s, s, s
		r.Lane, r.Status, r.ErrorClass = Lane(s), Status(s), Class(s)
		r.Response = &Response{Headers: map[string][]string{s: {s, s}, "k": {s}}, BodyText: s}
		rs = append(rs, r)
	}
	for _, raw := range rawValues {
		r := base
		r.Meta = json.RawMessage(raw)
		r.Response = &Response{Body: json.RawMessage(raw)}
		rs = append(rs, r)
	}
	return rs
}

// checkEncode fails t unless AppendJSON writes what Marshal writes for r,
// and what it writes decodes, with the decoders the recorder and tests use,
// to the same result.
func checkEncode(t *testing.T, r *Result) {
	t.Helper()
	want, wantErr := json.Marshal(r)
	prefix := []byte("prefix")
	got, err := r.AppendJSON(prefix[:len(prefix):len(prefix)])
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendJSON err %v, Marshal err %v", err, wantErr)
	}
	if err != nil {
		if string(got) != "prefix" {
			t.Fatalf("AppendJSON changed dst on error: %q", got)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON lost dst: %q", got)
	}
	got = got[len(prefix):]
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON differs from Marshal:\n got %s\nwant %s", got, want)
	}
	var a, b Result
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("encoding/json cannot decode %s: %v", got, err)
	}
	if err := gojson.Unmarshal(got, &b); err != nil {
		t.Fatalf("goccy/go-json (the recorder's decoder) cannot decode %s: %v", got, err)
	}
	var c Result
	if err := json.Unmarshal(want, &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, c) || !reflect.DeepEqual(b, c) {
		t.Fatalf("decoded results differ:\nencoding/json %+v\ngo-json       %+v\nwant          %+v", a, b, c)
	}
}

func TestResultAppendJSON(t *testing.T) {
	for _, r := range encodeResults() {
		checkEncode(t, &r)
	}
}

// TestResultAppendJSONErrors: what Marshal cannot encode, AppendJSON does
// not either.
func TestResultAppendJSONErrors(t *testing.T) {
	for name, r := range map[string]Result{
		"year 10000":   {FinishedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year -1":      {StartedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"retry_at":     {RetryAt: new(time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC))},
		"bad meta":     {Meta: json.RawMessage(`{"a": }`)},
		"bad body":     {Response: &Response{Body: json.RawMessage(`{ "a"`)}},
		"unclosed str": {Meta: json.RawMessage(`{"a":"b}`)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := json.Marshal(&r); err == nil {
				t.Fatal("Marshal accepts it; the case is wrong")
			}
			if _, err := r.AppendJSON(nil); err == nil {
				t.Fatal("AppendJSON accepts it")
			}
		})
	}
}

// FuzzResultAppendJSON: for any strings, body bytes and times, AppendJSON
// writes what Marshal writes.
func FuzzResultAppendJSON(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, s, []byte(rawValues[i%len(rawValues)]), []byte(s), int64(i)*1e17, int64(i))
	}
	f.Fuzz(func(t *testing.T, id, text string, raw, bin []byte, nanos, n int64) {
		at := time.Unix(0, nanos).UTC()
		r := Result{
			V: int(n), JobID: id, Provider: text, Task: id, Lane: Lane(text), Batch: id, Attempt: int(n >> 8),
			Status: Status(text), HTTPStatus: int(n >> 16), Error: text, ErrorClass: Class(id), LatencyMS: n,
			EnqueuedAt: at, StartedAt: at.Add(-time.Second), FinishedAt: time.Unix(n, 0).UTC(), RetryAt: &at,
			Response: &Response{Headers: map[string][]string{id: {text}, text: {id, id}}, BodyText: text, BodyBase64: bin, Truncated: n&1 == 1},
			WorkerID: text,
		}
		if json.Valid(raw) {
			r.Meta, r.Response.Body = raw, raw
		}
		checkEncode(t, &r)
	})
}
