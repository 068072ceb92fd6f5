-- Per-test daily figures that outlive raw retention (core/test_daily.py). The sweep rolls a
-- project's day up, every test of it, in the transaction that deletes the first of that day's
-- results; a test's history reads these rows for rolled-up days and raw results for the rest.
CREATE TABLE test_daily (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    test_id      INTEGER NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    day          INTEGER NOT NULL,     -- UTC day start, epoch ms, of the runs' creation
    runs         INTEGER NOT NULL,     -- results of the test that day (one per run and variant)
    passed       INTEGER NOT NULL,
    failed       INTEGER NOT NULL,     -- FAILED, BROKEN and TIMEOUT
    skipped      INTEGER NOT NULL,
    flaky        INTEGER NOT NULL,     -- passed after a failed attempt
    duration_p50_ms INTEGER,           -- median of the timed results
    PRIMARY KEY (test_id, day)
) STRICT, WITHOUT ROWID;

-- Which project-days are rolled up (once each, even a day whose tests all went): the sweep
-- asks here before reading a day's results again.
CREATE TABLE test_daily_days (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    day          INTEGER NOT NULL,
    rolled_up_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, day)
) STRICT, WITHOUT ROWID;
