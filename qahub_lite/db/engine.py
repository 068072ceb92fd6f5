"""The two storage engines behind one interface: how to connect, how a write transaction starts,
how migrations run. Everything else in db/ is written once, against `conn.execute(sql, params)`.

SQLite (the embedded default): one file in the data folder; one writer connection per process,
and `BEGIN IMMEDIATE` makes every write transaction the only one.

PostgreSQL (`[storage] url`): any number of `qahub serve` nodes on one database. Each node keeps
the same single-writer thread with group commit, and every write transaction starts by taking one
transaction-scoped advisory lock, so write transactions run one at a time across all nodes, as
they do on SQLite. The core's invariants (a run's outcomes merged under one writer, job claims,
rate-limit windows) were built on that serial order; keeping it makes a second engine a change of
storage, not of semantics. Reads never take it. A node spends most of an ingest parsing and
validating outside the transaction, which is where a second node adds capacity (docs/scaling.md).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import migrations
from .connection import open_reader, open_writer
from .errors import translated

# The advisory lock every write transaction takes on PostgreSQL (an arbitrary constant of our own).
WRITE_LOCK = 0x71A4B_0002


def is_postgresql(conn) -> bool:
    """Whether `conn` is PostgreSQL's (postgresql.Connection), for the few statements that are
    spelled differently per engine (json_each, two-argument min/max, row locks)."""
    return getattr(conn, "engine", "sqlite") == "postgresql"


def json_list_holds(conn, column: str) -> str:
    """SQL true when the JSON list in `column` (text) holds the next parameter: SQLite's
    json_each, PostgreSQL's json_array_elements_text."""
    if is_postgresql(conn):
        return f"EXISTS (SELECT 1 FROM json_array_elements_text({column}::json) AS item WHERE item = ?)"
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)"


class SqliteEngine:
    name = "sqlite"
    shares_write_lock = False  # one process writes: nothing to wait for but itself

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous

    def describe(self) -> str:
        return str(self.path)

    def open_writer(self):
        return open_writer(self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous=self.synchronous)

    def open_reader(self):
        return open_reader(self.path, busy_timeout_ms=self.busy_timeout_ms)

    def begin_write(self, conn) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def migrate(self) -> list[str]:
        conn = self.open_writer()
        try:
            return migrations.apply_pending(conn)
        finally:
            conn.close()

    def pending_migrations(self) -> list[str]:
        conn = self.open_writer()
        try:
            return [name for _, name, _ in migrations.pending(conn)]
        finally:
            conn.close()

    def applied_migrations(self) -> dict[int, int]:
        conn = self.open_writer()
        try:
            return migrations.applied(conn)
        finally:
            conn.close()

    def at_writer_stop(self, conn) -> None:
        # Copy the WAL back into the file so that a stopped hub is one file (backups, copies).
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    def checkpoint(self, conn) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def is_broken(self, conn) -> bool:
        return False  # a file does not go away under an open connection


class PostgresqlEngine:
    name = "postgresql"
    shares_write_lock = True  # every node's writer takes WRITE_LOCK in turn

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        from . import postgresql  # imported only when configured: SQLite hubs never load psycopg

        self._pg = postgresql
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms

    def describe(self) -> str:
        return self._pg.redact(self.url)

    def _connect(self, *, readonly: bool):
        with translated():  # an unreachable server or a refused login is a storage error
            conn = self._pg.connect(self.url, readonly=readonly)
        # The busy timeout's meaning on this engine: how long a statement waits for a lock
        # (another node's write transaction) before it fails as Busy.
        conn.execute(f"SET lock_timeout = {int(self.busy_timeout_ms)}")
        return conn

    def open_writer(self):
        return self._connect(readonly=False)

    def open_reader(self):
        return self._connect(readonly=True)

    def begin_write(self, conn) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    def migrate(self) -> list[str]:
        conn = self.open_writer()
        try:
            with translated():
                return migrations.apply_pending_postgresql(conn.raw)
        finally:
            conn.close()

    def pending_migrations(self) -> list[str]:
        done = self.applied_migrations()
        return [name for version, name, _ in migrations.available("postgresql") if version not in done]

    def applied_migrations(self) -> dict[int, int]:
        conn = self.open_writer()
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            return {row[0]: row[1] for row in conn.execute("SELECT version, applied_at FROM schema_migrations")}
        finally:
            conn.close()

    def at_writer_stop(self, conn) -> None:
        pass

    def checkpoint(self, conn) -> None:
        pass  # the server checkpoints on its own schedule

    def is_broken(self, conn) -> bool:
        return conn.closed


def from_config(config):
    """The engine `[storage]` names: `url` when set, else the SQLite file in the data folder."""
    s = config.storage
    if s.url:
        return PostgresqlEngine(s.url, busy_timeout_ms=s.busy_timeout_ms)
    return SqliteEngine(config.db_path, busy_timeout_ms=s.busy_timeout_ms, synchronous=s.synchronous)
