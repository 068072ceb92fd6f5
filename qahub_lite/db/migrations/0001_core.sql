-- The canonical model: tenants, keys, projects, the test library, runs, results, attachments.
-- STRICT tables; timestamps are integer epoch milliseconds; ids are text UUIDs except where
-- rows are many (test identities, results), which use integer rowids for speed.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    suspended   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE projects (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    slug             TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT,
    repo             TEXT,              -- owner/name, QualityPilot's key to a project
    default_branch   TEXT NOT NULL DEFAULT 'main',
    ci_config        TEXT,              -- JSON, Qualigate's ci-config
    settings         TEXT,              -- JSON: gate rules and other per-project settings
    next_case_number INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (tenant_id, slug)
) STRICT;
CREATE UNIQUE INDEX projects_tenant_repo ON projects (tenant_id, repo) WHERE repo IS NOT NULL;
CREATE INDEX projects_tenant_created ON projects (tenant_id, created_at, id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,      -- the public part of qh_<id>_<secret>
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    project_id    TEXT REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,         -- space-separated: read write admin
    secret_hash   BLOB NOT NULL,         -- sha256 of the secret; the secret itself is never stored
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE suites (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    parent_id   TEXT REFERENCES suites(id) ON DELETE SET NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX suites_project ON suites (project_id, created_at, id);

CREATE TABLE test_cases (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    suite_id    TEXT REFERENCES suites(id) ON DELETE SET NULL,
    code        TEXT NOT NULL,           -- TC-042, unique in its project
    title       TEXT NOT NULL,
    description TEXT,
    automation  TEXT,                    -- JSON: how an agent finds this test (framework, grep)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, code)
) STRICT;
CREATE INDEX test_cases_project ON test_cases (project_id, created_at, id);
CREATE INDEX test_cases_suite ON test_cases (suite_id);

-- A test's identity, interned as an integer: a linked test case, or an unlinked
-- (suite path, title). Results point here, so history and flakiness group by an integer.
CREATE TABLE tests (
    id            INTEGER PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    test_case_id  TEXT REFERENCES test_cases(id) ON DELETE CASCADE,
    suite_path    TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL,
    identity      TEXT NOT NULL,         -- 'c:<test case id>' or 'u:<suite path>\x1f<title>'
    quarantined   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    UNIQUE (project_id, identity)
) STRICT;
CREATE INDEX tests_case ON tests (test_case_id) WHERE test_case_id IS NOT NULL;

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    short_id      TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    environment   TEXT,
    framework     TEXT,
    source        TEXT NOT NULL,         -- which dialect or tool brought it in
    status        TEXT NOT NULL,         -- PENDING RUNNING COMPLETED CANCELED ERROR
    branch        TEXT,
    commit_sha    TEXT,
    pr_number     TEXT,
    pr_url        TEXT,
    repository    TEXT,
    ci_provider   TEXT,
    build_url     TEXT,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    duration_ms   INTEGER,
    total         INTEGER NOT NULL DEFAULT 0,
    passed        INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    broken        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    unknown       INTEGER NOT NULL DEFAULT 0,
    pending       INTEGER NOT NULL DEFAULT 0,
    flaky         INTEGER NOT NULL DEFAULT 0,
    extra         TEXT                   -- JSON: dialect details kept verbatim (summary, browser)
) STRICT;
CREATE INDEX runs_project_created ON runs (project_id, created_at DESC, id);
CREATE INDEX runs_project_branch ON runs (project_id, branch, created_at DESC);
CREATE INDEX runs_tenant_created ON runs (tenant_id, created_at DESC, id);

-- Led by run_id: DESIGN.md measured bulk inserts 6x slower with an index led by the test.
CREATE TABLE results (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    test_id         INTEGER NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    flaky           INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 1,
    duration_ms     INTEGER,
    error_message   TEXT,
    error_stack     TEXT,
    comment         TEXT,
    bug_ticket_key  TEXT,
    bug_ticket_url  TEXT,
    framework       TEXT,
    file            TEXT,
    line            INTEGER,
    stdout          TEXT,
    stderr          TEXT,
    attempt_log     TEXT,                -- JSON list of earlier attempts
    linked          INTEGER NOT NULL,    -- 1 when the test is a library test case (never swept)
    executed_at     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (run_id, test_id)
) STRICT;
-- The retention sweep walks unlinked results by age.
CREATE INDEX results_unlinked_age ON results (created_at) WHERE linked = 0;

CREATE TABLE attachments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    result_id   INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    file_name   TEXT NOT NULL,           -- as uploaded; never used as a path
    mime_type   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,           -- the file's name on disk
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_result ON attachments (result_id);
CREATE INDEX attachments_sha ON attachments (sha256);
