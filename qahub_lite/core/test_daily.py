"""One test's daily figures (results, passed, failed, skipped, flaky, median duration), kept
after retention has swept the raw results they came from.

Retention deletes unlinked results after `retention.unlinked_days` (seed 000's 30 days): for a
team whose tests carry no library code that is every result, and without this a test's long
history would vanish with them. So the sweep, before it deletes the first result of a
project's day, rolls that whole day up (every test, linked or not) into `test_daily`, in the
same transaction; `test_daily_days` records that the day is done, so it is read only once.
A day counts a run's results on the UTC day the run was created (as the project trends do).

Reading a test's days merges the two: rolled-up days from `test_daily`, the others computed
from the raw results still there (walking the project's runs, looked up by (run, test): the
results table has no index led by the test, and this needs none).

A result added to a run after its day was rolled up is not counted in the rolled-up figures:
sweeps reach days older than the retention, when runs no longer change.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from ..db import daily as daily_db
from .clock import now_ms
from .errors import Invalid
from .status import FAILURE_STATUSES
from .trends import DAY_MS, MAX_DAYS, day_of, day_text, percentile


class TestDay(msgspec.Struct):
    day: str  # YYYY-MM-DD, UTC
    runs: int
    passed: int
    failed: int  # FAILED, BROKEN and TIMEOUT
    skipped: int
    flaky: int
    duration_p50_ms: int | None
    rolled_up: bool  # True: from the roll-up (the raw results may be gone); False: from raw results


class TestDays(msgspec.Struct):
    test_id: int
    from_day: str
    to_day: str
    data: list[TestDay]  # days with results, newest first


def _figures(rows) -> dict[tuple[int, int], tuple]:
    """(test id, day) -> (runs, passed, failed, skipped, flaky, median) of raw result rows
    (created_at, test_id, status, flaky, duration_ms)."""
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for created, test_id, status, flaky, duration_ms in rows:
        groups[(test_id, day_of(created))].append((status, flaky, duration_ms))
    out = {}
    for key, items in groups.items():
        durations = sorted(d for _, _, d in items if d is not None)
        out[key] = (
            len(items), sum(s == "PASSED" for s, _, _ in items), sum(s in FAILURE_STATUSES for s, _, _ in items),
            sum(s == "SKIPPED" for s, _, _ in items), sum(bool(f) for _, f, _ in items), percentile(durations, 50),
        )
    return out


def roll_up_before_delete(conn, result_ids: list[str]) -> int:
    """Writer operation, called by the sweep before it deletes `result_ids`: roll up every
    project-day those results belong to that is not rolled up yet. Returns the days rolled up."""
    days = {(r["project_id"], day_of(r["created_at"])) for r in daily_db.result_moments(conn, result_ids)}
    done = 0
    for project_id, day in sorted(days):
        if daily_db.day_rolled_up(conn, project_id, day):
            continue
        figures = _figures(daily_db.day_results(conn, project_id, day, day + DAY_MS))
        daily_db.store_test_days(conn, project_id, day, [(t, d, *f) for (t, d), f in figures.items()], now_ms())
        done += 1
    return done


def test_days(conn, project_id: str, test_id: int, from_day: int, to_day: int) -> TestDays:
    """The test's days from `from_day` to `to_day` (day starts, inclusive), newest first."""
    if to_day < from_day:
        raise Invalid("`to` must not be before `from`")
    if (to_day - from_day) // DAY_MS + 1 > MAX_DAYS:
        raise Invalid(f"a test's daily history spans at most {MAX_DAYS} days")
    end = to_day + DAY_MS
    rolled_days = daily_db.rolled_up_days(conn, project_id, from_day, end)
    days: dict[int, TestDay] = {}
    for r in daily_db.test_days(conn, project_id, test_id, from_day, end):
        days[r["day"]] = TestDay(
            day_text(r["day"]), r["runs"], r["passed"], r["failed"], r["skipped"], r["flaky"], r["duration_p50_ms"],
            rolled_up=True,
        )
    raw = daily_db.day_results(conn, project_id, from_day, end, test_id)
    for (_, day), f in _figures(r for r in raw if day_of(r[0]) not in rolled_days).items():
        days[day] = TestDay(day_text(day), *f, rolled_up=False)
    return TestDays(test_id, day_text(from_day), day_text(to_day), [days[d] for d in sorted(days, reverse=True)])
