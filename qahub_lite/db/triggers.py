"""Rows of triggered runs: the test cases a trigger selects, the run's jobs and executions as
it is created, what a rerun reads back, and the agents its queued jobs wait for."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .executions import CHUNK

_CASE = "SELECT c.id, c.code, c.title, c.automation FROM test_cases c"


def cases_by_refs(conn: sqlite3.Connection, project_id: str, refs: Sequence[str]) -> list[sqlite3.Row]:
    """Test cases of a project whose id or code is among `refs` (id, code, title, automation)."""
    rows: list[sqlite3.Row] = []
    for start in range(0, len(refs), CHUNK):
        chunk = list(refs[start : start + CHUNK])
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(
            f"{_CASE} WHERE c.project_id = ? AND (c.id IN ({marks}) OR c.code IN ({marks}))",
            (project_id, *chunk, *chunk),
        ).fetchall()
    return rows


def cases_of_suite_tree(conn: sqlite3.Connection, suite_id: str) -> list[sqlite3.Row]:
    """Test cases filed in the suite or in any suite below it, oldest first."""
    return conn.execute(
        f"""WITH RECURSIVE tree(id) AS (
                SELECT id FROM suites WHERE id = ?
                UNION SELECT s.id FROM suites s JOIN tree ON s.parent_id = tree.id)
            {_CASE} WHERE c.suite_id IN (SELECT id FROM tree) ORDER BY c.created_at, c.id""",
        (suite_id,),
    ).fetchall()


def cases_of_project(conn: sqlite3.Connection, project_id: str) -> list[sqlite3.Row]:
    return conn.execute(f"{_CASE} WHERE c.project_id = ? ORDER BY c.created_at, c.id", (project_id,)).fetchall()


def suite_of_tenant(conn: sqlite3.Connection, tenant_id: str, suite_id: str) -> sqlite3.Row | None:
    """(project_id, name) of a suite of the tenant."""
    return conn.execute(
        "SELECT s.project_id, s.name FROM suites s JOIN projects p ON p.id = s.project_id "
        "WHERE s.id = ? AND p.tenant_id = ?",
        (suite_id, tenant_id),
    ).fetchone()


def test_ids_of_run(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """test identity -> test id, for the tests with a result in the run."""
    rows = conn.execute(
        "SELECT t.identity, t.id FROM results r JOIN tests t ON t.id = r.test_id WHERE r.run_id = ?", (run_id,)
    )
    return {row["identity"]: row["id"] for row in rows}


def insert_queued_job(
    conn: sqlite3.Connection, job_id: str, tenant_id: str, project_id: str, run_id: str, framework: str,
    options: str, created_at: int,
) -> None:
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, project_id, run_id, framework, status, options, created_at) "
        "VALUES (?,?,?,?,?,'QUEUED',?,?)",
        (job_id, tenant_id, project_id, run_id, framework, options, created_at),
    )


def insert_executions(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """rows: (id, run_id, test_id, job_id, position, grep, file, created_at)."""
    conn.executemany(
        "INSERT INTO executions (id, run_id, test_id, job_id, position, grep, file, created_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        rows,
    )


def rerun_rows(conn: sqlite3.Connection, run_id: str) -> list[sqlite3.Row]:
    """A run's tests as a rerun reads them, in the order they were triggered (or stored):
    test_id, test_case_id, code, title, suite_path, automation, status, framework, file."""
    return conn.execute(
        """SELECT t.id AS test_id, t.test_case_id, c.code, t.title, t.suite_path, c.automation, r.status,
                  coalesce(r.framework, u.framework) AS framework, r.file
           FROM results r JOIN runs u ON u.id = r.run_id JOIN tests t ON t.id = r.test_id
           LEFT JOIN test_cases c ON c.id = t.test_case_id
           LEFT JOIN executions e ON e.run_id = r.run_id AND e.test_id = r.test_id
           WHERE r.run_id = ? ORDER BY coalesce(e.position, 0), r.id""",
        (run_id,),
    ).fetchall()


def run_extra(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The run's `extra` JSON text."""
    row = conn.execute("SELECT extra FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row["extra"] if row else None


def queued_job_frameworks(conn: sqlite3.Connection, tenant_id: str, run_id: str) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT framework FROM jobs WHERE run_id = ? AND tenant_id = ? AND status = 'QUEUED'",
        (run_id, tenant_id),
    )
    return {row["framework"] for row in rows}


def agent_frameworks_seen_since(conn: sqlite3.Connection, tenant_id: str, since_ms: int) -> list[str]:
    """The `frameworks` JSON lists of the tenant's agents seen at or after `since_ms`."""
    rows = conn.execute(
        "SELECT frameworks FROM agents WHERE tenant_id = ? AND last_seen_at >= ?", (tenant_id, since_ms)
    )
    return [row["frameworks"] for row in rows]
