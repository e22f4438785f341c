package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// Provider calls one third-party API. It is safe for concurrent use.
type Provider struct {
	name   string
	cfg    Config
	base   *url.URL
	auth   string // the auth header's value: prefix and secret
	secret string // the secret alone, scrubbed from what the provider answers
	client *http.Client
	// direct, when redirects are never followed, is the client's transport,
	// called without the client (see do).
	direct http.RoundTripper
	// h1 is direct when that is the plain-HTTP transport: its calls are
	// bounded by a deadline on their connection (see call).
	h1 *h1Transport
	// policy is the provider's retry policy, policies its tasks' overrides.
	policy   *Policy
	policies map[string]*Policy
}

// New builds a provider from its config, applying defaults and validating
// it. The auth secret is read now, so a missing one fails at start.
func New(name string, cfg Config) (*Provider, error) {
	if !job.ValidToken(name) {
		return nil, fmt.Errorf("provider %q: name must match [a-z0-9_-]{1,64}", name)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	return build(name, cfg)
}

// build makes the provider from a validated config.
func build(name string, cfg Config) (*Provider, error) {
	base, _ := url.Parse(cfg.BaseURL) // validated
	p := &Provider{name: name, cfg: cfg, base: base}
	if err := p.buildPolicies(); err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	if cfg.Auth.Header != "" {
		secret, err := cfg.Auth.secret()
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		p.auth = secret
		p.secret = strings.TrimPrefix(secret, cfg.Auth.Prefix)
	}
	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateNetwork {
		dialer.Control = dialControl
	}
	transport := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		// One idle connection per possible call in flight: a burst finds its
		// connections already open.
		MaxIdleConns:           cfg.Concurrency,
		MaxIdleConnsPerHost:    cfg.Concurrency,
		MaxConnsPerHost:        cfg.Concurrency,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(cfg.Timeout, 10*time.Second),
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	var rt http.RoundTripper = transport
	if base.Scheme == "http" && !proxied(base) {
		rt = newH1Transport(dialer.DialContext, transport, cfg.Concurrency)
	}
	p.client = &http.Client{
		Transport: rt,
		// A redirect could lead anywhere; the job's host is the provider's.
		CheckRedirect: checkRedirect(cfg.FollowRedirects, base),
	}
	if cfg.FollowRedirects != RedirectsSameHost {
		p.direct = rt
		p.h1, _ = rt.(*h1Transport)
	}
	return p, nil
}

// proxied reports whether the environment sends calls to base through a
// proxy, which net/http's Transport knows how to speak to.
func proxied(base *url.URL) bool {
	u, err := http.ProxyFromEnvironment(&http.Request{URL: base})
	return err != nil || u != nil
}

// Name returns the provider's name.
func (p *Provider) Name() string { return p.name }

// Config returns the provider's config with defaults applied.
func (p *Provider) Config() Config { return p.cfg }

// Close releases idle connections.
func (p *Provider) Close() { p.client.CloseIdleConnections() }

// Reply is what came back from a call that reached the provider.
type Reply struct {
	HTTPStatus int
	Response   *job.Response
}

// Call makes the job's request and reads the answer. A nil error means a
// 2xx answer. Otherwise the error is an *Error whose Retryable follows the
// task's retry policy, or ctx's error when ctx was cancelled; the Reply is
// non-nil whenever a response was read.
func (p *Provider) Call(ctx context.Context, j *job.Job) (*Reply, error) {
	reply, err := p.call(ctx, j)
	var perr *Error
	if errors.As(err, &perr) {
		perr.Retryable = p.Policy(j.Task).Retries(perr)
	}
	return reply, err
}

// call bounds the call, its body included, by the provider's timeout. On
// the plain-HTTP transport that is a deadline on the connection; a context
// with a timeout of its own, as net/http needs, cost every call a context,
// a timer and two registrations of a child context (about 3 % of the
// worker's CPU at 10,000 calls in flight).
func (p *Provider) call(ctx context.Context, j *job.Job) (*Reply, error) {
	deadline := time.Now().Add(p.cfg.Timeout)
	if p.h1 == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	req, err := p.NewRequest(ctx, j)
	if err != nil {
		return nil, &Error{Class: job.ClassInvalid, Err: err}
	}
	resp, err := p.do(req, deadline)
	if err != nil {
		return nil, p.transportError(ctx, deadline, err)
	}
	defer resp.Body.Close()
	body, truncated, err := readCapped(resp.Body, p.cfg.ResponseBodyLimit)
	if err != nil {
		return nil, p.transportError(ctx, deadline, fmt.Errorf("read response body: %w", err))
	}
	body, truncated = scrubSecret(body, truncated, p.secret)
	if p.cfg.Auth.Header != "" {
		resp.Header.Del(p.cfg.Auth.Header)
	}
	scrubHeader(resp.Header, p.secret)
	reply := &Reply{HTTPStatus: resp.StatusCode, Response: newResponse(resp.Header, body, truncated)}
	return reply, classify(resp)
}

// do sends req, which the plain-HTTP transport bounds by deadline. When no
// redirect is followed http.Client adds nothing but a copy of the
// request's headers, kept for redirects, on every call; the transport is
// then called straight, and its errors wrapped as the client wraps them.
func (p *Provider) do(req *http.Request, deadline time.Time) (*http.Response, error) {
	if p.direct == nil {
		return p.client.Do(req)
	}
	var (
		resp *http.Response
		err  error
	)
	if p.h1 != nil {
		resp, err = p.h1.roundTripUntil(req, deadline)
	} else {
		resp, err = p.direct.RoundTrip(req)
	}
	if err != nil {
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(), Err: err}
	}
	return resp, nil
}

// urlErrorOp is how http.Client names a method in its errors: "Get", "Post".
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// NewRequest builds the HTTP request for j. The job's path is appended to
// the base URL's path; the job's headers go first so that the idempotency
// key and the provider's auth always win.
func (p *Provider) NewRequest(ctx context.Context, j *job.Job) (*http.Request, error) {
	r := j.Request
	if err := job.ValidatePath(r.Path); err != nil {
		return nil, fmt.Errorf("request.path: %w", err)
	}
	rel, err := url.Parse(r.Path)
	if err != nil {
		return nil, fmt.Errorf("request.path: %w", err)
	}
	u := *p.base
	u.Path = strings.TrimSuffix(p.base.Path, "/") + rel.Path
	u.RawPath = strings.TrimSuffix(p.base.EscapedPath(), "/") + rel.EscapedPath()
	if len(r.Query) > 0 {
		u.RawQuery = url.Values(r.Query).Encode()
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	contentType := ""
	switch {
	case len(r.Body) > 0:
		body, contentType = bytes.NewReader(r.Body), "application/json"
	case len(r.BodyBase64) > 0:
		body, contentType = bytes.NewReader(r.BodyBase64), "application/octet-stream"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if req.URL.Host != p.base.Host || req.URL.Scheme != p.base.Scheme {
		// Unreachable after ValidatePath; kept because this is the one
		// place where a mistake would send a call elsewhere.
		return nil, fmt.Errorf("request.path: %q escapes the provider's host", r.Path)
	}
	req.Header.Set("User-Agent", "switchyard/1")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if h := p.cfg.IdempotencyHeader; h != "-" {
		req.Header.Set(h, j.ID)
	}
	if p.cfg.Auth.Header != "" {
		req.Header.Set(p.cfg.Auth.Header, p.auth)
	}
	return req, nil
}

func (p *Provider) transportError(ctx context.Context, deadline time.Time, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded),
		!time.Now().Before(deadline) && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		return &Error{Class: job.ClassTimeout, Retryable: true, Err: fmt.Errorf("no answer within %s: %w", p.cfg.Timeout, err)}
	case ctx.Err() != nil:
		return ctx.Err() // the caller gave up; the attempt has no outcome
	case errors.Is(err, ErrPrivateNetwork):
		// The config or the DNS points at the worker's own network: no
		// retry will change that, and retrying would keep probing it.
		return &Error{Class: job.ClassNetwork, Err: err}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &Error{Class: job.ClassTimeout, Retryable: true, Err: err}
	default:
		return &Error{Class: job.ClassNetwork, Retryable: true, Err: err}
	}
}

func classify(resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		return &Error{Class: job.ClassThrottled, Retryable: true, HTTPStatus: code, RetryAfter: retryAfter(resp.Header, time.Now()), Err: errors.New(http.StatusText(code))}
	case code == http.StatusRequestTimeout:
		return &Error{Class: job.ClassTimeout, Retryable: true, HTTPStatus: code, Err: errors.New(http.StatusText(code))}
	case code >= 500:
		return &Error{Class: job.ClassHTTP5xx, Retryable: true, HTTPStatus: code, RetryAfter: retryAfter(resp.Header, time.Now()), Err: errors.New(statusText(code))}
	case code >= 400:
		return &Error{Class: job.ClassHTTP4xx, HTTPStatus: code, Err: errors.New(statusText(code))}
	default:
		return &Error{Class: job.ClassHTTP4xx, HTTPStatus: code, Err: fmt.Errorf("unexpected status %d (redirects are followed only with follow_redirects: same_host, and only on the base_url host)", code)}
	}
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "status " + strconv.Itoa(code)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && secs > 0 {
		err = nil // secs is MaxInt64
	}
	if err == nil && secs >= 0 {
		if secs > math.MaxInt64/int64(time.Second) {
			return math.MaxInt64 // would overflow time.Duration
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// readCapped reads at most limit bytes and reports whether there was more.
// It drains a little of the rest so that the connection can be reused.
func readCapped(r io.Reader, limit int) ([]byte, bool, error) {
	body, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, false, err
	}
	if len(body) <= limit {
		return body, false, nil
	}
	_, _ = io.CopyN(io.Discard, r, 256<<10)
	return body[:limit], true, nil
}

// Response headers that are never stored.
var droppedHeaders = []string{"Set-Cookie", "Authorization", "Proxy-Authenticate", "Www-Authenticate"}

func newResponse(h http.Header, body []byte, truncated bool) *job.Response {
	// The response is done with once read, so its header map is taken over
	// rather than copied: this runs once per call.
	r := &job.Response{Headers: h, Truncated: truncated}
	for _, k := range droppedHeaders {
		delete(r.Headers, k)
	}
	switch {
	case len(body) == 0:
	case !truncated && json.Valid(body):
		r.Body = body
	case utf8.Valid(body):
		r.BodyText = string(body)
	default:
		r.BodyBase64 = body
	}
	return r
}

// NewAll builds every configured provider, in name order.
func NewAll(cfgs map[string]Config) ([]*Provider, error) {
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*Provider, 0, len(names))
	for _, name := range names {
		p, err := New(name, cfgs[name])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
