"""Connection set-up: every PRAGMA in one place, each with its reason (STYLE.md habit 2)."""

from __future__ import annotations

import os
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


# The database holds every tenant's data, webhook secrets and key hashes; the data folder
# holds it and the attachments. Only the user the server runs as may read them: the folder is
# 0700 and the database files 0600, whatever the umask (which usually makes files 0644).
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as a folder only its owner can enter; a folder that
    exists already loses group and other permissions (an upgrade from a 0755 data folder)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    _restrict(path, PRIVATE_DIR)
    return path


def _restrict(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(mode)
    except PermissionError:
        pass  # not ours (a mount point owned by root): the operator decides its permissions


def private_database(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives its -wal and -shm files the
    database's permissions), and take group and other permissions from one made before."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE))
    except FileExistsError:
        pass
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _restrict(side, PRIVATE_FILE)


def open_writer(path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> sqlite3.Connection:
    """A read-write connection in explicit-transaction mode (we issue BEGIN/COMMIT ourselves)."""
    check_sqlite_version()
    private_database(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    configure(conn, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, readonly=False)
    return conn


def open_reader(path: Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`, `query_only`); reads run outside any explicit
    transaction, so each statement sees the latest commit."""
    check_sqlite_version()
    conn = sqlite3.connect(reader_uri(path), uri=True, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    configure(conn, busy_timeout_ms=busy_timeout_ms, synchronous="NORMAL", readonly=True)
    return conn


def reader_uri(path: Path) -> str:
    # mode=ro: the file is never created or written through this connection.
    return f"file:{path}?mode=ro"
