"""Identifiers and time, in the forms the database stores (STRICT tables, epoch milliseconds).

The bounds below are the one statement of which numbers and instants the hub stores. Every
dialect's Structs validate against them at the edge (api/bounds.py), chosen so that the
arithmetic done afterwards cannot leave what SQLite and `datetime` hold: `now - duration` stays
after 1970, a day's SUM of counts stays far inside 64 bits. Reads never trust them, though: a
value stored before the bounds existed (or written by hand) is clamped by `to_iso`, never a 500.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

# Crockford-style alphabet without look-alikes, for short ids people read and type.
_SHORT_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


# Instants a client may send: 1970-01-01 up to the end of year 9999, in UTC.
MIN_TIME_MS = 0
MAX_TIME_MS = 253_402_300_799_999
# What `datetime` can represent at all, for reads of values stored before the bounds.
_CALENDAR_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
# One year: longer than any test run, short enough that `now - duration` stays after 1970.
MAX_DURATION_MS = 365 * 24 * 3600 * 1000
# Tests in one run (or in a summary): a billion, so that billions of runs still sum in 64 bits.
MAX_COUNT = 1_000_000_000
# SQLite's INTEGER.
MAX_INT64 = 2**63 - 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    return str(uuid.uuid4())


def new_short_id(length: int = 8) -> str:
    return "".join(secrets.choice(_SHORT_ALPHABET) for _ in range(length))


def row_id(text: str) -> int | None:
    """An integer row id (results, tests) from a path or query, or None when the text cannot
    be one. str.isdigit() is not enough: it accepts digits like '²' that int() refuses, and any
    length, while SQLite refuses integers past 64 bits (once a 500 for a 20,000-digit id)."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_INT64 else None


def clamp_ms(ms: int) -> int:
    """A stored instant as one `datetime` can show: values outside the calendar are pinned to
    its first or last millisecond, so one poisoned row cannot make a page or a list a 500."""
    return min(max(int(ms), _CALENDAR_MIN_MS), MAX_TIME_MS)


def to_datetime(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=clamp_ms(ms))


def to_iso(ms: int | None) -> str | None:
    """The one way a stored time is formatted (see clamp_ms)."""
    if ms is None:
        return None
    return to_datetime(ms).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def from_datetime(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    # timedelta arithmetic, not timestamp(): exact to the millisecond and defined for every
    # datetime, even one whose UTC time falls outside the calendar (year 0).
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return delta // dt.timedelta(milliseconds=1)


def instant_error(value: dt.datetime | None, name: str) -> str | None:
    """Why an instant sent by a client cannot be stored, or None when it can."""
    if value is None:
        return None
    ms = from_datetime(value)
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        return f"{name} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z, not {value.isoformat()}"
    return None
