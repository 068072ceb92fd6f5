"""The database as the rest of the program sees it: one writer, a pool of readers, migrations
applied at start, on either engine (engine.py)."""

from __future__ import annotations

import contextlib
import functools

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import engine as engines
from .errors import translated
from .readers import ReaderPool
from .writer import Writer

T = TypeVar("T")


def migrate(path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> list[str]:
    """Create the SQLite database if needed and apply pending migrations; returns their names."""
    return engines.SqliteEngine(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous).migrate()


class Database:
    def __init__(self, engine, *, readers: int, max_group: int) -> None:
        self.engine = engine  # engine.py: SQLite's file or a PostgreSQL server
        self.writer = Writer(engine, max_group=max_group)
        self.readers = ReaderPool(engine, size=readers)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return getattr(self.engine, "path", None)

    @classmethod
    def from_config(cls, config) -> "Database":
        s = config.storage
        return cls(engines.from_config(config), readers=s.reader_connections, max_group=s.max_group_commit)

    async def open(self) -> list[str]:
        applied = self.engine.migrate()
        self.writer.start()
        self.readers.open()
        return applied

    async def close(self) -> None:
        self.readers.close()
        self.writer.stop()  # drains queued writes (and checkpoints SQLite's WAL)

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
        """Copy SQLite's WAL back into the database file without waiting for readers (the
        `wal-checkpoint` maintenance task), so the WAL does not grow without bound."""
        await self.write(self.engine.checkpoint)

    async def ping(self) -> None:
        """Raise unless a reader can query the migrated schema (readiness)."""
        await self.read(_ping)


def _ping(conn) -> None:
    conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()


@contextlib.contextmanager
def direct_connection(engine):
    """A short-lived read-write connection for CLI commands (keys, tenants) that run beside a
    live server: they take the write transaction in turn with it (engine.py). Commits on success.
    A driver error reaches the caller as a storage error (errors.py). `engine` may also be a
    loaded config (its engine) or a SQLite file's path."""
    if isinstance(engine, Path):
        engine = engines.SqliteEngine(engine)
    elif hasattr(engine, "storage"):
        engine = engines.from_config(engine)
    with translated():
        conn = engine.open_writer()
    try:
        with translated():
            engine.begin_write(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        conn.close()


