package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MockStats is the mock API's counters (GET /stats), for all providers
// together or for one.
type MockStats struct {
	Requests int64 `json:"requests"`
	// ByStatus counts answers by HTTP status code ("200").
	ByStatus     map[string]int64 `json:"by_status"`
	Canceled     int64            `json:"canceled"`
	InFlight     int64            `json:"in_flight"`
	PeakInFlight int64            `json:"peak_in_flight"`
	// Throttled counts calls the mock's rate limit refused or delayed.
	Throttled int64 `json:"throttled"`
	// MaxPerSecond is the most calls received in one second;
	// MaxAdmittedPerSecond the most that passed the rate limit.
	MaxPerSecond         int64 `json:"max_per_second"`
	MaxAdmittedPerSecond int64 `json:"max_admitted_per_second"`
	// Keys counts distinct Idempotency-Key values; Duplicates those seen on
	// more than one admitted call.
	Keys       int64 `json:"keys"`
	Duplicates int64 `json:"duplicates"`
}

// mockReport is the body of GET /stats.
type mockReport struct {
	Total     MockStats            `json:"total"`
	Providers map[string]MockStats `json:"providers"`
}

// mockClient talks to the mock API's control endpoints. It has its own
// small http.Client so that it never waits behind the load it measures.
type mockClient struct {
	base string
	hc   *http.Client
}

func newMockClient(base string) *mockClient {
	return &mockClient{
		base: strings.TrimRight(base, "/"),
		hc:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
	}
}

// ProviderURL is the base_url a provider named name gets.
func (m *mockClient) ProviderURL(name string) string { return m.base + "/" + name }

func (m *mockClient) Stats(ctx context.Context) (mockReport, error) {
	var r mockReport
	body, err := m.do(ctx, http.MethodGet, "/stats", http.StatusOK)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("mock GET /stats: %w", err)
	}
	return r, nil
}

func (m *mockClient) Reset(ctx context.Context) error {
	_, err := m.do(ctx, http.MethodPost, "/stats/reset", http.StatusNoContent)
	return err
}

// WaitHealthy polls GET /healthz until it answers 200.
func (m *mockClient) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, err := m.do(ctx, http.MethodGet, "/healthz", http.StatusOK)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mock API at %s not healthy after %s: %w", m.base, timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *mockClient) do(ctx context.Context, method, path string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mock %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("mock %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("mock %s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, truncate(string(body), 200))
	}
	return body, nil
}
