package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// newProvider builds a provider named "acme" and closes it after the test.
func newProvider(t *testing.T, cfg provider.Config) *provider.Provider {
	t.Helper()
	cfg.AllowPrivateNetwork = true // httptest servers listen on loopback
	p, err := provider.New("acme", cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func newJob(r job.Request) *job.Job {
	return &job.Job{V: job.Version, ID: "job-1", Provider: "acme", Task: "sync", Request: r}
}

// asError fails the test unless err is a *provider.Error.
func asError(t *testing.T, err error) *provider.Error {
	t.Helper()
	var perr *provider.Error
	if !errors.As(err, &perr) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return perr
}

// received is what a capture server saw of one request.
type received struct {
	method  string
	rawPath string // escaped path as sent on the wire
	query   url.Values
	header  http.Header
	body    []byte
}

// captureServer answers 200 {} and hands every request it sees to the
// returned channel.
func captureServer(t *testing.T) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{method: r.Method, rawPath: r.URL.EscapedPath(), query: r.URL.Query(), header: r.Header.Clone(), body: body}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestNewRequestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		base        string
		path        string
		query       job.Query
		wantEscaped string // EscapedPath of the built URL
		wantPath    string // decoded path; "" means same as wantEscaped
		wantQuery   string
		wantErr     bool
	}{
		{name: "base with trailing slash", base: "http://api.test/api/v2/", path: "/users/42", wantEscaped: "/api/v2/users/42"},
		{name: "base without trailing slash", base: "http://api.test/api/v2", path: "/users/42", wantEscaped: "/api/v2/users/42"},
		{name: "base without path", base: "http://api.test", path: "/users", wantEscaped: "/users"},
		{name: "base with root path", base: "http://api.test/", path: "/users", wantEscaped: "/users"},
		{name: "root job path", base: "http://api.test/api/v2/", path: "/", wantEscaped: "/api/v2/"},
		{name: "job path trailing slash kept", base: "http://api.test/api", path: "/users/", wantEscaped: "/api/users/"},
		{name: "encoded slash preserved", base: "http://api.test/api/v2/", path: "/v1/a%2Fb", wantEscaped: "/api/v2/v1/a%2Fb", wantPath: "/api/v2/v1/a/b"},
		{name: "encoded base path preserved", base: "http://api.test/a%2Fb/", path: "/c%20d", wantEscaped: "/a%2Fb/c%20d", wantPath: "/a/b/c d"},
		{name: "port kept", base: "https://api.test:8443/x", path: "/y", wantEscaped: "/x/y"},
		{
			name: "query encoded with multiple values", base: "http://api.test/api", path: "/search",
			query:       job.Query{"limit": {"10"}, "expand": {"lines", "tax"}, "q": {"a b&c=d"}},
			wantEscaped: "/api/search", wantQuery: "expand=lines&expand=tax&limit=10&q=a+b%26c%3Dd",
		},
		{name: "host in path", base: "http://api.test/api", path: "//evil.com/x", wantErr: true},
		{name: "relative path", base: "http://api.test/api", path: "users", wantErr: true},
		{name: "empty path", base: "http://api.test/api", path: "", wantErr: true},
		{name: "absolute URL", base: "http://api.test/api", path: "http://evil.com/", wantErr: true},
		{name: "dot dot", base: "http://api.test/api", path: "/a/../../b", wantErr: true},
		{name: "encoded dot dot", base: "http://api.test/api", path: "/%2e%2e/x", wantErr: true},
		{name: "query in path", base: "http://api.test/api", path: "/x?admin=1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, provider.Config{BaseURL: tt.base})
			req, err := p.NewRequest(t.Context(), newJob(job.Request{Path: tt.path, Query: tt.query}))
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewRequest(%q) error = %v, wantErr %v", tt.path, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			base, _ := url.Parse(tt.base)
			if req.URL.Scheme != base.Scheme || req.URL.Host != base.Host {
				t.Errorf("URL %s: scheme/host = %s/%s, want %s/%s", req.URL, req.URL.Scheme, req.URL.Host, base.Scheme, base.Host)
			}
			if got := req.URL.EscapedPath(); got != tt.wantEscaped {
				t.Errorf("EscapedPath = %q, want %q", got, tt.wantEscaped)
			}
			wantPath := tt.wantPath
			if wantPath == "" {
				wantPath = tt.wantEscaped
			}
			if req.URL.Path != wantPath {
				t.Errorf("Path = %q, want %q", req.URL.Path, wantPath)
			}
			if req.URL.RawQuery != tt.wantQuery {
				t.Errorf("RawQuery = %q, want %q", req.URL.RawQuery, tt.wantQuery)
			}
			if req.URL.User != nil || req.URL.Fragment != "" {
				t.Errorf("URL %s carries user info or a fragment", req.URL)
			}
		})
	}
}

func TestNewRequestMethodAndBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		req             job.Request
		wantMethod      string
		wantContentType string
		wantBody        string
	}{
		{name: "default GET", req: job.Request{Path: "/x"}, wantMethod: http.MethodGet},
		{name: "explicit method", req: job.Request{Method: http.MethodDelete, Path: "/x"}, wantMethod: http.MethodDelete},
		{
			name:       "JSON body",
			req:        job.Request{Method: http.MethodPost, Path: "/x", Body: json.RawMessage(`{"a":1}`)},
			wantMethod: http.MethodPost, wantContentType: "application/json", wantBody: `{"a":1}`,
		},
		{
			name: "JSON body with job content type",
			req: job.Request{Method: http.MethodPatch, Path: "/x", Body: json.RawMessage(`{"a":1}`),
				Headers: map[string]string{"Content-Type": "application/merge-patch+json"}},
			wantMethod: http.MethodPatch, wantContentType: "application/merge-patch+json", wantBody: `{"a":1}`,
		},
		{
			name: "JSON body with lower-case job content type",
			req: job.Request{Method: http.MethodPost, Path: "/x", Body: json.RawMessage(`[]`),
				Headers: map[string]string{"content-type": "application/vnd.acme+json"}},
			wantMethod: http.MethodPost, wantContentType: "application/vnd.acme+json", wantBody: `[]`,
		},
		{
			name:       "base64 body",
			req:        job.Request{Method: http.MethodPut, Path: "/x", BodyBase64: []byte{0, 1, 2, 0xff}},
			wantMethod: http.MethodPut, wantContentType: "application/octet-stream", wantBody: "\x00\x01\x02\xff",
		},
		{
			name: "base64 body with job content type",
			req: job.Request{Method: http.MethodPut, Path: "/x", BodyBase64: []byte("png"),
				Headers: map[string]string{"Content-Type": "image/png"}},
			wantMethod: http.MethodPut, wantContentType: "image/png", wantBody: "png",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, provider.Config{BaseURL: "http://api.test/"})
			req, err := p.NewRequest(t.Context(), newJob(tt.req))
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			if req.Method != tt.wantMethod {
				t.Errorf("Method = %q, want %q", req.Method, tt.wantMethod)
			}
			if got := req.Header.Values("Content-Type"); tt.wantContentType == "" && len(got) != 0 || tt.wantContentType != "" && !reflect.DeepEqual(got, []string{tt.wantContentType}) {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantContentType)
			}
			var body []byte
			if req.Body != nil {
				body, _ = io.ReadAll(req.Body)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if req.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("ContentLength = %d, want %d", req.ContentLength, len(tt.wantBody))
			}
			if ua := req.Header.Get("User-Agent"); !strings.HasPrefix(ua, "switchyard/") {
				t.Errorf("User-Agent = %q, want switchyard/...", ua)
			}
		})
	}
}

func TestNewRequestHeaders(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_ACME_TOKEN", "s3cr3t")
	tests := []struct {
		name    string
		auth    provider.AuthConfig
		idem    string
		headers map[string]string
		want    map[string][]string // nil value: header must be absent
	}{
		{
			name:    "job headers are set",
			headers: map[string]string{"X-Tenant": "t1", "accept": "application/json"},
			want:    map[string][]string{"X-Tenant": {"t1"}, "Accept": {"application/json"}, "Idempotency-Key": {"job-1"}},
		},
		{
			name:    "auth header overrides the job's, case-insensitively",
			auth:    provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_ACME_TOKEN"},
			headers: map[string]string{"authorization": "Bearer stolen", "X-Other": "kept"},
			want:    map[string][]string{"Authorization": {"Bearer s3cr3t"}, "X-Other": {"kept"}},
		},
		{
			name:    "non-canonical auth header config overrides the job's",
			auth:    provider.AuthConfig{Header: "X-API-KEY", Env: "SWITCHYARD_TEST_ACME_TOKEN"},
			headers: map[string]string{"x-api-key": "stolen"},
			want:    map[string][]string{"X-Api-Key": {"s3cr3t"}},
		},
		{
			name:    "idempotency header overrides the job's",
			headers: map[string]string{"idempotency-key": "chosen-by-job"},
			want:    map[string][]string{"Idempotency-Key": {"job-1"}},
		},
		{
			name:    "custom idempotency header overrides the job's",
			idem:    "X-Request-Id",
			headers: map[string]string{"x-request-id": "chosen-by-job"},
			want:    map[string][]string{"X-Request-Id": {"job-1"}, "Idempotency-Key": nil},
		},
		{
			name: "idempotency header disabled",
			idem: "-",
			want: map[string][]string{"Idempotency-Key": nil, "-": nil},
		},
		{
			name: "no auth configured sends none",
			want: map[string][]string{"Authorization": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, provider.Config{BaseURL: "http://api.test", Auth: tt.auth, IdempotencyHeader: tt.idem})
			req, err := p.NewRequest(t.Context(), newJob(job.Request{Path: "/x", Headers: tt.headers}))
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			for k, want := range tt.want {
				if got := req.Header.Values(k); !reflect.DeepEqual(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestCallSendsRequest checks what arrives on the wire, end to end.
func TestCallSendsRequest(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_ACME_TOKEN", "s3cr3t")
	srv, got := captureServer(t)
	p := newProvider(t, provider.Config{
		BaseURL: srv.URL + "/api/v2/",
		Auth:    provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_ACME_TOKEN"},
	})
	j := newJob(job.Request{
		Method:  http.MethodPost,
		Path:    "/v1/a%2Fb",
		Query:   job.Query{"expand": {"lines", "tax"}, "limit": {"10"}},
		Headers: map[string]string{"X-Tenant": "t1", "authorization": "Bearer stolen", "Idempotency-Key": "other"},
		Body:    json.RawMessage(`{"amount":100}`),
	})
	reply, err := p.Call(t.Context(), j)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if reply.HTTPStatus != http.StatusOK {
		t.Errorf("HTTPStatus = %d, want 200", reply.HTTPStatus)
	}
	r := <-got
	if r.method != http.MethodPost {
		t.Errorf("method = %q, want POST", r.method)
	}
	if r.rawPath != "/api/v2/v1/a%2Fb" {
		t.Errorf("path on the wire = %q, want /api/v2/v1/a%%2Fb", r.rawPath)
	}
	if want := (url.Values{"expand": {"lines", "tax"}, "limit": {"10"}}); !reflect.DeepEqual(r.query, want) {
		t.Errorf("query = %v, want %v", r.query, want)
	}
	for k, want := range map[string][]string{
		"Authorization":   {"Bearer s3cr3t"},
		"Idempotency-Key": {"job-1"},
		"X-Tenant":        {"t1"},
		"Content-Type":    {"application/json"},
	} {
		if got := r.header.Values(k); !reflect.DeepEqual(got, want) {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "switchyard/") {
		t.Errorf("User-Agent = %q, want switchyard/...", ua)
	}
	if string(r.body) != `{"amount":100}` {
		t.Errorf("body = %q", r.body)
	}
}

func TestCallClassifiesStatus(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(time.Hour).UTC()
	past := time.Now().Add(-time.Hour).UTC()
	tests := []struct {
		name           string
		status         int
		header         http.Header
		wantErr        bool
		wantClass      job.Class
		wantRetryable  bool
		wantRetryAfter time.Duration // checked exactly
		// minRetryAfter, when set, replaces the exact check by
		// minRetryAfter <= RetryAfter <= wantRetryAfter.
		minRetryAfter time.Duration
	}{
		{name: "200", status: 200},
		{name: "201", status: 201},
		{name: "204", status: 204},
		{name: "400", status: 400, wantErr: true, wantClass: job.ClassHTTP4xx},
		{name: "404", status: 404, wantErr: true, wantClass: job.ClassHTTP4xx},
		{name: "422", status: 422, wantErr: true, wantClass: job.ClassHTTP4xx},
		{name: "408 is a retryable timeout", status: 408, wantErr: true, wantClass: job.ClassTimeout, wantRetryable: true},
		{name: "429 without Retry-After", status: 429, wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true},
		{
			name: "429 with Retry-After seconds", status: 429, header: http.Header{"Retry-After": {"3"}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true, wantRetryAfter: 3 * time.Second,
		},
		{
			// HTTP dates have a resolution of one second, and a little
			// time passes between building the header and parsing it.
			name: "429 with future Retry-After date", status: 429, header: http.Header{"Retry-After": {future.Format(http.TimeFormat)}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
			minRetryAfter: time.Hour - time.Minute, wantRetryAfter: time.Hour,
		},
		{
			name: "429 with past Retry-After date", status: 429, header: http.Header{"Retry-After": {past.Format(http.TimeFormat)}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
		},
		{
			name: "429 with garbage Retry-After", status: 429, header: http.Header{"Retry-After": {"soon"}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
		},
		{
			name: "429 with negative Retry-After", status: 429, header: http.Header{"Retry-After": {"-5"}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
		},
		{
			// Regression: delay-seconds this large overflowed time.Duration.
			name: "429 with huge Retry-After", status: 429, header: http.Header{"Retry-After": {"9999999999999"}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
			minRetryAfter: 100 * 365 * 24 * time.Hour, wantRetryAfter: time.Duration(1<<63 - 1),
		},
		{
			name: "429 with Retry-After beyond int64", status: 429, header: http.Header{"Retry-After": {"99999999999999999999"}},
			wantErr: true, wantClass: job.ClassThrottled, wantRetryable: true,
			minRetryAfter: 100 * 365 * 24 * time.Hour, wantRetryAfter: time.Duration(1<<63 - 1),
		},
		{name: "500", status: 500, wantErr: true, wantClass: job.ClassHTTP5xx, wantRetryable: true},
		{name: "502", status: 502, wantErr: true, wantClass: job.ClassHTTP5xx, wantRetryable: true},
		{
			name: "503 with Retry-After", status: 503, header: http.Header{"Retry-After": {"7"}},
			wantErr: true, wantClass: job.ClassHTTP5xx, wantRetryable: true, wantRetryAfter: 7 * time.Second,
		},
		{name: "unknown 5xx", status: 599, wantErr: true, wantClass: job.ClassHTTP5xx, wantRetryable: true},
		{name: "unknown 4xx", status: 499, wantErr: true, wantClass: job.ClassHTTP4xx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, vs := range tt.header {
					w.Header()[k] = vs
				}
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tt.status)
				if tt.status != http.StatusNoContent {
					_, _ = fmt.Fprintf(w, "status %d", tt.status)
				}
			}))
			t.Cleanup(srv.Close)
			p := newProvider(t, provider.Config{BaseURL: srv.URL})
			reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Call error = %v, wantErr %v", err, tt.wantErr)
			}
			if reply == nil {
				t.Fatal("Reply is nil although a response arrived")
			}
			if reply.HTTPStatus != tt.status {
				t.Errorf("Reply.HTTPStatus = %d, want %d", reply.HTTPStatus, tt.status)
			}
			wantBody := fmt.Sprintf("status %d", tt.status)
			if tt.status == http.StatusNoContent {
				wantBody = ""
			}
			if reply.Response == nil || reply.Response.BodyText != wantBody {
				t.Errorf("Reply.Response = %+v, want BodyText %q", reply.Response, wantBody)
			}
			if !tt.wantErr {
				return
			}
			perr := asError(t, err)
			if perr.Class != tt.wantClass || perr.Retryable != tt.wantRetryable || perr.HTTPStatus != tt.status {
				t.Errorf("Error = {Class %q Retryable %v HTTPStatus %d}, want {%q %v %d}",
					perr.Class, perr.Retryable, perr.HTTPStatus, tt.wantClass, tt.wantRetryable, tt.status)
			}
			if tt.minRetryAfter != 0 {
				if perr.RetryAfter < tt.minRetryAfter || perr.RetryAfter > tt.wantRetryAfter {
					t.Errorf("RetryAfter = %s, want in [%s, %s]", perr.RetryAfter, tt.minRetryAfter, tt.wantRetryAfter)
				}
			} else if perr.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %s, want %s", perr.RetryAfter, tt.wantRetryAfter)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tt.status)) {
				t.Errorf("Error() = %q does not name the status", err)
			}
		})
	}
}

func TestCallDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(elsewhere.Close)
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/landing", status)
			}))
			t.Cleanup(srv.Close)
			p := newProvider(t, provider.Config{BaseURL: srv.URL})
			reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
			perr := asError(t, err)
			if perr.Retryable || perr.HTTPStatus != status || perr.Class != job.ClassHTTP4xx {
				t.Errorf("Error = %+v, want permanent http_4xx with status %d", perr, status)
			}
			if reply == nil || reply.HTTPStatus != status {
				t.Errorf("Reply = %+v, want status %d", reply, status)
			}
			if loc := reply.Response.Headers["Location"]; len(loc) != 1 || !strings.HasPrefix(loc[0], elsewhere.URL) {
				t.Errorf("stored Location = %q", loc)
			}
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel subtests: every Call has returned.
		if n := hits.Load(); n != 0 {
			t.Errorf("redirect target was hit %d times", n)
		}
	})
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{
			name: "no headers",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
		},
		{
			name: "body stalls",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, `{"partial":`)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			p := newProvider(t, provider.Config{BaseURL: srv.URL, Timeout: 100 * time.Millisecond})
			start := time.Now()
			reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/slow"}))
			elapsed := time.Since(start)
			perr := asError(t, err)
			if perr.Class != job.ClassTimeout || !perr.Retryable || perr.HTTPStatus != 0 {
				t.Errorf("Error = %+v, want retryable timeout without status", perr)
			}
			if !strings.Contains(perr.Error(), "no answer within 100ms") {
				t.Errorf("Error %q does not say the provider did not answer in time", perr)
			}
			if reply != nil {
				t.Errorf("Reply = %+v, want nil", reply)
			}
			if elapsed < 100*time.Millisecond {
				t.Errorf("Call returned after %s, before the 100ms timeout", elapsed)
			}
		})
	}
}

func TestCallConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, provider.Config{BaseURL: "http://" + addr})
	reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
	perr := asError(t, err)
	if perr.Class != job.ClassNetwork || !perr.Retryable || perr.HTTPStatus != 0 {
		t.Errorf("Error = %+v, want retryable network error", perr)
	}
	if reply != nil {
		t.Errorf("Reply = %+v, want nil", reply)
	}
}

func TestCallInvalidJob(t *testing.T) {
	t.Parallel()
	p := newProvider(t, provider.Config{BaseURL: "http://127.0.0.1:1"})
	_, err := p.Call(t.Context(), newJob(job.Request{Path: "//evil.com/x"}))
	perr := asError(t, err)
	if perr.Class != job.ClassInvalid || perr.Retryable {
		t.Errorf("Error = %+v, want permanent invalid", perr)
	}
}

func TestCallCallerCancelled(t *testing.T) {
	t.Parallel()
	t.Run("during the call", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
		}))
		t.Cleanup(srv.Close)
		p := newProvider(t, provider.Config{BaseURL: srv.URL, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()
		reply, err := p.Call(ctx, newJob(job.Request{Path: "/x"}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		var perr *provider.Error
		if errors.As(err, &perr) {
			t.Errorf("error is a *provider.Error %+v; a cancelled call has no outcome", perr)
		}
		if reply != nil {
			t.Errorf("Reply = %+v, want nil", reply)
		}
	})
	t.Run("before the call", func(t *testing.T) {
		t.Parallel()
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		t.Cleanup(srv.Close)
		p := newProvider(t, provider.Config{BaseURL: srv.URL})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := p.Call(ctx, newJob(job.Request{Path: "/x"}))
		var perr *provider.Error
		if !errors.Is(err, context.Canceled) || errors.As(err, &perr) {
			t.Fatalf("error = %v (%T), want bare context.Canceled", err, err)
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("server was hit %d times", n)
		}
	})
}

func TestCallResponseBody(t *testing.T) {
	t.Parallel()
	hundred := strings.Repeat("a", 100)
	tests := []struct {
		name          string
		limit         int
		contentType   string
		body          []byte
		wantTruncated bool
		wantJSON      string
		wantText      string
		wantBase64    []byte
	}{
		{name: "JSON", contentType: "application/json", body: []byte(`{"ok":true,"n":[1,2]}`), wantJSON: `{"ok":true,"n":[1,2]}`},
		{name: "JSON without content type", body: []byte(`[1,2,3]`), wantJSON: `[1,2,3]`},
		{name: "plain text", contentType: "text/plain", body: []byte("hello, wörld"), wantText: "hello, wörld"},
		{name: "binary", contentType: "application/octet-stream", body: []byte{0xff, 0xfe, 0x00, 0x80}, wantBase64: []byte{0xff, 0xfe, 0x00, 0x80}},
		{name: "empty", body: nil},
		{name: "exactly at the limit", limit: 10, body: []byte("0123456789"), wantText: "0123456789"},
		{name: "truncated text", limit: 10, body: []byte(hundred), wantTruncated: true, wantText: hundred[:10]},
		{
			name: "truncated JSON is not stored as JSON", limit: 10, contentType: "application/json",
			body: []byte(`{"a":"` + hundred + `"}`), wantTruncated: true, wantText: `{"a":"aaaa`,
		},
		{name: "truncated binary", limit: 10, body: bytes.Repeat([]byte{0xff}, 100), wantTruncated: true, wantBase64: bytes.Repeat([]byte{0xff}, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				_, _ = w.Write(tt.body)
			}))
			t.Cleanup(srv.Close)
			p := newProvider(t, provider.Config{BaseURL: srv.URL, ResponseBodyLimit: tt.limit})
			reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			r := reply.Response
			if r.Truncated != tt.wantTruncated {
				t.Errorf("Truncated = %v, want %v", r.Truncated, tt.wantTruncated)
			}
			if string(r.Body) != tt.wantJSON || r.BodyText != tt.wantText || !bytes.Equal(r.BodyBase64, tt.wantBase64) {
				t.Errorf("Body %q, BodyText %q, BodyBase64 %x; want %q, %q, %x",
					r.Body, r.BodyText, r.BodyBase64, tt.wantJSON, tt.wantText, tt.wantBase64)
			}
			if tt.limit > 0 {
				if n := len(r.Body) + len(r.BodyText) + len(r.BodyBase64); n > tt.limit {
					t.Errorf("stored %d body bytes, limit %d", n, tt.limit)
				}
			}
		})
	}
}

// TestCallTruncatedConnectionReused checks that a truncated body does not
// poison the connection: the next call on the same provider still works.
func TestCallTruncatedConnectionReused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(srv.Close)
	p := newProvider(t, provider.Config{BaseURL: srv.URL, ResponseBodyLimit: 10})
	for i := range 3 {
		reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !reply.Response.Truncated || reply.Response.BodyText != "xxxxxxxxxx" {
			t.Fatalf("call %d: Response = %+v", i, reply.Response)
		}
	}
}

func TestCallResponseHeaders(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Set-Cookie", "session=secret")
		h.Add("Set-Cookie", "other=secret")
		h.Set("WWW-Authenticate", `Bearer realm="x"`)
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Authorization", "Bearer echoed")
		h.Set("X-Request-Id", "req-7")
		h.Add("X-Multi", "a")
		h.Add("X-Multi", "b")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"no"}`)
	}))
	t.Cleanup(srv.Close)
	p := newProvider(t, provider.Config{BaseURL: srv.URL})
	reply, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"}))
	if perr := asError(t, err); perr.HTTPStatus != http.StatusUnauthorized || perr.Retryable {
		t.Errorf("Error = %+v, want permanent 401", perr)
	}
	h := http.Header(reply.Response.Headers)
	for _, k := range []string{"Set-Cookie", "Www-Authenticate", "Proxy-Authenticate", "Authorization"} {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("stored header %s = %q, want it dropped", k, v)
		}
	}
	for k, want := range map[string][]string{
		"X-Request-Id": {"req-7"},
		"X-Multi":      {"a", "b"},
		"Content-Type": {"application/json"},
	} {
		if got := h.Values(k); !reflect.DeepEqual(got, want) {
			t.Errorf("stored header %s = %q, want %q", k, got, want)
		}
	}
	if string(reply.Response.Body) != `{"error":"no"}` {
		t.Errorf("Body = %q", reply.Response.Body)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("SWITCHYARD_TEST_TOKEN", "env-secret")
	t.Setenv("SWITCHYARD_TEST_EMPTY", "")
	t.Setenv("SWITCHYARD_TEST_UNSET", "")
	if err := os.Unsetenv("SWITCHYARD_TEST_UNSET"); err != nil { // t.Setenv restores it
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		auth      provider.AuthConfig
		want      string // value of the auth header on the wire
		wantErr   bool
		wantField string // named in the error
	}{
		{name: "env with prefix", auth: provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_TOKEN"}, want: "Bearer env-secret"},
		{name: "env without prefix", auth: provider.AuthConfig{Header: "X-Api-Key", Env: "SWITCHYARD_TEST_TOKEN"}, want: "env-secret"},
		{name: "env unset", auth: provider.AuthConfig{Header: "Authorization", Env: "SWITCHYARD_TEST_UNSET"}, wantErr: true, wantField: "auth.env"},
		{name: "env empty", auth: provider.AuthConfig{Header: "Authorization", Env: "SWITCHYARD_TEST_EMPTY"}, wantErr: true, wantField: "auth.env"},
		{name: "file with trailing newline", auth: provider.AuthConfig{Header: "Authorization", Prefix: "Token ", File: writeFile("nl", "file-secret\n")}, want: "Token file-secret"},
		{name: "file with CRLF", auth: provider.AuthConfig{Header: "X-Api-Key", File: writeFile("crlf", "file-secret\r\n")}, want: "file-secret"},
		{name: "file without newline", auth: provider.AuthConfig{Header: "X-Api-Key", File: writeFile("plain", "file-secret")}, want: "file-secret"},
		{name: "empty file", auth: provider.AuthConfig{Header: "X-Api-Key", File: writeFile("empty", "")}, wantErr: true, wantField: "auth.file"},
		{name: "file of newlines", auth: provider.AuthConfig{Header: "X-Api-Key", File: writeFile("newlines", "\n\n")}, wantErr: true, wantField: "auth.file"},
		{name: "missing file", auth: provider.AuthConfig{Header: "X-Api-Key", File: filepath.Join(dir, "nope")}, wantErr: true, wantField: "auth.file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := captureServer(t)
			p, err := provider.New("acme", provider.Config{BaseURL: srv.URL, Auth: tt.auth, AllowPrivateNetwork: true})
			if (err != nil) != tt.wantErr {
				t.Fatalf("New error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !strings.Contains(err.Error(), tt.wantField) || !strings.Contains(err.Error(), "acme") {
					t.Errorf("error %q does not name %s and the provider", err, tt.wantField)
				}
				return
			}
			t.Cleanup(p.Close)
			if _, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"})); err != nil {
				t.Fatalf("Call: %v", err)
			}
			if v := (<-got).header.Values(tt.auth.Header); !reflect.DeepEqual(v, []string{tt.want}) {
				t.Errorf("%s = %q, want %q", tt.auth.Header, v, tt.want)
			}
		})
	}
}

// TestAuthReadAtNew checks that the secret is read once, when the provider
// is built, not on every call.
func TestAuthReadAtNew(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_TOKEN", "first")
	srv, got := captureServer(t)
	p := newProvider(t, provider.Config{BaseURL: srv.URL, Auth: provider.AuthConfig{Header: "X-Api-Key", Env: "SWITCHYARD_TEST_TOKEN"}})
	t.Setenv("SWITCHYARD_TEST_TOKEN", "second")
	if _, err := p.Call(t.Context(), newJob(job.Request{Path: "/x"})); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if v := (<-got).header.Get("X-Api-Key"); v != "first" {
		t.Errorf("X-Api-Key = %q, want the value read at New", v)
	}
}

func TestNewAll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfgs      map[string]provider.Config
		wantNames []string
		wantErr   []string // substrings of the error
	}{
		{name: "empty", cfgs: nil, wantNames: []string{}},
		{
			name: "sorted by name",
			cfgs: map[string]provider.Config{
				"zeta": {BaseURL: "https://z.test"}, "alpha": {BaseURL: "https://a.test"},
				"mid_1": {BaseURL: "https://m.test"}, "beta-2": {BaseURL: "https://b.test"},
			},
			wantNames: []string{"alpha", "beta-2", "mid_1", "zeta"},
		},
		{
			name:    "invalid name",
			cfgs:    map[string]provider.Config{"ok": {BaseURL: "https://ok.test"}, "Acme": {BaseURL: "https://a.test"}},
			wantErr: []string{`"Acme"`},
		},
		{
			name:    "bad config",
			cfgs:    map[string]provider.Config{"billing": {BaseURL: "ftp://billing.test"}, "crm": {BaseURL: "https://crm.test"}},
			wantErr: []string{"billing", "base_url"},
		},
		{
			name:    "bad auth",
			cfgs:    map[string]provider.Config{"crm": {BaseURL: "https://crm.test", Auth: provider.AuthConfig{Header: "X-Key"}}},
			wantErr: []string{"crm", "auth"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps, err := provider.NewAll(tt.cfgs)
			if (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("NewAll error = %v, wantErr %v", err, tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if err != nil {
				return
			}
			names := make([]string, 0, len(ps))
			for _, p := range ps {
				names = append(names, p.Name())
				p.Close()
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("names = %q, want %q", names, tt.wantNames)
			}
		})
	}
}

// TestCallConcurrent runs many calls at once on one provider (for -race).
func TestCallConcurrent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	}))
	t.Cleanup(srv.Close)
	p := newProvider(t, provider.Config{BaseURL: srv.URL, Concurrency: 4})
	errs := make(chan error, 50)
	for i := range 50 {
		go func() {
			path := "/item/" + strconv.Itoa(i)
			reply, err := p.Call(t.Context(), newJob(job.Request{Path: path}))
			if err == nil && string(reply.Response.Body) != `{"path":"`+path+`"}` {
				err = fmt.Errorf("%s: body %q", path, reply.Response.Body)
			}
			errs <- err
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
