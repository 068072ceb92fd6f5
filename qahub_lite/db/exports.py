"""The reads of exports: runs in pages, then each run's results in keyset chunks along the
results table's `(run_id, test_id)` key, `test_id` as the cursor (ordering by `results.id`
would sort the whole run once per chunk). Every function returns plain tuples (tens of
thousands of rows a second cross into Python), in the column order its docstring gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from .results import NAME_COLUMNS
from .tuples import fetch_tuples

# The identity of a test as stored: the library code, the display name and the file and line.
IDENTITY_COLUMNS = f"c.code, {NAME_COLUMNS}, r.file, r.line"
_ROW_SQL = (
    f"SELECT r.test_id, {IDENTITY_COLUMNS}, r.id, r.status, r.flaky, r.attempts, r.duration_ms, r.error_message, "
    "r.framework, r.executed_at{extra} FROM results r JOIN tests t ON t.id = r.test_id "
    "LEFT JOIN test_cases c ON c.id = t.test_case_id WHERE r.run_id = ? AND r.test_id > ? ORDER BY r.test_id LIMIT ?"
)
_ROWS_SQL = _ROW_SQL.format(extra="")
_DETAIL_SQL = _ROW_SQL.format(extra=", r.error_stack, r.stdout, r.stderr, r.attempt_log")
# The unbounded text of the rows the two above would read next, without handing it to Python.
_SIZES_SQL = "SELECT test_id, {size} FROM results WHERE run_id = ? AND test_id > ? ORDER BY test_id LIMIT ?"
_ROW_SIZES_SQL = _SIZES_SQL.format(size="coalesce(length(error_message), 0)")
_DETAIL_SIZES_SQL = _SIZES_SQL.format(size=" + ".join(
    f"coalesce(length({c}), 0)" for c in ("error_message", "error_stack", "stdout", "stderr", "attempt_log")))
_RUN_COLUMNS = "id, short_id, name, branch, commit_sha, pr_number, environment, created_at"


def _run_where(project_id: str, filters: dict) -> tuple[str, list]:
    """`filters` maps run_id, branch, since, until to a value or None."""
    where, params = ["project_id = ?"], [project_id]
    for clause, key in (("id = ?", "run_id"), ("branch = ?", "branch"), ("created_at >= ?", "since"),
                        ("created_at < ?", "until")):
        if filters.get(key) is not None:
            where.append(clause)
            params.append(filters[key])
    return " AND ".join(where), params


def run_page(conn, project_id: str, filters: dict, after: tuple[int, str], limit: int) -> list[tuple]:
    """(id, short_id, name, branch, commit_sha, pr_number, environment, created_at) of the
    matching runs after `after` (created_at, id), oldest first."""
    where, params = _run_where(project_id, filters)
    return fetch_tuples(
        conn, f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} AND (created_at, id) > (?, ?) "
        "ORDER BY created_at, id LIMIT ?", (*params, *after, limit),
    )


def run_sizes(conn, run_ids: Sequence[str]) -> list[tuple]:
    """(run_id, results, characters of error messages) of each run that has results."""
    return fetch_tuples(
        conn, f"SELECT run_id, count(*), coalesce(sum(length(error_message)), 0) FROM results "
        f"WHERE run_id IN ({','.join('?' * len(run_ids))}) GROUP BY run_id", tuple(run_ids),
    )


def row_sizes(conn, run_id: str, after: int, limit: int, *, details: bool) -> list[tuple]:
    """(test_id, characters of unbounded text) of the next rows result_rows would read."""
    return fetch_tuples(conn, _DETAIL_SIZES_SQL if details else _ROW_SIZES_SQL, (run_id, after, limit))


def result_rows(conn, run_id: str, after: int, limit: int, *, details: bool) -> list[tuple]:
    """The run's results after test `after`, by test: (test_id, code, suite_path, title with
    variant, file, line, result id, status, flaky, attempts, duration_ms, error_message,
    framework, executed_at), and with `details` also (error_stack, stdout, stderr, attempt_log)."""
    return fetch_tuples(conn, _DETAIL_SQL if details else _ROWS_SQL, (run_id, after, limit))


def count_results(conn, project_id: str, filters: dict) -> int:
    """How many results the matching runs have, counted along the results' run index."""
    where, params = _run_where(project_id, filters)
    return fetch_tuples(conn, f"SELECT count(*) FROM results WHERE run_id IN (SELECT id FROM runs WHERE {where})",
                        tuple(params))[0][0]


def status_totals(conn, run_id: str) -> list[tuple]:
    """(status, flaky, results, summed duration_ms) of a run's results."""
    return fetch_tuples(
        conn, "SELECT status, flaky, count(*), coalesce(sum(duration_ms), 0) FROM results WHERE run_id = ? "
        "GROUP BY status, flaky", (run_id,),
    )


def suite_count(conn, run_id: str) -> int:
    """How many suite paths a run's results have."""
    return fetch_tuples(conn, "SELECT count(DISTINCT t.suite_path) FROM results r JOIN tests t ON t.id = r.test_id "
                        "WHERE r.run_id = ?", (run_id,))[0][0]
