-- Triage (issue 15, docs/triage.md): failure signatures kept per project with their counts,
-- the triage people give them (a ticket, a ReportPortal-style category), admin rules that mask
-- or merge, quarantine with a ticket and an expiry and an audit trail, and each run's gate
-- verdict as CI first got it.

-- One row per distinct failure of a project. Maintained at ingest (core/signatures.py) so that a
-- project's failure groups over millions of results read this table, not the results.
CREATE TABLE failure_signatures (
    id              INTEGER PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    hash            TEXT NOT NULL,           -- 16 hex digits of sha256(exception type, message, frames)
    exception_type  TEXT NOT NULL,
    normalized      TEXT NOT NULL,           -- the masked message and frames: why two failures are one
    example         TEXT,                    -- the first message seen, cut to 500 characters
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    first_run_id    TEXT,                    -- the run that first showed it (it may since have been deleted)
    occurrences     INTEGER NOT NULL DEFAULT 0,
    merged_into     INTEGER REFERENCES failure_signatures(id) ON DELETE SET NULL,
    category        TEXT CHECK (category IN ('product_bug', 'automation_bug', 'environment', 'to_investigate')),
    bug_ticket_key  TEXT,
    bug_ticket_url  TEXT,
    note            TEXT,
    triaged_at      INTEGER,
    UNIQUE (project_id, hash)
) STRICT;
-- The project's failure groups, newest first.
CREATE INDEX failure_signatures_recent ON failure_signatures (project_id, last_seen DESC);

-- Which tests a signature hit (counted when read, for the signatures listed), and on which
-- branches: kept at ingest, so "tests affected" and the branch filter need no scan of results.
CREATE TABLE signature_tests (
    signature_id  INTEGER NOT NULL REFERENCES failure_signatures(id) ON DELETE CASCADE,
    test_id       INTEGER NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    PRIMARY KEY (signature_id, test_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX signature_tests_test ON signature_tests (test_id);

CREATE TABLE signature_branches (
    signature_id  INTEGER NOT NULL REFERENCES failure_signatures(id) ON DELETE CASCADE,
    branch        TEXT NOT NULL,             -- '' for runs that named no branch
    occurrences   INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    PRIMARY KEY (signature_id, branch)
) STRICT, WITHOUT ROWID;

-- A failed result's signature. Partial index: passing results (most rows) carry none.
ALTER TABLE results ADD COLUMN signature_id INTEGER REFERENCES failure_signatures(id) ON DELETE SET NULL;
CREATE INDEX results_signature ON results (signature_id) WHERE signature_id IS NOT NULL;

-- Admin rules of a project: a regex to mask before hashing, or a merge of one signature into
-- another (the merge lives on failure_signatures.merged_into).
CREATE TABLE signature_rules (
    id          INTEGER PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    pattern     TEXT NOT NULL,
    note        TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX signature_rules_project ON signature_rules (project_id, id);

-- Quarantine: a ticket, an expiry, and who set it (a person, or the auto-quarantine policy).
ALTER TABLE tests ADD COLUMN quarantine_ticket TEXT;
ALTER TABLE tests ADD COLUMN quarantine_expires_at INTEGER;
ALTER TABLE tests ADD COLUMN quarantined_by TEXT;

CREATE TABLE quarantine_audit (
    id          INTEGER PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    test_id     INTEGER NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    action      TEXT NOT NULL,               -- quarantined unquarantined expired
    actor       TEXT NOT NULL,               -- 'api', 'dashboard:<user>' or 'policy'
    reason      TEXT,
    ticket      TEXT,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX quarantine_audit_project ON quarantine_audit (project_id, at DESC);
-- Expired quarantines are lifted by a background job.
CREATE INDEX tests_quarantine_expiry ON tests (quarantine_expires_at) WHERE quarantined = 1;

-- The gate's verdict for a run as first computed (what CI got); never rewritten.
CREATE TABLE gate_verdicts (
    run_id       TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    passed       INTEGER NOT NULL,
    reasons      TEXT NOT NULL,              -- JSON list of sentences
    set_aside    TEXT NOT NULL,              -- JSON list of the failures set aside and why
    computed_at  INTEGER NOT NULL
) STRICT;
