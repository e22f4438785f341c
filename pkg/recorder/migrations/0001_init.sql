-- One row per job: the outcome that ranks highest so far (see SQLite.Record).
-- Times are unix nanoseconds in UTC; NULL means the result did not carry one.
CREATE TABLE jobs (
    job_id      TEXT    NOT NULL PRIMARY KEY,
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

CREATE INDEX jobs_batch_status ON jobs (batch, status);
CREATE INDEX jobs_provider_task_status ON jobs (provider, task, status);

-- One row per attempt outcome; the first one recorded for an attempt wins.
CREATE TABLE attempts (
    job_id      TEXT    NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    error_class TEXT    NOT NULL DEFAULT '',
    latency_ms  INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    worker_id   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
