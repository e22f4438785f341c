// Package job defines Switchyard's wire contracts: the v1 job envelope that
// producers publish, the result envelope that workers publish once per attempt,
// the dead letter that records why a job was given up, and the subjects they
// travel on.
//
// Everything here is plain data plus validation. Any NATS client in any
// language can produce a job by publishing the JSON described here (and in
// streams/job.schema.json) on jobs.<provider>.<lane>.<task> with the job id in
// the Nats-Msg-Id header; this package is how Go code makes sure it did so
// correctly.
//
// Validation is strict on purpose. A job can never choose the host it calls:
// request.path is relative to the provider's configured base URL, and absolute
// URLs, scheme tricks, "..", backslashes, fragments and control characters are
// rejected, as are header names and values that could smuggle a second
// header or override Host.
package job
