"""Daily aggregates per project, branch and UTC day, kept apart from raw results.

A day's row is recomputed from that day's COMPLETED runs whenever one of them finishes, in
the transaction that finishes it. It is built from `runs` rows, which retention never deletes
(it sweeps results), and once written it stays: sweeping raw results never erases a trend.

The grade needs every test's recent results, too costly for the ingest path, so a refreshed
row is marked `grade_stale` and the `trend-grades` job grades it a moment later, as of the
day's end, while the raw results are still there. A row refreshed again meanwhile has a new
`revision`, and the job's late answer for the old one is dropped.

Figures: runs; tests = test results in them; passed, failed (FAILED), broken (BROKEN and
TIMEOUT), skipped, flaky results; pass rate = passed / (passed + failed + broken); duration
p50 and p95 of the runs' durations by the nearest-rank method; grade and score (grade.py).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3

import msgspec

from ..config import FlakyConfig, GradeConfig
from .clock import MAX_INT64, now_ms, to_datetime
from .errors import Invalid
from .grade import compute
from .window import Source, drive, source

DAY_MS = 86_400_000
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


# total(), not sum(): SQLite's sum() of integers raises "integer overflow" past 64 bits, which
# failed the whole writer operation (and the run's webhooks with it). total() adds in floating
# point and never fails; the sums are pinned back into 64 bits in _day_figures.
_COUNTS = (
    "SELECT count(*), total(total), total(passed), total(failed), total(broken), total(skipped), total(flaky) "
    "FROM runs "
    "WHERE project_id = ? AND branch IS ? AND status = 'COMPLETED' AND created_at >= ? AND created_at < ?"
)
_DURATIONS = (
    "SELECT duration_ms FROM runs WHERE project_id = ? AND branch IS ? AND status = 'COMPLETED' "
    "AND created_at >= ? AND created_at < ? AND duration_ms IS NOT NULL"
)


async def _day_figures(src: Source, project_id: str, branch: str, day: int) -> tuple | None:
    """(runs, tests, passed, failed, broken, skipped, flaky, p50, p95) of a day, None without runs."""
    args = (project_id, branch or None, day, day + DAY_MS)
    counts = (await src.fetch(_COUNTS, args))[0]
    if not counts[0]:
        return None
    durations = sorted(r[0] for r in await src.fetch(_DURATIONS, args))
    sums = tuple(int(min(value, MAX_INT64)) for value in counts[1:])
    return (counts[0], *sums, percentile(durations, 50), percentile(durations, 95))


def refresh_day(conn: sqlite3.Connection, project_id: str, branch: str | None, day: int) -> None:
    """Writer operation: recompute one day's row from its runs and mark it for grading."""
    branch = branch or ""
    figures = drive(_day_figures(source(conn), project_id, branch, day))
    if figures is None:
        conn.execute(
            "DELETE FROM daily_stats WHERE project_id = ? AND branch = ? AND day = ?", (project_id, branch, day)
        )
        return
    conn.execute(
        """INSERT INTO daily_stats (project_id, branch, day, runs, tests, passed, failed, broken, skipped,
               flaky_results, duration_p50_ms, duration_p95_ms, grade_stale, revision, updated_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,1,?)
           ON CONFLICT (project_id, branch, day) DO UPDATE SET
               runs = excluded.runs, tests = excluded.tests, passed = excluded.passed, failed = excluded.failed,
               broken = excluded.broken, skipped = excluded.skipped, flaky_results = excluded.flaky_results,
               duration_p50_ms = excluded.duration_p50_ms, duration_p95_ms = excluded.duration_p95_ms,
               grade_stale = 1, revision = daily_stats.revision + 1, updated_at = excluded.updated_at""",
        (project_id, branch, day, *figures, now_ms()),
    )


def refresh_day_of_run(conn: sqlite3.Connection, run_id: str) -> None:
    """Writer operation: refresh the day row a run belongs to (after its counts changed)."""
    row = conn.execute("SELECT project_id, branch, created_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is not None:
        refresh_day(conn, row[0], row[1], day_of(row[2]))


async def series(conn, project_id: str, branch: str | None, from_day: int, to_day: int) -> TrendSeries:
    """The stored days of a branch from `from_day` to `to_day` (both day starts, inclusive).
    Days waiting for their grade show the latest counts already (recomputed here from runs)."""
    if to_day < from_day:
        raise Invalid("`to` must not be before `from`")
    if (to_day - from_day) // DAY_MS + 1 > MAX_DAYS:
        raise Invalid(f"a trend spans at most {MAX_DAYS} days")
    src = source(conn)
    rows = await src.fetch(
        "SELECT day, runs, tests, passed, failed, broken, skipped, flaky_results, duration_p50_ms, duration_p95_ms, "
        "grade, score, flaky_tests, broken_tests, grade_stale FROM daily_stats "
        "WHERE project_id = ? AND branch = ? AND day >= ? AND day <= ? ORDER BY day",
        (project_id, branch or "", from_day, to_day),
    )
    points = []
    for r in rows:
        figures = r[1:10]
        if r[14]:
            fresh = await _day_figures(src, project_id, branch or "", r[0])
            if fresh is None:
                continue
            figures = fresh
        runs, tests, passed, failed, broken, skipped, flaky, p50, p95 = figures
        executed = passed + failed + broken
        points.append(DayPoint(
            day_text(r[0]), runs, tests, passed, failed, broken, skipped, flaky,
            round(passed / executed, 4) if executed else None, p50, p95, r[10], r[11], r[12], r[13], not r[14],
        ))
    return TrendSeries(project_id, branch, day_text(from_day), day_text(to_day), points)


# --- the `trend-grades` job ---------------------------------------------------------------


async def stale_days(conn, limit: int = 50) -> list[tuple[str, str, int, int]]:
    """(project id, branch, day, revision) of rows waiting for their grade, oldest first."""
    rows = await source(conn).fetch(
        "SELECT project_id, branch, day, revision FROM daily_stats WHERE grade_stale = 1 ORDER BY updated_at LIMIT ?",
        (limit,),
    )
    return [tuple(r) for r in rows]


async def grade_day(
    conn, project_id: str, branch: str, day: int, flaky_rules: FlakyConfig, grade_rules: GradeConfig
) -> tuple[float | None, str | None, int | None, int | None]:
    """(score, grade, flaky tests, broken tests) of a branch as of the end of `day`."""
    until = min(day + DAY_MS, now_ms() + 1)
    g = await compute(
        conn, project_id, branch or None, flaky_rules=flaky_rules, grade_rules=grade_rules, before_ms=until
    )
    if g.breakdown is None:
        return None, None, None, None
    return g.score, g.grade, g.breakdown.flaky_tests, g.breakdown.broken_tests


def store_grade(
    conn: sqlite3.Connection, project_id: str, branch: str, day: int, revision: int,
    figures: tuple[float | None, str | None, int | None, int | None],
) -> bool:
    """Writer operation: keep a day's grade unless the row changed since it was read."""
    cursor = conn.execute(
        "UPDATE daily_stats SET score = ?, grade = ?, flaky_tests = ?, broken_tests = ?, grade_stale = 0 "
        "WHERE project_id = ? AND branch = ? AND day = ? AND revision = ?",
        (*figures, project_id, branch, day, revision),
    )
    return cursor.rowcount == 1


async def grade_stale_days(db, flaky_rules: FlakyConfig, grade_rules: GradeConfig, limit: int = 50) -> int:
    """The job: grade up to `limit` day rows waiting for it; returns how many were graded.
    One batch per tick: under a stream of ingests the same row turns stale again and again,
    and grading it once a tick is enough."""
    async with db.read_async() as conn:
        batch = await stale_days(conn, limit)
    done = 0
    for project_id, branch, day, revision in batch:
        async with db.read_async() as conn:
            figures = await grade_day(conn, project_id, branch, day, flaky_rules, grade_rules)
        done += await db.write(store_grade, project_id, branch, day, revision, figures)
    return done
