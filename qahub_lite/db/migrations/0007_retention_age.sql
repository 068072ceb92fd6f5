-- Retention measures an unlinked result's age from its last update, not its creation: a result
-- upserted a moment ago into an old run was swept with it (issue 12). The sweep walks this
-- partial index oldest first, as it walked the one it replaces.
CREATE INDEX results_unlinked_updated ON results (updated_at) WHERE linked = 0;
DROP INDEX results_unlinked_age;
