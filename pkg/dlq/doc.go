// Package dlq reads the dead letters in the DLQ stream and replays them.
//
// Workers publish a job.DeadLetter on dlq.<provider>.<task> for every job
// they give up: dead after its attempts, refused by the provider (4xx),
// invalid, unrouted or expired. Each carries the original envelope and the
// subject it was published on.
//
// List scans the stream with an ordered consumer: the subject filter picks
// provider and task, the start time picks --since, and batch, class, job
// id and --until are checked on each entry. Nothing is acked or changed.
//
// Replay publishes an entry's original job on its original subject with
// a new Nats-Msg-Id ("<job id>:replay:<dlq sequence>"), so the JOBS
// dedup window, which still holds the job id if it died within it, does
// not drop it, and a replay run again after a crash is dropped instead of
// stored twice. The job id stays the same, so the recorder keeps one row;
// the Switchyard-Prior-Attempts header makes the replay's attempts number
// on from the dead ones, so that its outcome outranks the dead one there
// while the job has a fresh max_attempts. Only once JOBS has acknowledged
// the replay is the dead letter deleted from the DLQ: a crash in between
// leaves it in place, never lost; if the replay dies again, the worker
// writes a new dead letter.
package dlq
