// Package mockapi is a fake third-party HTTP API for the dev demo, tests and
// load tests: it answers like a slow, sometimes failing provider and counts
// what it saw, so a test can assert on latency, retries and duplicate calls
// without a real provider.
//
// Every request waits a uniform random latency in [LatencyMin, LatencyMax]
// (returning early when the client goes away), then answers 200 with a small
// JSON echo, or, with probability ErrorRate, 503 with Retry-After: 1.
//
// Special paths:
//
//	/status/{code}  always answers code (200-599); 429 and 503 carry Retry-After: 1
//	GET /_stats     the counters as JSON (see Stats); not itself counted
//
// Serve it with httptest.NewServer(mockapi.New(cfg)) or any http.Server.
package mockapi
