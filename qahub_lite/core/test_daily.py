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

import sqlite3
from collections import defaultdict

import msgspec

from .clock import now_ms
from .errors import Invalid
from .status import FAILURE_STATUSES
from .trends import DAY_MS, MAX_DAYS, day_of, day_text, percentile
from .window import source


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


_RESULTS_OF_DAYS = (
    "SELECT u.created_at, r.test_id, r.status, r.flaky, r.duration_ms FROM runs u CROSS JOIN results r "
    "ON r.run_id = u.id WHERE u.project_id = ? AND u.created_at >= ? AND u.created_at < ?"
)


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


def roll_up_before_delete(conn: sqlite3.Connection, result_ids: list[str]) -> int:
    """Writer operation, called by the sweep before it deletes `result_ids`: roll up every
    project-day those results belong to that is not rolled up yet. Returns the days rolled up."""
    marks = ",".join("?" * len(result_ids))
    days = {
        (project_id, day_of(created))
        for project_id, created in conn.execute(
            f"SELECT DISTINCT u.project_id, u.created_at FROM results r JOIN runs u ON u.id = r.run_id "
            f"WHERE r.id IN ({marks})", result_ids,
        )
    }
    done = 0
    for project_id, day in sorted(days):
        if conn.execute(
            "SELECT 1 FROM test_daily_days WHERE project_id = ? AND day = ?", (project_id, day)
        ).fetchone():
            continue
        figures = _figures(conn.execute(_RESULTS_OF_DAYS, (project_id, day, day + DAY_MS)))
        conn.executemany(
            "INSERT OR IGNORE INTO test_daily (project_id, test_id, day, runs, passed, failed, skipped, flaky, "
            "duration_p50_ms) VALUES (?,?,?,?,?,?,?,?,?)",
            [(project_id, test_id, d, *f) for (test_id, d), f in figures.items()],
        )
        conn.execute(
            "INSERT INTO test_daily_days (project_id, day, rolled_up_at) VALUES (?,?,?)", (project_id, day, now_ms())
        )
        done += 1
    return done


async def test_days(conn, project_id: str, test_id: int, from_day: int, to_day: int) -> TestDays:
    """The test's days from `from_day` to `to_day` (day starts, inclusive), newest first."""
    if to_day < from_day:
        raise Invalid("`to` must not be before `from`")
    if (to_day - from_day) // DAY_MS + 1 > MAX_DAYS:
        raise Invalid(f"a test's daily history spans at most {MAX_DAYS} days")
    src = source(conn)
    end = to_day + DAY_MS
    rolled_days = {r[0] for r in await src.fetch(
        "SELECT day FROM test_daily_days WHERE project_id = ? AND day >= ? AND day < ?", (project_id, from_day, end)
    )}
    days: dict[int, TestDay] = {}
    for r in await src.fetch(
        "SELECT day, runs, passed, failed, skipped, flaky, duration_p50_ms FROM test_daily "
        "WHERE test_id = ? AND project_id = ? AND day >= ? AND day < ?", (test_id, project_id, from_day, end)
    ):
        days[r[0]] = TestDay(day_text(r[0]), *r[1:], rolled_up=True)
    raw = await src.fetch(
        "SELECT u.created_at, r.test_id, r.status, r.flaky, r.duration_ms FROM runs u CROSS JOIN results r "
        "ON r.run_id = u.id AND r.test_id = ? WHERE u.project_id = ? AND u.created_at >= ? AND u.created_at < ?",
        (test_id, project_id, from_day, end),
    )
    for (_, day), f in _figures(r for r in raw if day_of(r[0]) not in rolled_days).items():
        days[day] = TestDay(day_text(day), *f, rolled_up=False)
    return TestDays(test_id, day_text(from_day), day_text(to_day), [days[d] for d in sorted(days, reverse=True)])
