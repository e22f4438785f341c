-- The PostgreSQL schema of the recorder: the same tables as SQLite's, with
-- the same meaning (see Postgres.Record).
--
-- Times are unix nanoseconds (bigint), NULL when the result did not carry
-- one: timestamptz keeps microseconds, and the store must give back what
-- workers sent to the nanosecond. Keys and the columns Jobs filters and
-- sorts on compare byte-wise (COLLATE "C"), which is Go's string order
-- (cursors, and the order Record locks rows in) and cheaper than a locale's.

-- One row per job: the outcome that ranks highest so far.
CREATE TABLE jobs (
    job_id      text COLLATE "C" NOT NULL PRIMARY KEY,
    provider    text COLLATE "C" NOT NULL,
    task        text COLLATE "C" NOT NULL,
    lane        text NOT NULL,
    batch       text COLLATE "C" NOT NULL,
    status      text COLLATE "C" NOT NULL,
    -- Whether status is final (job.Status.Final), kept so that the one
    -- definition of "final" stays in Go.
    final       boolean NOT NULL,
    -- attempt is the attempt this row's outcome came from; attempts is the
    -- highest attempt seen, which a late non-final result can still raise.
    attempt     bigint NOT NULL,
    attempts    bigint NOT NULL,
    http_status bigint NOT NULL,
    error       text NOT NULL,
    error_class text NOT NULL,
    latency_ms  bigint NOT NULL,
    enqueued_at bigint,
    started_at  bigint,
    finished_at bigint,
    -- JSON as text, not jsonb: the store only hands it back, and text
    -- costs the server nothing to parse on every insert.
    response    text,
    meta        text,
    worker_id   text NOT NULL,
    updated_at  bigint NOT NULL
);

-- Indexes cost Record more here than anywhere: every new job row and
-- every outranked one adds an entry to each. So Jobs has three, each
-- ending in (updated_at, job_id), Jobs' order, so that a page is a walk
-- from the cursor that stops after Limit+1 rows rather than a sort of every
-- match:
--   - the change feed itself (Jobs without a batch or status, or with a
--     provider or task, which most rows match), and retention's oldest rows;
--   - per batch: Jobs, BatchCounts and Latencies of one batch;
--   - per status for the statuses worth looking for, which are rare: rows
--     that succeeded (most of them) are left out, so a job that succeeds
--     at once never enters this index. Jobs adds the predicate to its query
--     when it filters on another status, so that the planner can use it.
CREATE INDEX jobs_updated ON jobs (updated_at, job_id);
CREATE INDEX jobs_batch_updated ON jobs (batch, updated_at, job_id);
CREATE INDEX jobs_unsucceeded_updated ON jobs (status, updated_at, job_id) WHERE status <> 'succeeded';
-- Prune's oldest stored responses. Without it, each call would walk past
-- every row whose body earlier calls cleared: days of rows, when bodies
-- are kept for less time than rows.
CREATE INDEX jobs_body_updated ON jobs (updated_at) WHERE response IS NOT NULL;

-- One row per attempt outcome; the first one recorded for an attempt wins.
--
-- No foreign key to jobs: checking it costs a trigger call per row, about
-- a quarter of Record's time. Instead every writer locks the job row before
-- it touches the job's attempts: Record upserts the jobs of a batch before
-- inserting their attempts, and Prune deletes a job, then its attempts in
-- a later statement of the same transaction.
CREATE TABLE attempts (
    job_id      text COLLATE "C" NOT NULL,
    attempt     bigint NOT NULL,
    status      text NOT NULL,
    http_status bigint NOT NULL,
    error       text NOT NULL,
    error_class text NOT NULL,
    latency_ms  bigint NOT NULL,
    started_at  bigint,
    finished_at bigint,
    worker_id   text NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- Calls per provider, minute of finishing (unix seconds / 60) and latency
-- bucket (recorder.LatencyBucket), for Stats' percentiles over windows.
-- The minute leads the key: Stats reads the last minutes, Prune drops the
-- first ones.
CREATE TABLE latency_rollup (
    minute   bigint NOT NULL,
    provider text COLLATE "C" NOT NULL,
    bucket   integer NOT NULL,
    calls    bigint NOT NULL,
    errors   bigint NOT NULL,
    PRIMARY KEY (minute, provider, bucket)
);
