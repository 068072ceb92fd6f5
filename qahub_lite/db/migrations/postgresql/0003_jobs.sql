-- PostgreSQL twin of ../0003_jobs.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- Executing triggered tests (DESIGN.md "Executing triggered tests"): agents, the job queue and
-- the executions that give each triggered test its own id (Qualigate's test_run_id).
-- A triggered run's results are ordinary `results` rows (PENDING, RUNNING, then an outcome);
-- these tables only say who runs what, under which lease.

-- An agent as last seen: one row per (tenant, name), refreshed by every claim and heartbeat.
CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    name            TEXT NOT NULL,
    key_id          TEXT,                -- public id of the key it last used (never the secret)
    hostname        TEXT,
    version         TEXT,
    frameworks      TEXT NOT NULL,       -- JSON list of the frameworks it has commands for
    current_job_id  TEXT,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name)             -- also the index of GET /api/v1/agents (by name)
);

-- One framework's share of a triggered run: claimed by exactly one agent, held by a lease that
-- heartbeats renew. status: QUEUED RUNNING DONE ERROR TIMEOUT CANCELED.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    framework         TEXT NOT NULL,
    status            TEXT NOT NULL,
    options           TEXT,              -- JSON: browser, viewport and CI context for the command
    agent_id          TEXT REFERENCES agents(id) ON DELETE SET NULL,
    lease_token_hash  BYTEA,              -- sha256 of the claim's token; the token is never stored
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    claimed_at        BIGINT,
    finished_at       BIGINT,
    message           TEXT               -- why it ended in ERROR, TIMEOUT or CANCELED
);
-- The claim: a tenant's oldest queued job. The expiry job walks queued jobs by age too.
CREATE INDEX jobs_queued ON jobs (tenant_id, created_at) WHERE status = 'QUEUED';
-- The expiry job: leases that ran out.
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX jobs_run ON jobs (run_id);

-- One test of a triggered run. Its id is what Qualigate calls a test run; `job_id` is NULL for
-- a test that failed fast (no automation mapping, so no agent could run it).
CREATE TABLE executions (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    test_id     BIGINT NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    job_id      TEXT REFERENCES jobs(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,        -- order within the run, as triggered
    grep        TEXT,                    -- the automation mapping as it was when triggered
    file        TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (run_id, test_id)
);
CREATE INDEX executions_job ON executions (job_id, position);
