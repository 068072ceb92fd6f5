-- Test health (issue 5): who quarantined a test and why, daily trend aggregates kept apart
-- from raw results, each finished run's regression against its baseline, and webhooks with
-- their durable outbox. STRICT tables; timestamps are integer epoch milliseconds.

-- `tests.quarantined` exists since 0001; these say when and why it was set.
ALTER TABLE tests ADD COLUMN quarantined_at INTEGER;
ALTER TABLE tests ADD COLUMN quarantine_reason TEXT;

-- One row per project, branch and UTC day, recomputed from the day's finished runs whenever one
-- completes. Built from `runs` rows (which retention never deletes), so sweeping raw results
-- never erases a trend. The grade needs per-test analysis, too costly for the ingest path:
-- `grade_stale` marks rows the background job grades (as of the day's end) a moment later.
CREATE TABLE daily_stats (
    project_id       TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    branch           TEXT NOT NULL,          -- '' for runs that named no branch
    day              INTEGER NOT NULL,       -- epoch ms of the UTC midnight that starts the day
    runs             INTEGER NOT NULL,
    tests            INTEGER NOT NULL,       -- test results in the day's runs
    passed           INTEGER NOT NULL,
    failed           INTEGER NOT NULL,       -- FAILED
    broken           INTEGER NOT NULL,       -- BROKEN and TIMEOUT
    skipped          INTEGER NOT NULL,
    flaky_results    INTEGER NOT NULL,       -- passes after a failed attempt
    duration_p50_ms  INTEGER,                -- of the runs' durations
    duration_p95_ms  INTEGER,
    score            REAL,                   -- grade score as of the day's end; NULL: not enough data
    grade            TEXT,
    flaky_tests      INTEGER,
    broken_tests     INTEGER,
    grade_stale      INTEGER NOT NULL DEFAULT 1,
    revision         INTEGER NOT NULL DEFAULT 0,  -- bumped on each refresh, so a slow grading never
                                                  -- overwrites a newer refresh
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (project_id, branch, day)
) STRICT, WITHOUT ROWID;
-- The grading job finds its work here.
CREATE INDEX daily_stats_stale ON daily_stats (updated_at) WHERE grade_stale = 1;

-- Runs that finished and still wait for their health work (regression verdict, webhook
-- events). A row is inserted in the transaction that finishes the run, so no finished run is
-- ever missed, and deleted in the transaction that does the work (the `run-health` job).
CREATE TABLE run_health_queue (
    id         INTEGER PRIMARY KEY,          -- first in, first out
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    attempts   INTEGER NOT NULL DEFAULT 0,   -- failed tries; a row that keeps failing is dropped
    queued_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX run_health_queue_run ON run_health_queue (run_id);

-- A finished run's new failures against its baseline (the latest earlier completed run on the
-- project's default branch), judged once when the run finished, so the answer never drifts.
CREATE TABLE run_regressions (
    run_id           TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    baseline_run_id  TEXT REFERENCES runs(id) ON DELETE SET NULL,
    new_failures     INTEGER NOT NULL,
    computed_at      INTEGER NOT NULL
) STRICT;
-- Deleting a run looks up the regressions that used it as their baseline.
CREATE INDEX run_regressions_baseline ON run_regressions (baseline_run_id) WHERE baseline_run_id IS NOT NULL;

CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,              -- space-separated: run.completed run.regressed test.flaky
    format       TEXT NOT NULL,              -- json | slack | mattermost
    secret       TEXT NOT NULL,              -- the HMAC key; kept in clear because signing needs it
    active       INTEGER NOT NULL DEFAULT 1,
    description  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_project ON webhooks (project_id, created_at, id);

-- The outbox: a delivery is inserted in the transaction that commits its event, so an event
-- is never lost, and is sent by the background job until a 2xx answer, or until
-- webhooks.retry_for_hours after created_at, when it is given up (state failed).
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,          -- shared by an event's redeliveries: receivers dedupe on it
    event            TEXT NOT NULL,
    body             TEXT NOT NULL,          -- the exact JSON sent (and signed), in the hook's format
    state            TEXT NOT NULL,          -- pending delivered failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,                -- while pending; also the lease of a claimed delivery
    last_status      INTEGER,
    last_error       TEXT,
    redelivery_of    TEXT,                   -- the delivery this one repeats by hand
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_at DESC, id);
-- Pruning old finished deliveries walks them by age.
CREATE INDEX webhook_deliveries_age ON webhook_deliveries (created_at) WHERE state != 'pending';

-- Every attempt of every delivery, listable.
CREATE TABLE webhook_attempts (
    id             INTEGER PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt        INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER,                  -- NULL when no answer came (refused, timeout)
    error          TEXT,
    response_body  TEXT,                     -- the first bytes of the answer, for diagnosis
    UNIQUE (delivery_id, attempt)
) STRICT;
