"""The database as the rest of the program sees it: one writer, a pool of readers, migrations
applied at start."""

from __future__ import annotations

import contextlib
import functools

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import migrations
from .connection import open_writer
from .errors import translated
from .readers import ReaderPool
from .writer import Writer

T = TypeVar("T")


def migrate(path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> list[str]:
    """Create the database if needed and apply pending migrations; returns their names."""
    conn = open_writer(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    try:
        return migrations.apply_pending(conn)
    finally:
        conn.close()


class Database:
    def __init__(self, path: Path, *, busy_timeout_ms: int, synchronous: str, readers: int, max_group: int) -> None:
        self.path = path
        self.writer = Writer(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, max_group=max_group)
        self.readers = ReaderPool(path, size=readers, busy_timeout_ms=busy_timeout_ms)
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous

    @classmethod
    def from_config(cls, config) -> "Database":
        s = config.storage
        return cls(
            config.db_path, busy_timeout_ms=s.busy_timeout_ms, synchronous=s.synchronous,
            readers=s.reader_connections, max_group=s.max_group_commit,
        )

    async def open(self) -> list[str]:
        applied = migrate(self.path, busy_timeout_ms=self._busy_timeout_ms, synchronous=self._synchronous)
        self.writer.start()
        self.readers.open()
        return applied

    async def close(self) -> None:
        self.readers.close()
        self.writer.stop()  # drains queued writes, checkpoints the WAL

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` in the writer's transaction; return once committed.
        A driver error reaches the caller as a storage error (errors.py)."""
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return await self.writer.run(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` on a read-only connection of a reader thread. A driver
        error reaches the caller as a storage error (errors.py)."""
        with translated():
            return await self.readers.run(fn, *args, **kwargs)

    async def checkpoint(self) -> None:
        """Copy the WAL back into the database file without waiting for readers (the
        `wal-checkpoint` maintenance task), so the WAL does not grow without bound."""
        await self.write(_checkpoint)

    async def ping(self) -> None:
        """Raise unless a reader can query the migrated schema (readiness)."""
        await self.read(_ping)


def _checkpoint(conn) -> None:  # engine: sqlite
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


def _ping(conn) -> None:
    conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()


@contextlib.contextmanager
def direct_connection(path: Path, *, busy_timeout_ms: int = 5000):
    """A short-lived read-write connection for CLI commands (keys, tenants) that run beside a
    live server: WAL lets them, busy_timeout makes them wait their turn. Commits on success.
    A driver error reaches the caller as a storage error (errors.py)."""
    with translated():
        conn = open_writer(path, busy_timeout_ms=busy_timeout_ms)
    try:
        with translated():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        conn.close()


