"""Rows the execution dialects (Qualigate, QA.tech) read: who owns a resource, a run's results
test by test with their executions and a result's first video.

Batched lookups take lists of keys and query them in chunks of `CHUNK`, so that checking a
thousand test run ids is a few statements on one connection, not a thousand round trips.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

# Bound on the `?` of one IN list: well under SQLite's variable limit, on every version.
CHUNK = 500

_OWNER = {
    "test_case": "SELECT p.tenant_id, c.project_id, c.id FROM test_cases c JOIN projects p ON p.id = c.project_id "
    "WHERE c.id = ?",
    "suite": "SELECT p.tenant_id, s.project_id, s.id FROM suites s JOIN projects p ON p.id = s.project_id "
    "WHERE s.id = ?",
    "project": "SELECT tenant_id, id AS project_id, id FROM projects WHERE id = ?",
    "run": "SELECT tenant_id, project_id, id FROM runs WHERE id = ? OR short_id = ?",
    "execution": "SELECT u.tenant_id, u.project_id, e.id FROM executions e JOIN runs u ON u.id = e.run_id "
    "WHERE e.id = ?",
    "result": "SELECT u.tenant_id, u.project_id, CAST(r.id AS TEXT) AS id FROM results r "
    "JOIN runs u ON u.id = r.run_id WHERE r.id = ?",
}
KINDS = frozenset(_OWNER)


def _chunks(keys: Sequence) -> Iterable[Sequence]:
    for start in range(0, len(keys), CHUNK):
        yield keys[start : start + CHUNK]


def _marks(chunk: Sequence) -> str:
    return ",".join("?" * len(chunk))


def owner(conn: sqlite3.Connection, kind: str, key: object) -> sqlite3.Row | None:
    """(tenant_id, project_id, id) of one resource of `kind` (see KINDS), or None."""
    sql = _OWNER[kind]
    return conn.execute(sql, (key,) * sql.count("?")).fetchone()


def owners_of_results(conn: sqlite3.Connection, result_ids: Sequence[int]) -> list[sqlite3.Row]:
    """(key, tenant_id, project_id, id) for each existing result id, `key` being the id asked for."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(result_ids):
        rows += conn.execute(
            "SELECT r.id AS key, u.tenant_id, u.project_id, CAST(r.id AS TEXT) AS id FROM results r "
            f"JOIN runs u ON u.id = r.run_id WHERE r.id IN ({_marks(chunk)})", chunk,
        ).fetchall()
    return rows


def owners_of_executions(conn: sqlite3.Connection, execution_ids: Sequence[str]) -> list[sqlite3.Row]:
    """(key, tenant_id, project_id, id) for each existing execution id."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(execution_ids):
        rows += conn.execute(
            "SELECT e.id AS key, u.tenant_id, u.project_id, e.id FROM executions e JOIN runs u ON u.id = e.run_id "
            f"WHERE e.id IN ({_marks(chunk)})", chunk,
        ).fetchall()
    return rows


def run_of_execution(conn: sqlite3.Connection, execution_id: str) -> str | None:
    row = conn.execute("SELECT run_id FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return row["run_id"] if row else None


# One result as the execution dialects show it. `triggered` tells an executed test (its
# execution row exists) from an uploaded one.
_TEST_RUN_COLUMNS = (
    "coalesce(e.id, CAST(r.id AS TEXT)) AS id, r.run_id, t.test_case_id, c.code, t.title, c.description, "
    "r.test_id, r.status, r.executed_at AS started_at, r.updated_at, r.duration_ms, r.error_message, "
    "r.id AS result_id, e.id IS NOT NULL AS triggered"
)
_TEST_RUN_FROM = (
    "FROM results r JOIN tests t ON t.id = r.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id "
    "LEFT JOIN executions e ON e.run_id = r.run_id AND e.test_id = r.test_id"
)
_TEST_RUN = f"SELECT {_TEST_RUN_COLUMNS} {_TEST_RUN_FROM}"


def test_runs_by_result_ids(conn: sqlite3.Connection, result_ids: Sequence[int]) -> list[sqlite3.Row]:
    """Test run rows of those results, plus `key` (the result id asked for); unknown ids are absent."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(result_ids):
        rows += conn.execute(
            f"SELECT r.id AS key, {_TEST_RUN_COLUMNS} {_TEST_RUN_FROM} WHERE r.id IN ({_marks(chunk)})", chunk
        ).fetchall()
    return rows


def test_runs_by_execution_ids(conn: sqlite3.Connection, execution_ids: Sequence[str]) -> list[sqlite3.Row]:
    """Test run rows of those executions, plus `key` (the execution id asked for)."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(execution_ids):
        rows += conn.execute(
            f"SELECT e.id AS key, {_TEST_RUN_COLUMNS} {_TEST_RUN_FROM} WHERE e.id IN ({_marks(chunk)})", chunk
        ).fetchall()
    return rows


def test_runs_of_run(conn: sqlite3.Connection, run_id: str, statuses: Sequence[str] = ()) -> list[sqlite3.Row]:
    """A run's test run rows in the order they were triggered (or stored), optionally only `statuses`."""
    sql, params = f"{_TEST_RUN} WHERE r.run_id = ?", [run_id]
    if statuses:
        sql += f" AND r.status IN ({_marks(statuses)})"
        params += list(statuses)
    return conn.execute(sql + " ORDER BY coalesce(e.position, 0), r.id", params).fetchall()


def first_videos(conn: sqlite3.Connection, result_ids: Sequence[int]) -> dict[int, str]:
    """result id -> id of its oldest video attachment, for the results that have one."""
    videos: dict[int, str] = {}
    for chunk in _chunks(result_ids):
        for row in conn.execute(
            f"SELECT result_id, id FROM attachments WHERE result_id IN ({_marks(chunk)}) "
            "AND mime_type LIKE 'video/%' ORDER BY created_at DESC, id DESC",
            chunk,
        ):
            videos[row["result_id"]] = row["id"]  # ends on the oldest: the first recording wins
    return videos


def count_results_with_status(conn: sqlite3.Connection, run_id: str, status: str) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM results WHERE run_id = ? AND status = ?", (run_id, status)
    ).fetchone()["n"]

