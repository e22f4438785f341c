// Package api is the recorder's HTTP query API over a recorder.Store, and a
// small Go client for it (used by `switchyard jobs`).
//
// NewHandler serves the API; Server runs it on its own listener with
// timeouts set, for the recorder service and `switchyard dev`; Client calls
// it.
//
// # Endpoints
//
//	GET /v1/jobs/{id}          one job: its row, every attempt, the last response
//	GET /v1/jobs?…             job rows, keyset-paginated (see below)
//	GET /v1/batches/{id}       a batch: jobs per status, total, expected and pending, whether all are final
//	GET /v1/stats?window=…     per provider: jobs per status, calls and latency per window
//	GET /healthz               200 while the process serves HTTP
//	GET /readyz                200 when the store answers a ping and the ready func
//	                           reports nil; 503 with the reason otherwise
//
// Every answer is JSON. Field names are snake_case; times are RFC 3339 in
// UTC with up to nanosecond precision, and a time the store does not know
// is left out; durations are milliseconds (latency_ms, p50_ms, …).
//
// # Authentication
//
// With a token configured, every /v1 request must carry
// "Authorization: Bearer <token>"; otherwise it is answered 401 with
// "WWW-Authenticate: Bearer". /healthz and /readyz stay open, so probes need
// no secret. Bind to loopback (the default) or set a token: results hold
// what third parties answered.
//
// # Errors
//
// Errors are RFC 9457 problem details, Content-Type
// application/problem+json. A bad query parameter is answered 400 and named
// in detail and in invalid_params:
//
//	{"type": "about:blank", "title": "Bad Request", "status": 400,
//	 "detail": "limit: must be a whole number from 1 to 1000",
//	 "instance": "/v1/jobs",
//	 "invalid_params": [{"name": "limit", "reason": "must be a whole number from 1 to 1000"}]}
//
// Unknown query parameters are bad parameters too, so a misspelt filter
// never silently matches everything. A store failure is answered 500 with a
// short detail; the cause goes to the log.
//
// # GET /v1/jobs/{id}
//
// 404 when no result of the job was recorded. attempt is the attempt whose
// outcome the row shows, last_attempt the highest attempt seen (higher when
// a non-final result came after a final one), attempts every recorded
// attempt by number, response the job.Response of the result shown:
//
//	{"job_id": "0193f3c2-7d1e", "provider": "acme", "task": "create_invoice",
//	 "lane": "bulk", "batch": "nightly", "status": "succeeded",
//	 "attempt": 2, "last_attempt": 2, "http_status": 201, "latency_ms": 250,
//	 "enqueued_at": "2026-11-21T04:00:00.123456789Z",
//	 "started_at": "2026-11-21T04:02:00.123456789Z",
//	 "finished_at": "2026-11-21T04:02:00.373456789Z",
//	 "updated_at": "2026-11-21T04:02:00.41Z", "worker_id": "worker-2",
//	 "meta": {"order": 981},
//	 "response": {"headers": {"Content-Type": ["application/json"]}, "body": {"id": "inv_1"}},
//	 "attempts": [
//	   {"attempt": 1, "status": "retrying", "http_status": 503, "error": "service unavailable",
//	    "error_class": "http_5xx", "latency_ms": 250, "started_at": "…", "finished_at": "…", "worker_id": "worker-1"},
//	   {"attempt": 2, "status": "succeeded", "http_status": 201, "latency_ms": 250, "started_at": "…", "finished_at": "…", "worker_id": "worker-2"}]}
//
// # GET /v1/jobs
//
// Parameters, all optional: provider, task, status (succeeded, retrying,
// failed, dead, expired, cancelled, unknown), batch, since (RFC 3339: rows updated at or after
// it), limit (1 to 1000, default 100) and cursor (the next_cursor of the
// page before). Rows come in the order they last changed, oldest first,
// without meta, response and attempts; next_cursor is absent on the last
// page. A job that changes while a client pages moves behind the cursor and
// comes again, so paging to the end never misses a change: the listing is a
// change feed.
//
//	{"jobs": [{"job_id": "a1", "provider": "acme", "task": "create_invoice", "lane": "bulk",
//	           "status": "failed", "attempt": 1, "last_attempt": 1, "http_status": 422,
//	           "error": "unprocessable", "error_class": "http_4xx", "latency_ms": 250,
//	           "enqueued_at": "…", "started_at": "…", "finished_at": "…", "updated_at": "…"}],
//	 "next_cursor": "GOoI4iG10Q5hMDE"}
//
// Cursors are opaque: base64url of the position (time and job id) of the
// last row of a page.
//
// # GET /v1/batches/{id}
//
// 404 when no job of the batch was recorded and it was not declared. For a
// batch its producer declared (package batch), expected is its size,
// pending the jobs without a final status yet, and final is true once
// pending is 0; completed_at is when the recorder published
// events.batch.<id>.completed. For an undeclared batch, final is true when
// every recorded job has a final status: the recorder cannot know of jobs
// that have no result yet.
//
//	{"batch": "nightly", "total": 14, "counts": {"retrying": 3, "succeeded": 11}, "final": false,
//	 "declared": true, "expected": 20, "pending": 9, "declared_at": "2026-11-21T04:00:00Z"}
//
// # GET /v1/stats
//
// window may be repeated; each is a Go duration of whole minutes up to 168h
// (default 1m, 5m and 15m). Per provider, sorted by name: jobs by current
// status, and per window the calls that finished in it, how many did not
// succeed, their share, and latency percentiles (to within 2.5%):
//
//	{"now": "2026-11-21T04:02:30.123456789Z",
//	 "providers": [{"provider": "acme", "jobs": {"retrying": 3, "succeeded": 11},
//	   "windows": [{"window": "1m", "calls": 1, "errors": 0, "error_rate": 0,
//	                "p50_ms": 254.089, "p95_ms": 254.089, "p99_ms": 254.089},
//	               {"window": "5m", "calls": 15, "errors": 4, "error_rate": 0.26666666666666666,
//	                "p50_ms": 254.089, "p95_ms": 254.089, "p99_ms": 254.089}]}]}
//
// # GET /healthz, GET /readyz
//
//	{"status": "ok"}
//	{"status": "ready"}
//
// or, from /readyz, 503 with a problem whose detail says why, e.g.
// "not ready: the results store does not answer".
package api
