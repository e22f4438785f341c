// Package mockapi is a fake third-party HTTP API for the dev demo, tests and
// load tests: it answers like a slow, sometimes failing, rate-limited
// provider and counts what it saw, so a test can assert on latency, retries,
// rate limits and duplicate calls without a real provider.
//
// Every request waits a uniform random latency in [LatencyMin, LatencyMax]
// (a TailRate share waits in [LatencyMax, TailLatency] instead), returning
// early when the client goes away, then answers 200 with a small JSON echo,
// or, with probability ErrorRate, 503 with Retry-After: 1.
//
// With RateLimit set, a token bucket (RateLimit per second, Burst deep)
// refuses requests over the limit at once with 429, as LimitMode says:
// Retry-After, Retry-After and rate-limit headers on every answer, or
// nothing at all. Refused requests are counted (Throttled, ByStatus) but are
// no calls: they leave the idempotency-key counts alone.
//
// Special paths:
//
//	/status/{code}  always answers code (200-599); 429 and 503 carry Retry-After: 1
//	GET /_stats     the counters as JSON (see Stats); not itself counted
//
// Serve it with httptest.NewServer(mockapi.New(cfg)) or any http.Server. To
// fake several providers from one process, each with its own limits and
// counters, serve a Multi (NewMulti): /{provider}/... goes to that
// provider's Server, and GET /stats reports them all. loadtest/cmd/mockapi
// runs a Multi as a process, served by a LeanServer: a minimal HTTP/1.1 server
// that costs about a third less CPU per request than net/http's. It does not
// watch a connection while a request waits, so there Stats.Canceled counts
// only requests cut by a shutdown.
//
// The mock shares a machine with the system under test, so its own cost is
// kept small: no allocations on the common path, no lock shared by all
// requests but one tiny one for the per-second window (see BenchmarkServe).
package mockapi
