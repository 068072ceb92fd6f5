"""Cursor pagination over (created_at, id), newest or oldest first.

A cursor is opaque to clients: the position of the last row of the previous page, so pages
stay stable while rows are added (offsets would skip or repeat rows).
"""

from __future__ import annotations

import base64

from .errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def encode_cursor(created_at: int, row_id: str | int) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":", 1)
        return int(created), row_id
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor is not valid: pass the next_cursor of a previous page") from None


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
    return limit
