"""Storage of tests and test health's reads: the interned `tests` rows with their quarantine and
its audit, the analysis window (runs of a branch, their results as compact codes), one test's
history and latest failure, and the recorded regression verdicts.

The window queries return plain tuples, not rows (said on each): an analysis reads tens of
thousands of results, and building a sqlite3.Row for each would cost more than the query. They
are shaped by the indexes: runs are walked newest first along `runs_project_branch`, and results
are looked up by `(run_id, test_id)`, the results table's only index (an index led by the test
made bulk inserts 6x slower, DESIGN.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .engine import json_list_holds
from .tuples import fetch_tuples as _tuples

_CHUNK = 500


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def project_default_branch(conn: sqlite3.Connection, project_id: str) -> tuple[str | None] | None:
    """(default branch,) of a project; None when there is no such project."""
    row = conn.execute("SELECT default_branch FROM projects WHERE id = ?", (project_id,)).fetchone()
    return (row["default_branch"],) if row is not None else None


# --- the analysis window -----------------------------------------------------------------

# The order of these columns is core/window.py's WindowRun.
RUN_COLUMNS = "id, short_id, commit_sha, created_at, total, passed, failed, broken, skipped, flaky, duration_ms"


def completed_runs(
    conn: sqlite3.Connection, project_id: str, branch: str | None, limit: int, before_ms: int | None = None
) -> list[tuple]:
    """Tuples of RUN_COLUMNS: the latest `limit` COMPLETED runs of a branch (None: runs sent
    without one), newest first, created before `before_ms` when given."""
    # `branch IS ?` (NULL matches NULL): postgresql.py spells it IS NOT DISTINCT FROM
    sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE project_id = ? AND branch IS ? AND status = 'COMPLETED'"
    args: list[Any] = [project_id, branch]
    if before_ms is not None:
        sql += " AND created_at < ?"
        args.append(before_ms)
    return _tuples(conn, sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit))


def window_run(conn: sqlite3.Connection, run_id: str) -> tuple | None:
    """A tuple of RUN_COLUMNS of one run, or None."""
    rows = _tuples(conn, f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    return rows[0] if rows else None


# A final result, coded for compact per-test sequences (core/flaky.py keeps one byte per run).
ABSENT, PASS, FAIL, RETRIED_PASS = 0, 1, 2, 3
_CODE = "CASE WHEN r.status = 'PASSED' THEN CASE WHEN r.flaky != 0 THEN 3 ELSE 1 END ELSE 2 END"


def outcome_codes(
    conn: sqlite3.Connection, run_ids: Sequence[str], failing: Iterable[str], test_ids: Sequence[int] | None = None
) -> list[tuple[int, int, int]]:
    """Tuples (index in `run_ids`, test id, code) of every PASSED or `failing` result of those
    runs (of `test_ids` only, when given), in no particular order.

    One query: the runs come in as a VALUES table that drives the join, so each run's results
    are one range of the (run_id, test_id) index, and only integers cross into Python."""
    if not run_ids:
        return []
    # CROSS JOIN ... ON fixes SQLite's join order; postgresql.py makes it a plain JOIN
    final = sorted({"PASSED", *failing})
    values = ",".join("(?, ?)" for _ in run_ids)
    pairs = [x for index, run_id in enumerate(run_ids) for x in (run_id, index)]
    pairs += final
    sql = (
        f"WITH w(id, pos) AS (VALUES {values}) SELECT w.pos, r.test_id, {_CODE} "
        f"FROM w CROSS JOIN results r ON r.run_id = w.id WHERE r.status IN ({_marks(final)})"
    )
    if test_ids is None:
        return _tuples(conn, sql, pairs)
    out: list[tuple[int, int, int]] = []
    for start in range(0, len(test_ids), _CHUNK):
        tests = list(test_ids[start : start + _CHUNK])
        out += _tuples(conn, f"{sql} AND r.test_id IN ({_marks(tests)})", (*pairs, *tests))
    return out


def test_history(
    conn: sqlite3.Connection, project_id: str, test_id: int, limit: int, *, any_branch: bool, branch: str | None
) -> list[tuple]:
    """Tuples (run id, short id, run name, branch, commit, status, flaky, attempts, duration,
    error message, moment) of one test's last `limit` results, newest first, of one branch
    unless `any_branch`.

    Walks the project's runs newest first and looks each up by (run_id, test_id): the results
    table has no index led by the test (DESIGN.md), and this needs none."""
    # CROSS JOIN ... ON and `IS ?` below: postgresql.py spells them for PostgreSQL. CROSS JOIN keeps runs the outer loop,
    # walked along their (project, [branch,] created_at) index.
    sql = (
        "SELECT u.id, u.short_id, u.name, u.branch, u.commit_sha, r.status, r.flaky, r.attempts, r.duration_ms, "
        "r.error_message, coalesce(r.executed_at, u.created_at) FROM runs u CROSS JOIN results r "
        "ON r.run_id = u.id AND r.test_id = ? WHERE u.project_id = ?"
    )
    params: list = [test_id, project_id]
    if not any_branch:
        sql += " AND u.branch IS ?"
        params.append(branch)
    return _tuples(conn, sql + " ORDER BY u.created_at DESC LIMIT ?", (*params, limit))


def result_of(conn: sqlite3.Connection, run_id: str, test_id: int) -> sqlite3.Row | None:
    """status, error_message, at (executed, else created) of a test's result in a run."""
    return conn.execute(
        "SELECT status, error_message, coalesce(executed_at, created_at) AS at FROM results "
        "WHERE run_id = ? AND test_id = ?", (run_id, test_id),
    ).fetchone()


def failing_or_retried_tests(conn: sqlite3.Connection, run_id: str, failing: Sequence[str]) -> list[int]:
    """Tests of a run whose result is `failing` or passed on retry."""
    rows = conn.execute(
        f"SELECT test_id FROM results WHERE run_id = ? AND (status IN ({_marks(failing)}) OR flaky = 1)",
        (run_id, *failing),
    )
    return [r["test_id"] for r in rows]


def passed_after_failing(conn: sqlite3.Connection, run_id: str, other_run: str, failing: Sequence[str]) -> list[int]:
    """Tests that passed in `run_id` and were `failing` in `other_run`."""
    rows = conn.execute(
        "SELECT c.test_id FROM results c JOIN results p ON p.run_id = ? AND p.test_id = c.test_id "
        f"AND p.status IN ({_marks(failing)}) WHERE c.run_id = ? AND c.status = 'PASSED'",
        (other_run, *failing, run_id),
    )
    return [r["test_id"] for r in rows]


def new_failures(
    conn: sqlite3.Connection, run_id: str, baseline_id: str, failing: Sequence[str]
) -> list[tuple[int, str, str | None]]:
    """Tuples (test id, status, error) of the tests `failing` in `run_id` that did not fail in
    `baseline_id` (passed, skipped or absent there), in result order. Errors are cut to 501
    characters here: a run's thousands of new failures with 1 MB messages would otherwise be
    read whole, into memory at once."""
    marks = _marks(failing)
    return _tuples(
        conn,
        f"SELECT c.test_id, c.status, substr(c.error_message, 1, 501) FROM results c "
        f"LEFT JOIN results b ON b.run_id = ? AND b.test_id = c.test_id "
        f"WHERE c.run_id = ? AND c.status IN ({marks}) AND (b.id IS NULL OR b.status NOT IN ({marks})) "
        f"ORDER BY c.id",
        (baseline_id, run_id, *failing, *failing),
    )


def recorded_regression(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    """baseline_run_id, computed_at of a run's verdict recorded at its end."""
    return conn.execute(
        "SELECT baseline_run_id, computed_at FROM run_regressions WHERE run_id = ?", (run_id,)
    ).fetchone()


def record_regression(
    conn: sqlite3.Connection, run_id: str, baseline_id: str | None, new_failures: int, at: int
) -> None:
    conn.execute(
        "INSERT INTO run_regressions (run_id, baseline_run_id, new_failures, computed_at) VALUES (?,?,?,?) "
        "ON CONFLICT (run_id) DO UPDATE SET baseline_run_id = excluded.baseline_run_id, "
        "new_failures = excluded.new_failures, computed_at = excluded.computed_at",
        (run_id, baseline_id, new_failures, at),
    )


# --- tests and their quarantine ----------------------------------------------------------

_TEST = (
    "SELECT t.id, t.title, t.suite_path, t.test_case_id, c.code AS test_case_code, t.quarantined, "
    "t.quarantined_at, t.quarantine_reason, t.quarantine_ticket, t.quarantine_expires_at, t.quarantined_by, t.tags "
    "FROM tests t LEFT JOIN test_cases c ON c.id = t.test_case_id"
)


def test_by_id(conn: sqlite3.Connection, project_id: str, test_id: int) -> sqlite3.Row | None:
    return conn.execute(f"{_TEST} WHERE t.id = ? AND t.project_id = ?", (test_id, project_id)).fetchone()


def test_by_case(conn: sqlite3.Connection, project_id: str, ref: str) -> sqlite3.Row | None:
    """The test linked to the project's test case of code `ref`, else of id `ref`."""
    return conn.execute(
        f"{_TEST} WHERE t.project_id = ? AND t.identity = 'c:' || "
        "coalesce((SELECT id FROM test_cases WHERE project_id = ? AND code = ?), ?)",
        (project_id, project_id, ref, ref),
    ).fetchone()


def tests_by_ids(conn: sqlite3.Connection, project_id: str, test_ids: Iterable[int]) -> list[sqlite3.Row]:
    ids = list(test_ids)
    out: list[sqlite3.Row] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        out += conn.execute(f"{_TEST} WHERE t.project_id = ? AND t.id IN ({_marks(chunk)})", (project_id, *chunk))
    return out


def quarantined_tests(conn: sqlite3.Connection, project_id: str, by: str | None = None) -> list[int]:
    """Ids of the project's quarantined tests (set by `by` only, when given)."""
    sql, params = "SELECT id FROM tests WHERE project_id = ? AND quarantined = 1", [project_id]
    if by is not None:
        sql += " AND quarantined_by = ?"
        params.append(by)
    return [r["id"] for r in conn.execute(sql, params)]


def quarantined_among(conn: sqlite3.Connection, project_id: str, test_ids: Sequence[int]) -> list[int]:
    out: list[int] = []
    for start in range(0, len(test_ids), _CHUNK):
        chunk = list(test_ids[start : start + _CHUNK])
        out += [r["id"] for r in conn.execute(
            f"SELECT id FROM tests WHERE project_id = ? AND quarantined = 1 AND id IN ({_marks(chunk)})",
            (project_id, *chunk),
        )]
    return out


def tests_tagged(conn: sqlite3.Connection, project_id: str, tag: str) -> set[int]:
    """Tests whose latest tagged result carried `tag` (migration 0005)."""
    return {r["id"] for r in conn.execute(
        "SELECT id FROM tests WHERE project_id = ? AND tags IS NOT NULL "
        f"AND {json_list_holds(conn, 'tests.tags')}", (project_id, tag),
    )}


def tests_matching(conn: sqlite3.Connection, project_id: str, words: list[str]) -> set[int]:
    """Tests whose name, suite path, test case code or identity hold every one of `words`
    (lower case; LIKE wildcards in them are taken literally)."""
    sql = "SELECT t.id FROM tests t LEFT JOIN test_cases c ON c.id = t.test_case_id WHERE t.project_id = ?"
    params: list = [project_id]
    for word in words:
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += (" AND (lower(t.title) LIKE ? ESCAPE '\\' OR lower(t.suite_path) LIKE ? ESCAPE '\\' "
                "OR lower(coalesce(c.code, '')) LIKE ? ESCAPE '\\' OR lower(t.identity) LIKE ? ESCAPE '\\')")
        params += [like] * 4
    return {r["id"] for r in conn.execute(sql, params)}


def quarantine_test(
    conn: sqlite3.Connection, test_id: int, at: int, reason: str | None, ticket: str | None, expires_at: int | None,
    actor: str,
) -> None:
    """Set a quarantine; the first time stays, a None reason or ticket keeps the one set."""
    conn.execute(
        "UPDATE tests SET quarantined = 1, quarantined_at = coalesce(quarantined_at, ?), "
        "quarantine_reason = coalesce(?, quarantine_reason), quarantine_ticket = coalesce(?, quarantine_ticket), "
        "quarantine_expires_at = ?, quarantined_by = ? WHERE id = ?",
        (at, reason, ticket, expires_at, actor, test_id),
    )


def lift_quarantine(conn: sqlite3.Connection, test_id: int) -> None:
    conn.execute(
        "UPDATE tests SET quarantined = 0, quarantined_at = NULL, quarantine_reason = NULL, "
        "quarantine_ticket = NULL, quarantine_expires_at = NULL, quarantined_by = NULL WHERE id = ?",
        (test_id,),
    )


def is_quarantined(conn: sqlite3.Connection, test_id: int) -> bool | None:
    """None when the test does not exist."""
    row = conn.execute("SELECT quarantined FROM tests WHERE id = ?", (test_id,)).fetchone()
    return bool(row["quarantined"]) if row is not None else None


def expired_quarantines(conn: sqlite3.Connection, now: int) -> list[sqlite3.Row]:
    """project_id, id of every test whose quarantine expired by `now`."""
    return conn.execute(
        "SELECT project_id, id FROM tests WHERE quarantined = 1 AND quarantine_expires_at <= ?", (now,)
    ).fetchall()


def add_quarantine_audit(
    conn: sqlite3.Connection, project_id: str, test_id: int, action: str, actor: str, reason: str | None,
    ticket: str | None, at: int,
) -> None:
    conn.execute(
        "INSERT INTO quarantine_audit (project_id, test_id, action, actor, reason, ticket, at) VALUES (?,?,?,?,?,?,?)",
        (project_id, test_id, action, actor, reason, ticket, at),
    )


def quarantine_audit(conn: sqlite3.Connection, project_id: str, limit: int) -> list[sqlite3.Row]:
    """test_id, title, action, actor, reason, ticket, at: newest first."""
    return conn.execute(
        "SELECT a.test_id, t.title, a.action, a.actor, a.reason, a.ticket, a.at FROM quarantine_audit a "
        "JOIN tests t ON t.id = a.test_id WHERE a.project_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?",
        (project_id, limit),
    ).fetchall()
