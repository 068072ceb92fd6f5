-- PostgreSQL twin of ../0006_test_daily.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- Per-test daily figures that outlive raw retention (core/test_daily.py). The sweep rolls a
-- project's day up, every test of it, in the transaction that deletes the first of that day's
-- results; a test's history reads these rows for rolled-up days and raw results for the rest.
CREATE TABLE test_daily (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    test_id      BIGINT NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    day          BIGINT NOT NULL,     -- UTC day start, epoch ms, of the runs' creation
    runs         BIGINT NOT NULL,     -- results of the test that day (one per run and variant)
    passed       BIGINT NOT NULL,
    failed       BIGINT NOT NULL,     -- FAILED, BROKEN and TIMEOUT
    skipped      BIGINT NOT NULL,
    flaky        BIGINT NOT NULL,     -- passed after a failed attempt
    duration_p50_ms BIGINT,           -- median of the timed results
    PRIMARY KEY (test_id, day)
);

-- Which project-days are rolled up (once each, even a day whose tests all went): the sweep
-- asks here before reading a day's results again.
CREATE TABLE test_daily_days (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    day          BIGINT NOT NULL,
    rolled_up_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, day)
);
