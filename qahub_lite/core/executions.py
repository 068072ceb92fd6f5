"""Reading runs test by test, as the execution dialects (Qualigate, QA.tech) show them.

A Qualigate "test run" is one result of a run. A triggered test has its execution's UUID as
that id; a result that came in any other way (ingest, upload) is known by its result id, so
the same routes serve every run. Nothing here filters by tenant: `locate` tells the caller
whose a resource is, and the dialect decides between 403 and 404 (Qualigate answers 403 for a
resource of another project than the key's; QA.tech says 404).
"""

from __future__ import annotations

import aiosqlite
import msgspec

from .clock import row_id
from .status import UNFINISHED


class Owner(msgspec.Struct):
    tenant_id: str
    project_id: str
    id: str  # the resource's canonical id (a run's id when found by short id)


_LOCATE = {
    "test_case": "SELECT p.tenant_id, c.project_id, c.id FROM test_cases c JOIN projects p ON p.id = c.project_id "
    "WHERE c.id = ?",
    "suite": "SELECT p.tenant_id, s.project_id, s.id FROM suites s JOIN projects p ON p.id = s.project_id "
    "WHERE s.id = ?",
    "project": "SELECT tenant_id, id, id FROM projects WHERE id = ?",
    "run": "SELECT tenant_id, project_id, id FROM runs WHERE id = ?1 OR short_id = ?1",
    "execution": "SELECT u.tenant_id, u.project_id, e.id FROM executions e JOIN runs u ON u.id = e.run_id "
    "WHERE e.id = ?",
    "result": "SELECT u.tenant_id, u.project_id, CAST(r.id AS TEXT) FROM results r JOIN runs u ON u.id = r.run_id "
    "WHERE r.id = ?",
}


async def locate(conn: aiosqlite.Connection, kind: str, ref: str) -> Owner | None:
    if kind == "result":
        key: object = row_id(ref)
        if key is None:
            return None
    else:
        key = ref
    rows = await conn.execute_fetchall(_LOCATE[kind], (key,))
    return Owner(*rows[0]) if rows else None


async def locate_test_run(conn: aiosqlite.Connection, ref: str) -> Owner | None:
    """A Qualigate test run id: an execution's UUID, or a result id."""
    return await locate(conn, "result" if ref.isdigit() else "execution", ref)  # locate checks the digits


async def run_of_execution(conn: aiosqlite.Connection, execution_id: str) -> str | None:
    rows = await conn.execute_fetchall("SELECT run_id FROM executions WHERE id = ?", (execution_id,))
    return rows[0][0] if rows else None


class TestRun(msgspec.Struct):
    """One result, with what the execution dialects show of it (times in epoch ms)."""

    id: str
    run_id: str
    test_case_id: str | None
    code: str | None
    title: str
    description: str | None
    test_id: int
    status: str
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error_message: str | None
    video_attachment_id: str | None = None


_SELECT = (
    "SELECT coalesce(e.id, CAST(r.id AS TEXT)), r.run_id, t.test_case_id, c.code, t.title, c.description, r.test_id, "
    "r.status, r.executed_at, r.updated_at, r.duration_ms, r.error_message, r.id, e.id IS NOT NULL "
    "FROM results r JOIN tests t ON t.id = r.test_id LEFT JOIN test_cases c ON c.id = t.test_case_id "
    "LEFT JOIN executions e ON e.run_id = r.run_id AND e.test_id = r.test_id"
)


def _test_run(r) -> TestRun:
    status, started, updated, duration = r[7], r[8], r[9], r[10]
    completed = None
    if status not in UNFINISHED:
        # A triggered test finished when its outcome was stored; an uploaded one when it
        # stopped running, if the report said when it started.
        completed = started + duration if not r[13] and started is not None and duration is not None else updated
    return TestRun(
        id=r[0], run_id=r[1], test_case_id=r[2], code=r[3], title=r[4], description=r[5], test_id=r[6], status=status,
        started_at=started, completed_at=completed, duration_ms=duration, error_message=r[11],
    )


async def _with_videos(conn: aiosqlite.Connection, rows) -> list[TestRun]:
    out = [_test_run(r) for r in rows]
    result_ids = [r[12] for r in rows]
    videos: dict[int, str] = {}
    for start in range(0, len(result_ids), 500):
        chunk = result_ids[start : start + 500]
        for result_id, attachment_id in await conn.execute_fetchall(
            f"SELECT result_id, id FROM attachments WHERE result_id IN ({','.join('?' * len(chunk))}) "
            "AND mime_type LIKE 'video/%' ORDER BY created_at DESC, id DESC",
            chunk,
        ):
            videos[result_id] = attachment_id  # ends on the oldest: the first recording wins
    for run, result_id in zip(out, result_ids):
        run.video_attachment_id = videos.get(result_id)
    return out


async def test_runs(conn: aiosqlite.Connection, refs: list[str]) -> dict[str, TestRun]:
    """ref -> test run, for refs that are an execution UUID or a result id; others are left out."""
    refs = list(dict.fromkeys(refs))
    found = []
    for ref in refs:
        if ref.isdigit():
            key = row_id(ref)
            rows = await conn.execute_fetchall(f"{_SELECT} WHERE r.id = ?", (key,)) if key is not None else []
        else:
            rows = await conn.execute_fetchall(f"{_SELECT} WHERE e.id = ?", (ref,))
        found.append((ref, rows[0]) if rows else None)
    hits = [f for f in found if f is not None]
    return dict(zip([ref for ref, _ in hits], await _with_videos(conn, [row for _, row in hits])))


async def test_runs_of_run(conn: aiosqlite.Connection, run_id: str, statuses: tuple[str, ...] = ()) -> list[TestRun]:
    """A run's results in the order they were triggered (or stored), optionally only `statuses`."""
    sql, params = f"{_SELECT} WHERE r.run_id = ?", [run_id]
    if statuses:
        sql += f" AND r.status IN ({','.join('?' * len(statuses))})"
        params += list(statuses)
    rows = await conn.execute_fetchall(sql + " ORDER BY coalesce(e.position, 0), r.id", params)
    return await _with_videos(conn, rows)


async def status_counts(conn: aiosqlite.Connection, run_id: str) -> dict[str, int]:
    """canonical status -> number of the run's results (the run's own counters fold CANCELED
    into skipped, which the Qualigate counts must not)."""
    rows = await conn.execute_fetchall(
        "SELECT status, count(*) FROM results WHERE run_id = ? GROUP BY status", (run_id,)
    )
    return {r[0]: r[1] for r in rows}
