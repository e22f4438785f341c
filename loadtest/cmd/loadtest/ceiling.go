package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Ceiling is what plain Go achieves against the same mock API on the same
// machine: InFlight goroutines sharing one http.Client, each posting the
// same body in a loop, no NATS and no database. The pipeline's end-to-end
// rate is reported as a share of SteadyRate.
type Ceiling struct {
	InFlight int `json:"in_flight"`
	Requests int `json:"requests"`
	// Errors counts requests that got no HTTP answer.
	Errors   int64            `json:"errors"`
	ByStatus map[string]int64 `json:"by_status"`
	// Seconds runs from the loop's start to the last response; Rate is
	// Requests / Seconds, ramp-up and drain included.
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	// SteadyRate counts the responses from the end of the first round (the
	// InFlight-th response: every connection dialled, every goroutine past
	// its first call) until the last request was sent, over that time: the
	// part of the run in which every goroutine had a request open on a warm
	// connection, without the ramp-up or the drain (in flight falling to
	// zero). With fewer than two rounds of requests there is no such part;
	// it then starts at the first response, and with at most one round (no
	// goroutine sends twice) it is the overall rate.
	SteadySeconds   float64 `json:"steady_seconds"`
	SteadyResponses int64   `json:"steady_responses"`
	SteadyRate      float64 `json:"steady_rate"`
	// Mock is the mock API's counters for the ceiling alone.
	Mock *MockStats `json:"mock,omitempty"`
	// CPU used during the loop by the mock API and by the runner (which
	// is the client here).
	MockCPUSeconds   float64 `json:"mock_cpu_seconds,omitempty"`
	RunnerCPUSeconds float64 `json:"runner_cpu_seconds"`
}

// runCeiling runs the plain-Go loop against url until requests responses
// (or transport errors) have come back.
func runCeiling(ctx context.Context, url string, body []byte, inFlight, requests int, keyPrefix string) *Ceiling {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        inFlight,
		MaxIdleConnsPerHost: inFlight,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}

	var (
		issued, done, errs atomic.Int64
		firstResp          atomic.Int64 // unix ns
		roundOne           atomic.Int64 // unix ns of the InFlight-th response
		lastSend           atomic.Int64 // unix ns
		doneAtLastSend     atomic.Int64
		byStatus           [600]atomic.Int64
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range min(inFlight, requests) {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := issued.Add(1)
				if n > int64(requests) {
					return
				}
				if n == int64(requests) {
					doneAtLastSend.Store(done.Load())
					lastSend.Store(time.Now().UnixNano())
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					done.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				// The worker sends one on every call, and the mock counts
				// them; the ceiling should cost the mock the same work.
				req.Header.Set("Idempotency-Key", keyPrefix+strconv.FormatInt(n, 10))
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode >= 0 && resp.StatusCode < len(byStatus) {
						byStatus[resp.StatusCode].Add(1)
					}
				}
				now := time.Now().UnixNano()
				firstResp.CompareAndSwap(0, now)
				if done.Add(1) == int64(inFlight) {
					roundOne.Store(now)
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()

	c := &Ceiling{InFlight: inFlight, Requests: requests, Errors: errs.Load(), ByStatus: map[string]int64{}}
	for code := range byStatus {
		if n := byStatus[code].Load(); n > 0 {
			c.ByStatus[strconv.Itoa(code)] = n
		}
	}
	c.Seconds = end.Sub(start).Seconds()
	if c.Seconds > 0 {
		c.Rate = float64(done.Load()) / c.Seconds
	}
	atLast, last := doneAtLastSend.Load(), lastSend.Load()
	switch {
	case requests <= inFlight:
		c.SteadyResponses, c.SteadySeconds = done.Load(), c.Seconds
	case roundOne.Load() != 0 && atLast > int64(inFlight) && last > roundOne.Load():
		c.SteadyResponses = atLast - int64(inFlight)
		c.SteadySeconds = time.Duration(last - roundOne.Load()).Seconds()
	case atLast > 0 && last > firstResp.Load():
		c.SteadyResponses = atLast
		c.SteadySeconds = time.Duration(last - firstResp.Load()).Seconds()
	default:
		c.SteadyResponses, c.SteadySeconds = done.Load(), c.Seconds
	}
	if c.SteadySeconds > 0 {
		c.SteadyRate = float64(c.SteadyResponses) / c.SteadySeconds
	}
	return c
}
