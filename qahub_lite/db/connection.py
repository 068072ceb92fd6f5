"""Connection set-up: every PRAGMA in one place, each with its reason (STYLE.md habit 2)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Features the code relies on; `qahub check` reports them and start-up refuses older SQLite.
MIN_SQLITE = (3, 37, 0)  # STRICT tables arrived in 3.37; RETURNING in 3.35.


class StorageError(Exception):
    """The database cannot be used as configured (wrong journal mode, too old, unreadable)."""


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old: qahub-lite needs {need} or newer")


def configure(conn: sqlite3.Connection, *, busy_timeout_ms: int, synchronous: str, readonly: bool) -> None:
    """Apply the connection PRAGMAs. Order matters:

    1. busy_timeout first: every later PRAGMA may need a lock (switching to WAL does), and
       without a timeout a concurrent CLI command or backup makes it fail at once with
       "database is locked" instead of waiting.
    2. journal_mode=WAL: readers never block the writer and the writer never blocks readers.
       It is a property of the file, so it is checked, not assumed (it silently stays
       'delete' on file systems without shared memory).
    3. synchronous: FULL by default, so a 2xx answer means the commit is on disk; NORMAL
       in WAL mode only risks the last transactions on power loss, never corruption.
    4. foreign_keys: off by default in SQLite; cascades and integrity rely on it.
    Readers additionally set query_only, so a bug cannot make a reader write.
    """
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"could not switch the database to WAL mode (it reports {mode!r})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")


def open_writer(path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> sqlite3.Connection:
    """A read-write connection in explicit-transaction mode (we issue BEGIN/COMMIT ourselves)."""
    check_sqlite_version()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    configure(conn, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, readonly=False)
    return conn


def reader_uri(path: Path) -> str:
    # mode=ro: the file is never created or written through this connection.
    return f"file:{path}?mode=ro"
