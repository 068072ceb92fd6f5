"""Domain errors. The API layer maps each to one HTTP status (api/errors.py); core code raises
them without knowing that HTTP exists.

The storage layer's errors are re-exported here: api and web must not import db/, yet they
answer a full disk (507) or a number too large (400) as the storage reported it."""

from __future__ import annotations

from ..db.errors import (  # noqa: F401 - re-exported for api and web
    Busy, ConstraintFailed, Duplicate, OutOfRange, StorageError, StorageFailed, StorageFull, Unavailable,
    WriterClosed,
)


class DomainError(Exception):
    """Base: `message` is a sentence fit to show a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    pass


class Invalid(DomainError):
    pass


class Conflict(DomainError):
    pass


class Forbidden(DomainError):
    pass
