-- PostgreSQL twin of ../0012_task_leases.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- Task leases (issue 14, docs/scaling.md "Background work on several nodes"): several `qahub serve`
-- nodes on one database run the same maintenance tasks; before a due run of a coordinated task a
-- node claims its lease here (db/task_leases.py), and a node that does not get it skips the round.
-- One row per task name; `holder` is the node's identity (hostname:pid:random), `expires_at` the
-- millisecond after which another node may take the task over.
CREATE TABLE task_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
