"""Forward-only numbered SQL migrations, each recorded in the transaction that applies it (part
of db/: it imports only the standard library).

A migration file is `NNNN_name.sql`. `apply_pending` runs every file not yet recorded in
`schema_migrations`, in order, each inside one transaction together with its record, so a
crash leaves the database either before or after a migration, never half-way.
"""

from __future__ import annotations

import sqlite3
import time
from importlib import resources

_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"""


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    out = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {[n for _, n, _ in out]}")
    return out


def applied(conn: sqlite3.Connection) -> dict[int, int]:
    """version -> applied_at of every recorded migration."""
    conn.execute(_TABLE)
    return {row[0]: row[1] for row in conn.execute("SELECT version, applied_at FROM schema_migrations")}


def pending(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    done = applied(conn)
    return [m for m in available() if m[0] not in done]


def apply_pending(conn: sqlite3.Connection) -> list[str]:
    """Apply what is pending; returns the names applied. `conn` must be in autocommit mode."""
    names = []
    for version, name, sql in pending(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT first; run statement by statement inside our transaction.
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, int(time.time() * 1000)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        names.append(name)
    return names


def _split(sql: str) -> list[str]:
    """Split a migration into statements with SQLite's own notion of completeness."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        if not current and line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {current[:80]!r}")
    return statements
