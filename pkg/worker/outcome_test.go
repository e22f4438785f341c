package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/limit"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

func TestHealthAndRetrying(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		want      limit.Outcome
		wantRetry bool
	}{
		{"success", nil, limit.Success, false},
		{"network", &provider.Error{Class: job.ClassNetwork, Retryable: true}, limit.Failure, true},
		{"timeout", &provider.Error{Class: job.ClassTimeout, Retryable: true}, limit.Failure, true},
		{"408", &provider.Error{Class: job.ClassTimeout, HTTPStatus: 408, Retryable: true}, limit.Failure, true},
		{"503", &provider.Error{Class: job.ClassHTTP5xx, HTTPStatus: 503, Retryable: true}, limit.Failure, true},
		{"500 not retried by policy", &provider.Error{Class: job.ClassHTTP5xx, HTTPStatus: 500}, limit.Failure, false},
		{"429", &provider.Error{Class: job.ClassThrottled, HTTPStatus: 429, Retryable: true}, limit.Neutral, true},
		{"404", &provider.Error{Class: job.ClassHTTP4xx, HTTPStatus: 404}, limit.Success, false},
		{"invalid", &provider.Error{Class: job.ClassInvalid}, limit.Neutral, false},
		{"cancelled", context.Canceled, limit.Neutral, true},
		{"other error", errors.New("boom"), limit.Neutral, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := health(nil, tt.err); got != tt.want {
				t.Errorf("health(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got := retrying(tt.err); got != tt.wantRetry {
				t.Errorf("retrying(%v) = %v, want %v", tt.err, got, tt.wantRetry)
			}
		})
	}
}
