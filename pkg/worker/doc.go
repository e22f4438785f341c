// Package worker runs jobs from the JOBS stream against their providers.
//
// For every configured provider and lane the worker binds the durable pull
// consumer work_<provider>_<lane>, which every replica in the fleet shares,
// and fetches from it: one pull at a time while the lane is idle, up to
// MaxPulls at once while it has a backlog, so the server is always filling
// one. A fetch only asks for as many messages as it can start at once (free
// slots of the provider), so nothing waits in a local buffer while its
// AckWait runs, and each message runs on its own goroutine, so a slow call
// never blocks the loop or another provider. A slot is held for the call
// only; storing the outcome has its own bound.
//
// Each provider's limits hold for the whole fleet (package limit): the
// replicas find each other through heartbeats in the LIMITS bucket and each
// takes its share of the provider's rate, burst, fleet-scoped concurrency
// and daily quota. Before a fetch, a lane asks the provider's limiter what
// it may start (nothing while the provider is paused or its quota spent, so
// the jobs wait in the stream); before its call, each job waits for its own
// rate token, live ahead of bulk; after it, the answer's Retry-After,
// rate-limit headers and 429s feed back into the limits, and a pause
// reaches every replica. The provider's circuit breaker works the same way:
// while it is open no lane fetches and no fetched job starts, on any
// replica. A failed call whose retry is over the provider's retry budget is
// held in the worker until the budget has room, rather than naked, so it
// spends no attempt. None of this costs a network round trip per call.
// Limits reports where each provider's limits stand.
//
// Each attempt ends in exactly one result on RESULTS (and a dead letter on
// DLQ when the job is given up); the job is acked, naked with a delay, or
// terminated only after the server has confirmed storing that outcome. A
// worker that dies at any instant therefore loses nothing: an unacked job is
// redelivered after AckWait. A call that runs past half its AckWait sends
// InProgress heartbeats (one goroutine and queue for all calls), so it is not
// delivered again while it runs. A dead letter lists the earlier attempts'
// errors, read back from RESULTS when the job dies (see history).
//
// A provider or task with at_most_once delivery turns this around for
// endpoints that are not idempotent: a provisional `unknown` result is
// stored and the job acked (confirmed by the server) before the call, which
// is never retried; a worker dying mid-call leaves the job `unknown`.
//
// An operator pauses a provider or a lane for the whole fleet with the
// server's consumer pause API (switchyard provider pause): a lane whose
// consumer is paused sends no pull and holds no slot, and learns of the
// resume from the server's pause advisory (or the pause's end, or a poll),
// then pulls at once: a pull already waiting would not be woken by it.
//
// Collector gives the worker's Prometheus metrics (per provider and lane;
// the per-call ones cost a few atomic adds, the rest is read at scrape
// time) and Ready its readiness, for the worker's HTTP server.
//
// Shutdown happens in this order (Stop): stop fetching (jobs still waiting
// for their turn under a limit are naked at once, never called); let
// in-flight calls finish within ShutdownGrace; cancel what is still running
// and nak it without delay so another replica takes it at once (an
// at-most-once call cut short stays `unknown`); stop the heartbeats; then leave
// the fleet, handing back unused daily quota, so the other replicas take up
// this one's share.
package worker
