// Package producer is the Go client that microservices use to enqueue
// Switchyard jobs on an existing NATS connection.
//
// A Producer publishes each job as its JSON envelope on
// jobs.<provider>.<lane>.<task>, with the job id in the Nats-Msg-Id header,
// and reports a job as enqueued only once the JOBS stream has acknowledged
// storing it. A publish repeated within the stream's dedup window (two
// minutes by default) is dropped by the server and reported as a duplicate,
// which is what makes every retry here safe.
//
// A job whose not_before ([NotBefore], [Delay]) is still ahead is stored as
// a NATS message schedule instead, on job.DelaySubject
// (sched.job.<provider>.<lane>.<task>.<batch>.<id>): the server holds it
// and publishes it on its jobs subject at not_before, to about a second,
// across restarts, with no worker holding it meanwhile. Its Result.Subject
// is that schedule subject. Publishing the same job again replaces its
// schedule; package cancel purges it.
//
// Two ways in:
//
//   - [Producer.Enqueue] publishes one job and returns when it is stored.
//   - [Producer.Pipeline] publishes many: [Pipeline.Add] returns as soon as
//     the job is on its way, at most a window of jobs await their
//     acknowledgement at once, and every job added gets exactly one
//     [Result], through a callback or from [Pipeline.Wait].
//
// Jobs are validated with package job before anything is sent; an invalid
// job is an error naming the field (errors.Is(err, job.ErrInvalid)). A job
// without an id gets a UUIDv7, or with [IDFromContent] one derived from its
// content. Transient failures (no responders, timeouts, JetStream
// temporarily unavailable, a reconnecting connection) are retried with
// backoff; permanent ones are reported per job and match one of
// [ErrTooLarge], [ErrStreamFull], [ErrRejected] or [ErrClosed]. A job
// whose outcome is not known when its context ends, or after transient
// failures have lasted longer than the retry limit, is reported with
// [ErrUnconfirmed] or [ErrUnavailable]: it may or may not be stored, and
// enqueueing it again with the same id is safe within the dedup window.
package producer
