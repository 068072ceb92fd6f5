-- PostgreSQL twin of ../0007_retention_age.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- Retention measures an unlinked result's age from its last update, not its creation: a result
-- upserted a moment ago into an old run was swept with it (issue 12). The sweep walks this
-- partial index oldest first, as it walked the one it replaces.
CREATE INDEX results_unlinked_updated ON results (updated_at) WHERE linked = 0;
DROP INDEX results_unlinked_age;
