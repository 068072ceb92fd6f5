"""The number and date types every dialect's Structs use at the edge (issue 12, "poison").

A value that passes validation is stored, and later read, summed and subtracted: a duration
of 1e18 ms once made a run start before year 1, and every list of the tenant a 500. So every
number and instant a client sends is bounded here by what storage and the arithmetic after it
can hold (core/clock.py says why each bound is what it is), and the bounds are in the OpenAPI
document, where a client's author reads them. msgspec cannot put a range on a `datetime`, so
instants carry the range in their description and are checked by `check_instants`, called
from the Structs' `__post_init__` (msgspec reports its ValueError as a validation error that
names the field, the same 400 or 207 entry as any other).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from ..core.clock import MAX_COUNT, MAX_DURATION_MS, MAX_INT64, instant_error

DurationMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_DURATION_MS, description="Milliseconds, at most one year.")]
# JavaScript reporters send fractions of a millisecond; stored rounded.
DurationMsFloat = Annotated[
    float, msgspec.Meta(ge=0, le=MAX_DURATION_MS, description="Milliseconds, at most one year.")
]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT, description="At most 1,000,000,000.")]
# A line number in a source file, a PR number: ordinary integers, far inside 64 bits.
SmallNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
# A stored 64-bit integer (a threshold compared with counts): never past what SQLite holds.
Int64 = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
Instant = Annotated[dt.datetime, msgspec.Meta(
    description="ISO 8601 date-time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
    "(without an offset: UTC).",
    extra_json_schema={"format": "date-time"},
)]


def check_instants(struct: msgspec.Struct, *names: str) -> None:
    """For `__post_init__`: refuse an instant outside what is stored and shown (core/clock.py)."""
    for name in names:
        error = instant_error(getattr(struct, name), name)
        if error:
            raise ValueError(error)
