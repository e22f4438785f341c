// Package gateway is Switchyard's HTTP ingest, for producers that do not
// speak NATS: it validates jobs and publishes them on the JOBS stream with
// package producer, answering only once JetStream has stored them.
//
// NewHandler serves the API; Server runs it on its own listener with
// timeouts set, for the gateway service.
//
// # Endpoints
//
//	POST /v1/jobs   application/json: one job envelope, or an array of them
//	POST /v1/jobs   application/x-ndjson: a stream of envelopes, one per line
//	GET  /healthz   200 while the process serves HTTP
//	GET  /readyz    200 while connected to NATS and the JOBS stream answers;
//	                503 with the reason otherwise
//
// An envelope is the v1 job envelope of package job; "v" may be left out,
// and "id" too: the gateway then generates a UUIDv7 (or derives one, see
// Idempotency-Key) and returns it. Every job is published on
// jobs.<provider>.<lane>.<task> with its id in Nats-Msg-Id.
//
// Query parameters, both optional, apply to every job of the request:
//
//	lane=live|bulk   the lane (default live)
//	batch=<id>       the batch of every job that names none; a job that
//	                 names another is invalid
//
// Unknown parameters are a 400, so that a misspelt one never goes
// unnoticed.
//
// # Duplicates, retries and Idempotency-Key
//
// The job id is the idempotency key: the JOBS stream drops a job whose id
// it stored within its dedup window (two minutes by default), and the
// gateway reports it as "duplicate". So a request answered 503, or whose
// answer was lost, can be sent again as it is, provided its jobs carry ids.
//
// A caller that does not choose ids can send an Idempotency-Key header
// (1-255 printable ASCII characters, quoted or not) instead: a job without
// an id then gets one derived from the key and the job's position, the
// UUIDv5 in IdempotencyNamespace of key + "/" + position, where position
// is the index in the array (0 for a lone job) or the line number of an
// NDJSON stream. The same request sent again with the same key gets the
// same ids. The key is not stored and the content is not compared: a
// different request under the same key would reuse the ids.
//
// # POST /v1/jobs, application/json
//
// All or nothing before publishing: every job is decoded and validated
// first, and if any is invalid the answer is 400 and nothing is published.
// The body may be at most gateway.max_body bytes (413 otherwise).
//
//	POST /v1/jobs?lane=bulk&batch=nightly
//	Content-Type: application/json
//
//	[{"provider": "acme", "task": "create_invoice",
//	  "request": {"method": "POST", "path": "/v1/invoices", "body": {"amount": 1200}}},
//	 {"id": "order-981", "provider": "acme", "task": "create_invoice",
//	  "request": {"method": "POST", "path": "/v1/invoices", "body": {"amount": 99}}}]
//
//	202 Accepted
//	{"jobs": [{"id": "0193f3c2-7d1e-7b4a-9d1c-5e2f3a4b6c7d", "status": "stored", "stream_seq": 41},
//	          {"id": "order-981", "status": "duplicate", "stream_seq": 17}]}
//
// A job is "stored", or a "duplicate" of one stored before (stream_seq is
// then the first copy's). The answer lists the jobs in the order of the
// request, also for a lone job.
//
// Invalid jobs, 400: each bad field is named in invalid_params, prefixed
// by the job's index (a lone job's fields have no prefix; a problem with a
// whole envelope, such as an unknown field, is named by the prefix alone,
// or "envelope"):
//
//	400 Bad Request
//	Content-Type: application/problem+json
//	{"type": "about:blank", "title": "Bad Request", "status": 400,
//	 "detail": "1 of 5 jobs is invalid: jobs[3].request.path: \"v1/x\" must start with / (it is relative to the provider's base_url); nothing was enqueued",
//	 "instance": "/v1/jobs",
//	 "invalid_params": [{"name": "jobs[3].request.path", "reason": "\"v1/x\" must start with / (it is relative to the provider's base_url)"}]}
//
// A job bigger than a NATS message or the JOBS stream's max_msg_size is
// found before publishing too, and answered 413 the same way.
//
// JetStream unavailable, 503 with Retry-After (gateway.retry_after): the
// gateway is not connected to NATS (answered at once, nothing published),
// nobody answers on the subject, the stream is full and discards new
// messages, or JetStream did not store the jobs within
// gateway.publish_timeout. Some jobs may have been stored already: the
// problem lists every job's outcome, and the request can be sent again as
// it is once the ids are known (given, derived, or taken from "jobs"):
//
//	503 Service Unavailable
//	Retry-After: 5
//	{"type": "about:blank", "title": "Service Unavailable", "status": 503,
//	 "detail": "JetStream is unavailable or the JOBS stream is full: 1 of 2 jobs was not stored (stream full: maximum messages exceeded, and the stream discards new messages); send the request again with the same ids after Retry-After",
//	 "instance": "/v1/jobs",
//	 "jobs": [{"id": "a1", "status": "stored", "stream_seq": 10},
//	          {"id": "a2", "status": "unavailable", "error": "stream full: maximum messages exceeded, and the stream discards new messages"}]}
//
// A job the stream refuses as too large when it is sent is a 413, and one
// it refuses for another reason a 502, both with "jobs" as above.
//
// # POST /v1/jobs, application/x-ndjson
//
// For bulk loads: one envelope per line, published as the lines are read,
// with at most gateway.window jobs awaiting JetStream at once, so the
// gateway's memory does not grow with the stream. The body may be at most
// gateway.max_stream_bytes, each line at most gateway.max_body, and the
// whole request may take gateway.stream_timeout. Blank lines are skipped;
// lines count from 1. application/ndjson is taken as well.
//
// Good lines go in while bad ones are reported: the answer, once the whole
// stream is read and every job's outcome known, is one summary, 200 even
// when some lines failed (check failed), listing at most 1,000 failed lines
// (errors_truncated says when there were more):
//
//	200 OK
//	{"lines": 4, "stored": 2, "duplicates": 0, "failed": 2,
//	 "errors": [{"line": 2, "id": "0193f3c2-…", "status": "invalid",
//	             "error": "request.path: \"v1/x\" must start with / (it is relative to the provider's base_url)",
//	             "invalid_params": [{"name": "request.path", "reason": "\"v1/x\" must start with / (…)"}]},
//	            {"line": 3, "status": "invalid", "error": "envelope: must be a JSON object (a job envelope)",
//	             "invalid_params": [{"name": "envelope", "reason": "must be a JSON object (a job envelope)"}]}]}
//
// Line statuses are those of JobResult, plus "invalid" and "too_large" (a
// line over max_body). Stored lines are not listed: give jobs ids (or an
// Idempotency-Key, or a batch) to find them again.
//
// The stream stops at the first job JetStream cannot store for now (it is
// unavailable or the stream is full), and when the gateway shuts down: the
// answer is then 503 with Retry-After, a problem carrying the summary so
// far and resume_line, the first line that may not be stored. Every line
// before it was stored, was a duplicate, or failed for good (listed in
// errors). Send the stream again from resume_line, or all of it if its
// jobs have ids. A stream over max_stream_bytes is answered 413: at once,
// with nothing enqueued, when its Content-Length says so; otherwise after
// handling the lines before the limit, with resume_line. A stream slower
// than stream_timeout is answered 408 the same way.
//
//	503 Service Unavailable
//	Retry-After: 5
//	{"type": "about:blank", "title": "Service Unavailable", "status": 503,
//	 "detail": "JetStream is unavailable or the JOBS stream is full; stopped at line 3: send the stream again from resume_line after Retry-After",
//	 "instance": "/v1/jobs", "lines": 4, "stored": 2, "duplicates": 0, "failed": 2,
//	 "errors": [{"line": 3, "id": "r-3", "status": "unavailable", "error": "stream full: …"}, …],
//	 "resume_line": 3}
//
// The answer comes once the stream has been read: a client must send the
// whole body before it reads the answer (as curl and most clients do).
//
// # Other errors
//
// Errors are RFC 9457 problem details, Content-Type
// application/problem+json: 415 (with Accept-Post) for another
// Content-Type, 405 (with Allow) for another method, 404 for another path,
// 400 for a bad query parameter or Idempotency-Key, named in
// invalid_params.
//
// # Authentication
//
// With gateway.tokens set, every /v1 request must carry
// "Authorization: Bearer <token>" with one of them; otherwise it is
// answered 401 with "WWW-Authenticate: Bearer". /healthz and /readyz stay
// open, so probes need no secret. Without tokens the gateway only listens
// on loopback, unless gateway.allow_unauthenticated says something in
// front of it authenticates callers: whoever reaches the gateway makes
// calls with the providers' credentials.
package gateway
