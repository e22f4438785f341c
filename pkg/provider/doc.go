// Package provider turns a job into one HTTP call to a configured
// third-party API, and says what the answer means.
//
// A Provider owns a tuned http.Client whose connection pool is sized to the
// provider's concurrency, so thousands of calls in flight reuse keep-alive
// connections instead of dialing. A plain http:// provider is called
// through h1Transport (transport.go), which makes each call on the
// caller's goroutine; https, and any provider reached through a proxy,
// goes through net/http's Transport, which speaks HTTP/2 where the
// provider does. It builds each request from the provider's
// base URL and the job's relative path (never letting a job pick the host,
// the auth header or the idempotency key), bounds every call by the
// provider's timeout, and caps the response body it keeps.
//
// Where a call may go is fenced in three places: the request is built on
// base_url's scheme and host only; redirects are not followed, or only on
// that host (follow_redirects); and unless allow_private_network is set,
// base_url may not name a private, loopback, link-local or unspecified
// address, and the dialer refuses one after name resolution (egress.go), so
// DNS rebinding cannot reach 127.0.0.1 or 169.254.169.254. Answers that
// echo the credential are scrubbed before they are stored (scrub.go).
//
// Call reports failures as *Error, whose Class and Retryable fields carry
// the decision to the worker. Which failures retry is the task's retry
// policy (Policy: the provider's retry block with the task's override over
// it); by default network errors, timeouts, 408, 429 and 5xx retry, after
// Retry-After when the provider sent one, and other non-2xx answers are
// permanent. The policy also holds the attempts and the backoff. The retry
// budget and the circuit breaker are configured here and enforced by
// package limit, which already shares each provider's state across the
// fleet.
package provider
