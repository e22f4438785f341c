// Package recorder turns the RESULTS stream into rows: one per job, plus
// one per attempt.
//
// The Recorder pulls results in batches from the durable consumer
// "recorder", which every recorder replica shares, writes each batch to the
// Store in one transaction, and acks the batch only after the commit. When
// the store fails it keeps the batch, tells the server it is still working
// on it, and retries with backoff, so a database outage delays results but
// never loses or reorders them into a wrong final state: stores are
// idempotent by (job id, attempt) and never let a late non-final result
// overwrite a final one.
package recorder
