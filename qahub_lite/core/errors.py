"""Domain errors. The API layer maps each to one HTTP status (api/errors.py); core code raises
them without knowing that HTTP exists."""

from __future__ import annotations


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


class StorageFull(DomainError):
    """The disk is full: nothing was stored."""
