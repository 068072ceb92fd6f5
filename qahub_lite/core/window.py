"""The analysis window of test health: which runs count, and their results as compact rows.

Flakiness, grades, gates and regressions all look at "the last N completed runs of a branch,
infrastructure failures left out" (docs/health.md). This module owns that choice and the two
queries it needs, shaped by the indexes: runs are walked newest first along
`runs_project_branch`, and results are looked up by `(run_id, test_id)`, the results table's
only index (an index led by the test made bulk inserts 6x slower, DESIGN.md).

Queries here are written once, for aiosqlite readers, and reused by the writer thread's hooks
through `SyncSource`: its awaits never suspend, so `drive` runs such a coroutine to its end
without an event loop. One query text, two connection kinds, no copy to drift.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Coroutine, Sequence
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from ..config import FlakyConfig
from .errors import NotFound
from .status import FAILURE_STATUSES

T = TypeVar("T")
_CHUNK = 500


class AsyncSource:
    """An aiosqlite reader that hands out plain tuples (analyses read tens of thousands of
    rows; sqlite3.Row objects would cost more than the query)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = await self.conn.cursor()
        try:
            cursor.row_factory = None
            await cursor.execute(sql, params)
            return await cursor.fetchall()
        finally:
            await cursor.close()


class SyncSource:
    """The writer's connection behind the same interface; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self.conn.cursor()
        try:
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()


Source = AsyncSource | SyncSource


def source(conn: aiosqlite.Connection | sqlite3.Connection | Source) -> Source:
    if isinstance(conn, (AsyncSource, SyncSource)):
        return conn
    if isinstance(conn, sqlite3.Connection):
        return SyncSource(conn)
    return AsyncSource(conn)


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (one that only awaits a SyncSource) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a health query suspended on a synchronous connection")


async def default_branch(src: Source, project_id: str) -> str:
    rows = await src.fetch("SELECT default_branch FROM projects WHERE id = ?", (project_id,))
    if not rows:
        raise NotFound("Project not found")
    return rows[0][0]


class WindowRun(NamedTuple):
    id: str
    short_id: str
    commit_sha: str | None
    created_at: int
    total: int
    passed: int
    failed: int
    broken: int
    skipped: int
    flaky: int
    duration_ms: int | None

    @property
    def executed(self) -> int:
        return self.passed + self.failed + self.broken


RUN_COLUMNS = "id, short_id, commit_sha, created_at, total, passed, failed, broken, skipped, flaky, duration_ms"


def is_infra_failure(run: WindowRun, rules: FlakyConfig) -> bool:
    """Most executed tests failed at once: the machine, not the tests (docs/health.md)."""
    executed = run.executed
    return executed >= rules.infra_min_tests and run.failed + run.broken >= rules.infra_failure_ratio * executed


def branch_clause(branch: str | None) -> tuple[str, tuple]:
    """`branch IS ?` so that runs without a branch form a branch of their own ('' or None)."""
    return "branch IS ?", (branch or None,)


async def recent_runs(
    src: Source, project_id: str, branch: str | None, count: int, rules: FlakyConfig, *,
    before_ms: int | None = None, exclude_run: str | None = None,
) -> tuple[list[WindowRun], int]:
    """The last `count` COMPLETED runs of a branch, newest first, without infrastructure
    failures; and how many infrastructure failures were skipped on the way.

    `before_ms`: only runs created before it (a grade as of a day's end, a run's baseline).
    """
    where, params = branch_clause(branch)
    sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE project_id = ? AND {where} AND status = 'COMPLETED'"
    args: list[Any] = [project_id, *params]
    if before_ms is not None:
        sql += " AND created_at < ?"
        args.append(before_ms)
    sql += " ORDER BY created_at DESC LIMIT ?"
    # Infrastructure failures are rare: ask for a few more than needed, and for twice as many
    # again only when they were not enough.
    limit = count + 8
    while True:
        rows = [WindowRun(*r) for r in await src.fetch(sql, (*args, limit))]
        usable = [r for r in rows if r.id != exclude_run and not is_infra_failure(r, rules)]
        if len(usable) >= count or len(rows) < limit:
            skipped = sum(1 for r in rows[: _cut(rows, usable, count)] if is_infra_failure(r, rules))
            return usable[:count], skipped
        limit *= 2


def _cut(rows: list[WindowRun], usable: list[WindowRun], count: int) -> int:
    """How many of `rows` (newest first) the first `count` usable ones span."""
    if len(usable) < count or count == 0:
        return len(rows)
    last = usable[count - 1].id
    for index, row in enumerate(rows):
        if row.id == last:
            return index + 1
    return len(rows)


async def get_window_run(src: Source, run_id: str) -> WindowRun | None:
    rows = await src.fetch(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    return WindowRun(*rows[0]) if rows else None


# A final result, coded for compact per-test sequences (flaky.py keeps one byte per run).
ABSENT, PASS, FAIL, RETRIED_PASS = 0, 1, 2, 3
_CODE = "CASE WHEN r.status = 'PASSED' THEN 1 + 2 * (r.flaky != 0) ELSE 2 END"
_FINAL = "(" + ", ".join(f"'{s}'" for s in sorted({"PASSED", *FAILURE_STATUSES})) + ")"


async def outcome_codes(
    src: Source, run_ids: Sequence[str], test_ids: Sequence[int] | None = None
) -> list[tuple[int, int, int]]:
    """(index in `run_ids`, test id, code) of every final result of those runs (of `test_ids`
    only, when given), in no particular order. Skipped and unfinished results say nothing of
    health and are left out.

    One query: the runs come in as a VALUES table that drives the join, so each run's results
    are one range of the (run_id, test_id) index, and only integers cross into Python."""
    if not run_ids:
        return []
    values = ",".join("(?, ?)" for _ in run_ids)
    pairs = [x for index, run_id in enumerate(run_ids) for x in (run_id, index)]
    sql = (
        f"WITH w(id, pos) AS (VALUES {values}) SELECT w.pos, r.test_id, {_CODE} "
        f"FROM w CROSS JOIN results r ON r.run_id = w.id WHERE r.status IN {_FINAL}"
    )
    if test_ids is None:
        return await src.fetch(sql, pairs)
    out: list[tuple[int, int, int]] = []
    for start in range(0, len(test_ids), _CHUNK):
        tests = list(test_ids[start : start + _CHUNK])
        out += await src.fetch(f"{sql} AND r.test_id IN ({','.join('?' * len(tests))})", (*pairs, *tests))
    return out
