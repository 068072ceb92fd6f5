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


# Each engine has its own files with the same numbers and names: SQLite's beside this module,
# PostgreSQL's in postgresql/ (tests/test_schema_engines.py checks they build the same schema).
ENGINES = ("sqlite", "postgresql")


def available(engine: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package for `engine`, in order."""
    if engine not in ENGINES:
        raise ValueError(f"unknown storage engine {engine!r}")
    folder = resources.files(__package__)
    if engine == "postgresql":
        folder = folder / "postgresql"
    out = []
    for entry in folder.iterdir():
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


# A constant key for pg_advisory_xact_lock: two nodes starting at once migrate one after the other.
_PG_MIGRATION_LOCK = 0x71A4B_0001


def apply_pending_postgresql(conn) -> list[str]:  # engine: postgresql
    """Apply what is pending on a psycopg connection, each migration in one transaction with its
    record, under an advisory lock so that nodes starting together never apply one twice."""
    names = []
    with conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
    for version, name, sql in available("postgresql"):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,))
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone():
                continue
            conn.execute(sql)  # no parameters: the simple protocol runs the file's statements in order
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                         (version, name, int(time.time() * 1000)))
        names.append(name)
    return names
