-- Attempts keyed by the job row's integer key instead of its text id, as in
-- SQLite's migration 0003: with random job ids (UUIDv4, or the UUIDv5 ids
-- `switchyard enqueue` derives from content) each new job's attempt went to
-- a random leaf of the attempts key, a page dirtied per result. jobs.id
-- comes from a sequence, so a new job's attempts go at the right edge of
-- the key, on pages already in cache.
--
-- jobs.id has no index of its own, which would cost Record an entry per new
-- job: Record finds a job's id through job_id, which it has just upserted,
-- and Job and Prune go from the job row to its attempts, never back.
-- Adding the column numbers the rows already stored.
ALTER TABLE jobs ADD COLUMN id bigint NOT NULL GENERATED ALWAYS AS IDENTITY;

-- One row per attempt outcome; the first one recorded for an attempt wins.
-- job is jobs.id. Still no foreign key (see 0001): Record and Prune lock
-- the job row before they touch its attempts.
CREATE TABLE attempts_new (
    job         bigint NOT NULL,
    attempt     bigint NOT NULL,
    status      text NOT NULL,
    http_status bigint NOT NULL,
    error       text NOT NULL,
    error_class text NOT NULL,
    latency_ms  bigint NOT NULL,
    started_at  bigint,
    finished_at bigint,
    worker_id   text NOT NULL
);

INSERT INTO attempts_new (job, attempt, status, http_status, error, error_class,
    latency_ms, started_at, finished_at, worker_id)
SELECT j.id, a.attempt, a.status, a.http_status, a.error, a.error_class,
    a.latency_ms, a.started_at, a.finished_at, a.worker_id
FROM attempts a JOIN jobs j ON j.job_id = a.job_id
ORDER BY j.id, a.attempt;

DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
-- Built after the copy: one sort instead of an insert per row.
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (job, attempt);
