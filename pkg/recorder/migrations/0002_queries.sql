-- Per-minute latency histograms of calls, per provider (see Histogram):
-- Record adds to them, Stats sums them over the minutes of a window.
CREATE TABLE latency_rollup (
    provider TEXT    NOT NULL,
    -- unix minute of the call's finished_at
    minute   INTEGER NOT NULL,
    -- LatencyBucket(latency_ms)
    bucket   INTEGER NOT NULL,
    calls    INTEGER NOT NULL,
    -- calls whose status was not succeeded
    errors   INTEGER NOT NULL,
    PRIMARY KEY (provider, minute, bucket)
) WITHOUT ROWID;

-- Stats and Prune look up minutes across providers. Record adds an entry
-- only for a new (provider, minute, bucket): a few a minute.
CREATE INDEX latency_rollup_minute ON latency_rollup (minute);

-- Jobs lists in (updated_at, job_id) order, so every index it walks ends
-- in updated_at: a page is then a walk from the cursor that stops after
-- Limit+1 rows, never a sort of every match. Record stamps each row apart
-- (see writerConn.stamp), so job_id only breaks ties in rows stamped
-- before this migration.
--
-- Every index costs Record an insert a row, so there are as few as serve
-- every query, with short keys: job_id stays out. (In BenchmarkSQLiteRecord
-- four indexes with it, beside those of 0001, made Record 40% slower; these
-- four in place of 0001's two, and the rollup, cost it 10%.) Record
-- stamps updated_at with the time, so new entries land at the end of each
-- index or of each value's range in it, on pages already in cache.
--
-- The indexes of 0001 become those of a provider and of a batch, with
-- status second, so that Stats and BatchCounts still count statuses from
-- them in order, and Jobs walks them per status (see jobsWalk).
DROP INDEX jobs_provider_task_status;
DROP INDEX jobs_batch_status;
CREATE INDEX jobs_provider_status_updated ON jobs (provider, status, updated_at);
CREATE INDEX jobs_batch_status_updated ON jobs (batch, status, updated_at);
-- The feed unfiltered or by task, and Prune's deletes of the oldest rows.
CREATE INDEX jobs_updated ON jobs (updated_at);
-- Only rows that still have a response, so that clearing old bodies never
-- walks past rows cleared before.
CREATE INDEX jobs_body_updated ON jobs (updated_at) WHERE response IS NOT NULL;
