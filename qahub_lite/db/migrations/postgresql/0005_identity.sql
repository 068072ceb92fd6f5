-- PostgreSQL twin of ../0005_identity.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- One stable identity per test (docs/identity.md). A test (an interned `tests` row) gains a
-- variant: executions meant to be distinct (parameters, a Playwright project, a matrix label)
-- are distinct tests, each with its own results. Existing rows get the empty variant, and the
-- identity key of a result without a variant is unchanged (core/identity.py), so every
-- history recorded before this migration continues on the same rows: nothing is rewritten.
ALTER TABLE tests ADD COLUMN variant TEXT NOT NULL DEFAULT '';

-- Tags a report gave a result (`@smoke`, Playwright tags), as a JSON list; NULL when none.
-- Kept on the test too (the latest result's), so the tests listing filters without a scan.
ALTER TABLE results ADD COLUMN tags TEXT;
ALTER TABLE tests ADD COLUMN tags TEXT;
