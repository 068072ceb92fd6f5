-- State that several `qahub serve` nodes on one PostgreSQL database must share (issue 14,
-- docs/scaling.md "What is shared"). On SQLite the one process keeps rate-limit windows and the
-- sign-in throttle in memory; the tables exist on both engines so that the schemas stay one.

-- Sliding-window logs: one row per counted request (a rate-limited API request, a reserved
-- sign-in attempt) that is still inside its window. A window holds at most its limit of rows,
-- and rows older than their window are deleted as they are met and by a periodic prune.
CREATE TABLE rate_limit_hits (
    id          INTEGER PRIMARY KEY,
    limit_name  TEXT NOT NULL,      -- a route group of api/ratelimit.py, or 'sign_in'
    subject     TEXT NOT NULL,      -- whose window: an API key's id, or a sign-in's address and name
    at_ms       INTEGER NOT NULL    -- when it was counted, by the database's clock (ms since the epoch)
) STRICT;
-- The window of one subject, oldest first: counting, pruning and the oldest hit read this.
CREATE INDEX rate_limit_hits_window ON rate_limit_hits (limit_name, subject, at_ms);

-- Each window's count of its rows above, kept with every change, so that checking a window costs
-- reading one row and not counting up to its limit's rows (1,200 for the default group) inside
-- the write transaction every node waits its turn for. `newest_ms` is the latest hit's time: a
-- window whose newest hit left it is empty, and the prune deletes it with its hits.
CREATE TABLE rate_limit_windows (
    limit_name  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    hits        INTEGER NOT NULL,    -- its rows in rate_limit_hits (some may have left the window since)
    newest_ms   INTEGER NOT NULL,
    PRIMARY KEY (limit_name, subject)
) STRICT;
CREATE INDEX rate_limit_windows_idle ON rate_limit_windows (limit_name, newest_ms);

-- Bumped in every write transaction that revokes a key, suspends a tenant or deletes keys: each
-- node reads it every second and forgets its remembered key checks when it moved
-- (core/key_checks.py), so a revoked key stops working on every node within about a second.
CREATE TABLE key_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
) STRICT;
INSERT INTO key_generation (id, generation) VALUES (1, 0);
