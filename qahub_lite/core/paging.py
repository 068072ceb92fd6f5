"""Cursor pagination over (created_at, id), newest or oldest first.

A cursor is opaque to clients: the position of the last row of the previous page, so pages
stay stable while rows are added (offsets would skip or repeat rows).
"""

from __future__ import annotations

import base64

from .clock import MAX_INT64
from .errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def encode_cursor(created_at: int, row_id: str | int) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{row_id}".encode()).decode().rstrip("=")


_BAD_CURSOR = "cursor is not valid: pass the next_cursor of a previous page"


def _int64(text: str) -> int:
    """A cursor's number; anything SQLite could not compare (past 64 bits) is refused here,
    not by the database as a 500."""
    value = int(text)
    if not -MAX_INT64 <= value <= MAX_INT64:
        raise ValueError(text)
    return value


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    """A cursor is forged as easily as it is read: every part is checked, and a bad one is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":", 1)
        return _int64(created), row_id
    except (ValueError, UnicodeDecodeError):
        raise Invalid(_BAD_CURSOR) from None


def decode_int_cursor(cursor: str | None) -> tuple[int, int] | None:
    """A cursor over an integer position (a result id, an offset into a list)."""
    decoded = decode_cursor(cursor)
    if decoded is None:
        return None
    try:
        return decoded[0], _int64(decoded[1])
    except ValueError:
        raise Invalid(_BAD_CURSOR) from None


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def split_page(
    rows: list, limit: int, created_col: int | str | None, id_col: int | str = 0,
) -> tuple[list, str | None]:
    """Rows fetched with LIMIT limit + 1 -> (this page's rows, the next page's cursor or None).
    The extra row only says that there is more; the cursor is the last shown row's position
    (`created_col` None: rows are ordered by id alone). Columns by position, or by name for rows
    read by name."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    created = 0 if created_col is None else rows[-1][created_col]
    return rows, encode_cursor(created, rows[-1][id_col])
