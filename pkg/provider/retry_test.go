package provider_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

func TestPolicyRetries(t *testing.T) {
	t.Parallel()
	p := newProvider(t, provider.Config{BaseURL: "https://api.test",
		Retry: provider.RetryPolicy{Statuses: []string{"429", "502, 503", "409"}, Errors: []string{"timeout"}},
		Tasks: map[string]provider.Task{
			"refund": {Retry: provider.RetryPolicy{Attempts: 1, Statuses: []string{}}},
			"ping":   {Retry: provider.RetryPolicy{Base: time.Millisecond, Cap: 2 * time.Millisecond}},
		}})
	tests := []struct {
		name string
		task string
		err  *provider.Error
		want bool
	}{
		{"listed status", "charge", &provider.Error{Class: job.ClassHTTP5xx, HTTPStatus: 503}, true},
		{"unlisted 5xx", "charge", &provider.Error{Class: job.ClassHTTP5xx, HTTPStatus: 500}, false},
		{"listed 4xx", "charge", &provider.Error{Class: job.ClassHTTP4xx, HTTPStatus: 409}, true},
		{"listed error class", "charge", &provider.Error{Class: job.ClassTimeout}, true},
		{"unlisted error class", "charge", &provider.Error{Class: job.ClassNetwork}, false},
		{"408 goes by its status", "charge", &provider.Error{Class: job.ClassTimeout, HTTPStatus: 408}, false},
		{"invalid never", "charge", &provider.Error{Class: job.ClassInvalid}, false},
		{"task with no statuses", "refund", &provider.Error{Class: job.ClassHTTP5xx, HTTPStatus: 503}, false},
		{"task inherits errors", "refund", &provider.Error{Class: job.ClassTimeout}, true},
		{"task inherits statuses", "ping", &provider.Error{Class: job.ClassThrottled, HTTPStatus: 429}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := p.Policy(tt.task).Retries(tt.err); got != tt.want {
				t.Errorf("Policy(%s).Retries(%+v) = %v, want %v", tt.task, tt.err, got, tt.want)
			}
		})
	}
	if got := p.Policy("refund").Attempts; got != 1 {
		t.Errorf("refund attempts = %d, want 1", got)
	}
	if got := p.Policy("charge").Attempts; got != 5 {
		t.Errorf("charge attempts = %d, want the provider's 5", got)
	}
	for range 100 {
		if d := p.Policy("ping").Delay(5, 0); d > 2*time.Millisecond {
			t.Fatalf("ping delay %s above its cap of 2ms", d)
		}
	}
}

// Call marks the error retryable as the task's policy says, whatever the
// status's usual meaning.
func TestCallFollowsTheRetryPolicy(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	t.Cleanup(hs.Close)
	p := newProvider(t, provider.Config{BaseURL: hs.URL, Retry: provider.RetryPolicy{Statuses: []string{"5xx"}},
		Tasks: map[string]provider.Task{"strict": {Retry: provider.RetryPolicy{Statuses: []string{"503"}}}}})
	tests := []struct {
		task string
		code int
		want bool
	}{
		{"charge", 500, true}, {"charge", 429, false}, {"strict", 500, false}, {"strict", 503, true}, {"charge", 404, false},
	}
	for _, tt := range tests {
		j := newJob(job.Request{Path: "/" + strconv.Itoa(tt.code)})
		j.Task = tt.task
		_, err := p.Call(t.Context(), j)
		var perr *provider.Error
		if !errors.As(err, &perr) {
			t.Fatalf("%s %d: error %v is not a *provider.Error", tt.task, tt.code, err)
		}
		if perr.Retryable != tt.want {
			t.Errorf("%s %d: Retryable = %v, want %v", tt.task, tt.code, perr.Retryable, tt.want)
		}
	}
}
