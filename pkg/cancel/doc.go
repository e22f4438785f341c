// Package cancel takes jobs back before they are called.
//
// Cancelling writes a tombstone in the KV bucket "cancels" — job.<id> for
// one job, batch.<id> for every job of a batch — and purges the schedules
// of the delayed jobs it covers from JOBS, so those never fire. Workers
// keep every tombstone in memory, fed by a watcher on the bucket (Watcher),
// and look a job up there just before its call: no round trip per call. A
// job found there is recorded cancelled and never called; a job whose call
// has started finishes normally.
//
// Tombstones live for TTL (the bucket's max age), long enough to outlast
// any backlog; a job still waiting after that would run. The bucket equals
// `nats kv add cancels --history 1 --ttl 168h`, so `nats kv put cancels
// job.<id> '{}'` cancels too (a ':' of the id is written '=' in the key).
package cancel
