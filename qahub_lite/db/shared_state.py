"""Storage of the state several `qahub serve` nodes share (migration 0011): sliding-window logs
of the rate limits and the sign-in throttle, and the key generation that tells every node to
forget its remembered key checks. docs/scaling.md ("What is shared") says what is shared and why.

A window's check-and-count runs inside one write transaction (`Database.write`), and write
transactions run one at a time across every node (engine.py: SQLite's single writer, the write
lock on PostgreSQL), so the count read and the hit inserted cannot interleave with another
node's: the 61st request of a 60-per-minute window is refused whichever node gets it.

Times are the database's clock when none is given: every node then measures windows against
the same clock, so that nodes whose clocks drift apart still agree on when a hit leaves its
window. (Tests give their own clock, in ms.)
"""

from __future__ import annotations

import time
from typing import NamedTuple


def _on_postgresql(conn) -> bool:
    # postgresql.is_postgresql's test, without importing that module (it loads psycopg, which a
    # SQLite hub never needs).
    return getattr(conn, "engine", "sqlite") == "postgresql"


def database_now_ms(conn) -> int:
    """The database server's wall clock in ms since the epoch (this process's on SQLite, whose
    database is a file of this machine). clock_timestamp(), not now(): now() is the start of the
    transaction, which a group commit may have begun a while before this operation."""
    if _on_postgresql(conn):
        return int(conn.execute("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT").fetchone()[0])
    return int(time.time() * 1000)


class WindowState(NamedTuple):
    """One check of a window."""

    allowed: bool  # whether the hit was counted
    count: int  # hits now in the window (this one included when counted)
    oldest_ms: int | None  # the oldest hit's time (None when the window is empty)
    now_ms: int  # the time the check used


def count_hit(conn, limit_name: str, subject: str, limit: int, window_ms: int, now_ms: int | None = None) -> WindowState:
    """Writer operation: drop `subject`'s hits that left the window, then count this one when
    fewer than `limit` remain. A refused hit is not recorded (it does not use the window up).
    A hit exactly `window_ms` old has left, as in the in-memory limiter.

    Each statement touches the window's row or a range of its hits found through an index: no
    statement counts the window (see rate_limit_windows in migration 0011)."""
    now = database_now_ms(conn) if now_ms is None else now_ms
    key = (limit_name, subject)
    row = conn.execute("SELECT hits FROM rate_limit_windows WHERE limit_name = ? AND subject = ?", key).fetchone()
    hits = 0 if row is None else row[0]
    if hits:
        hits -= conn.execute("DELETE FROM rate_limit_hits WHERE limit_name = ? AND subject = ? AND at_ms <= ?",
                             (*key, now - window_ms)).rowcount
    allowed = hits < limit
    if allowed:
        conn.execute("INSERT INTO rate_limit_hits (limit_name, subject, at_ms) VALUES (?, ?, ?)", (*key, now))
        hits += 1
        conn.execute(
            "INSERT INTO rate_limit_windows (limit_name, subject, hits, newest_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (limit_name, subject) DO UPDATE SET hits = excluded.hits, newest_ms = excluded.newest_ms",
            (*key, hits, now))
    elif row is not None and hits != row[0]:
        conn.execute("UPDATE rate_limit_windows SET hits = ? WHERE limit_name = ? AND subject = ?", (hits, *key))
    first = conn.execute("SELECT at_ms FROM rate_limit_hits WHERE limit_name = ? AND subject = ?"
                         " ORDER BY at_ms LIMIT 1", key).fetchone()  # the first entry of the index's range
    return WindowState(allowed, hits, None if first is None else first[0], now)


def forget_newest_hit(conn, limit_name: str, subject: str) -> None:
    """Writer operation: take back the latest hit of `subject` (a sign-in reservation whose
    password was never checked)."""
    gone = conn.execute(
        "DELETE FROM rate_limit_hits WHERE id = (SELECT id FROM rate_limit_hits"
        " WHERE limit_name = ? AND subject = ? ORDER BY at_ms DESC, id DESC LIMIT 1)",
        (limit_name, subject)).rowcount
    if gone:
        conn.execute("UPDATE rate_limit_windows SET hits = hits - ? WHERE limit_name = ? AND subject = ?",
                     (gone, limit_name, subject))


def forget_hits(conn, limit_name: str, subject: str) -> None:
    """Writer operation: empty `subject`'s window (a successful sign-in clears its failures)."""
    conn.execute("DELETE FROM rate_limit_hits WHERE limit_name = ? AND subject = ?", (limit_name, subject))
    conn.execute("DELETE FROM rate_limit_windows WHERE limit_name = ? AND subject = ?", (limit_name, subject))


def prune_hits(conn, limit_name: str, window_ms: int, now_ms: int | None = None) -> int:
    """Writer operation: delete the windows of `limit_name` whose newest hit left them, with
    their hits (the windows of subjects that went idle; an active window drops its old hits as
    it is used). Returns the hits deleted."""
    now = database_now_ms(conn) if now_ms is None else now_ms
    horizon = now - window_ms
    deleted = conn.execute(
        "DELETE FROM rate_limit_hits WHERE limit_name = ? AND subject IN"
        " (SELECT subject FROM rate_limit_windows WHERE limit_name = ? AND newest_ms <= ?)",
        (limit_name, limit_name, horizon)).rowcount
    conn.execute("DELETE FROM rate_limit_windows WHERE limit_name = ? AND newest_ms <= ?", (limit_name, horizon))
    return deleted


def subjects_with_hits(conn, limit_name: str) -> int:
    """How many subjects of `limit_name` have hits stored (for tests and figures)."""
    return conn.execute("SELECT count(*) FROM rate_limit_windows WHERE limit_name = ? AND hits > 0",
                        (limit_name,)).fetchone()[0]


def key_generation(conn) -> int:
    """The key generation: one primary-key read."""
    return conn.execute("SELECT generation FROM key_generation WHERE id = 1").fetchone()[0]


def bump_key_generation(conn) -> None:
    """Writer operation, in the transaction that changes a key or a tenant: commits with it."""
    conn.execute("UPDATE key_generation SET generation = generation + 1 WHERE id = 1")
