"""Storage errors: the one place where the database driver's exceptions become errors the rest of
the program may see (DESIGN.md, "Storage SQL lives in one layer").

Nothing outside `db/` imports the driver or reads its result codes or message text. Every way
into the database (`Database.read`, `Database.write`, the writer's own callers, and
`direct_connection` for the CLI) passes what escapes through `translate`,
so a second engine only has to map its own exceptions here. The driver's exception stays on
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
