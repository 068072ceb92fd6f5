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


def split_page(rows: list, limit: int, created_col: int | None, id_col: int = 0) -> tuple[list, str | None]:
    """Rows fetched with LIMIT limit + 1 -> (this page's rows, the next page's cursor or None).
    The extra row only says that there is more; the cursor is the last shown row's position
    (`created_col` None: rows are ordered by id alone)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    created = 0 if created_col is None else rows[-1][created_col]
    return rows, encode_cursor(created, rows[-1][id_col])
