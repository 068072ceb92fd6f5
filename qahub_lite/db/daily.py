"""Storage of the daily figures that outlive raw results: a branch's days (`daily_stats`, the
project trends) and each test's days (`test_daily`, rolled up by the retention sweep, with
`test_daily_days` saying which project days are done). Days are given as their UTC start in
epoch milliseconds; a branch is '' for runs sent without one (the tables' key cannot hold NULL).
"""

from __future__ import annotations

import sqlite3

from .tuples import fetch_tuples as _tuples

DAY_MS = 86_400_000


# --- a branch's days (daily_stats) --------------------------------------------------------

def day_of_run(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    """project_id, branch, created_at of a run."""
    return conn.execute("SELECT project_id, branch, created_at FROM runs WHERE id = ?", (run_id,)).fetchone()


# total(), not sum(): SQLite's sum() of integers raises "integer overflow" past 64 bits, which
# failed the whole writer operation (and the run's webhooks with it). total() adds in floating
# point and never fails; core/trends.py pins the sums back into 64 bits.
def branch_day_counts(conn: sqlite3.Connection, project_id: str, branch: str, day: int) -> tuple:
    """A tuple (runs, tests, passed, failed, broken, skipped, flaky) of the COMPLETED runs of a
    branch created on `day`; the sums are floats."""
    # `branch IS ?` and total(): postgresql.py spells them for PostgreSQL
    row = conn.execute(
        "SELECT count(*), total(total), total(passed), total(failed), total(broken), total(skipped), total(flaky) "
        "FROM runs WHERE project_id = ? AND branch IS ? AND status = 'COMPLETED' AND created_at >= ? "
        "AND created_at < ?",
        (project_id, branch or None, day, day + DAY_MS),
    ).fetchone()
    return tuple(row)


def branch_day_durations(conn: sqlite3.Connection, project_id: str, branch: str, day: int) -> list[int]:
    """Durations of the COMPLETED runs of a branch created on `day`, in no order."""
    # `branch IS ?` (NULL matches NULL): postgresql.py spells it IS NOT DISTINCT FROM
    rows = _tuples(
        conn,
        "SELECT duration_ms FROM runs WHERE project_id = ? AND branch IS ? AND status = 'COMPLETED' "
        "AND created_at >= ? AND created_at < ? AND duration_ms IS NOT NULL",
        (project_id, branch or None, day, day + DAY_MS),
    )
    return [r[0] for r in rows]


def delete_branch_day(conn: sqlite3.Connection, project_id: str, branch: str, day: int) -> None:
    conn.execute("DELETE FROM daily_stats WHERE project_id = ? AND branch = ? AND day = ?", (project_id, branch, day))


def store_branch_day(conn: sqlite3.Connection, project_id: str, branch: str, day: int, figures: tuple, at: int) -> None:
    """Write a day's figures (runs, tests, passed, failed, broken, skipped, flaky, p50, p95),
    marked for grading, under a new revision."""
    conn.execute(
        """INSERT INTO daily_stats (project_id, branch, day, runs, tests, passed, failed, broken, skipped,
               flaky_results, duration_p50_ms, duration_p95_ms, grade_stale, revision, updated_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,1,?)
           ON CONFLICT (project_id, branch, day) DO UPDATE SET
               runs = excluded.runs, tests = excluded.tests, passed = excluded.passed, failed = excluded.failed,
               broken = excluded.broken, skipped = excluded.skipped, flaky_results = excluded.flaky_results,
               duration_p50_ms = excluded.duration_p50_ms, duration_p95_ms = excluded.duration_p95_ms,
               grade_stale = 1, revision = daily_stats.revision + 1, updated_at = excluded.updated_at""",
        (project_id, branch, day, *figures, at),
    )


def branch_days(conn: sqlite3.Connection, project_id: str, branch: str, from_day: int, to_day: int) -> list[sqlite3.Row]:
    """The stored days of a branch from `from_day` to `to_day` inclusive, oldest first."""
    return conn.execute(
        "SELECT day, runs, tests, passed, failed, broken, skipped, flaky_results, duration_p50_ms, duration_p95_ms, "
        "grade, score, flaky_tests, broken_tests, grade_stale FROM daily_stats "
        "WHERE project_id = ? AND branch = ? AND day >= ? AND day <= ? ORDER BY day",
        (project_id, branch, from_day, to_day),
    ).fetchall()


def stale_days(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    """project_id, branch, day, revision of rows waiting for their grade, oldest first."""
    return conn.execute(
        "SELECT project_id, branch, day, revision FROM daily_stats WHERE grade_stale = 1 ORDER BY updated_at LIMIT ?",
        (limit,),
    ).fetchall()


def store_day_grade(
    conn: sqlite3.Connection, project_id: str, branch: str, day: int, revision: int, figures: tuple
) -> bool:
    """Keep (score, grade, flaky tests, broken tests) of a day unless the row's revision moved on."""
    cursor = conn.execute(
        "UPDATE daily_stats SET score = ?, grade = ?, flaky_tests = ?, broken_tests = ?, grade_stale = 0 "
        "WHERE project_id = ? AND branch = ? AND day = ? AND revision = ?",
        (*figures, project_id, branch, day, revision),
    )
    return cursor.rowcount == 1


# --- each test's days (test_daily) --------------------------------------------------------

def result_moments(conn: sqlite3.Connection, result_ids: list[str]) -> list[sqlite3.Row]:
    """project_id, created_at of the runs the results belong to (distinct)."""
    return conn.execute(
        f"SELECT DISTINCT u.project_id, u.created_at FROM results r JOIN runs u ON u.id = r.run_id "
        f"WHERE r.id IN ({','.join('?' * len(result_ids))})", result_ids,
    ).fetchall()


def day_rolled_up(conn: sqlite3.Connection, project_id: str, day: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM test_daily_days WHERE project_id = ? AND day = ?", (project_id, day)
    ).fetchone() is not None


def rolled_up_days(conn: sqlite3.Connection, project_id: str, from_day: int, end: int) -> set[int]:
    """Days from `from_day` to before `end` already rolled up."""
    return {r["day"] for r in conn.execute(
        "SELECT day FROM test_daily_days WHERE project_id = ? AND day >= ? AND day < ?", (project_id, from_day, end)
    )}


def day_results(conn: sqlite3.Connection, project_id: str, from_ms: int, to_ms: int, test_id: int | None = None):
    """Tuples (run created_at, test_id, status, flaky, duration_ms) of the results of the
    project's runs created from `from_ms` to before `to_ms` (of one test, when given), walking
    the runs and looking results up by (run, test): the results table has no index led by
    the test, and this needs none. Plain tuples: a day holds a whole project's results."""
    # CROSS JOIN ... ON fixes SQLite's join order; postgresql.py makes it a plain JOIN
    sql = (
        "SELECT u.created_at, r.test_id, r.status, r.flaky, r.duration_ms FROM runs u CROSS JOIN results r "
        "ON r.run_id = u.id"
    )
    params: list = []
    if test_id is not None:
        sql += " AND r.test_id = ?"
        params.append(test_id)
    return _tuples(
        conn, sql + " WHERE u.project_id = ? AND u.created_at >= ? AND u.created_at < ?",
        (*params, project_id, from_ms, to_ms),
    )


def store_test_days(conn: sqlite3.Connection, project_id: str, day: int, figures: list[tuple], at: int) -> None:
    """Keep the rolled-up figures (test id, day, runs, passed, failed, skipped, flaky, median)
    of a project's day, and mark the day done."""
    # INSERT OR IGNORE: postgresql.py spells it ON CONFLICT DO NOTHING
    conn.executemany(
        "INSERT OR IGNORE INTO test_daily (project_id, test_id, day, runs, passed, failed, skipped, flaky, "
        "duration_p50_ms) VALUES (?,?,?,?,?,?,?,?,?)",
        [(project_id, *f) for f in figures],
    )
    conn.execute("INSERT INTO test_daily_days (project_id, day, rolled_up_at) VALUES (?,?,?)", (project_id, day, at))


def test_days(conn: sqlite3.Connection, project_id: str, test_id: int, from_day: int, end: int) -> list[sqlite3.Row]:
    """day, runs, passed, failed, skipped, flaky, duration_p50_ms of a test's rolled-up days."""
    return conn.execute(
        "SELECT day, runs, passed, failed, skipped, flaky, duration_p50_ms FROM test_daily "
        "WHERE test_id = ? AND project_id = ? AND day >= ? AND day < ?", (test_id, project_id, from_day, end)
    ).fetchall()
