"""Daily aggregates per project, branch and UTC day, kept apart from raw results.

A day's row is recomputed from that day's COMPLETED runs whenever one of them finishes, in
the transaction that finishes it. It is built from `runs` rows, which retention never deletes
(it sweeps results), and once written it stays: sweeping raw results never erases a trend.

The grade needs every test's recent results, too costly for the ingest path, so a refreshed
row is marked `grade_stale` and the `trend-grades` maintenance task grades it a moment later, as of the
day's end, while the raw results are still there. A row refreshed again meanwhile has a new
`revision`, and the job's late answer for the old one is dropped.

Figures: runs; tests = test results in them; passed, failed (FAILED), broken (BROKEN and
TIMEOUT), skipped, flaky results; pass rate = passed / (passed + failed + broken); duration
p50 and p95 of the runs' durations by the nearest-rank method; grade and score (grade.py).
"""

from __future__ import annotations

import datetime as dt
import math

import msgspec

from ..config import FlakyConfig, GradeConfig
from ..db import daily as daily_db
from .clock import MAX_INT64, now_ms, to_datetime
from .errors import Invalid
from .grade import compute

DAY_MS = daily_db.DAY_MS
MAX_DAYS = 366


class DayPoint(msgspec.Struct):
    day: str  # YYYY-MM-DD, UTC
    runs: int
    tests: int
    passed: int
    failed: int
    broken: int
    skipped: int
    flaky_results: int
    pass_rate: float | None
    duration_p50_ms: int | None
    duration_p95_ms: int | None
    grade: str | None
    score: float | None
    flaky_tests: int | None
    broken_tests: int | None
    graded: bool  # False until the job has graded the day's latest figures


class TrendSeries(msgspec.Struct):
    project_id: str
    branch: str | None
    from_day: str
    to_day: str
    data: list[DayPoint]  # days with completed runs only, oldest first


def day_of(ms: int) -> int:
    return ms - ms % DAY_MS


def parse_day(text: str, name: str) -> int:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{name} must be a date like 2024-05-31, not {text!r}") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def day_text(ms: int) -> str:
    return to_datetime(ms).date().isoformat()


def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def _day_figures(conn, project_id: str, branch: str, day: int) -> tuple | None:
    """(runs, tests, passed, failed, broken, skipped, flaky, p50, p95) of a day, None without runs."""
    counts = daily_db.branch_day_counts(conn, project_id, branch, day)
    if not counts[0]:
        return None
    durations = sorted(daily_db.branch_day_durations(conn, project_id, branch, day))
    # The sums add in floating point so that they never overflow (db/daily.py): pinned here.
    sums = tuple(int(min(value, MAX_INT64)) for value in counts[1:])
    return (counts[0], *sums, percentile(durations, 50), percentile(durations, 95))


def refresh_day(conn, project_id: str, branch: str | None, day: int) -> None:
    """Writer operation: recompute one day's row from its runs and mark it for grading."""
    branch = branch or ""
    figures = _day_figures(conn, project_id, branch, day)
    if figures is None:
        daily_db.delete_branch_day(conn, project_id, branch, day)
        return
    daily_db.store_branch_day(conn, project_id, branch, day, figures, now_ms())


def refresh_day_of_run(conn, run_id: str) -> None:
    """Writer operation: refresh the day row a run belongs to (after its counts changed)."""
    row = daily_db.day_of_run(conn, run_id)
    if row is not None:
        refresh_day(conn, row["project_id"], row["branch"], day_of(row["created_at"]))


def series(conn, project_id: str, branch: str | None, from_day: int, to_day: int) -> TrendSeries:
    """The stored days of a branch from `from_day` to `to_day` (both day starts, inclusive).
    Days waiting for their grade show the latest counts already (recomputed here from runs)."""
    if to_day < from_day:
        raise Invalid("`to` must not be before `from`")
    if (to_day - from_day) // DAY_MS + 1 > MAX_DAYS:
        raise Invalid(f"a trend spans at most {MAX_DAYS} days")
    points = []
    for r in daily_db.branch_days(conn, project_id, branch or "", from_day, to_day):
        figures = (r["runs"], r["tests"], r["passed"], r["failed"], r["broken"], r["skipped"], r["flaky_results"],
                   r["duration_p50_ms"], r["duration_p95_ms"])
        if r["grade_stale"]:
            fresh = _day_figures(conn, project_id, branch or "", r["day"])
            if fresh is None:
                continue
            figures = fresh
        runs, tests, passed, failed, broken, skipped, flaky, p50, p95 = figures
        judged = passed + failed + broken
        points.append(DayPoint(
            day_text(r["day"]), runs, tests, passed, failed, broken, skipped, flaky,
            round(passed / judged, 4) if judged else None, p50, p95, r["grade"], r["score"], r["flaky_tests"],
            r["broken_tests"], not r["grade_stale"],
        ))
    return TrendSeries(project_id, branch, day_text(from_day), day_text(to_day), points)


# --- the `trend-grades` maintenance task ------------------------------------------------


def stale_days(conn, limit: int = 50) -> list[tuple[str, str, int, int]]:
    """(project id, branch, day, revision) of rows waiting for their grade, oldest first."""
    return [(r["project_id"], r["branch"], r["day"], r["revision"]) for r in daily_db.stale_days(conn, limit)]


def grade_day(
    conn, project_id: str, branch: str, day: int, flaky_rules: FlakyConfig, grade_rules: GradeConfig
) -> tuple[float | None, str | None, int | None, int | None]:
    """(score, grade, flaky tests, broken tests) of a branch as of the end of `day`."""
    until = min(day + DAY_MS, now_ms() + 1)
    g = compute(
        conn, project_id, branch or None, flaky_rules=flaky_rules, grade_rules=grade_rules, before_ms=until
    )
    if g.breakdown is None:
        return None, None, None, None
    return g.score, g.grade, g.breakdown.flaky_tests, g.breakdown.broken_tests


def store_grade(
    conn, project_id: str, branch: str, day: int, revision: int,
    figures: tuple[float | None, str | None, int | None, int | None],
) -> bool:
    """Writer operation: keep a day's grade unless the row changed since it was read."""
    return daily_db.store_day_grade(conn, project_id, branch, day, revision, figures)


async def grade_stale_days(db, flaky_rules: FlakyConfig, grade_rules: GradeConfig, limit: int = 50) -> int:
    """The task: grade up to `limit` day rows waiting for it; returns how many were graded.
    One batch per tick: under a stream of ingests the same row turns stale again and again,
    and grading it once a tick is enough."""
    batch = await db.read(stale_days, limit)
    done = 0
    for project_id, branch, day, revision in batch:
        figures = await db.read(grade_day, project_id, branch, day, flaky_rules, grade_rules)
        done += await db.write(store_grade, project_id, branch, day, revision, figures)
    return done
