package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ErrUnreachable is matched (with errors.Is) by the error of a call that
// got no HTTP answer at all: nothing listens there, a timeout, a TLS
// failure.
var ErrUnreachable = errors.New("recorder API unreachable")

// maxAnswer caps what the client reads of one answer. A page is at most
// 1,000 rows without bodies; a job's stored response is capped by its
// provider's response_body_limit.
const maxAnswer = 64 << 20

// Client calls the query API. Its methods return a *Problem when the API
// answered with one, and an error matching ErrUnreachable when it could not
// be reached.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// NewClient returns a client of the API at baseURL, such as
// http://127.0.0.1:8472, sending token as bearer token when not empty.
// hc nil means a client with a 30s timeout.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("API URL %q: want http://host:port or https://host:port", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// URL returns the API's base URL.
func (c *Client) URL() string { return c.base.String() }

// Job returns one job with its attempts and last response.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.get(ctx, "/v1/jobs/"+url.PathEscape(id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListQuery selects jobs for Jobs; zero fields match everything.
type ListQuery struct {
	Provider, Task, Status, Batch string
	// Since keeps jobs updated at or after it.
	Since time.Time
	// Limit is the page size; 0 lets the server choose.
	Limit int
	// Cursor continues after a page: its NextCursor.
	Cursor string
}

func (q ListQuery) values() url.Values {
	v := url.Values{}
	set := func(name, value string) {
		if value != "" {
			v.Set(name, value)
		}
	}
	set("provider", q.Provider)
	set("task", q.Task)
	set("status", q.Status)
	set("batch", q.Batch)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// Jobs returns one page of jobs.
func (c *Client) Jobs(ctx context.Context, q ListQuery) (*JobList, error) {
	var l JobList
	if err := c.get(ctx, "/v1/jobs", q.values(), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// EachPage calls fn with every page of the listing q selects, following
// cursors from q.Cursor on, until the last page or fn's first error.
func (c *Client) EachPage(ctx context.Context, q ListQuery, fn func(*JobList) error) error {
	for {
		page, err := c.Jobs(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if page.NextCursor == "" {
			return nil
		}
		q.Cursor = page.NextCursor
	}
}

// Batch returns the counts of a batch.
func (c *Client) Batch(ctx context.Context, id string) (*Batch, error) {
	var b Batch
	if err := c.get(ctx, "/v1/batches/"+url.PathEscape(id), nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Stats returns per-provider stats over windows (the server's defaults when
// none is given).
func (c *Client) Stats(ctx context.Context, windows ...time.Duration) (*Stats, error) {
	v := url.Values{}
	for _, w := range windows {
		v.Add("window", formatWindow(w))
	}
	var s Stats
	if err := c.get(ctx, "/v1/stats", v, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Ready returns nil when GET /readyz answers 200, else why not.
func (c *Client) Ready(ctx context.Context) error {
	var v map[string]string
	return c.get(ctx, "/readyz", nil, &v)
}

// get calls path (escaped already) with query q and decodes the answer
// into into.
func (c *Client) get(ctx context.Context, path string, q url.Values, into any) error {
	target := c.base.String() + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", path, err)
	}
	if len(body) > maxAnswer {
		return fmt.Errorf("%s: answer larger than %d MiB", path, maxAnswer>>20)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK {
		if mediaType == problemContentType || mediaType == "application/json" {
			p := new(Problem)
			if json.Unmarshal(body, p) == nil && p.Status != 0 {
				return p
			}
		}
		return fmt.Errorf("%s answered %s (%s), not the Switchyard query API? %s",
			c.base, resp.Status, orNone(mediaType), snippet(body))
	}
	if mediaType != "application/json" {
		return fmt.Errorf("%s answered %s with %s, not JSON: is this the Switchyard query API? %s",
			c.base, resp.Status, orNone(mediaType), snippet(body))
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", path, err)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no content type"
	}
	return s
}

// snippet quotes the start of an unexpected answer, for the error.
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}
