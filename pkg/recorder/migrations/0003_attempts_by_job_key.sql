-- Attempts keyed by the job row's integer key instead of its text id.
--
-- Job ids are often random (UUIDv4, or the UUIDv5 ids `switchyard enqueue`
-- derives from content), and keyed by (job_id, attempt) each new job's
-- attempt row went to a random place in the attempts B-tree: with its wide
-- rows, a page written to the WAL per result. Keyed by (job, attempt), where
-- job is jobs.id, which SQLite gives a new row as the highest yet, a new
-- job's attempts land at the end of the tree, on pages already in cache.
--
-- jobs.id is an explicit INTEGER PRIMARY KEY, an alias of the rowid: an
-- implicit rowid can be renumbered by VACUUM and cannot be the target of a
-- foreign key. job_id keeps the unique index it had as the primary key of
-- a rowid table. Rows keep their rowids, so nothing else changes order.
--
-- SQLite cannot change a table's key in place: both tables are built anew,
-- filled from the old ones, which are then dropped. Attempts go first, so
-- that dropping the old jobs cascades to nothing; renaming jobs_new
-- rewrites the foreign key of attempts_new to name jobs.
CREATE TABLE jobs_new (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT    NOT NULL UNIQUE,
    provider    TEXT    NOT NULL,
    task        TEXT    NOT NULL,
    lane        TEXT    NOT NULL DEFAULT '',
    batch       TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL,
    -- 1 when status is final (job.Status.Final); kept here so that the one
    -- definition of "final" stays in Go.
    final       INTEGER NOT NULL,
    -- attempt is the attempt this row's outcome came from; attempts is the
    -- highest attempt seen, which a late non-final result can still raise.
    attempt     INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    error_class TEXT    NOT NULL DEFAULT '',
    latency_ms  INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER,
    started_at  INTEGER,
    finished_at INTEGER,
    -- JSON text (not BLOB, which SQLite's json functions would read as JSONB).
    response    TEXT,
    meta        TEXT,
    worker_id   TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL
);

INSERT INTO jobs_new (id, job_id, provider, task, lane, batch, status, final, attempt, attempts,
    http_status, error, error_class, latency_ms, enqueued_at, started_at, finished_at,
    response, meta, worker_id, updated_at)
SELECT rowid, job_id, provider, task, lane, batch, status, final, attempt, attempts,
    http_status, error, error_class, latency_ms, enqueued_at, started_at, finished_at,
    response, meta, worker_id, updated_at
FROM jobs ORDER BY rowid;

-- One row per attempt outcome; the first one recorded for an attempt wins.
CREATE TABLE attempts_new (
    job         INTEGER NOT NULL REFERENCES jobs_new (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    error_class TEXT    NOT NULL DEFAULT '',
    latency_ms  INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    worker_id   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (job, attempt)
) WITHOUT ROWID;

INSERT INTO attempts_new (job, attempt, status, http_status, error, error_class, latency_ms,
    started_at, finished_at, worker_id)
SELECT j.id, a.attempt, a.status, a.http_status, a.error, a.error_class, a.latency_ms,
    a.started_at, a.finished_at, a.worker_id
FROM attempts a JOIN jobs_new j ON j.job_id = a.job_id
ORDER BY j.id, a.attempt;

DROP TABLE attempts;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE attempts_new RENAME TO attempts;

-- The indexes of 0002, which went with the old table (see there).
CREATE INDEX jobs_provider_status_updated ON jobs (provider, status, updated_at);
CREATE INDEX jobs_batch_status_updated ON jobs (batch, status, updated_at);
CREATE INDEX jobs_updated ON jobs (updated_at);
CREATE INDEX jobs_body_updated ON jobs (updated_at) WHERE response IS NOT NULL;
