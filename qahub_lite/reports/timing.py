"""When a report's tests started and how long they took, where the report says so.

`qahub upload` gives the run these (`started_at`, `duration_ms`) instead of the time of the
upload. Read apart from the parsers, from the report's header fields only: Playwright JSON
`stats.startTime`/`stats.duration`, Jest/Vitest JSON `startTime` and the last file's
`endTime`, pytest-json-report `created`/`duration`, JUnit's first `timestamp` and the
`<testsuites time>` (or the first suite's). A report without them gives (None, None).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec

_TIMESTAMP = re.compile(rb'<testsuite\b[^>]*\btimestamp="([^"]+)"')
_TOTAL_TIME = re.compile(rb'<testsuites\b[^>]*\btime="([0-9.]+)"')
_SUITE_TIME = re.compile(rb'<testsuite\b[^>]*\btime="([0-9.]+)"')
# Seconds or milliseconds since 1970 that a test run can plausibly have (2000 to 2200).
_LOW, _HIGH = 946_684_800_000, 7_258_118_400_000


class _Playwright(msgspec.Struct):
    stats: dict = {}


class _Jest(msgspec.Struct):
    startTime: float | None = None
    testResults: list[dict] = []


class _PytestJson(msgspec.Struct):
    created: float | None = None
    duration: float | None = None


def report_timing(path: str | Path, fmt: str) -> tuple[int | None, int | None]:
    """(started_at epoch ms, duration ms) of the report at `path`, each None when unknown."""
    try:
        if fmt == "playwright-json":
            stats = msgspec.json.decode(Path(path).read_bytes(), type=_Playwright).stats
            return _iso_ms(stats.get("startTime")), _ms(stats.get("duration"))
        if fmt == "jest-json":
            report = msgspec.json.decode(Path(path).read_bytes(), type=_Jest)
            ends = [r.get("endTime") for r in report.testResults if isinstance(r.get("endTime"), (int, float))]
            start = _ms(report.startTime)
            return _plausible(start), (_ms(max(ends) - start) if ends and start is not None else None)
        if fmt == "pytest-json":
            report = msgspec.json.decode(Path(path).read_bytes(), type=_PytestJson)
            created = _ms(report.created * 1000) if report.created is not None else None
            return _plausible(created), _ms(report.duration * 1000) if report.duration is not None else None
        if fmt == "junit":
            with open(path, "rb") as handle:
                head = handle.read(8192)
            stamp = _TIMESTAMP.search(head)
            took = _TOTAL_TIME.search(head) or _SUITE_TIME.search(head)
            start = _iso_ms(stamp.group(1).decode("ascii", "replace")) if stamp else None
            return start, _ms(float(took.group(1)) * 1000) if took else None
    except (OSError, ValueError, msgspec.DecodeError):
        pass
    return None, None


def _ms(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    if value > _HIGH:  # a duration longer than 200 years is a broken field, not a run
        return None
    return int(round(value))


def _plausible(epoch_ms: int | None) -> int | None:
    return epoch_ms if epoch_ms is not None and _LOW <= epoch_ms <= _HIGH else None


def _iso_ms(text) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:  # JUnit writers that leave the zone out write local time
        stamp = stamp.astimezone()
    return _plausible(int(stamp.timestamp() * 1000))
