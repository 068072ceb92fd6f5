"""Storage errors: the one place where the database driver's exceptions become errors the rest of
the program may see (DESIGN.md, "Storage SQL lives in one layer").

Nothing outside `db/` imports the driver or reads its result codes or message text. Every way
into the database (`Database.read`, `Database.write`, the writer's own callers, and
`direct_connection` for the CLI) passes what escapes through `translate`; SQLite's exceptions are
mapped by result code, PostgreSQL's (psycopg) by SQLSTATE. The driver's exception stays on
`__cause__` for logs.

A storage function that must react to one case itself ("already exists") catches the driver
error inside `db/` and returns a value that says so, or raises one of these.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

# SQLite's primary result codes; the extended codes keep them in the low byte.
_SQLITE_FULL, _SQLITE_IOERR = 13, 10
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_CONSTRAINT_PRIMARYKEY, _SQLITE_CONSTRAINT_UNIQUE = 1555, 2067


class StorageError(Exception):
    """Base of every error the storage layer hands out. Raised as such for a failure that has no
    better name (a statement the engine refused, a damaged file): a bug or an operator's matter,
    never the client's."""


class ConstraintFailed(StorageError):
    """A row broke a rule of the schema (a foreign key, a CHECK, a trigger's refusal)."""


class Duplicate(ConstraintFailed):
    """A row would repeat a value that must be unique."""


class OutOfRange(StorageError):
    """A number the storage cannot hold (SQLite's integers have 64 bits; JSON's have no bound)."""


class StorageFull(StorageError):
    """No room left (full disk, used-up quota, file-size limit): nothing of the write was stored."""


class StorageFailed(StorageError):
    """The storage could not read or write for another I/O reason: nothing of the write was stored."""


class Busy(StorageError):
    """The database stayed locked by another connection for longer than the busy timeout."""


class Unavailable(StorageError):
    """The storage takes no more work (the server is stopping)."""


class WriterClosed(Unavailable):
    """The writer has been stopped; no more writes are accepted."""


def translate(exc: BaseException) -> BaseException:
    """The storage error for a driver exception; any other exception unchanged (domain errors a
    storage function raised, cancellations). The result carries `exc` as its cause."""
    mapped = _map(exc)
    if mapped is None:
        return exc
    mapped.__cause__ = exc
    return mapped


def _map(exc: BaseException) -> StorageError | None:
    if isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc):
        # Raised by the driver while binding a parameter, before SQLite sees the statement.
        return OutOfRange(f"A number is too large: the largest is {2**63 - 1}")
    if type(exc).__module__.startswith("psycopg"):
        return _map_postgresql(exc)
    if not isinstance(exc, sqlite3.Error):
        return None
    message = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # Errors the module raises itself (no result code): only the text tells.
        if "database or disk is full" in message:
            return StorageFull(message)
        return StorageError(message)
    primary = code & 0xFF
    if primary == _SQLITE_FULL:
        return StorageFull(message)
    if primary == _SQLITE_IOERR:
        return StorageFailed(message)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return Busy(message)
    if code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY):
        return Duplicate(message)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintFailed(message)
    return StorageError(message)


# PostgreSQL's SQLSTATE classes and codes (its manual's appendix A), by what they mean here.
_PG_UNIQUE = "23505"
_PG_OUT_OF_RANGE = ("22003", "22P03")  # numeric_value_out_of_range, invalid_binary_representation
_PG_FULL = ("53100", "53200", "54000")  # disk_full, out_of_memory, program_limit_exceeded
_PG_BUSY = ("55P03", "40P01", "40001", "57014")  # lock_not_available, deadlock, serialization, canceled
_PG_GONE_CLASSES = ("08", "57")  # connection exceptions; operator intervention (shutdown, restart)


def _map_postgresql(exc: BaseException) -> StorageError | None:
    message = str(exc).strip()
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, OverflowError) or state in _PG_OUT_OF_RANGE:
        return OutOfRange(f"A number is too large: the largest is {2**63 - 1}")
    if state == _PG_UNIQUE:
        return Duplicate(message)
    if state.startswith("23"):
        return ConstraintFailed(message)
    if state in _PG_FULL:
        return StorageFull(message)
    if state in _PG_BUSY:
        return Busy(message)
    if state[:2] in _PG_GONE_CLASSES or (not state and type(exc).__name__ == "OperationalError"):
        # The server is gone or restarting: nothing of the write was stored; the next one
        # opens a new connection (writer.py, readers.py).
        return StorageFailed(message or "the database server closed the connection")
    if state[:2] in ("58", "XX"):  # system error (I/O); internal error (a damaged relation)
        return StorageFailed(message)
    return StorageError(message)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise what escapes the block as `translate` maps it (with the driver's error as cause)."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc
