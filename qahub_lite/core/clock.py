"""Identifiers and time, in the forms the database stores (STRICT tables, epoch milliseconds)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

# Crockford-style alphabet without look-alikes, for short ids people read and type.
_SHORT_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    return str(uuid.uuid4())


def new_short_id(length: int = 8) -> str:
    return "".join(secrets.choice(_SHORT_ALPHABET) for _ in range(length))


def to_iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def from_datetime(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)
